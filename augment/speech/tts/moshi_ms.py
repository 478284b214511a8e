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

Checkpoint loading and the prompt bank live in :mod:`.ms_model`, the step loop in :mod:`.ms_decode`;
their public names are importable from here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Literal, Optional, Sequence

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
from jmoshi_augment.augment.types import (
    FRAME_RATE,
    MAIN,
    OTHER,
    SAMPLE_RATE,
    AlignedWord,
    RenderedDialogue,
    Seconds,
    SpokenScript,
    script_fields,
)
from jmoshi_augment.checkpoints import resolve_device
from jmoshi_augment.constants import FRAME_SIZE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.augment.text.punctuation import PROSODIC

if TYPE_CHECKING:
    import sentencepiece

logger = logging.getLogger(__name__)

FRAME = 1 / FRAME_RATE
SPEAKER_TOKEN = {MAIN: TEXT_IDS.main_turn, OTHER: TEXT_IDS.other_turn}  # J-Moshi MS-TTS: main/other_speaker_bos_id
MORAE_PER_SECOND = 8.0  # everyday Japanese conversation (CEJC); bounds a word's estimated end
SENTENCE_END = tuple(PROSODIC + "!?")  # ASCII marks too: a rewrite may leave them


# --------------------------------------------------------------------------- script → text stream


@dataclass(frozen=True)
class ScriptWord:
    segment: int  # index into SpokenScript.segments
    index: int  # word index inside the segment
    surface: str
    channel: int
    morae: int
    token: int  # index into ScriptTokens.ids of the first piece covering or following the word; -1: none
    run: int  # which speaker run (stretch of one speaker's words in the merged stream) it is in


@dataclass(frozen=True)
class ScriptTokens:
    """The merged text stream to force, and which script word each piece belongs to."""

    ids: tuple[int, ...]
    words: tuple[ScriptWord, ...]  # in spoken order
    dropped: int = 0  # pieces dropped: unknown (id collides with end-of-padding 0) or byte fallback

    def __len__(self) -> int:
        return len(self.ids)


def speaker_runs(script: SpokenScript, main_speaker: str, backchannels: str = "inline") -> list[tuple[int, list[tuple[int, int]]]]:
    """``[(channel, [(segment, word), ...]), ...]`` in spoken order. With ``inline``, each
    backchannel becomes a short turn of its speaker right after its anchor word in the partner's
    turn (how J-Moshi-ext's rewritten scripts hold 「そうそう！」), or after that turn's last word
    when the anchor is missing."""
    if main_speaker not in script.speakers:
        raise JmoshiError(f"main speaker {main_speaker!r} is not one of the script's speakers {list(script.speakers)}",
                          key=script.dialogue_id)
    channel = {s: (MAIN if s == main_speaker else OTHER) for s in script.speakers}
    at_anchor: dict[tuple[int, int, int], list[int]] = {}
    after_turn: dict[int, list[int]] = {}
    speech = [(i, s) for i, s in enumerate(script.segments) if s.kind == "speech" and s.words]
    known = {(s.turn, s.sentence, w) for _, s in speech for w in range(len(s.words))}
    if backchannels == "inline":
        for i, s in enumerate(script.segments):
            if s.kind != "backchannel" or not s.words:
                continue
            if s.anchor is not None and (s.turn, *s.anchor) in known:
                at_anchor.setdefault((s.turn, *s.anchor), []).append(i)
            else:
                after_turn.setdefault(s.turn, []).append(i)
    last_of_turn = {s.turn: i for i, s in speech}

    runs: list[tuple[int, list[tuple[int, int]]]] = []

    def add(ch: int, seg: int, w: int) -> None:
        if not runs or runs[-1][0] != ch:
            runs.append((ch, []))
        runs[-1][1].append((seg, w))

    for i, seg in speech:
        for w in range(len(seg.words)):
            add(channel[seg.speaker], i, w)
            for b in at_anchor.get((seg.turn, seg.sentence, w), []):
                for bw in range(len(script.segments[b].words)):
                    add(channel[script.segments[b].speaker], b, bw)
        if last_of_turn[seg.turn] == i:
            for b in after_turn.get(seg.turn, []):
                for bw in range(len(script.segments[b].words)):
                    add(channel[script.segments[b].speaker], b, bw)
    return runs


def build_script_tokens(script: SpokenScript, main_speaker: str, sp: "sentencepiece.SentencePieceProcessor", *,
                        backchannels: str = "inline", end_punct: bool = True) -> ScriptTokens:
    """The merged stream J-Moshi's MS-TTS was trained on: a speaker token at each change of
    speaker, then that run's text as SentencePiece pieces, no spaces, leading ``▁`` removed,
    「。」 appended to a run that does not end in punctuation (its inference normaliser does this)."""
    ids: list[int] = []
    words: list[ScriptWord] = []
    dropped = 0
    unk = sp.unk_id()
    for r, (ch, members) in enumerate(speaker_runs(script, main_speaker, backchannels)):
        ids.append(SPEAKER_TOKEN[ch])
        surfaces = [script.segments[s].words[w].spoken for s, w in members]  # the script's readings
        text = "".join(surfaces)
        if end_punct and not text.endswith(SENTENCE_END):
            text += "。"
        starts = np.cumsum([0] + [len(x.encode("utf-8")) for x in surfaces])[:-1]
        piece_ends: list[int] = []  # byte end of each kept piece, parallel to the ids added below
        first_id = len(ids)
        for p in sp.encode(text, out_type="proto").pieces:
            pid, piece = p.id, p.piece
            if pid == unk or sp.is_byte(pid) or sp.is_control(pid):
                dropped += 1
                continue
            if piece.startswith("▁"):
                bare = piece[1:]
                if not bare:
                    continue  # the dummy-prefix space on its own
                alt = sp.piece_to_id(bare)
                if alt != unk:
                    pid = alt
            ids.append(pid)
            piece_ends.append(p.end)
        for (s, w), b in zip(members, starts):
            k = next((j for j, e in enumerate(piece_ends) if e > b), None)
            word = script.segments[s].words[w]
            words.append(ScriptWord(s, w, word.surface, ch, word.morae, -1 if k is None else first_id + k, r))
    if dropped:
        logger.warning("%s: %d SentencePiece pieces dropped (unknown or byte fallback)", script.dialogue_id, dropped)
    return ScriptTokens(tuple(ids), tuple(words), dropped)


def word_timings(tokens: ScriptTokens, consumed_frames: np.ndarray, duration: Seconds) -> list[AlignedWord]:
    """Starts are frame-exact (the frame where the word's first piece was forced); an end is the
    next word's start in the same run, or start + the longer of its pieces' frames and its morae
    at 8 morae/s, never past the next start or the audio."""
    out: list[AlignedWord] = []
    starts = []
    last = 0.0
    for w in tokens.words:
        f = int(consumed_frames[w.token]) if w.token >= 0 else -1
        t = f * FRAME if f >= 0 else last
        t = max(t, last)
        starts.append(min(t, duration))
        last = starts[-1]
    for i, w in enumerate(tokens.words):
        start = starts[i]
        nxt = next((starts[j] for j in range(i + 1, len(tokens.words)) if tokens.words[j].run == w.run
                    and starts[j] > start), None)
        pieces = 1
        if w.token >= 0:
            later = [x.token for x in tokens.words[i + 1:] if x.token > w.token]
            pieces = (min(later) if later else len(tokens.ids)) - w.token
        end = start + max(pieces * FRAME, w.morae / MORAE_PER_SECOND)
        if nxt is not None:
            end = min(end, nxt)
        out.append(AlignedWord(w.surface, start, min(end, duration), w.channel))
    return sorted(out, key=lambda a: (a.start, a.channel))


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
