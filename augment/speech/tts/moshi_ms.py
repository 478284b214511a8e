"""J-Moshi's multi-stream TTS: a Moshi LM retrained to voice a whole dialogue at once.

The checkpoint is a Moshi network with 8 Mimi codebooks per speaker in its Depth Transformer
(``n_q = dep_q = 16``), trained on one merged text stream (token 1 before a main-speaker turn, 2
before an other-speaker turn, padding 3, end-of-padding 0; docs/method.md). This
backend writes our spoken script into that stream, lets :class:`~.ms_decode.ForcedDecoder` keep the
model's own pads and force everything else, and turns the result back into the pipeline's
:class:`RenderedDialogue`: channel 0 decoded from the main speaker's codebooks, channel 1 from the
other's, word starts read off the frames where each word's first token was forced.

Voices come from an *audio prompt* (J-Moshi's MS-TTS has no speaker embedding): a stereo wav per
voice pair (channel 0 = main voice), Mimi-encoded, prepended to the generation and cut from the
output; or a ``.npy`` of ``[17, T]`` token ids as J-Moshi's ``--prompt_streams_path`` takes.

It is a *dialogue-level* backend (it decides timing itself): the pipeline calls
:meth:`MoshiMultiStreamTTS.render_dialogues` (or ``render_dialogue``) instead of per-voice
``render`` + ``plan_timeline`` + ``mix``.

Checkpoint loading and the prompt bank live in :mod:`.ms_model`, the script's text stream in
:mod:`.ms_script`, the step loop in :mod:`.ms_decode`; their public names are importable from here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional, Sequence

import numpy as np
from pydantic import Field, field_validator

from jmoshi_augment.augment.speech.tts.base import EDGE_MARGIN, DialogueRequest, RenderFailed, peak_safe
from jmoshi_augment.augment.speech.tts.ms_decode import DecodeItem, DecodeLimits, DecodeOutput, StreamSampling, undelay
from jmoshi_augment.augment.speech.tts.registry import DialogueOptions, PathOption
from jmoshi_augment.augment.speech.tts.ms_model import (  # noqa: F401  (re-exported: moshi_ms's public names)
    PROMPT_EXTS,
    MultiStreamModel,
    PromptBank,
    check_multistream,
    load_multistream_model,
)
from jmoshi_augment.augment.speech.tts.ms_script import (  # noqa: F401  (re-exported: moshi_ms's public names)
    ScriptTokens,
    build_script_tokens,
    speaker_runs,
    word_timings,
)
from jmoshi_augment.augment.types import FRAME_RATE, SAMPLE_RATE, RenderedDialogue, Seconds, SpokenScript, script_fields
from jmoshi_augment.checkpoints import resolve_device
from jmoshi_augment.constants import FRAME_SIZE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)

FRAME = 1 / FRAME_RATE


# -------------------------------------------------------------------------------------- trimming


def trim_end(audio: np.ndarray, keep: int, *, silence_db: float = -40.0, margin: Seconds = EDGE_MARGIN) -> int:
    """Samples to keep: up to the last 80 ms frame louder than ``silence_db`` below the loudest
    frame (either channel), never fewer than ``keep``, plus ``margin``."""
    hop = FRAME_SIZE
    n = audio.shape[-1] // hop
    if n == 0:
        return audio.shape[-1]
    rms = np.sqrt(np.mean(np.square(audio[:, : n * hop].reshape(2, n, hop), dtype=np.float64), axis=-1)).max(axis=0)
    loud = rms.max()
    active = np.nonzero(rms > loud * 10 ** (silence_db / 20))[0] if loud > 0 else np.zeros(0, dtype=int)
    end = (int(active[-1]) + 1) * hop if active.size else 0
    return int(min(audio.shape[-1], max(end, keep) + int(margin * SAMPLE_RATE)))


# -------------------------------------------------------------------------------------- backend


@dataclass(frozen=True)
class MultiStreamOptions:
    sampling: StreamSampling = StreamSampling()
    limits: DecodeLimits = DecodeLimits()
    batch_size: int = 8  # dialogues per forward
    backchannels: Literal["inline", "drop"] = "inline"
    end_punct: bool = True
    silence_db: float = -40.0  # trailing-silence threshold below the loudest frame
    decode_batch: int = 8  # channels per Mimi decode call


class MoshiMultiStreamTTS:
    """Dialogue-level backend ``moshi_ms`` (see module docstring)."""

    name = "moshi_ms"

    def __init__(self, model: MultiStreamModel, prompts: PromptBank, options: MultiStreamOptions = MultiStreamOptions()) -> None:
        self.model = model
        self.prompts = prompts
        self.options = options

    def render(self, segments: Any, voice: Any) -> Any:
        raise JmoshiError("the moshi_ms backend voices whole dialogues: call render_dialogue(s), not render",
                          key="tts.backend")

    def pick_voice_pair(self, rng: np.random.Generator) -> str | None:
        names = self.prompts.names
        return names[int(rng.integers(len(names)))] if names else None

    def render_dialogue(self, script: SpokenScript, main_speaker: str, voice_pair: str | None,
                        rng: np.random.Generator) -> RenderedDialogue:
        """One rendering; ``voice_pair`` None draws one from the prompt bank with ``rng``."""
        if voice_pair is None:
            voice_pair = self.pick_voice_pair(rng)
        request = DialogueRequest(script, main_speaker, voice_pair, int(rng.integers(0, 2**63 - 1)))
        out = self.render_dialogues([request])[0]
        if isinstance(out, RenderFailed):
            raise out
        return out

    def render_dialogues(self, requests: Sequence[DialogueRequest]) -> list[RenderedDialogue | RenderFailed]:
        """Many renderings through one batched decoder; results in request order."""
        from jmoshi_augment.augment.speech.tts.ms_decode import ForcedDecoder

        o = self.options
        scripts = [build_script_tokens(r.script, r.main_speaker, self.model.sp, backchannels=o.backchannels,
                                       end_punct=o.end_punct) for r in requests]
        prompts = [self.prompts.tokens(r.voice_pair, self.model) for r in requests]
        items = [DecodeItem(np.asarray(s.ids, dtype=np.int64), p, r.seed) for s, p, r in zip(scripts, prompts, requests)]
        decoder = ForcedDecoder(self.model.lm, pad_id=TEXT_IDS.pad, end_pad_id=TEXT_IDS.end_of_padding, sampling=o.sampling, limits=o.limits)
        outputs = decoder.run(items, o.batch_size)
        audio = self._decode_audio([undelay(out.steps, self.model.lm.delays) for out in outputs])
        return [self._finish(r, s, p.shape[1], out, a) for r, s, p, out, a in zip(requests, scripts, prompts, outputs, audio)]

    def _decode_audio(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Mimi-decode every item's two channels (prompt included, for the codec's context),
        batched and padded; returns float32 ``[2, samples]`` per item."""
        import torch

        q = self.model.codebooks_per_speaker
        hop = FRAME_SIZE
        chans = [(i, c, f[1 + c * q: 1 + (c + 1) * q]) for i, f in enumerate(frames) for c in (0, 1)]
        out = [np.zeros((2, f.shape[1] * hop), dtype=np.float32) for f in frames]
        bs = max(1, self.options.decode_batch)
        for a in range(0, len(chans), bs):
            group = chans[a: a + bs]
            T = max(g[2].shape[1] for g in group)
            if T == 0:
                continue
            codes = np.zeros((len(group), q, T), dtype=np.int64)
            for j, (_, _, c) in enumerate(group):
                codes[j, :, : c.shape[1]] = np.clip(c, 0, self.model.lm.card - 1)
            with torch.no_grad():
                pcm = self.model.mimi.decode(torch.from_numpy(codes).to(self.model.lm.device))[:, 0].float().cpu().numpy()
            for j, (i, c, cc) in enumerate(group):
                out[i][c] = pcm[j, : cc.shape[1] * hop]
        return out

    def _finish(self, request: DialogueRequest, tokens: ScriptTokens, prompt_frames: int, out: DecodeOutput,
                audio: np.ndarray) -> RenderedDialogue | RenderFailed:
        sid = request.script.dialogue_id
        if not out.complete:
            done = int((out.consumed_at >= 0).sum())
            return RenderFailed(f"{sid}: script not consumed within max_frames={self.options.limits.max_frames} "
                                f"({done}/{len(tokens)} tokens)")
        hop = FRAME_SIZE
        audio = audio[:, prompt_frames * hop:]  # the prompt is context, not output
        consumed = out.consumed_at - prompt_frames
        last_token = int(consumed.max()) + 1
        n = trim_end(audio, last_token * hop, silence_db=self.options.silence_db)
        audio = np.stack([peak_safe(audio[0, :n]), peak_safe(audio[1, :n])])
        words = word_timings(tokens, consumed, n / SAMPLE_RATE)
        text = undelay(out.steps, self.model.lm.delays)[0, prompt_frames:]
        other = next(s for s in request.script.speakers if s != request.main_speaker)
        return RenderedDialogue(
            id=f"{sid}-main{request.main_speaker}",
            dialogue_id=sid,
            corpus=request.script.corpus,
            audio=audio,
            words=tuple(words),
            speaker_map={"main": request.main_speaker, "other": other},
            voices={"main": f"{request.voice_pair}:0", "other": f"{request.voice_pair}:1"},
            **script_fields(request.script),  # nothing planned: the model chose the timing
            meta={
                "tts": {"backend": self.name, "seed": request.seed, "voice_pair": request.voice_pair,
                        "prompt_frames": prompt_frames, "script_tokens": len(tokens), "dropped_pieces": tokens.dropped},
                "text_stream": text[: n // hop + 1].tolist(),
            },
        )


class MultiStreamTTSOptions(DialogueOptions):
    """``tts.options`` of the moshi_ms backend (J-Moshi's multi-stream TTS method)."""

    model: Annotated[str, PathOption("model")] = Field(..., description="J-Moshi-layout folder or Hugging Face repo id.")
    prompts: Annotated[tuple[str, ...], PathOption("prompts")] = Field(
        (), description="Stereo wavs / token .npy files, or folders of them: the voice-pair bank.")
    lm: Annotated[Optional[str], PathOption("file")] = Field(None, description="LM weights, if not the folder's.")
    mimi: Annotated[Optional[str], PathOption("file")] = Field(None, description="Mimi weights, if not the folder's.")
    tokenizer: Annotated[Optional[str], PathOption("file")] = Field(None, description="SentencePiece model, if not the folder's.")
    batch_size: int = Field(8, description="Dialogues decoded at once.")
    temp_text: float = Field(0.55, description="Temperature of the text stream's pad/word choice (0: greedy).")
    top_k_text: int = Field(25, description="Top-k of the text stream.")
    temp_main: float = Field(0.6, description="Temperature of the main speaker's codebooks.")
    top_k_main: int = Field(250, description="Top-k of the main speaker's codebooks.")
    temp_other: float = Field(0.6, description="Temperature of the other speaker's codebooks.")
    top_k_other: int = Field(250, description="Top-k of the other speaker's codebooks.")
    pad_bonus: float = Field(0.0, description="Added to the pad logit: more pauses.")
    max_frames: int = Field(2000, description="Frames after which an unconsumed script fails its rendering.")
    tail_frames: int = Field(25, description="Frames decoded after the last word.")
    end_punct: bool = Field(True, description="Give every turn a sentence-final mark.")
    prompt_seconds: float = Field(10.0, description="Longest audio prompt kept, s.")
    prompt_text: str = Field("pad", description="Text stream under the prompt: pad or zero.")
    silence_db: float = Field(-40.0, description="Level below which the trailing audio is trimmed, dB re peak.")

    @field_validator("temp_text", "temp_main", "temp_other")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must be >= 0 (0 = greedy), got {v}")
        return v

    @field_validator("batch_size", "max_frames")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v

    @field_validator("prompt_text")
    @classmethod
    def _prompt_text(cls, v: str) -> str:
        if v not in ("pad", "zero"):
            raise ValueError(f"must be pad or zero, got {v!r}")
        return v

    def check_files(self, voices: Sequence[Any]) -> Iterable[JmoshiError]:
        yield from super().check_files(voices)
        folder = Path(self.model).expanduser()
        if folder.is_dir():
            yield from self._folder_files(folder)

    def _folder_files(self, folder: Path) -> Iterable[JmoshiError]:
        """A J-Moshi-layout folder holds the LM, Mimi and tokenizer files (names from its
        config.json when it has one), unless an option points elsewhere."""
        import json

        from jmoshi_augment.checkpoints import LM_NAME, MIMI_NAME, TEXT_TOKENIZER_NAME
        from jmoshi_augment.errors import first_line

        names = {"lm": LM_NAME, "mimi": MIMI_NAME, "tokenizer": TEXT_TOKENIZER_NAME}
        config = folder / "config.json"
        if config.is_file():
            try:
                raw = json.loads(config.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                yield JmoshiError(f"not valid JSON: {first_line(e)}", path=config, key="tts.options.model")
                return
            if isinstance(raw, dict):
                names.update({k: raw.get(f"{n}_name", names[k]) for k, n in (("lm", "moshi"), ("mimi", "mimi"), ("tokenizer", "tokenizer"))})
        for key, file_name in names.items():
            if getattr(self, key) is None and not (folder / file_name).is_file():
                yield JmoshiError(f"model folder lacks {file_name} (or set tts.options.{key})", path=folder, key="tts.options.model")


def build(o: MultiStreamTTSOptions) -> MoshiMultiStreamTTS:
    """The backend from its validated options: loads the checkpoint and the prompt bank."""
    device = resolve_device(o.device, key="tts.options.device")
    loaded = load_multistream_model(o.model, device=device, lm=o.lm, mimi=o.mimi, tokenizer=o.tokenizer)
    options = MultiStreamOptions(
        sampling=StreamSampling(o.temp_text, o.top_k_text, o.temp_main, o.top_k_main, o.temp_other, o.top_k_other, o.pad_bonus),
        limits=DecodeLimits(max_frames=o.max_frames, tail_frames=o.tail_frames),
        batch_size=o.batch_size, backchannels=o.backchannels,  # type: ignore[arg-type]
        end_punct=o.end_punct, silence_db=o.silence_db,
    )
    return MoshiMultiStreamTTS(loaded, PromptBank(list(o.prompts), max_seconds=o.prompt_seconds, text=o.prompt_text), options)
