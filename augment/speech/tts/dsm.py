"""Kyutai's Delayed-Streams-Modeling TTS (``moshi.models.tts.TTSModel``) as a dialogue-level backend.

A DSM TTS reads a *turn script* (a list of turns starting with the main speaker; an empty first
turn lets the other speaker open), with ``main``/``other`` tokens before each turn on
multi-speaker checkpoints and ``<break time="0.4s"/>`` for pauses. Its state machine pops the next
word whenever the model predicts "new word", so, as with J-Moshi's MS-TTS, the model sets the
timing and each word's step comes back in ``TTSResult.all_transcripts``.

Checkpoints (docs/method.md): Kyutai's public ones speak English/French only; a Japanese one is your
own. Voices: precomputed speaker embeddings (``.safetensors`` with ``speaker_wavs``) on
checkpoints with a ``speaker_wavs`` conditioner, else an audio prefix (a wav; stereo for
``multistream`` checkpoints) prepended and cut from the output. Output: ``multistream``
checkpoints give two audio streams (main, other); mono ones are split into channels at the turn
boundaries the transcript gives.

Each script word is one DSM entry (words are joined with spaces, the separator DSM splits on), so
word timings map 1:1. Sampling uses torch's global generator, seeded per batch: unlike moshi_ms a
batched run is *not* equal to one-by-one runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import numpy as np
from pydantic import Field, field_validator

from jmoshi_augment.augment.speech.tts.base import DialogueRequest, RenderFailed, peak_safe
from jmoshi_augment.augment.speech.tts.ms_script import MORAE_PER_SECOND, speaker_runs
from jmoshi_augment.augment.speech.tts.registry import DialogueOptions, PathOption
from jmoshi_augment.augment.types import (
    FRAME_RATE,
    MAIN,
    OTHER,
    SAMPLE_RATE,
    AlignedWord,
    RenderedDialogue,
    SpokenScript,
    script_fields,
)
from jmoshi_augment.checkpoints import resolve_device
from jmoshi_augment.constants import FRAME_SIZE
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import torch
    from moshi.models.tts import TTSModel

logger = logging.getLogger(__name__)

FRAME = 1 / FRAME_RATE
HOP = FRAME_SIZE
_STRIPPED = str.maketrans("", "", ":()'’ \t\n\u3000")  # characters DSM's script parser treats as syntax or spaces


@dataclass(frozen=True)
class DsmWord:
    segment: int
    index: int
    surface: str
    channel: int
    morae: int
    run: int
    entry: str  # what DSM reads ("" = nothing voiceable: zero-length timing)


def turn_script(script: SpokenScript, main_speaker: str, *, sentence_break: float | None = None,
                backchannels: str = "inline") -> tuple[list[str], list[DsmWord]]:
    """DSM turns (alternating, main first) and the script words in the order DSM will read them."""
    turns: list[str] = []
    words: list[DsmWord] = []
    runs = speaker_runs(script, main_speaker, backchannels)
    if runs and runs[0][0] == OTHER:
        turns.append("")  # DSM convention: an empty first turn lets the other speaker open
    for r, (ch, members) in enumerate(runs):
        parts: list[str] = []
        prev_seg = None
        for s, w in members:
            seg = script.segments[s]
            if sentence_break and prev_seg is not None and s != prev_seg and seg.kind == "speech" \
                    and script.segments[prev_seg].speaker == seg.speaker:
                parts.append(f'<break time="{sentence_break:.2f}s"/>')
            prev_seg = s
            word = seg.words[w]
            entry = word.spoken.translate(_STRIPPED)  # rule-read words as their reading (5km → ゴキロ)
            if entry:
                parts.append(entry)
            words.append(DsmWord(s, w, word.surface, ch, word.morae, r, entry))
        turns.append(" ".join(parts))
    return turns, words


def channel_spans(words: Sequence[AlignedWord], runs: Sequence[int], n: int) -> list[tuple[int, int, int]]:
    """Mono DSM output → ``[(channel, start, end)]`` sample spans: each turn from its first word's
    start to the next turn's first word (the first turn from 0, the last to the end)."""
    firsts: list[tuple[int, int]] = []  # (sample, channel)
    seen = set()
    for w, r in zip(words, runs):
        if r not in seen:
            seen.add(r)
            firsts.append((int(round(w.start * SAMPLE_RATE)), w.channel))
    spans = []
    for k, (a, ch) in enumerate(firsts):
        b = firsts[k + 1][0] if k + 1 < len(firsts) else n
        spans.append((ch, 0 if k == 0 else min(a, n), min(b, n)))
    return spans


class DsmTTS:
    """Dialogue-level backend ``dsm`` on a Kyutai DSM ``TTSModel``."""

    name = "dsm"

    def __init__(self, tts: "TTSModel", *, voices: Sequence[str] = (), cfg_coef: float = 2.0, batch_size: int = 4,
                 sentence_break: float | None = None, padding_between: int = 1, backchannels: str = "inline") -> None:
        self.tts = tts
        self.voices = {Path(v).stem: Path(v) for v in voices}
        for name, path in self.voices.items():
            if not path.is_file():
                raise JmoshiError("voice file not found", path=path, key="tts.options.voices")
            if tts.multi_speaker and path.suffix != ".safetensors":
                raise JmoshiError("this checkpoint is conditioned on speaker embeddings: voices must be .safetensors "
                                  "files (speaker_wavs)", path=path, key="tts.options.voices")
        self.cfg_coef = cfg_coef
        self.batch_size = batch_size
        self.sentence_break = sentence_break
        self.padding_between = padding_between
        self.backchannels = backchannels

    def render(self, segments: Any, voice: Any) -> Any:
        raise JmoshiError("the dsm backend voices whole dialogues: call render_dialogue(s), not render", key="tts.backend")

    def pick_voice_pair(self, rng: np.random.Generator) -> str | None:
        """``"main+other"`` names for embedding checkpoints, one prefix name otherwise."""
        names = list(self.voices)
        if not names:
            return None
        if self.tts.multi_speaker and len(names) >= 2:
            a, b = rng.choice(len(names), size=2, replace=False)
            return f"{names[int(a)]}+{names[int(b)]}"
        return names[int(rng.integers(len(names)))]

    def render_dialogue(self, script: SpokenScript, main_speaker: str, voice_pair: str | None,
                        rng: np.random.Generator) -> RenderedDialogue:
        if voice_pair is None:
            voice_pair = self.pick_voice_pair(rng)
        out = self.render_dialogues([DialogueRequest(script, main_speaker, voice_pair, int(rng.integers(0, 2**63 - 1)))])[0]
        if isinstance(out, RenderFailed):
            raise out
        return out

    def render_dialogues(self, requests: Sequence[DialogueRequest]) -> list[RenderedDialogue | RenderFailed]:
        out: list[RenderedDialogue | RenderFailed] = []
        for a in range(0, len(requests), self.batch_size):
            out.extend(self._batch(requests[a: a + self.batch_size]))
        return out

    # ------------------------------------------------------------------------------- internals

    def _voice_files(self, voice_pair: str | None) -> list[Path]:
        if voice_pair is None:
            return []
        names = voice_pair.split("+")
        missing = [n for n in names if n not in self.voices]
        if missing:
            raise JmoshiError(f"unknown voice(s) {missing}; known: {', '.join(self.voices) or 'none'}", key="tts.options.voices")
        return [self.voices[n] for n in names]

    def _prefix(self, path: Path) -> "torch.Tensor":
        """Audio prefix as ``[1 + n_q, T]`` tokens with a null text row (Kyutai's ``get_prefix``,
        extended to stereo for multistream checkpoints: channel 0 = main voice)."""
        import sphn
        import torch

        wav, _ = sphn.read(str(path), sample_rate=SAMPLE_RATE)
        wav = np.atleast_2d(wav)
        if self.tts.multistream and wav.shape[0] != 2:
            raise JmoshiError("a multistream checkpoint needs a stereo voice prefix (channel 0 = main)", path=path)
        chans = [wav[0], wav[1]] if self.tts.multistream else [wav.mean(axis=0)]
        with torch.no_grad():
            x = torch.from_numpy(np.stack(chans).astype(np.float32)).to(self.tts.lm.device)[:, None]
            codes = self.tts.mimi.encode(x)[:, :, :-2]  # Kyutai drops the last two (partial) frames
        codes = codes.reshape(-1, codes.shape[-1])
        null_text = torch.full_like(codes[:1], self.tts.machine.token_ids.zero)
        return torch.cat([null_text, codes], dim=0)

    def _batch(self, requests: Sequence[DialogueRequest]) -> list[RenderedDialogue | RenderFailed]:
        import torch

        tts = self.tts
        scripts = [turn_script(r.script, r.main_speaker, sentence_break=self.sentence_break,
                               backchannels=self.backchannels) for r in requests]
        entries = [tts.prepare_script(turns, padding_between=self.padding_between) for turns, _ in scripts]
        voice_files = [self._voice_files(r.voice_pair) for r in requests]
        cfg = self.cfg_coef if tts.valid_cfg_conditionings else None
        if not tts.valid_cfg_conditionings:
            tts.cfg_coef = self.cfg_coef
        if tts.multi_speaker:
            attributes = [tts.make_condition_attributes(v, cfg_coef=cfg) for v in voice_files]
            prefixes = None
        else:
            attributes = [tts.make_condition_attributes([], cfg_coef=cfg) for _ in requests]
            prefixes = [self._prefix(v[0]) if v else torch.full((tts.lm.num_codebooks, 0), tts.machine.token_ids.zero,
                                                                   dtype=torch.long, device=tts.lm.device) for v in voice_files]
        torch.manual_seed(requests[0].seed % (2**63))
        result = tts.generate(entries, attributes, prefixes=prefixes)
        frames = torch.cat(result.frames, dim=-1)[:, 1:] if result.frames else None  # [B, Q, T]
        out: list[RenderedDialogue | RenderFailed] = []
        for b, req in enumerate(requests):
            P = 0 if prefixes is None else int(prefixes[b].shape[-1])
            out.append(self._finish(req, scripts[b][1], result, b, frames, P))
        return out

    def _finish(self, req: DialogueRequest, words: list[DsmWord], result: Any, b: int, frames: Any,
                prefix: int) -> RenderedDialogue | RenderFailed:
        import torch

        tts = self.tts
        sid = req.script.dialogue_id
        end = result.end_steps[b]
        if end is None or frames is None:
            return RenderFailed(f"{sid}: the DSM model did not reach the end of the script within max_gen_length")
        stop = min(frames.shape[-1], tts.delay_steps + end + tts.final_padding)
        codes = frames[b: b + 1, :, tts.delay_steps + prefix: stop].clamp(0, tts.lm.card - 1)  # [1, Q, T]
        with torch.no_grad():
            if tts.multistream:
                q = codes.shape[1] // 2
                pcm = tts.mimi.decode(torch.cat([codes[:, :q], codes[:, q:]], dim=0))[:, 0]  # [2, N]
            else:
                pcm = tts.mimi.decode(codes)[:, 0]  # [1, N]
        pcm = pcm.float().cpu().numpy()
        n = pcm.shape[-1]
        steps = [s for _, s in result.all_transcripts[b]]
        spoken = [w for w in words if w.entry]
        if len(steps) < len(spoken):
            return RenderFailed(f"{sid}: {len(steps)} of {len(spoken)} words were voiced")
        start_of = {id(w): max(0.0, (s - prefix) * FRAME) for w, s in zip(spoken, steps)}
        aligned, runs, last = [], [], 0.0
        for i, w in enumerate(words):
            start = min(max(start_of.get(id(w), last), last), n / SAMPLE_RATE)
            last = start
            nxt = next((start_of[id(x)] for x in words[i + 1:] if x.run == w.run and id(x) in start_of
                        and start_of[id(x)] > start), None)
            stop_t = start + max(FRAME, w.morae / MORAE_PER_SECOND) if w.entry else start
            stop_t = min(stop_t, nxt) if nxt is not None else stop_t
            aligned.append(AlignedWord(w.surface, start, min(stop_t, n / SAMPLE_RATE), w.channel))
            runs.append(w.run)
        if tts.multistream:
            audio = pcm
        else:
            audio = np.zeros((2, n), dtype=np.float32)
            for ch, a, z in channel_spans(aligned, runs, n):
                audio[ch, a:z] = pcm[0, a:z]
        audio = np.stack([peak_safe(audio[MAIN]), peak_safe(audio[OTHER])])
        other = next(s for s in req.script.speakers if s != req.main_speaker)
        return RenderedDialogue(
            id=f"{sid}-main{req.main_speaker}", dialogue_id=sid, corpus=req.script.corpus, audio=audio,
            words=tuple(sorted(aligned, key=lambda a: (a.start, a.channel))),
            speaker_map={"main": req.main_speaker, "other": other},
            voices={"main": str(req.voice_pair), "other": str(req.voice_pair)}, **script_fields(req.script),
            meta={"tts": {"backend": self.name, "seed": req.seed, "voice_pair": req.voice_pair, "prefix_frames": prefix,
                          "multistream": bool(tts.multistream), "end_step": int(end)}},
        )


def load_dsm(spec: str | Path, *, device: str = "cpu", n_q: int | None = None, temp: float = 0.6,
             max_gen_length: int = 3000, max_padding: int = 8) -> "TTSModel":
    """A DSM TTS checkpoint folder or HF repo id (config.json with ``tts_config`` and ``model_id``)."""
    import torch
    from moshi.models.tts import TTSModel

    from jmoshi_augment.checkpoints import resolve_model

    info = resolve_model(spec)
    raw = info.raw_config or {}
    if not info.tts_config or "audio_delay" not in info.tts_config or "model_id" not in raw:
        raise JmoshiError("not a DSM TTS checkpoint: config.json needs tts_config.audio_delay and model_id "
                          "(Kyutai's tts-* layout)", path=info.moshi_weights)
    if "conditioners" not in raw:
        raise JmoshiError("this DSM checkpoint has no conditioners; moshi's TTSModel needs at least the "
                          "control/cfg conditioners", path=info.moshi_weights)
    lm_nq = int(raw.get("n_q", 8))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tts = TTSModel.from_checkpoint_info(info, n_q=n_q or lm_nq, temp=temp, device=device, dtype=dtype,
                                        max_gen_length=max_gen_length, max_padding=max_padding)
    return tts


class DsmOptions(DialogueOptions):
    """``tts.options`` of the dsm backend (Kyutai's Delayed-Streams-Modeling TTS)."""

    model: Annotated[str, PathOption("model")] = Field(..., description="DSM TTS checkpoint folder or Hugging Face repo id.")
    voices: Annotated[tuple[str, ...], PathOption("voices")] = Field(
        (), description="Speaker-embedding .safetensors files, or prefix wavs for checkpoints without speaker conditioning.")
    n_q: Optional[int] = Field(None, description="Codebooks generated; default: the checkpoint's.")
    temp: float = Field(0.6, description="Sampling temperature.")
    cfg_coef: float = Field(2.0, description="Classifier-free guidance coefficient.")
    batch_size: int = Field(4, description="Dialogues generated at once.")
    sentence_break: Optional[float] = Field(None, description="A <break> of this many seconds between sentences of a turn.")
    padding_between: int = Field(1, description="Pads between words.")
    max_gen_length: int = Field(3000, description="Most frames generated.")
    # TTSModel.from_checkpoint_info's default: most pads sampled in a row before the next word is forced.
    max_padding: int = Field(8, description="Most pads the model may sample in a row.")

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v


def build(o: DsmOptions) -> DsmTTS:
    """The backend from its validated options: loads the checkpoint."""
    device = resolve_device(o.device, key="tts.options.device")
    tts = load_dsm(o.model, device=device, n_q=o.n_q, temp=o.temp, max_gen_length=o.max_gen_length, max_padding=o.max_padding)
    return DsmTTS(tts, voices=list(o.voices), cfg_coef=o.cfg_coef, batch_size=o.batch_size, sentence_break=o.sentence_break,
                  padding_between=o.padding_between, backchannels=o.backchannels)
