"""What every TTS backend promises, and the registry that names them.

Two kinds of backend. A *segment* backend (:class:`TTSBackend`, e.g. OpenJTalk) voices sentences
and backchannel one at a time, and the planner and mixer build the dialogue from them. A *dialogue*
backend (:class:`DialogueBackend`, a multi-stream model such as J-Moshi's TTS) voices a whole
dialogue on two channels and decides its timing itself. The registry records which kind each
name is, so a recipe and the pipeline ask it instead of guessing.

A segment backend turns the segments of one voice into mono 24 kHz float32 audio plus one time span per
script word. Everything downstream (planner, mixer, alignments, text tokens) trusts those spans, so
the contract is strict:

- audio peak-safe (|x| < 1) and trimmed to :data:`EDGE_MARGIN` of silence at both ends, so the
  planner alone decides gaps and overlaps;
- ``words[i]`` belongs to ``segment.words[i]``; times in seconds from the returned audio's start;
  a word the engine did not voice (a symbol) gets a zero-length span, never a stretch of silence;
- a segment with nothing voiceable yields empty audio in an :class:`UnvoicedSegment` whose
  ``reason`` says why (the pipeline counts it), never silence labelled as speech;
- same input → identical samples.

Loudness is not a backend's business: the mixer normalises each channel and applies the voice's
``gain_db`` afterwards (recipe ``tts.loudness_dbfs``, ``VoiceConfig.gain_db``).

Backends are looked up by name in :mod:`.registry`, each with its typed options model.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from jmoshi_augment.augment.types import (
    SAMPLE_RATE,
    RenderedDialogue,
    RenderedSegment,
    Seconds,
    Segment,
    SpokenScript,
    WordTiming,
)
from jmoshi_augment.constants import TTS_PEAK_LIMIT

if TYPE_CHECKING:
    from jmoshi_augment.recipe import VoiceConfig

logger = logging.getLogger(__name__)

EDGE_MARGIN: Seconds = 0.04  # silence kept before the first and after the last phoneme


@runtime_checkable
class TTSBackend(Protocol):
    name: str
    styles: tuple[str, ...]  # stock voice styles a voice may name or blend (empty: the backend has none)
    style_pitch: Mapping[str, float]  # each style's own pitch, semitones re 100 Hz (voice pairs keep apart)

    def render(self, segments: Sequence[Segment], voice: VoiceConfig) -> list[RenderedSegment]:
        """One :class:`RenderedSegment` per segment, in order (see the module docstring)."""
        ...


@dataclass(frozen=True)
class DialogueRequest:
    """One rendering of a whole dialogue by a :class:`DialogueBackend`."""

    script: SpokenScript
    main_speaker: str  # corpus label rendered on channel 0
    voice_pair: str | None  # a backend voice (prompt) name; None: drawn by the caller's rng
    seed: int


class RenderFailed(RuntimeError):
    """A dialogue backend could not voice the whole script (reported per dialogue, not fatal)."""


@runtime_checkable
class DialogueBackend(Protocol):
    """A multi-stream model that voices a whole dialogue and chooses its own timing."""

    name: str

    def pick_voice_pair(self, rng: np.random.Generator) -> str | None:
        """A voice (prompt) name drawn with ``rng``; None when the backend has no choice."""
        ...

    def render_dialogue(self, script: SpokenScript, main_speaker: str, voice_pair: str | None,
                        rng: np.random.Generator) -> RenderedDialogue:
        """One rendering; raises :class:`RenderFailed` when the script is not consumed."""
        ...

    def render_dialogues(self, requests: Sequence[DialogueRequest]) -> list[RenderedDialogue | RenderFailed]:
        """Many renderings (batched where the backend can), in request order."""
        ...


@dataclass(frozen=True)
class UnvoicedSegment(RenderedSegment):
    """Empty audio for a segment the engine could not voice; ``reason`` is for reports."""

    reason: str = ""


def unvoiced(segment: Segment, reason: str) -> UnvoicedSegment:
    logger.warning("not voiced: %r: %s", segment.text[:40], reason)
    return UnvoicedSegment(
        audio=np.zeros(0, dtype=np.float32),
        words=tuple(WordTiming(w.surface, 0.0, 0.0) for w in segment.words),
        reason=reason,
    )


class RenderMemo:
    """A bounded LRU of rendered segments keyed by (words, voice). Rendering is deterministic, so
    an identical request reuses its audio without changing a sample; backends decide which
    requests are worth keeping."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, RenderedSegment] = OrderedDict()

    def get(self, key: tuple, render: Callable[[], RenderedSegment]) -> RenderedSegment:
        hit = self._items.get(key)
        if hit is None:
            hit = self._items[key] = render()
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return hit


def peak_safe(audio: np.ndarray, limit: float = TTS_PEAK_LIMIT) -> np.ndarray:
    """float32 audio scaled down as a whole if any sample reaches ``limit``."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak >= limit:
        audio = audio * np.float32(limit / peak * 0.999)
    return audio


def check_rendered(segment: Segment, rendered: RenderedSegment) -> None:
    """The contract, as assertions a backend's tests (and debugging) can call."""
    if rendered.audio.dtype != np.float32 or rendered.audio.ndim != 1:
        raise AssertionError(f"audio must be mono float32, got {rendered.audio.dtype} {rendered.audio.shape}")
    if len(rendered.words) != len(segment.words):
        raise AssertionError(f"{len(rendered.words)} word timings for {len(segment.words)} words")
    duration = len(rendered.audio) / SAMPLE_RATE
    last = 0.0
    for w, t in zip(segment.words, rendered.words):
        if t.word != w.surface or not (last - 1e-9 <= t.start <= t.end <= duration + 1e-9):
            raise AssertionError(f"bad timing {t} for {w.surface!r} (audio {duration:.3f} s)")
        last = t.start
    if rendered.audio.size and float(np.abs(rendered.audio).max()) >= 1.0:
        raise AssertionError("audio is not peak-safe")
