"""Turn-taking planner: where each rendered segment starts, on which channel.

Planning happens after rendering because OpenJTalk decides how long a sentence lasts; the planner
only needs each segment's duration and word timings, so it stays a pure function of
(script, rendered segments, options, random generator). Distributions and their sources are in
:class:`~jmoshi_augment.recipe.TimingConfig`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from jmoshi_augment.augment.types import MAIN, OTHER, Placement, RenderedSegment, Seconds, SpokenScript, Timeline
from jmoshi_augment.recipe import TimingConfig

MIN_PAUSE = 0.2  # a pause shorter than the 200 ms IPU threshold would merge two sentences into one IPU
MIN_GAP = 0.02
BACKCHANNEL_CLEARANCE = 0.15  # keep a listener's aizuchi this far from their own speech


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def sample_transition(rng: np.random.Generator, cfg: TimingConfig, prev_duration: Seconds) -> tuple[str, Seconds]:
    """Floor-transfer offset of a speaker change: negative = overlap, positive = gap."""
    u = rng.random()
    if u < cfg.interruption_prob:
        # cut in well before the end, but never before the previous speaker has said something
        depth = float(rng.uniform(0.5 * cfg.interruption_max, cfg.interruption_max))
        return "interruption", -min(depth, 0.6 * prev_duration)
    if u < cfg.interruption_prob + cfg.overlap_prob:
        depth = min(_lognormal(rng, cfg.overlap_median, cfg.gap_sigma), cfg.overlap_max)
        return "overlap", -min(depth, 0.4 * prev_duration)
    median = cfg.gap_long_median if rng.random() < cfg.gap_long_prob else cfg.gap_short_median
    return "gap", max(MIN_GAP, _lognormal(rng, median, cfg.gap_sigma))


def plan_timeline(
    script: SpokenScript,
    rendered: list[RenderedSegment],
    cfg: TimingConfig,
    main_speaker: str,
    rng: np.random.Generator,
) -> Timeline:
    """Place speech segments in order (pauses within a turn, sampled offsets at speaker changes),
    then each backchannel shortly after its anchor word in the partner's speech, inside the
    partner's turn. Backchannels that would collide with the listener's own speech are dropped
    and counted."""
    channel_of = {s: (MAIN if s == main_speaker else OTHER) for s in script.speakers}
    events: Counter = Counter()
    placements: list[Placement] = []
    start_of: dict[int, Seconds] = {}
    busy: dict[int, list[tuple[Seconds, Seconds]]] = {MAIN: [], OTHER: []}

    # Each aizuchi's delay after its anchor word, and the share of it the partner talks over
    # when resuming: Japanese speakers go on while the listener says うん, so an aizuchi sits
    # inside the partner's speech rather than alone in a pause.
    bc_delay: dict[int, Seconds] = {}
    bc_inside: dict[int, float] = {}
    bc_at: dict[tuple[int, int, int], int] = {}  # (turn, sentence, word) → backchannel segment
    for i, seg in enumerate(script.segments):
        if seg.kind == "backchannel" and seg.anchor is not None and rendered[i].duration > 0:
            bc_delay[i] = min(_lognormal(rng, cfg.backchannel_delay_median, cfg.gap_sigma), cfg.backchannel_delay_max)
            bc_inside[i] = float(rng.uniform(0.55, 0.9))
            bc_at.setdefault((seg.turn, *seg.anchor), i)

    prev_end: Seconds = cfg.lead_in
    prev, prev_dur = None, 0.0  # previous placed speech segment
    for i, seg in enumerate(script.segments):
        if seg.kind != "speech" or rendered[i].duration == 0:
            continue
        dur = rendered[i].duration
        ch = channel_of[seg.speaker]
        if prev is None:
            start = cfg.lead_in
        elif prev.speaker == seg.speaker:
            pause = max(MIN_PAUSE, _lognormal(rng, cfg.pause_median, cfg.gap_sigma))
            bc = bc_at.get((prev.turn, prev.sentence, len(prev.words) - 1)) if prev.turn == seg.turn else None
            if bc is not None:  # resume while the listener's aizuchi is still sounding
                pause = min(pause, max(MIN_PAUSE, bc_delay[bc] + (1 - bc_inside[bc]) * rendered[bc].duration))
            start = prev_end + pause
            events["pauses"] += 1
        else:
            kind, offset = sample_transition(rng, cfg, prev_dur)
            start = prev_end + offset
            events[kind + "s"] += 1
            events["speaker_changes"] += 1
        if busy[ch]:  # a channel never talks over itself
            start = max(start, busy[ch][-1][1] + MIN_PAUSE)
        placements.append(Placement(i, ch, start))
        start_of[i] = start
        busy[ch].append((start, start + dur))
        prev_end = max(prev_end, start + dur)  # the floor is free once everyone so far has finished
        prev, prev_dur = seg, dur

    where = {(s.turn, s.sentence): i for i, s in enumerate(script.segments) if s.kind == "speech" and i in start_of}
    for i in bc_delay:
        seg = script.segments[i]
        si, wi = seg.anchor
        host = where.get((seg.turn, si))
        if host is None or wi >= len(rendered[host].words):
            events["backchannels_dropped"] += 1
            continue
        anchor_end = start_of[host] + rendered[host].words[wi].end
        dur = rendered[i].duration
        start = anchor_end + bc_delay[i]
        # where the partner speaks again: the next word of the sentence, or the next sentence
        if wi + 1 < len(rendered[host].words):
            resume = start_of[host] + rendered[host].words[wi + 1].start
        else:
            resume = start_of.get(where.get((seg.turn, si + 1), -1))
        if resume is not None and start + (1 - bc_inside[i]) * dur < resume:
            # it would end (mostly) in the partner's pause: start later, but never so late that it
            # reads as hesitation
            start = min(resume - (1 - bc_inside[i]) * dur, anchor_end + cfg.backchannel_delay_max)
        end = start + dur
        ch = channel_of[seg.speaker]
        if any(s - BACKCHANNEL_CLEARANCE < end and start < e + BACKCHANNEL_CLEARANCE for s, e in busy[ch]):
            events["backchannels_dropped"] += 1
            continue
        placements.append(Placement(i, ch, start))
        busy[ch].append((start, end))
        busy[ch].sort()
        events["backchannels"] += 1

    duration = max((p.offset + rendered[p.segment].duration for p in placements), default=0.0) + cfg.tail
    placements.sort(key=lambda p: (p.offset, p.channel))
    return Timeline(tuple(placements), duration, main_speaker, dict(events))
