"""The planner's vocabulary: the names of the events it counts, the distributions it draws from,
and the state of one timeline while it is being planned.

Event names live here once, as constants, so every reader (unit records, run report, candidate
scoring, report page) can search for and import the same spelling instead of building it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from jmoshi_augment.augment.types import MAIN, OTHER, Placement, RenderedSegment, Seconds, Segment, SpokenScript
from jmoshi_augment.recipe import TimingConfig

Span = tuple[Seconds, Seconds]


class PlanEvent:
    """Names of the counts the planner writes to ``Timeline.events`` (and so to the unit records'
    ``planned`` and report.json's ``planned_events``). Counts that stay zero are omitted."""

    # speaker changes between turns, by the floor-transfer offset drawn (sample_transition)
    SPEAKER_CHANGES: Final = "speaker_changes"
    GAPS: Final = "gaps"
    OVERLAPS: Final = "overlaps"
    INTERRUPTIONS: Final = "interruptions"
    # junctions inside a turn
    PAUSES: Final = "pauses"
    JOINS: Final = "joins"
    HOLDS: Final = "holds"  # pauses the script planned inside a sentence (hesitation, planning)
    LAPSES: Final = "lapses"  # gaps drawn from the lapse distribution (> 1 s)
    # backchannels inside the partner's speech (each a planned dGSLM within overlap), and why not
    BACKCHANNELS: Final = "backchannels"
    BACKCHANNELS_DROPPED: Final = "backchannels_dropped"
    BACKCHANNELS_NO_ROOM: Final = "backchannels_no_room"
    BACKCHANNELS_LISTENER_BUSY: Final = "backchannels_listener_busy"
    # backchannels said in the partner's pause: two speaker changes each, and how the partner resumed
    BACKCHANNELS_IN_PAUSE: Final = "backchannels_in_pause"
    SPEAKER_CHANGES_IN_PAUSE: Final = "speaker_changes_in_pause"
    GAPS_AFTER_BACKCHANNEL: Final = "gaps_after_backchannel"
    OVERLAPS_AFTER_BACKCHANNEL: Final = "overlaps_after_backchannel"


@dataclass(frozen=True)
class Transition:
    """One floor-transfer offset (negative = overlap, positive = gap) and the event it counts."""

    offset: Seconds
    event: str
    lapse: bool = False


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def sample_transition(rng: np.random.Generator, cfg: TimingConfig, prev_duration: Seconds) -> Transition:
    """Floor-transfer offset of a speaker change between speech."""
    u = rng.random()
    if u < cfg.interruption_prob:
        # cut in well before the end, but never before the previous speaker has said something
        depth = float(rng.uniform(cfg.interruption_min, cfg.interruption_max))
        return Transition(-min(depth, cfg.interruption_max_share * prev_duration), PlanEvent.INTERRUPTIONS)
    if u < cfg.interruption_prob + cfg.overlap_prob:
        return _overlap(rng, cfg, prev_duration, PlanEvent.OVERLAPS)
    return _gap(rng, cfg, PlanEvent.GAPS)


def sample_resumption(rng: np.random.Generator, cfg: TimingConfig, backchannel: Seconds) -> Transition:
    """Floor-transfer offset of a speaker going on after the listener's backchannel in their
    pause: over its tail with probability ``backchannel_resume_overlap_prob`` (the speaker kept
    the floor and only waits to hear it come), else after a gap drawn like any speaker change's.
    Draws the same random numbers whichever it is."""
    u = rng.random()
    over = _overlap(rng, cfg, backchannel, PlanEvent.OVERLAPS_AFTER_BACKCHANNEL)
    gap = _gap(rng, cfg, PlanEvent.GAPS_AFTER_BACKCHANNEL)
    return over if u < cfg.backchannel_resume_overlap_prob else gap


def _overlap(rng: np.random.Generator, cfg: TimingConfig, prev_duration: Seconds, event: str) -> Transition:
    depth = min(_lognormal(rng, cfg.overlap_median, cfg.gap_sigma), cfg.overlap_max)
    return Transition(-min(depth, cfg.overlap_max_share * prev_duration), event)


def _gap(rng: np.random.Generator, cfg: TimingConfig, event: str) -> Transition:
    if rng.random() < cfg.lapse_prob:
        return Transition(sample_clipped(rng, cfg.lapse_median, cfg.gap_sigma, cfg.lapse_min, cfg.lapse_max), event, lapse=True)
    median = cfg.gap_long_median if rng.random() < cfg.gap_long_prob else cfg.gap_short_median
    return Transition(max(cfg.min_gap, _lognormal(rng, median, cfg.gap_sigma)), event)


def sample_pause(rng: np.random.Generator, cfg: TimingConfig) -> Seconds:
    """Silence of a pause inside a turn (between speech), clipped to ``[pause_min, pause_max]``."""
    return float(np.clip(_lognormal(rng, cfg.pause_median, cfg.pause_sigma), cfg.pause_min, cfg.pause_max))


def sample_hold_pause(rng: np.random.Generator, cfg: TimingConfig) -> Seconds:
    """Silence of a hold the script planned (hesitation, planning): longer, with a tail past 1 s."""
    return sample_clipped(rng, cfg.hold_pause_median, cfg.hold_pause_sigma, cfg.hold_pause_min, cfg.hold_pause_max)


def sample_join(rng: np.random.Generator, cfg: TimingConfig) -> Seconds:
    """Silence of a join: short enough that the IPU stays whole."""
    return float(rng.uniform(cfg.join_silence_min, cfg.join_silence_max))


def sample_clipped(rng: np.random.Generator, median: float, sigma: float, lo: float, hi: float) -> Seconds:
    """A log-normal delay clipped to ``[lo, hi]``."""
    return float(np.clip(_lognormal(rng, median, sigma), lo, hi))


@dataclass
class PlanState:
    """A timeline while it is being planned: the inputs, the random generator, everything placed
    so far, and the cursor over the speech placed last. Mutable on purpose: the planner's steps
    each advance it, and it never leaves one ``plan_timeline`` call, which stays a pure function
    of (script, rendered segments, options, seeded generator)."""

    script: SpokenScript
    rendered: list[RenderedSegment]
    cfg: TimingConfig
    rng: np.random.Generator
    channel_of: dict[str, int]
    placements: list[Placement] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    busy: dict[int, list[Span]] = field(default_factory=lambda: {MAIN: [], OTHER: []})  # speech spans per channel
    word_at: dict[tuple[int, int], Seconds] = field(default_factory=dict)  # (segment, word) → dialogue time of its start
    anchored: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (turn, sentence, word) → first backchannel there
    settled: set[int] = field(default_factory=set)  # backchannels said in the partner's pause, or dropped at a hold
    # cursor over the speech placed so far
    floor_end: Seconds = 0.0  # when everything said so far has ended (speech time)
    prev: Segment | None = None  # previous placed speech segment
    prev_speech: Seconds = 0.0  # its speech duration
    prev_end: Seconds = 0.0  # its last word's end
    run: float = 0.0  # morae since the current speaker's last pause

    def channel(self, segment: int) -> int:
        return self.channel_of[self.script.segments[segment].speaker]

    def clear_of(self, channel: int, start: Seconds, end: Seconds) -> bool:
        """Whether a backchannel spanning ``[start, end]`` keeps ``backchannel_clearance`` from
        everything the channel already says."""
        gap = self.cfg.backchannel_clearance
        return not any(s - gap < end and start < e + gap for s, e in self.busy[channel])

    def occupy(self, channel: int, start: Seconds, end: Seconds) -> None:
        """Mark a backchannel's speech on its channel (kept sorted: backchannels come out of order)."""
        self.busy[channel].append((start, end))
        self.busy[channel].sort()
