"""The planner on synthetic segment durations: rates, placement rules, determinism, and the
dGSLM events of its output measured by ``stats`` (within overlaps for every placed backchannel)."""

import numpy as np

from jmoshi_augment.augment.speech.mix import mix
from jmoshi_augment.augment.text.script import make_script
from jmoshi_augment.augment.analysis.stats import WITHIN, analyze
from jmoshi_augment.augment.speech.timing import PlanEvent, plan_timeline
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE, RenderedSegment, WordTiming
from jmoshi_augment.constants import MIX_PEAK_LIMIT
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import ScriptConfig, TimingConfig

PINNED_PLAN = "c7fd686a939ca64f3e3a89eb3c6c5b43d960896118e643e29ac1e5c936744227"
MORA = 0.125  # 8 morae per second (CEJC)
EDGE = 0.05  # leading and trailing silence of a rendered segment, like a TTS's
COMMA_PAUSE = 0.25  # silence the fake TTS leaves after a word ending in 、 (OpenJTalk: 0.14-0.37 s)


def fake_render(script):
    """Each word lasts its morae at 8 morae/s, with a pause after each 、; the audio is a tone
    where words are and digital silence elsewhere (deterministic)."""
    out = []
    for seg in script.segments:
        t, words = EDGE, []
        for w in seg.words:
            words.append(WordTiming(w.surface, t, t + w.morae * MORA))
            t += w.morae * MORA + (COMMA_PAUSE if w.surface.endswith("、") else 0.0)
        n = int(round((words[-1].end + EDGE) * SAMPLE_RATE))
        audio = np.zeros(n, np.float32)
        for w in words:
            a, b = int(round(w.start * SAMPLE_RATE)), int(round(w.end * SAMPLE_RATE))
            audio[a:b] = 0.1 * np.sin(np.arange(a, b) * 2 * np.pi * 220 / SAMPLE_RATE)
        out.append(RenderedSegment(audio, tuple(words)))
    return out


NO_HOLDS = ScriptConfig(hold_prob_clause=0.0, hold_prob_phrase=0.0, hold_prob_filler=0.0, mid_filler_rate=0.0)


def scripts(n=40, seed=0, cfg=ScriptConfig()):
    turn_a = "昨日ね、駅前の新しいカフェに行ったんだけど、すごく混んでてさ。結局一時間も待ったよ。"
    turn_b = "えー、そんなに？でも美味しかったんでしょ。今度一緒に行こうよ。"
    d = Dialogue("d", "test", tuple(Turn("AB"[i % 2], (turn_a, turn_b)[i % 2]) for i in range(8)))
    rng = np.random.default_rng(seed)
    return [make_script(d, cfg, rng) for _ in range(n)]


def test_transitions_follow_the_configured_rates():
    cfg = TimingConfig(overlap_prob=0.3, interruption_prob=0.05)
    counts = {"overlaps": 0, "gaps": 0, "interruptions": 0, "speaker_changes": 0}
    rng = np.random.default_rng(0)
    for script in scripts():
        tl = plan_timeline(script, fake_render(script), cfg, "A", rng)
        for k in counts:
            counts[k] += tl.events.get(k, 0)
    n = counts["speaker_changes"]
    assert n == 40 * 7
    assert abs(counts["overlaps"] / n - 0.3) < 0.08
    assert abs(counts["interruptions"] / n - 0.05) < 0.04
    assert counts["overlaps"] + counts["gaps"] + counts["interruptions"] == n


def _speech_spans(script, rendered, tl):
    """Per channel, the dialogue-time span of every placed piece's words; and per speech turn."""
    spans, turns = {MAIN: [], OTHER: []}, {}
    for p in tl.placements:
        r = rendered[p.segment]
        end = r.duration if p.end is None else p.end
        ws = [w for w in r.words if p.start <= w.start < end]
        span = (p.offset + ws[0].start - p.start, p.offset + ws[-1].end - p.start)
        spans[p.channel].append(span)
        if script.segments[p.segment].kind == "speech":
            turns.setdefault(script.segments[p.segment].turn, []).append(span)
    return spans, turns


def test_placements_respect_channels_pauses_and_backchannel_rules():
    cfg = TimingConfig(backchannel_in_pause_prob=0.0)  # every backchannel inside the partner's speech
    rng = np.random.default_rng(1)
    n_backchannels = 0
    for script in scripts(10):
        rendered = fake_render(script)
        tl = plan_timeline(script, rendered, cfg, "B", rng)
        for p in tl.placements:
            assert p.channel == (MAIN if script.segments[p.segment].speaker == "B" else OTHER)
        spans, turns = _speech_spans(script, rendered, tl)
        for ch in spans:  # a channel never overlaps itself
            s = sorted(spans[ch])
            assert all(b[0] - a[1] >= cfg.join_silence_min - 1e-9 for a, b in zip(s, s[1:]))
        for pieces in turns.values():  # inside a turn every silence is a join or a real pause
            s = sorted(pieces)
            for x in (b[0] - a[1] for a, b in zip(s, s[1:])):
                assert (cfg.join_silence_min - 1e-9 <= x <= cfg.join_silence_max + 1e-9 or cfg.pause_min - 1e-9 <= x <= cfg.pause_max + 1e-9
                        or cfg.hold_pause_min - 1e-9 <= x <= cfg.hold_pause_max + 1e-9)  # a hold the script planned
        # every word of every speech segment is placed exactly once
        placed = sorted((p.segment, w.start) for p in tl.placements for w in rendered[p.segment].words
                        if p.start <= w.start < (rendered[p.segment].duration if p.end is None else p.end))
        assert len(placed) == len(set(placed)) == sum(len(rendered[p].words) for p in {p.segment for p in tl.placements})
        word_time = {}
        for p in tl.placements:
            r = rendered[p.segment]
            for k, w in enumerate(r.words):
                if p.start <= w.start < (r.duration if p.end is None else p.end):
                    word_time[(p.segment, k)] = (p.offset + w.start - p.start, p.offset + w.end - p.start)
        for p in tl.placements:
            seg = script.segments[p.segment]
            if seg.kind != "backchannel":
                continue
            n_backchannels += 1
            host = next(i for i, s in enumerate(script.segments)
                        if s.kind == "speech" and (s.turn, s.sentence) == (seg.turn, seg.anchor[0]))
            anchor_end = word_time[(host, seg.anchor[1])][1]
            onset = p.offset + rendered[p.segment].words[0].start
            assert anchor_end + cfg.backchannel_delay_min - 1e-9 <= onset <= anchor_end + cfg.backchannel_delay_max + 1e-9
        assert tl.events.get("backchannels", 0) == sum(1 for p in tl.placements if script.segments[p.segment].kind == "backchannel")
        assert tl.duration >= max(e for s in spans.values() for _, e in s) + cfg.tail - 1e-9
    assert n_backchannels > 0


def test_every_placed_backchannel_measures_as_a_within_overlap():
    """The point of the planner: stats (dGSLM) finds each placed backchannel inside the partner's IPU."""
    n_backchannels = n_within = 0
    rng = np.random.default_rng(3)
    for script in scripts(6, seed=4):
        rendered = fake_render(script)
        cfg = TimingConfig(overlap_prob=0.0, interruption_prob=0.0, backchannel_in_pause_prob=0.0)
        tl = plan_timeline(script, rendered, cfg, "A", rng)
        st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
        n_backchannels += tl.events.get("backchannels", 0)
        n_within += int(np.sum(st.overlap_kind == WITHIN))
        assert len(st.overlap_kind) == int(np.sum(st.overlap_kind == WITHIN))  # no speaker-change overlaps planned
    assert n_backchannels >= 12 and n_within == n_backchannels


def test_pause_probabilities_set_the_pause_rate():
    """No pauses asked: every junction inside a turn is joined, so stats finds no pause at all;
    all pauses asked: each junction (sentence ends, every comma) is a measured pause. (A script
    without holds: those are the script's pauses, tests/test_holds.py.)"""
    script = scripts(1, seed=2, cfg=NO_HOLDS)[0]
    rendered = fake_render(script)
    never = TimingConfig(pause_prob_sentence=0, pause_prob_filler=0, pause_prob_clause=0, overlap_prob=0, interruption_prob=0)
    tl = plan_timeline(script, rendered, never, "A", np.random.default_rng(0))
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert tl.events.get("pauses", 0) == 0 and len(st.pauses) == 0 and tl.events["joins"] > 0
    always = never.model_copy(update={"pause_prob_sentence": 1.0, "pause_prob_filler": 1.0, "pause_prob_clause": 1.0,
                                      "pause_unit_morae": 1e-6})  # full chance from the first mora
    tl = plan_timeline(script, rendered, always, "A", np.random.default_rng(0))
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    anchored = {(b.turn, *b.anchor) for b in script.backchannels}
    assert tl.events["pauses"] > 0 and tl.events["joins"] <= len(anchored)  # joins only where an backchannel is anchored
    assert len(st.pauses) == tl.events["pauses"]


def test_planner_is_deterministic_for_a_seed():
    script = scripts(1)[0]
    rendered = fake_render(script)
    a = plan_timeline(script, rendered, TimingConfig(), "A", np.random.default_rng(5))
    b = plan_timeline(script, rendered, TimingConfig(), "A", np.random.default_rng(5))
    assert a == b


def test_mix_places_words_and_never_clips():
    script = scripts(1)[0]
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, TimingConfig(overlap_prob=0.9), "A", np.random.default_rng(2))
    out = mix(script, rendered, tl, loudness_dbfs=-3.0)  # loud target: the peak limiter must act
    assert out.audio.shape == (2, int(round(tl.duration * SAMPLE_RATE))) and out.audio.dtype == np.float32
    assert np.abs(out.audio).max() <= MIX_PEAK_LIMIT + 1e-6
    assert out.speaker_map == {"main": "A", "other": "B"}
    assert [w.start for w in out.words] == sorted(w.start for w in out.words)
    for w in out.words:  # every aligned word sits on sound in its own channel
        a, b = int(w.start * SAMPLE_RATE), int(w.end * SAMPLE_RATE)
        assert np.abs(out.audio[w.channel, a:b]).max() > 0.01
    both = (np.abs(out.audio) > 1e-4).all(axis=0).mean()
    assert both > 0.02  # overlaps happened


def _hand_script(backchannel: str, morae: int, anchor: tuple[int, int]):
    from jmoshi_augment.augment.types import Segment, SpokenScript, Word

    words = tuple(Word(s, "", m) for s, m in [("今日は、", 4), ("雨", 2), ("だね、", 3), ("ほんとに", 4), ("すごい", 3), ("よ。", 1)])
    reply = (Word("そう", "", 2), Word("だね。", "", 2))
    return SpokenScript("h", "test", ("A", "B"), (
        Segment("A", words, "speech", 0, 0),
        Segment("B", reply, "speech", 1, 0),
        Segment("B", (Word(backchannel, "", morae),), "backchannel", 0, anchor=anchor),
    ))


def test_an_backchannel_ends_before_the_partners_next_phrase_boundary_or_is_dropped():
    cfg = TimingConfig(backchannel_delay_median=0.1, backchannel_delay_min=0.03, backchannel_delay_max=0.3,
                       backchannel_in_pause_prob=0.0, overlap_prob=0.0, interruption_prob=0.0)
    # After 今日は、 the partner goes on with 雨だね、 (5 morae, 0.625 s): room for うん (0.25 s)...
    script = _hand_script("うん", 2, (0, 0))
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(0))
    assert tl.events.get("backchannels") == 1
    host = next(p for p in tl.placements if p.segment == 0 and p.start > 0)  # the piece after 今日は、
    boundary = host.offset + rendered[0].words[2].end - host.start  # end of だね、
    backchannel = next(p for p in tl.placements if p.segment == 2)
    backchannel_end = backchannel.offset + rendered[2].words[-1].end
    assert backchannel_end <= boundary - cfg.backchannel_margin + 1e-9
    # ... and the comma it is anchored at is joined (< 200 ms): the partner's IPU stays whole.
    first = next(p for p in tl.placements if p.segment == 0 and p.start == 0)
    silence = (host.offset + rendered[0].words[1].start - host.start) - (first.offset + rendered[0].words[0].end)
    assert cfg.join_silence_min - 1e-9 <= silence <= cfg.join_silence_max + 1e-9
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert st.overlap_kind.tolist() == [WITHIN]
    # そうなんだよね (0.875 s) cannot end before だね、 ends: dropped and counted, never straddling.
    script = _hand_script("そうなんだよね", 7, (0, 0))
    tl = plan_timeline(script, fake_render(script), cfg, "A", np.random.default_rng(0))
    assert tl.events.get("backchannels", 0) == 0 and tl.events["backchannels_no_room"] == 1


def _two_sentence_script(backchannel: str = "うん", morae: int = 2):
    """A says two sentences in one turn; B's backchannel is anchored at the end of the first."""
    from jmoshi_augment.augment.types import Segment, SpokenScript, Word

    first = tuple(Word(s, "", m) for s, m in [("昨日", 3), ("駅前の", 4), ("カフェに", 3), ("行ったよ。", 4)])
    second = tuple(Word(s, "", m) for s, m in [("すごく", 3), ("混んでて", 4), ("大変", 4), ("だった。", 3)])
    return SpokenScript("p", "test", ("A", "B"), (
        Segment("A", first, "speech", 0, 0),
        Segment("A", second, "speech", 0, 1),
        Segment("B", (Word("そうなんだ。", "", 5),), "speech", 1, 0),
        Segment("B", (Word(backchannel, "", morae),), "backchannel", 0, anchor=(0, 3)),
    ))


def test_an_backchannel_in_the_partners_pause_is_a_short_turn_between_two_gaps():
    """backchannel_in_pause_prob=1: A stops after 行ったよ。, B's うん starts a quick gap later, A goes
    on a gap after it. stats then finds no overlap, three speaker changes (two around the backchannel,
    one to B's reply) and A's turn cut into two IPUs; with the share at 0 the same backchannel is a
    within overlap inside A's single IPU."""
    cfg = TimingConfig(backchannel_in_pause_prob=1.0, overlap_prob=0.0, interruption_prob=0.0,
                       backchannel_resume_overlap_prob=0.0)
    script = _two_sentence_script()
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(0))
    assert tl.events["backchannels_in_pause"] == 1 and tl.events["speaker_changes_in_pause"] == 2
    assert tl.events.get("backchannels", 0) == 0 and tl.events.get("pauses", 0) == 0
    at = {p.segment: p.offset for p in tl.placements}
    stop = at[0] + rendered[0].words[-1].end  # A's last word of the first sentence ends
    backchannel_start, backchannel_end = at[3] + rendered[3].words[0].start, at[3] + rendered[3].words[-1].end
    resume = at[1] + rendered[1].words[0].start
    assert cfg.backchannel_pause_onset_min - 1e-9 <= backchannel_start - stop <= cfg.backchannel_pause_onset_max + 1e-9
    assert resume - backchannel_end >= cfg.min_gap - 1e-9  # a gap, as drawn: no overlap asked
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert len(st.overlaps) == 0 and len(st.pauses) == 0 and len(st.gaps) == 3
    assert [len(st.ipus[0]), len(st.ipus[1])] == [2, 2]  # A: two IPUs; B: the backchannel and the reply
    inside = plan_timeline(script, rendered, cfg.model_copy(update={"backchannel_in_pause_prob": 0.0}), "A",
                           np.random.default_rng(0))
    st = analyze(mix(script, rendered, inside, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert inside.events["backchannels"] == 1 and st.overlap_kind.tolist() == [WITHIN] and len(st.ipus[0]) == 1


def test_the_partner_may_resume_over_the_tail_of_an_in_pause_backchannel():
    """The partner's resumption has its own overlap share (backchannel_resume_overlap_prob, not the
    speaker changes' overlap_prob): at 1, A comes back in before B's backchannel ends, which stats
    reads as a between overlap (the backchannel began in A's silence, so it is not inside A's IPU)."""
    cfg = TimingConfig(backchannel_in_pause_prob=1.0, overlap_prob=0.0, interruption_prob=0.0, overlap_median=0.1,
                       backchannel_resume_overlap_prob=1.0)
    script = _two_sentence_script("うんうん", 4)
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(1))
    assert tl.events["backchannels_in_pause"] == 1 and tl.events[PlanEvent.OVERLAPS_AFTER_BACKCHANNEL] == 1
    at = {p.segment: p.offset for p in tl.placements}
    backchannel_end = at[3] + rendered[3].words[-1].end
    resume = at[1] + rendered[1].words[0].start
    assert resume < backchannel_end
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert WITHIN not in st.overlap_kind.tolist() and len(st.overlap_kind) == 1  # the resumption; B replies after a gap


def test_a_backchannel_at_a_clause_comma_stays_inside_the_speech():
    """Only a sentence end (a completion point) opens a pause for the listener: a backchannel at a
    clause comma said in a pause would make the silence after an unfinished clause a speaker change."""
    cfg = TimingConfig(backchannel_in_pause_prob=1.0, overlap_prob=0.0, interruption_prob=0.0)
    script = _hand_script("うん", 2, (0, 0))  # anchored at 今日は、
    rendered = fake_render(script)
    for seed in range(5):
        tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(seed))
        assert tl.events.get("backchannels_in_pause", 0) == 0 and tl.events["backchannels"] == 1
        st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
        assert st.overlap_kind.tolist() == [WITHIN] and len(st.gaps) == 1  # the one gap: B's reply


def test_timing_options_are_checked():
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="under the 200 ms IPU threshold"):
        TimingConfig(join_silence_max=0.2)
    with pytest.raises(pydantic.ValidationError, match="pause_min <= pause_median"):
        TimingConfig(pause_min=0.5, pause_median=0.4)
    with pytest.raises(pydantic.ValidationError, match="backchannel_pause_onset_min <= backchannel_pause_onset_median"):
        TimingConfig(backchannel_pause_onset_median=0.5)


def _timeline_digest(configs, n_scripts: int = 6) -> str:
    """SHA-256 of every placement, duration and event count the planner makes for a fixed set of
    scripts and options: pins the plan to the bit, so a refactor that changes behaviour fails."""
    import hashlib

    h = hashlib.sha256()
    for cfg in configs:
        rng = np.random.default_rng(11)
        for script in scripts(n_scripts, seed=7):
            tl = plan_timeline(script, fake_render(script), cfg, "A", rng)
            for p in tl.placements:
                h.update(repr((p.segment, p.channel, round(p.offset, 9), p.start, p.end)).encode())
            h.update(repr((round(tl.duration, 9), sorted(tl.events.items()))).encode())
    return h.hexdigest()


def test_the_plan_is_pinned_to_the_bit():
    configs = [
        TimingConfig(),
        TimingConfig(backchannel_in_pause_prob=1.0, overlap_prob=0.5, interruption_prob=0.1),
        TimingConfig(backchannel_in_pause_prob=0.0, pause_prob_clause=1.0, pause_prob_filler=1.0),
    ]
    assert _timeline_digest(configs) == PINNED_PLAN
