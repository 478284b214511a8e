"""Pauses that hold the floor: where the script plans them (UniDic parts of speech, never inside a
bunsetsu), how they are rendered (a clause comma for continuation prosody, no character lost),
and what the planner makes of them (always a pause, a backchannel anchored there said in it)."""

import numpy as np

from jmoshi_augment.augment.analysis.stats import analyze
from jmoshi_augment.augment.speech.mix import mix
from jmoshi_augment.augment.speech.timing import PlanEvent, plan_timeline
from jmoshi_augment.augment.text.holds import AFTER_FILLER, CLAUSE_END, PHRASE_END, choose_holds, hold_points, insert_mid_filler
from jmoshi_augment.augment.text.normalize import unaccounted
from jmoshi_augment.augment.text.script import make_script, make_word, source_characters, to_words
from jmoshi_augment.augment.types import SAMPLE_RATE, Segment, SpokenScript, Word
from jmoshi_augment.corpora import Dialogue, Turn, load_corpus
from jmoshi_augment.recipe import ScriptConfig, TimingConfig
from pathlib import Path

from test_timing import fake_render

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = ScriptConfig(hold_prob_clause=1.0, hold_prob_phrase=1.0, hold_prob_filler=1.0, hold_unit_morae=1e-6)
NEVER = ScriptConfig(hold_prob_clause=0.0, hold_prob_phrase=0.0, hold_prob_filler=0.0, mid_filler_rate=0.0)


def test_holds_fall_between_bunsetsu_never_inside_one():
    words = to_words("昨日は駅前の新しいカフェに行ったんだけど、すごく混んでて結局一時間も待ったよ。")
    points = dict(hold_points(words))
    surfaces = [w.surface for w in words]
    assert points, surfaces
    for j, kind in points.items():
        before, after = words[j], words[j + 1]
        # the phrase is complete before it (a particle, conjunction or adverb) and a content word opens the next
        assert before.pos.startswith(("助詞", "接続詞", "副詞")), (surfaces, j)
        assert not after.pos.startswith(("助詞", "助動詞", "接尾辞")), (surfaces, j)
        assert kind in (CLAUSE_END, PHRASE_END)
        assert not before.surface.endswith(("、", "。"))  # commas are the planner's junctions already
    # 昨日は | 駅前の | カフェに | ...: case and topic particles end phrases; て before 結局 ends a clause
    assert surfaces.index("は") in points and points.get(surfaces.index("て")) == CLAUSE_END
    # no hold between 行っ and た, or before the sentence's last morae
    assert surfaces.index("行っ") not in points and len(words) - 2 not in points


def test_a_filler_is_a_hold_point_and_mid_fillers_go_to_phrase_boundaries():
    words = to_words("駅前の新しいカフェに行ったよ。")
    with_filler = insert_mid_filler(words, make_word("あの"), np.random.default_rng(0))
    k = next(i for i, w in enumerate(with_filler) if w.pos == "フィラー")
    assert with_filler[k].surface == "あの、" and 0 < k < len(with_filler) - 1
    assert with_filler[k - 1].pos.startswith("助詞") and dict(hold_points(with_filler)).get(k) == AFTER_FILLER
    assert insert_mid_filler(to_words("うん。"), make_word("あの"), np.random.default_rng(0)) == to_words("うん。")


def test_choose_holds_marks_continuation_with_a_comma_and_grows_with_the_run():
    words = to_words("昨日は駅前の新しいカフェに行ったんだけど、すごく混んでて結局一時間も待ったよ。")
    out, holds, run = choose_holds(words, 0.0, ALWAYS, np.random.default_rng(0))
    assert holds == tuple(j for j, _ in hold_points(words)) and run > 0
    for j, (a, b) in enumerate(zip(words, out)):
        assert b.surface == (a.surface + "、" if j in holds else a.surface) and b.reading == a.reading
    assert choose_holds(words, 0.0, NEVER, np.random.default_rng(0)) == (words, (), sum(w.morae for w in words))
    # the chance grows with the morae said since the last hold: a fresh speaker holds less often
    cfg = ScriptConfig(hold_prob_phrase=0.6, hold_prob_clause=0.6, hold_unit_morae=40)
    rng = np.random.default_rng(1)
    fresh = sum(len(choose_holds(words, 0.0, cfg, rng)[1]) for _ in range(300))
    running = sum(len(choose_holds(words, 40.0, cfg, rng)[1]) for _ in range(300))
    assert running > 1.2 * fresh


def test_no_character_is_lost_to_holds_and_mid_fillers():
    """The hold commas are added, never taken from the source: every source character is still
    spoken or counted (the sequence-diff check behind bench/bench_chars_lost.py)."""
    cfg = ALWAYS.model_copy(update={"mid_filler_rate": 1.0})
    for d in list(load_corpus("jsonl", ROOT / "jmoshi_augment" / "data" / "sample.jsonl"))[:6]:
        script = make_script(d, cfg, np.random.default_rng(0))
        assert any(s.holds for s in script.speech)
        source = "".join(t.text for t in d.turns)
        surfaces = "".join(w.surface for s in script.speech for w in s.words if w.pos != "フィラー")
        assert unaccounted(source, surfaces, sum(dict(script.not_spoken).values())) == 0
        assert source_characters(script) > 0
        for s in script.speech:  # a hold ends in a comma and never at the sentence's last word
            assert all(s.words[j].surface.endswith("、") and j < len(s.words) - 1 for j in s.holds)
        for b in script.backchannels:  # never anchored right after a filler
            sent = next(s for s in script.speech if (s.turn, s.sentence) == (b.turn, b.anchor[0]))
            assert sent.words[b.anchor[1]].pos != "フィラー"


def _hold_script(backchannel: bool):
    words = tuple(Word(s, "", m, p) for s, m, p in [("昨日は、", 4, "助詞-係助詞"), ("駅前の", 4, "助詞-格助詞"),
                                                     ("カフェに", 3, "助詞-格助詞"), ("行ったよ。", 4, "助詞-終助詞")])
    segs = [Segment("A", words, "speech", 0, 0, holds=(1,)), Segment("B", (Word("そっか。", "", 3),), "speech", 1, 0)]
    if backchannel:
        segs.append(Segment("B", (Word("うん", "", 2),), "backchannel", 0, anchor=(0, 1)))
    return SpokenScript("h", "test", ("A", "B"), tuple(segs))


def test_a_hold_is_always_a_pause_and_its_backchannel_is_said_in_it():
    cfg = TimingConfig(pause_prob_clause=0.0, overlap_prob=0.0, interruption_prob=0.0, lapse_prob=0.0)
    for seed in range(5):
        script = _hold_script(False)
        rendered = fake_render(script)  # no TTS silence after 駅前の: the planner cuts there anyway
        tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(seed))
        assert tl.events[PlanEvent.HOLDS] == 1 and tl.events[PlanEvent.PAUSES] == 1
        st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
        assert len(st.pauses) == 1
        length = st.pauses[0][1] - st.pauses[0][0]
        assert cfg.hold_pause_min - 0.05 <= length <= cfg.hold_pause_max + 0.05
        script = _hold_script(True)
        rendered = fake_render(script)
        tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(seed))
        assert tl.events[PlanEvent.BACKCHANNELS_IN_PAUSE] == 1 and tl.events.get(PlanEvent.PAUSES, 0) == 0
        assert tl.events[PlanEvent.HOLDS] == 1 and tl.events.get(PlanEvent.BACKCHANNELS, 0) == 0


def test_lapses_are_gaps_over_a_second():
    d = Dialogue("d", "test", tuple(Turn("AB"[i % 2], "今日はいい天気だね。") for i in range(12)))
    script = make_script(d, NEVER.model_copy(update={"backchannel_rate": 0.0, "filler_rate": 0.0}), np.random.default_rng(0))
    rendered = fake_render(script)
    cfg = TimingConfig(lapse_prob=1.0, overlap_prob=0.0, interruption_prob=0.0)
    tl = plan_timeline(script, rendered, cfg, "A", np.random.default_rng(0))
    assert tl.events[PlanEvent.LAPSES] == tl.events[PlanEvent.GAPS] == 11
    st = analyze(mix(script, rendered, tl, loudness_dbfs=-20.0).audio, SAMPLE_RATE)
    assert len(st.gaps) == 11 and all(e - s > 1.0 for s, e in st.gaps)


def test_every_placed_piece_fades_in_and_out():
    """The fake TTS's words start and stop abruptly (a tone), as a cut between abutting words does:
    without the mixer's fades each stretch of sound starts with a step; with them the first and
    last millisecond stay below -40 dBFS."""
    from jmoshi_augment.augment.analysis.onsets import sound_edge_peaks

    script = _hold_script(True)
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, TimingConfig(), "A", np.random.default_rng(0))
    for fade, clean in ((0.0, False), (None, True)):
        audio = mix(script, rendered, tl, loudness_dbfs=-20.0, fade=fade).audio
        edges = np.concatenate([sound_edge_peaks(audio[ch], SAMPLE_RATE) for ch in (0, 1)])
        assert len(edges) >= 4 and (edges.max() < 10 ** (-40 / 20)) == clean
