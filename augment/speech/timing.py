"""Turn-taking planner: where each rendered stretch of speech starts, on which channel.

Planning happens after rendering because the TTS decides how long a sentence lasts and where it
leaves silence; the planner only reads each segment's duration and word timings, so it stays a
pure function of (script, rendered segments, options, random generator). Every distribution and
its source is in :class:`~jmoshi_augment.recipe.TimingConfig`.

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
- **Aizuchi** sit inside the partner's ongoing speech: the junction at its anchor is joined, its
  onset follows the phrase end by a short delay, and it must end before the partner's next phrase
  boundary; if it cannot, or it would touch the listener's own speech, it is dropped and counted.
- **Aizuchi in the partner's pause** (a share ``backchannel_in_pause_prob`` of them): the partner
  stops at the anchor, the listener answers in the silence as a short turn of its own, and the
  partner goes on after it. The partner's silence is then gap + aizuchi + gap, so ``stats`` counts
  two speaker changes and one more IPU where a single pause (or nothing) would have been.
"""

from __future__ import annotations

from collections import Counter
import numpy as np

from jmoshi_augment.augment.types import MAIN, OTHER, Placement, RenderedSegment, Seconds, SpokenScript, Timeline
from jmoshi_augment.recipe import TimingConfig

_PHRASE_END = ("、", "。", "！", "？", "…", ",", "!", "?")


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(sigma * rng.standard_normal()))


def sample_transition(rng: np.random.Generator, cfg: TimingConfig, prev_duration: Seconds) -> tuple[str, Seconds]:
    """Floor-transfer offset of a speaker change between speech: negative = overlap, positive = gap."""
    u = rng.random()
    if u < cfg.interruption_prob:
        # cut in well before the end, but never before the previous speaker has said something
        depth = float(rng.uniform(cfg.interruption_min, cfg.interruption_max))
        return "interruption", -min(depth, cfg.interruption_max_share * prev_duration)
    if u < cfg.interruption_prob + cfg.overlap_prob:
        depth = min(_lognormal(rng, cfg.overlap_median, cfg.gap_sigma), cfg.overlap_max)
        return "overlap", -min(depth, cfg.overlap_max_share * prev_duration)
    median = cfg.gap_long_median if rng.random() < cfg.gap_long_prob else cfg.gap_short_median
    return "gap", max(cfg.min_gap, _lognormal(rng, median, cfg.gap_sigma))


def sample_pause(rng: np.random.Generator, cfg: TimingConfig) -> Seconds:
    """Silence of a pause inside a turn (between speech), clipped to ``[pause_min, pause_max]``."""
    return float(np.clip(_lognormal(rng, cfg.pause_median, cfg.pause_sigma), cfg.pause_min, cfg.pause_max))


def _cut_points(r: RenderedSegment, cfg: TimingConfig) -> list[int]:
    """Word indices ``j`` after which the TTS left a silence the planner may shorten or lengthen."""
    return [j for j in range(len(r.words) - 1) if r.words[j + 1].start - r.words[j].end >= cfg.splice_min]


def _junction_kind(words, j: int) -> str:
    """Where a person would pause: after an opening filler or interjection, at a clause comma."""
    w = words[j]
    if j == 0 and (w.pos == "フィラー" or w.pos.startswith("感動詞")):
        return "filler"
    return "clause"


def plan_timeline(
    script: SpokenScript,
    rendered: list[RenderedSegment],
    cfg: TimingConfig,
    main_speaker: str,
    rng: np.random.Generator,
) -> Timeline:
    """Place every speech segment (cut into pieces at the junctions the planner re-times), then
    each aizuchi inside the partner's ongoing speech. Planned event counts go in ``events``."""
    channel_of = {s: (MAIN if s == main_speaker else OTHER) for s in script.speakers}
    segs = script.segments
    events: Counter = Counter()

    # Junctions an aizuchi is anchored at are joined, so the partner's IPU stays whole around it,
    # or opened for the aizuchi to be said in the partner's pause.
    anchored: dict[tuple[int, int, int], int] = {}  # (turn, sentence, word) → first aizuchi there
    for i, seg in enumerate(segs):
        if seg.kind == "backchannel" and seg.anchor is not None and rendered[i].duration > 0 and rendered[i].words:
            anchored.setdefault((seg.turn, *seg.anchor), i)
    in_pause: set[int] = set()  # aizuchi placed in a pause of the partner (not inside its speech)

    placements: list[Placement] = []
    word_at: dict[tuple[int, int], Seconds] = {}  # (segment, word) → dialogue time of the word's start
    busy: dict[int, list[tuple[Seconds, Seconds]]] = {MAIN: [], OTHER: []}  # speech spans per channel
    floor_end: Seconds = cfg.lead_in  # when everything said so far has ended (speech time)
    prev = None  # previous placed speech segment
    prev_speech: Seconds = 0.0  # its speech duration
    prev_end: Seconds = 0.0  # its last word's end
    for i, seg in enumerate(segs):
        r = rendered[i]
        if seg.kind != "speech" or r.duration == 0 or not r.words:
            continue
        ch = channel_of[seg.speaker]
        lead = r.words[0].start
        if prev is None or prev.turn != seg.turn:
            run = 0.0  # morae since the speaker's last pause
        if prev is None:
            onset = cfg.lead_in + lead
        elif prev.speaker == seg.speaker and prev.turn == seg.turn:
            bc = anchored.get((seg.turn, prev.sentence, len(prev.words) - 1))
            silence, run = _junction(rng, cfg, cfg.pause_prob_sentence, run, bc is not None, events)
            if bc is not None:
                lch = channel_of[segs[bc].speaker]
                silence, run = _pause_response(rng, cfg, bc, rendered[bc], prev_end, silence, run,
                                               (lch, busy[lch]), placements, in_pause, events)
            onset = prev_end + silence  # from the speaker's own last word, whatever the partner does
        else:
            kind, offset = sample_transition(rng, cfg, prev_speech)
            onset = floor_end + offset
            events[kind + "s"] += 1
            events["speaker_changes"] += 1
        if busy[ch]:  # a channel never talks over itself
            onset = max(onset, busy[ch][-1][1] + cfg.min_gap)

        # Pieces: cut at every TTS silence, each re-timed as a pause or a join.
        cuts = _cut_points(r, cfg)
        bounds = [0.0] + [(r.words[j].end + r.words[j + 1].start) / 2 for j in cuts] + [r.duration]
        word_bounds = [0] + [j + 1 for j in cuts] + [len(r.words)]
        shift = onset - lead  # dialogue time of segment time 0 for the current piece
        for k in range(len(bounds) - 1):
            if k > 0:
                j = cuts[k - 1]
                tts_silence = r.words[j + 1].start - r.words[j].end
                run += sum(w.morae for w in seg.words[word_bounds[k - 1] : word_bounds[k]])
                if _junction_kind(seg.words, j) == "filler":  # hesitation: not a matter of breath
                    silence, run = _junction(rng, cfg, cfg.pause_prob_filler, run, False, events, by_length=False)
                else:
                    bc = anchored.get((seg.turn, seg.sentence, j))
                    silence, run = _junction(rng, cfg, cfg.pause_prob_clause, run, bc is not None, events)
                    if bc is not None:
                        lch = channel_of[segs[bc].speaker]
                        silence, run = _pause_response(rng, cfg, bc, rendered[bc], shift + r.words[j].end, silence,
                                                       run, (lch, busy[lch]), placements, in_pause, events)
                shift += silence - tts_silence
            placements.append(Placement(i, ch, shift + bounds[k], bounds[k], bounds[k + 1]))
            for w in range(word_bounds[k], word_bounds[k + 1]):
                word_at[(i, w)] = shift + r.words[w].start
        run += sum(w.morae for w in seg.words[word_bounds[-2] :])
        speech_start, speech_end = onset, shift + r.words[-1].end
        busy[ch].append((speech_start, speech_end))
        floor_end = max(floor_end, speech_end)
        prev, prev_speech, prev_end = seg, speech_end - speech_start, speech_end

    _place_backchannels(script, rendered, cfg, channel_of, word_at, busy, placements, events, rng, in_pause)

    ends = [p.offset + ((p.end if p.end is not None else rendered[p.segment].duration) - p.start) for p in placements]
    duration = max(ends, default=0.0) + cfg.tail
    placements.sort(key=lambda p: (p.offset, p.channel))
    return Timeline(tuple(placements), duration, main_speaker, dict(events))


def _join(rng: np.random.Generator, cfg: TimingConfig) -> Seconds:
    return float(rng.uniform(cfg.join_silence_min, cfg.join_silence_max))


def _junction(
    rng: np.random.Generator,
    cfg: TimingConfig,
    prob: float,
    run: float,
    anchored: bool,
    events: Counter,
    by_length: bool = True,
) -> tuple[Seconds, float]:
    """Silence at a junction inside a turn, and the morae run after it. With ``by_length`` a pause
    gets likelier the longer the speaker has talked since the last one (``run`` morae); a junction
    with an aizuchi anchored is always joined. Draws the same random numbers whatever the outcome,
    so one decision never shifts the others."""
    u, pause, join = rng.random(), sample_pause(rng, cfg), _join(rng, cfg)
    p = prob * min(1.0, run / cfg.pause_unit_morae) if by_length else prob
    if not anchored and u < p:
        events["pauses"] += 1
        return pause, 0.0
    events["joins"] += 1
    return join, run


def _pause_response(
    rng: np.random.Generator,
    cfg: TimingConfig,
    bc: int,
    r: RenderedSegment,
    stop: Seconds,
    silence: Seconds,
    run: float,
    listener: tuple[int, list[tuple[Seconds, Seconds]]],
    placements: list[Placement],
    in_pause: set[int],
    events: Counter,
) -> tuple[Seconds, float]:
    """With probability ``backchannel_in_pause_prob``, say aizuchi ``bc`` in a pause of the
    partner, who stopped speaking at ``stop``: it starts a gap after ``stop``, and the partner
    goes on after it with a floor-transfer offset (:func:`sample_transition`). ``listener`` is
    the aizuchi's channel and its speech spans (it must stay clear of them). Returns the
    partner's silence at this junction (the joined ``silence`` when the aizuchi stays inside the
    partner's speech) and the morae run since the partner's last pause. Draws the same numbers
    whatever the outcome (determinism)."""
    u = rng.random()
    onset_gap = float(np.clip(_lognormal(rng, cfg.backchannel_pause_onset_median, cfg.gap_sigma),
                              cfg.backchannel_pause_onset_min, cfg.backchannel_pause_onset_max))
    speech = r.words[-1].end - r.words[0].start
    # The partner taking the floor back is a speaker change like any other: a gap, or an overlap
    # with the aizuchi's tail (which then reads as a between overlap, not a within one).
    resume_kind, resume = sample_transition(rng, cfg, speech)
    start = stop + onset_gap
    end = start + speech
    channel, busy = listener
    clear = not any(s - cfg.backchannel_clearance < end and start < e + cfg.backchannel_clearance for s, e in busy)
    if u >= cfg.backchannel_in_pause_prob or speech >= cfg.backchannel_max or not clear:
        return silence, run
    placements.append(Placement(bc, channel, start - r.words[0].start))
    busy.append((start, end))
    busy.sort()
    in_pause.add(bc)
    events["joins"] -= 1  # the junction is no join: the partner stopped for the aizuchi
    events["backchannels_in_pause"] += 1
    events["speaker_changes_in_pause"] += 2
    events[resume_kind + "s_after_aizuchi"] += 1
    return onset_gap + speech + resume, 0.0


def _place_backchannels(script, rendered, cfg, channel_of, word_at, busy, placements, events, rng, in_pause) -> None:
    """Each aizuchi: onset a short delay after its anchor word ends, speech over before the
    partner's next phrase boundary (so it lies inside the partner's IPU), clear of the listener's
    own speech. Draws one delay per aizuchi in script order, placed or not (determinism)."""
    segs = script.segments
    host_of = {(s.turn, s.sentence): i for i, s in enumerate(segs) if s.kind == "speech" and (i, 0) in word_at}
    for i, seg in enumerate(segs):
        r = rendered[i]
        if seg.kind != "backchannel" or seg.anchor is None or r.duration == 0 or not r.words:
            continue
        delay = float(np.clip(_lognormal(rng, cfg.backchannel_delay_median, cfg.gap_sigma),
                              cfg.backchannel_delay_min, cfg.backchannel_delay_max))
        if i in in_pause:  # already said in the partner's pause
            continue
        si, wi = seg.anchor
        host = host_of.get((seg.turn, si))
        if host is None or wi >= len(rendered[host].words):
            events["backchannels_dropped"] += 1
            continue
        hw = rendered[host].words
        anchor_end = word_at[(host, wi)] + (hw[wi].end - hw[wi].start)
        boundary = _next_boundary(segs, rendered, word_at, host, wi)
        speech = r.words[-1].end - r.words[0].start
        onset = anchor_end + delay
        latest = None if boundary is None else boundary - cfg.backchannel_margin - speech
        if latest is not None and onset > latest:
            onset = latest  # come in sooner rather than run past the partner's next boundary
        if latest is None or onset < anchor_end + cfg.backchannel_delay_min or speech >= cfg.backchannel_max:
            events["backchannels_dropped"] += 1
            events["backchannels_no_room"] += 1
            continue
        start, end = onset, onset + speech
        ch = channel_of[seg.speaker]
        if any(s - cfg.backchannel_clearance < end and start < e + cfg.backchannel_clearance for s, e in busy[ch]):
            events["backchannels_dropped"] += 1
            events["backchannels_listener_busy"] += 1
            continue
        placements.append(Placement(i, ch, onset - r.words[0].start))
        busy[ch].append((start, end))
        busy[ch].sort()
        events["backchannels"] += 1


def _next_boundary(segs, rendered, word_at, host: int, wi: int) -> Seconds | None:
    """Dialogue time of the end of the partner's next phrase after word ``wi`` of segment
    ``host``: the next word ending in punctuation, or the end of a sentence. ``None`` when the
    partner says nothing more in that turn."""
    seg = segs[host]
    words = rendered[host].words
    for w in range(wi + 1, len(words)):
        if w == len(words) - 1 or seg.words[w].surface.endswith(_PHRASE_END):
            return word_at[(host, w)] + (words[w].end - words[w].start)
    nxt = next((i for i, s in enumerate(segs) if s.kind == "speech" and s.turn == seg.turn
                and s.sentence == seg.sentence + 1 and (i, 0) in word_at), None)
    return None if nxt is None else _next_boundary(segs, rendered, word_at, nxt, -1)
