"""Turn-taking planner: where each rendered stretch of speech starts, on which channel.

Planning happens after rendering because the TTS decides how long a sentence lasts and where it
leaves silence; the planner only reads each segment's duration and word timings, so it stays a
pure function of (script, rendered segments, options, random generator). Every distribution and
its source is in :class:`~jmoshi_augment.recipe.TimingConfig`; the event names it counts are
:class:`~.timing_state.PlanEvent`.

What it does, in the terms of the dGSLM events that ``stats`` measures (IPUs bridge silences
< 200 ms; an overlap is *within* when the shorter IPU lies entirely inside the other's):

- **Junctions inside a turn.** Between two sentences, and at each word boundary where the TTS
  left a silence (OpenJTalk pauses at every 、), the planner decides: a *pause* (a human-like
  length, ≥ the IPU threshold, so a new IPU starts) or a *join* (a silence short enough that the
  IPU stays whole). A join inside a rendered sentence is made by cutting the segment's audio in
  the middle of that silence and placing the two pieces closer (:class:`Placement` ``start``/
  ``end``): the cut falls in silence, so nothing audible is edited.
- **Speaker changes** draw a floor-transfer offset (gap, overlap or an early cut-in) measured
  between the speech itself (word timings), not the padded audio.
- **Backchannels** sit inside the partner's ongoing speech: the junction at its anchor is joined,
  its onset follows the phrase end by a short delay, and it must end before the partner's next
  phrase boundary; if it cannot, or it would touch the listener's own speech, it is dropped and
  counted (:mod:`.timing_backchannels`).
- **Holds** the script planned inside a sentence (hesitation and planning pauses at phrase and
  clause boundaries, after fillers; :mod:`~jmoshi_augment.augment.text.holds`) are always pauses,
  drawn longer than the others with a tail past 1 s; a backchannel anchored at one is said in it,
  the speaker keeping the floor. The segment is cut there at the quietest point between the two
  words, whatever silence the TTS left.
- **Backchannels in the partner's pause** (a share ``backchannel_in_pause_prob`` of those anchored
  at a sentence end, a completion point; at a clause comma they stay inside the speech): the
  partner stops at the anchor, the listener answers in the silence as a short turn of its own,
  and the partner goes on after it, often over its tail. ``stats`` counts two speaker changes
  and one more IPU where a single pause (or nothing) would have been.

The steps, in order: :func:`_onset` (where a speech segment starts: after the speaker's own
junction, or after a speaker change), :func:`_place_pieces` (cut it at the TTS's silences and
re-time each junction), then :func:`~.timing_backchannels.place_backchannels_in_speech`.
"""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.speech.timing_backchannels import (
    anchored_backchannels,
    backchannel_in_pause,
    place_backchannels_in_speech,
)
from jmoshi_augment.augment.speech.timing_state import (
    PlanEvent,
    PlanState,
    sample_hold_pause,
    sample_join,
    sample_pause,
    sample_transition,
)
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE, Placement, RenderedSegment, Seconds, Segment, SpokenScript, Timeline
from jmoshi_augment.recipe import TimingConfig

__all__ = ["PlanEvent", "plan_timeline", "sample_pause", "sample_transition"]


def plan_timeline(
    script: SpokenScript,
    rendered: list[RenderedSegment],
    cfg: TimingConfig,
    main_speaker: str,
    rng: np.random.Generator,
) -> Timeline:
    """Place every speech segment (cut into pieces at the junctions the planner re-times), then
    each backchannel inside the partner's ongoing speech. Planned event counts go in ``events``."""
    state = PlanState(script, rendered, cfg, rng, {s: (MAIN if s == main_speaker else OTHER) for s in script.speakers},
                      floor_end=cfg.lead_in)
    # Junctions a backchannel is anchored at are joined, so the partner's IPU stays whole around
    # it, or opened for the backchannel to be said in the partner's pause.
    state.anchored = anchored_backchannels(state)
    for i, seg in enumerate(script.segments):
        r = rendered[i]
        if seg.kind != "speech" or r.duration == 0 or not r.words:
            continue
        onset = _onset(state, seg, r)
        speech_end = _place_pieces(state, i, onset)
        ch = state.channel(i)
        state.busy[ch].append((onset, speech_end))
        state.floor_end = max(state.floor_end, speech_end)
        state.prev, state.prev_speech, state.prev_end = seg, speech_end - onset, speech_end
    place_backchannels_in_speech(state)

    ends = [p.offset + ((p.end if p.end is not None else rendered[p.segment].duration) - p.start) for p in state.placements]
    duration = max(ends, default=0.0) + cfg.tail
    placements = sorted(state.placements, key=lambda p: (p.offset, p.channel))
    return Timeline(tuple(placements), duration, main_speaker, dict(state.events))


def _onset(state: PlanState, seg: Segment, r: RenderedSegment) -> Seconds:
    """Dialogue time of the first word of speech segment ``seg``: after the lead-in, after the
    speaker's own junction between two sentences of a turn, or after a speaker change."""
    cfg, prev = state.cfg, state.prev
    if prev is None or prev.turn != seg.turn:
        state.run = 0.0  # a new turn: no morae since the speaker's last pause
    if prev is None:
        onset = cfg.lead_in + r.words[0].start
    elif prev.speaker == seg.speaker and prev.turn == seg.turn:
        # from the speaker's own last word, whatever the partner does
        onset = state.prev_end + _junction(state, cfg.pause_prob_sentence, (seg.turn, prev.sentence, len(prev.words) - 1),
                                           state.prev_end)
    else:
        change = sample_transition(state.rng, cfg, state.prev_speech)
        onset = state.floor_end + change.offset
        state.events[change.event] += 1
        state.events[PlanEvent.SPEAKER_CHANGES] += 1
        if change.lapse:
            state.events[PlanEvent.LAPSES] += 1
    busy = state.busy[state.channel_of[seg.speaker]]
    if busy:  # a channel never talks over itself
        onset = max(onset, busy[-1][1] + cfg.min_gap)
    return onset


def _cut_points(seg: Segment, r: RenderedSegment, cfg: TimingConfig) -> list[int]:
    """Word indices ``j`` after which the TTS left a silence the planner may shorten or lengthen,
    and the holds the script planned."""
    return [j for j in range(len(r.words) - 1)
            if r.words[j + 1].start - r.words[j].end >= cfg.splice_min or j in seg.holds]


# The cut between two words falls at the quietest 2 ms of the stretch between them (searched
# this far beyond the word timings when they abut), so a piece's edge sits on near-silence.
_LOW_WINDOW, _LOW_REACH = 0.002, 0.02


def _low_point(r: RenderedSegment, j: int) -> Seconds:
    """Segment time of the quietest short window between word ``j``'s end and word ``j + 1``'s
    start, where a cut is least audible; when the two abut, searched back into word ``j``'s tail
    (never past its start, and never after the next word's start: each word stays in its piece)."""
    a, b = r.words[j].end, r.words[j + 1].start
    if b - a < 2 * _LOW_WINDOW:
        a = max(min(a, b) - _LOW_REACH, r.words[j].start + _LOW_WINDOW)
    w = max(int(_LOW_WINDOW * SAMPLE_RATE), 1)
    i, k = max(int(np.ceil(a * SAMPLE_RATE)), 0), min(int(b * SAMPLE_RATE), len(r.audio))
    if k - i <= w:
        return b
    level = np.convolve(np.abs(r.audio[i:k]), np.ones(w) / w, mode="valid")
    return min((i + int(np.argmin(level)) + w // 2) / SAMPLE_RATE, b)


def _after_opening_filler(seg: Segment, j: int) -> bool:
    """Whether word ``j`` is an opening filler or interjection: a hesitation, not a matter of breath."""
    w = seg.words[j]
    return j == 0 and (w.pos == "フィラー" or w.pos.startswith("感動詞"))


def _place_pieces(state: PlanState, i: int, onset: Seconds) -> Seconds:
    """Cut speech segment ``i`` at every silence the TTS left, re-time each of those junctions as
    a pause or a join, and place the pieces from ``onset``. Returns the end of its last word."""
    seg, r, cfg = state.script.segments[i], state.rendered[i], state.cfg
    ch = state.channel(i)
    cuts = _cut_points(seg, r, cfg)
    bounds = [0.0] + [_low_point(r, j) for j in cuts] + [r.duration]
    word_bounds = [0] + [j + 1 for j in cuts] + [len(r.words)]
    shift = onset - r.words[0].start  # dialogue time of segment time 0 for the current piece
    for k in range(len(bounds) - 1):
        if k > 0:
            j = cuts[k - 1]
            tts_silence = r.words[j + 1].start - r.words[j].end
            state.run += sum(w.morae for w in seg.words[word_bounds[k - 1] : word_bounds[k]])
            if j in seg.holds:
                silence = _hold(state, (seg.turn, seg.sentence, j), shift + r.words[j].end)
            elif _after_opening_filler(seg, j):
                silence = _junction(state, cfg.pause_prob_filler, None, None, by_length=False)
            else:  # a clause comma: no completion point, so a backchannel there stays inside the speech
                silence = _junction(state, cfg.pause_prob_clause, (seg.turn, seg.sentence, j), shift + r.words[j].end,
                                    in_pause=False)
            shift += silence - tts_silence
        state.placements.append(Placement(i, ch, shift + bounds[k], bounds[k], bounds[k + 1]))
        for w in range(word_bounds[k], word_bounds[k + 1]):
            state.word_at[(i, w)] = shift + r.words[w].start
    state.run += sum(w.morae for w in seg.words[word_bounds[-2] :])
    return shift + r.words[-1].end


def _junction(
    state: PlanState,
    prob: float,
    at: tuple[int, int, int] | None,
    stop: Seconds | None,
    by_length: bool = True,
    in_pause: bool = True,
) -> Seconds:
    """Silence at a junction inside a turn after word ``at`` (turn, sentence, word), where the
    speaker's speech stops at ``stop``; updates the morae run. With ``by_length`` a pause gets
    likelier the longer the speaker has talked since the last one; a junction with a backchannel
    anchored is always joined, and (``in_pause``: a sentence end) may be opened for the
    backchannel to be said in a pause.
    Draws the same random numbers whatever the outcome, so one decision never shifts the others."""
    cfg, rng = state.cfg, state.rng
    backchannel = None if at is None else state.anchored.get(at)
    u, pause, join = rng.random(), sample_pause(rng, cfg), sample_join(rng, cfg)
    p = prob * min(1.0, state.run / cfg.pause_unit_morae) if by_length else prob
    if backchannel is None and u < p:
        state.events[PlanEvent.PAUSES] += 1
        state.run = 0.0
        return pause
    state.events[PlanEvent.JOINS] += 1
    if backchannel is None or not in_pause:
        return join
    return backchannel_in_pause(state, backchannel, stop, join)


def _hold(state: PlanState, at: tuple[int, int, int], stop: Seconds) -> Seconds:
    """Silence at a hold the script planned after word ``at``: always a pause, drawn from the
    hold distribution; a backchannel anchored there is said in it (the speaker keeps the floor)."""
    pause = sample_hold_pause(state.rng, state.cfg)
    state.events[PlanEvent.PAUSES] += 1
    state.events[PlanEvent.HOLDS] += 1
    state.run = 0.0
    backchannel = state.anchored.get(at)
    if backchannel is None:
        return pause
    return backchannel_in_pause(state, backchannel, stop, pause, at_hold=True)
