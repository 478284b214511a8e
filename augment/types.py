"""Data that crosses stage boundaries in ``augment/``: script → rendered segments → timeline →
stereo dialogue → tokens. Each stage is a pure function between these types; I/O stays in the
pipeline and the writers.

Channel convention (Kyutai moshi-finetune, J-Moshi): channel 0 = the model's speaker ("main"),
channel 1 = the user ("other").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Seconds = float

from jmoshi_augment.constants import FRAME_RATE, SAMPLE_RATE  # noqa: F401  (stage code imports them from here too)
from jmoshi_augment.augment.text.punctuation import PROSODIC

MAIN, OTHER = 0, 1  # channel indices

SegmentKind = Literal["speech", "backchannel"]


@dataclass(frozen=True)
class Word:
    """One word of the spoken script (a UniDic short unit, a rule-read stretch such as 5km or T,
    or a filler/backchannel). The reading is decided once, in the script, and every backend speaks it."""

    surface: str  # written form, as it appears in alignments and text tokens
    reading: str  # katakana pronunciation (ー for long vowels), e.g. 5km → ゴキロ
    morae: int
    pos: str = ""  # UniDic part of speech, e.g. "助詞-終助詞"; "フィラー" for inserted fillers
    rule: bool = False  # the reading was decided by a normalisation rule (5km, T, 1/2), not a dictionary

    @property
    def spoken(self) -> str:
        """What an engine that reads text is given, so that it says this word's reading: the
        written form, or for a rule-read word its katakana reading (5km → ゴキロ) with the word's
        trailing punctuation, which carries the pause."""
        if not self.rule:
            return self.surface
        return self.reading + self.surface[len(self.surface.rstrip(PROSODIC)):]


@dataclass(frozen=True)
class Segment:
    """One stretch of speech rendered by a single TTS call: a sentence of a turn, or a backchannel.

    ``turn`` is the index of the script turn it belongs to; for a backchannel it is the index of
    the *partner's* turn it responds to, and ``anchor`` says after which word of which sentence of
    that turn it is invited (a clause boundary or a sentence-final particle).
    """

    speaker: str
    words: tuple[Word, ...]
    kind: SegmentKind
    turn: int
    sentence: int = 0  # index of the sentence inside its turn (speech segments)
    anchor: tuple[int, int] | None = None  # (sentence index, word index) in the partner's turn
    # Words after which the speaker pauses and keeps the floor (hesitation and planning pauses,
    # augment/text/holds.py); the planner makes each a pause, never a join.
    holds: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        return "".join(w.surface for w in self.words)

    @property
    def morae(self) -> int:
        return sum(w.morae for w in self.words)


@dataclass(frozen=True)
class SpokenScript:
    """A dialogue made speakable: normalised, split into sentences and words, with fillers and the
    listeners' backchannels added. ``segments`` lists speech in turn order; backchannels follow."""

    dialogue_id: str
    corpus: str
    speakers: tuple[str, ...]  # corpus speaker labels in order of first appearance
    segments: tuple[Segment, ...]
    skipped: tuple[str, ...] = ()  # reasons for turns dropped by normalisation (counted in reports)
    # (reason, count) of source characters not spoken: laughter, emoji, punctuation, ... Every
    # other character of the source is in some word's surface (augment/text/normalize.py).
    not_spoken: tuple[tuple[str, int], ...] = ()
    source_turns: tuple[tuple[str, str], ...] = ()  # original (speaker, text) turns, for reports

    @property
    def speech(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "speech"]

    @property
    def backchannels(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "backchannel"]


@dataclass(frozen=True)
class WordTiming:
    """A word and its time span in seconds (relative to its segment or to the dialogue)."""

    word: str
    start: Seconds
    end: Seconds


@dataclass(frozen=True)
class RenderedSegment:
    """A segment's mono audio at :data:`SAMPLE_RATE` (float32) and its word timings, relative to
    the segment start. ``words`` has one entry per script word, in order."""

    audio: np.ndarray
    words: tuple[WordTiming, ...]

    @property
    def duration(self) -> Seconds:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class Placement:
    """Where the planner puts one segment: the mixing analogue of lhotse's ``MixTrack``."""

    segment: int  # index into ``SpokenScript.segments``
    channel: int  # MAIN or OTHER
    offset: Seconds  # start time in the dialogue of the placed audio (of ``start``)
    # The stretch of the segment's audio placed here, in segment time; the planner cuts a segment
    # in the middle of a TTS silence to re-time a pause, so a piece never cuts through speech.
    start: Seconds = 0.0
    end: Seconds | None = None  # None: to the segment's end


@dataclass(frozen=True)
class Timeline:
    placements: tuple[Placement, ...]
    duration: Seconds
    main_speaker: str  # corpus speaker label rendered on channel 0
    events: dict[str, int] = field(default_factory=dict)  # planned counts: overlaps, backchannels, ...


@dataclass(frozen=True)
class AlignedWord:
    word: str
    start: Seconds
    end: Seconds
    channel: int


@dataclass
class RenderedDialogue:
    """Stereo 24 kHz audio with word alignments per channel: what every writer consumes.

    The typed fields are what writers, tokens and reports need, whichever backend made the audio;
    ``meta`` holds only extras: the corpus's own fields and a neural backend's provenance."""

    id: str  # unique per rendering (dialogue id + which speaker is main)
    dialogue_id: str
    corpus: str
    audio: np.ndarray  # float32 [2, num_samples]; channel 0 = main (model), 1 = other (user)
    words: tuple[AlignedWord, ...]  # both channels, sorted by start
    speaker_map: dict[str, str]  # {"main": corpus label, "other": corpus label}
    speakers: tuple[str, ...]  # corpus labels in order of first appearance: J-Moshi's speaker A first
    voices: dict[str, str] = field(default_factory=dict)  # {"main": voice, "other": voice}
    planned: dict[str, int] = field(default_factory=dict)  # planner counts; {} when a model chose the timing
    skipped: tuple[str, ...] = ()  # script-stage skip reasons (counted in reports)
    source_turns: tuple[tuple[str, str], ...] = ()  # the original (speaker, text) turns
    # (speaker, kind, text, ((surface, katakana reading), ...)) per spoken segment: the readings
    # every backend was given
    script: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = ()
    not_spoken: tuple[tuple[str, int], ...] = ()  # source characters not spoken, by reason
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> Seconds:
        return self.audio.shape[-1] / SAMPLE_RATE

    @property
    def a_channel(self) -> int:
        """The channel holding the corpus's first speaker, J-Moshi's trainer's speaker A (left).
        An acoustic view (``meta["acoustics"]``) trains one direction only, so its clean model
        channel is A, whichever corpus speaker that is (docs/acoustics.md)."""
        if "acoustics" in self.meta:
            return MAIN
        return MAIN if self.speakers[0] == self.speaker_map["main"] else OTHER

    def channel_words(self, channel: int) -> list[AlignedWord]:
        return [w for w in self.words if w.channel == channel]


def script_fields(script: SpokenScript) -> dict[str, Any]:
    """The :class:`RenderedDialogue` fields that come from its script, for every backend."""
    return {
        "speakers": script.speakers,
        "skipped": script.skipped,
        "source_turns": script.source_turns,
        "script": tuple((s.speaker, s.kind, s.text, tuple((w.surface, w.reading) for w in s.words))
                        for s in script.segments),
        "not_spoken": script.not_spoken,
    }


@dataclass
class TokenizedDialogue:
    """Moshi's view of a dialogue on the 12.5 Hz grid."""

    id: str
    codes: np.ndarray  # int16 [2, n_q, T]: Mimi codes, channel 0 = main
    text: np.ndarray  # int32 [2, T]: text tokens per channel (padding/end-of-padding conventions)
    duration: Seconds
    meta: dict[str, Any] = field(default_factory=dict)  # ids, speaker map, corpus, dialogue id
