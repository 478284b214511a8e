"""Where the listener's backchannels go: in the partner's pause (a short turn between two gaps)
or inside the partner's ongoing speech (a dGSLM within overlap). Both steps advance a
:class:`~.timing_state.PlanState` and draw the same random numbers whatever they decide, so one
decision never shifts the others (determinism)."""

from __future__ import annotations

from jmoshi_augment.augment.speech.timing_state import PlanEvent, PlanState, sample_clipped, sample_resumption
from jmoshi_augment.augment.text.punctuation import PROSODIC
from jmoshi_augment.augment.types import Placement, Seconds

# A word ending in one of these closes a phrase: an inside backchannel must end before the next one.
PHRASE_END = tuple(PROSODIC + ",!?")


def anchored_backchannels(state: PlanState) -> dict[tuple[int, int, int], int]:
    """(turn, sentence, word) → the first renderable backchannel anchored after that word."""
    anchored: dict[tuple[int, int, int], int] = {}
    for i, seg in enumerate(state.script.segments):
        r = state.rendered[i]
        if seg.kind == "backchannel" and seg.anchor is not None and r.duration > 0 and r.words:
            anchored.setdefault((seg.turn, *seg.anchor), i)
    return anchored


def backchannel_in_pause(state: PlanState, backchannel: int, stop: Seconds, silence: Seconds, at_hold: bool = False) -> Seconds:
    """Say ``backchannel`` in a pause of the partner, who stopped speaking at ``stop``: with
    probability ``backchannel_in_pause_prob`` at a sentence end (else it stays inside the
    partner's speech, the junction joined), always at a hold the script planned (the listener
    fills the speaker's planning pause without taking the floor). It starts a gap after
    ``stop``, and the partner goes on after it, often over its tail (:func:`sample_resumption`); it must
    stay clear of the listener's own speech, and at a hold it is dropped if it cannot. Returns
    the partner's silence at this junction (``silence`` when the backchannel is not said in it)
    and resets the partner's morae run when the partner stopped for it."""
    cfg, rng, r = state.cfg, state.rng, state.rendered[backchannel]
    u = rng.random()
    onset_gap = sample_clipped(rng, cfg.backchannel_pause_onset_median, cfg.gap_sigma,
                               cfg.backchannel_pause_onset_min, cfg.backchannel_pause_onset_max)
    speech = r.words[-1].end - r.words[0].start
    # The partner going on is a speaker change to dGSLM: a gap, or an overlap with the
    # backchannel's tail (which then reads as a between overlap, not a within one).
    resume = sample_resumption(rng, cfg, speech)
    start = stop + onset_gap
    end = start + speech
    channel = state.channel(backchannel)
    fits = speech < cfg.backchannel_max and state.clear_of(channel, start, end)
    if at_hold and not fits:  # the junction is a pause: there is no speech to say it inside
        state.settled.add(backchannel)
        state.events[PlanEvent.BACKCHANNELS_DROPPED] += 1
        return silence
    if not fits or (not at_hold and u >= cfg.backchannel_in_pause_prob):
        return silence
    state.placements.append(Placement(backchannel, channel, start - r.words[0].start))
    state.occupy(channel, start, end)
    state.settled.add(backchannel)
    # the junction is no join (or no plain pause): the partner stopped for the backchannel
    state.events[PlanEvent.PAUSES if at_hold else PlanEvent.JOINS] -= 1
    state.events[PlanEvent.BACKCHANNELS_IN_PAUSE] += 1
    state.events[PlanEvent.SPEAKER_CHANGES_IN_PAUSE] += 2
    state.events[resume.event] += 1
    state.run = 0.0
    return onset_gap + speech + resume.offset


def place_backchannels_in_speech(state: PlanState) -> None:
    """Each backchannel not said in a pause: onset a short delay after its anchor word ends,
    speech over before the partner's next phrase boundary (so it lies inside the partner's IPU),
    clear of the listener's own speech. Draws one delay per backchannel in script order, placed
    or not."""
    cfg, segs = state.cfg, state.script.segments
    host_of = {(s.turn, s.sentence): i for i, s in enumerate(segs) if s.kind == "speech" and (i, 0) in state.word_at}
    for i, seg in enumerate(segs):
        r = state.rendered[i]
        if seg.kind != "backchannel" or seg.anchor is None or r.duration == 0 or not r.words:
            continue
        delay = sample_clipped(state.rng, cfg.backchannel_delay_median, cfg.gap_sigma,
                               cfg.backchannel_delay_min, cfg.backchannel_delay_max)
        if i in state.settled:  # already said in the partner's pause, or dropped at a hold
            continue
        si, wi = seg.anchor
        host = host_of.get((seg.turn, si))
        if host is None or wi >= len(state.rendered[host].words):
            state.events[PlanEvent.BACKCHANNELS_DROPPED] += 1
            continue
        hw = state.rendered[host].words
        anchor_end = state.word_at[(host, wi)] + (hw[wi].end - hw[wi].start)
        boundary = _next_boundary(state, host, wi)
        speech = r.words[-1].end - r.words[0].start
        onset = anchor_end + delay
        latest = None if boundary is None else boundary - cfg.backchannel_margin - speech
        if latest is not None and onset > latest:
            onset = latest  # come in sooner rather than run past the partner's next boundary
        if latest is None or onset < anchor_end + cfg.backchannel_delay_min or speech >= cfg.backchannel_max:
            state.events[PlanEvent.BACKCHANNELS_DROPPED] += 1
            state.events[PlanEvent.BACKCHANNELS_NO_ROOM] += 1
            continue
        start, end = onset, onset + speech
        ch = state.channel(i)
        if not state.clear_of(ch, start, end):
            state.events[PlanEvent.BACKCHANNELS_DROPPED] += 1
            state.events[PlanEvent.BACKCHANNELS_LISTENER_BUSY] += 1
            continue
        state.placements.append(Placement(i, ch, onset - r.words[0].start))
        state.occupy(ch, start, end)
        state.events[PlanEvent.BACKCHANNELS] += 1


def _next_boundary(state: PlanState, host: int, wi: int) -> Seconds | None:
    """Dialogue time of the end of the partner's next phrase after word ``wi`` of segment
    ``host``: the next word ending in punctuation, or the end of a sentence. ``None`` when the
    partner says nothing more in that turn."""
    segs = state.script.segments
    seg = segs[host]
    words = state.rendered[host].words
    for w in range(wi + 1, len(words)):
        if w == len(words) - 1 or seg.words[w].surface.endswith(PHRASE_END):
            return state.word_at[(host, w)] + (words[w].end - words[w].start)
    nxt = next((i for i, s in enumerate(segs) if s.kind == "speech" and s.turn == seg.turn
                and s.sentence == seg.sentence + 1 and (i, 0) in state.word_at), None)
    return None if nxt is None else _next_boundary(state, nxt, -1)
