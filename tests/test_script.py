import numpy as np
import pytest

from jmoshi_augment.augment.text.script import (
    backchannel_anchors,
    count_morae,
    make_script,
    normalize_text,
    split_sentences,
    to_words,
)
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import ScriptConfig


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＡＢＣは１２３円です", "ABCは123円です"),  # NFKC
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana (RealPersonaChat)
        ("<XX>さんこんにちは", "まるまるさんこんにちは"),  # privacy masks are not read as symbols
        ("＊＊に住んでます", "まるまるに住んでます"),
        ("楽しかった😊また行こう", "楽しかった\nまた行こう"),  # emoji ends a sentence
        ("了解(^_^)明日ね", "了解\n明日ね"),
        ("14:30に集合", "14時半に集合"),
        ("9:05に出発", "9時5分に出発"),
        ("2024/5/3に行った", "2024年5月3日に行った"),
        ("すごいね　また今度", "すごいね\nまた今度"),
        ("本当に!?", "本当に！？"),
        ("まじでwww", "まじで"),
        ("50%オフ", "50パーセントオフ"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_split_sentences_splits_long_sentences_at_commas():
    text = "今日は朝から雨が降っていて、駅まで歩くのが大変だったんだけど、電車に乗ったら暖かくて、ほっとしました。次の日は晴れ。"
    parts = split_sentences(text, max_chars=30)
    assert all(len(p) <= 30 for p in parts)
    assert "".join(parts).replace("、", "") == text.replace("、", "")  # nothing lost
    assert parts[-1] == "次の日は晴れ。"
    assert split_sentences("？？！", 80) == []  # nothing speakable


def test_words_glue_punctuation_and_count_morae():
    words = to_words("きょうは、東京に行ったよ。")
    assert [w.surface for w in words] == ["きょう", "は、", "東京", "に", "行っ", "た", "よ。"]
    assert words[0].morae == 2  # キョー
    assert words[2].reading == "トーキョー" and words[2].morae == 4
    assert count_morae("キャッチャー") == 4  # キャ ッ チャ ー
    latin = to_words("YouTubeを見た")
    assert latin[0].surface == "YouTube" and latin[0].reading == "ユーチューブ"


def _dialogue(*turns):
    return Dialogue("t-1", "test", tuple(Turn(s, t) for s, t in turns))


def test_make_script_counts_skipped_turns_and_merges_same_speaker():
    d = _dialogue(("A", "こんにちは。"), ("B", "😊"), ("A", "元気？"), ("B", "うん、元気だよ。"))
    script = make_script(d, ScriptConfig(filler_rate=0, backchannel_rate=0), np.random.default_rng(0))
    assert script.skipped == ("turn empty after normalisation",)
    assert [(s.speaker, s.turn, s.text) for s in script.speech] == [
        ("A", 0, "こんにちは。"),
        ("A", 0, "元気？"),
        ("B", 1, "うん、元気だよ。"),
    ]


def test_backchannels_only_inside_the_partners_turn():
    sentences = (to_words("昨日さ、駅前のカフェに行ったんだけど、すごく混んでてね。"), to_words("結局帰ったよ。"))
    anchors = backchannel_anchors(sentences)
    last = (len(sentences) - 1, len(sentences[-1]) - 1)
    assert anchors and last not in anchors
    assert (0, len(sentences[0]) - 1) in anchors  # the first sentence's end invites an aizuchi


def test_fillers_and_backchannels_follow_the_rates_and_politeness():
    turns = [("A", "昨日駅前のカフェに行ったんですけど、すごく混んでいてね。結局帰りました。")] * 1 + [
        ("B", "そうなんですか。残念でしたね。")
    ]
    d = _dialogue(*(turns * 20))
    cfg = ScriptConfig(filler_rate=0.5, backchannel_rate=0.5)
    script = make_script(d, cfg, np.random.default_rng(1))
    fillers = sum(1 for s in script.speech if s.words[0].pos == "フィラー")
    assert 0.35 < fillers / len(script.speech) < 0.65
    forms = {s.text for s in script.backchannels}
    assert forms <= set(cfg.backchannels_polite)  # both speak です/ます → polite aizuchi
    assert all(s.speaker != script.speech[[x.turn for x in script.speech].index(s.turn)].speaker for s in script.backchannels)


def test_make_script_is_deterministic_for_a_seed():
    d = _dialogue(("A", "今日はいい天気だね。散歩でも行く？"), ("B", "いいね、行こう。どこに行く？"))
    a = make_script(d, ScriptConfig(), np.random.default_rng(7))
    b = make_script(d, ScriptConfig(), np.random.default_rng(7))
    assert a == b
