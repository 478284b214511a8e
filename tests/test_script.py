from collections import Counter

import numpy as np
import pytest

from jmoshi_augment.augment.text.backchannel import opens_reactively, sentence_is_polite
from jmoshi_augment.augment.text.normalize import unaccounted
from jmoshi_augment.augment.text.readings import FIXED_WORD
from jmoshi_augment.augment.text.script import (
    backchannel_anchors,
    count_morae,
    make_script,
    normalize_text,
    source_characters,
    split_sentences,
    to_words,
)
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import ScriptConfig


def plain(text: str) -> str:
    """Normalised text with each fixed word shown as its surface."""
    return FIXED_WORD.sub(lambda m: m[1], normalize_text(text))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ＡＢＣは１２３円です", "ABCは123円です"),  # NFKC
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana (RealPersonaChat)
        ("楽しかった😊また行こう", "楽しかった\nまた行こう"),  # emoji ends a sentence
        ("了解(^_^)明日ね", "了解\n明日ね"),
        ("すごいね　また今度", "すごいね\nまた今度"),
        ("本当に!?", "本当に！？"),
        ("まじでwww", "まじで"),
    ],
)
def test_normalize_text(raw, expected):
    assert plain(raw) == expected


def test_split_sentences_splits_long_sentences_at_commas():
    text = "今日は朝から雨が降っていて、駅まで歩くのが大変だったんだけど、電車に乗ったら暖かくて、ほっとしました。次の日は晴れ。"
    parts = split_sentences(text, max_chars=30)
    assert all(len(p) <= 30 for p in parts)
    assert "".join(parts).replace("、", "") == text.replace("、", "")  # nothing lost
    assert parts[-1] == "次の日は晴れ。"
    lost = Counter()
    assert split_sentences("？？！", 80, lost) == [] and lost["punctuation"] == 3  # nothing speakable, counted


def test_no_split_where_the_clause_runs_on_after_a_question_mark():
    """…だったかな？が見れる: the ？ sits inside a clause (a particle or quotative follows)."""
    assert split_sentences("だったかな？が見れるはずですよ", 80) == ["だったかな？が見れるはずですよ"]
    assert split_sentences("本当？って聞いたら、うんって。", 80) == ["本当？って聞いたら、うんって。"]
    assert split_sentences("元気？今日は暑いね。", 80) == ["元気？", "今日は暑いね。"]
    assert split_sentences("すごい！と思った", 80) == ["すごい！と思った"]


def test_words_glue_punctuation_and_count_morae():
    words = to_words("きょうは、東京に行ったよ。")
    assert [w.surface for w in words] == ["きょう", "は、", "東京", "に", "行っ", "た", "よ。"]
    assert words[0].morae == 2  # キョー
    assert words[2].reading == "トーキョー" and words[2].morae == 4
    assert count_morae("キャッチャー") == 4  # キャ ッ チャ ー
    latin = to_words("YouTubeを見た")
    assert latin[0].surface == "YouTube" and latin[0].reading == "ユーチューブ"


def test_rule_read_words_are_spoken_as_their_reading():
    """Engines that read text get a rule-read word's katakana reading (keeping its pause mark);
    dictionary words keep their written form, with its accent information."""
    words = {w.surface: w for w in to_words(normalize_text("Tシャツを5km先で、2,000円。"))}
    assert words["T"].rule and words["T"].spoken == "ティー"
    assert words["5km"].spoken == "ゴキロ" and words["2,000円。"].spoken == "ニセンエン。"
    assert not words["シャツ"].rule and words["シャツ"].spoken == "シャツ"


def test_readings_as_said_in_context():
    """UniDic's short units read in isolation (金曜|日 → キンヨー|ヒ); the script's readings
    follow the sentence (キンヨービ), still one reading per word."""
    words = to_words("先週の金曜日のことです。")
    assert "".join(w.reading for w in words[2:4]) == "キンヨービ"
    assert all(w.reading and w.morae == count_morae(w.reading) for w in words)


def _dialogue(*turns):
    return Dialogue("t-1", "test", tuple(Turn(s, t) for s, t in turns))


def test_make_script_counts_skipped_turns_and_merges_same_speaker():
    d = _dialogue(("A", "こんにちは。"), ("B", "😊"), ("A", "元気？"), ("B", "うん、元気だよ。"))
    script = make_script(d, ScriptConfig(filler_rate=0, backchannel_rate=0), np.random.default_rng(0))
    assert script.skipped == ("turn empty after normalisation",)
    assert dict(script.not_spoken) == {"emoji": 1}
    assert [(s.speaker, s.turn, s.text) for s in script.speech] == [
        ("A", 0, "こんにちは。"),
        ("A", 0, "元気？"),
        ("B", 1, "うん、元気だよ。"),
    ]


def test_every_source_character_is_spoken_or_counted():
    d = _dialogue(("A", "昨日Tシャツを2,000円で買ったwww 「安い」でしょ😊"), ("B", "へ〜、いいね！！5kmも歩いたの？"),
                  ("A", "うん、" + "すごく楽しかったよ。" * 80))
    cfg = ScriptConfig(filler_rate=0, backchannel_rate=0, max_turn_chars=100)
    script = make_script(d, cfg, np.random.default_rng(0))
    lost = dict(script.not_spoken)
    assert lost["laughter"] == 3 and lost["emoji"] == 1 and lost["punctuation"] == 3  # 「」 and one ！
    assert lost["turn cut at max_turn_chars"] > 600
    surfaces = "".join(s.text for s in script.speech)
    source = "".join(t for _, t in script.source_turns)
    assert unaccounted(source, surfaces, sum(lost.values())) == 0
    assert source_characters(script) == len(source.replace(" ", ""))
    words = {w.surface: w.reading for s in script.speech for w in s.words}
    assert words["T"] == "ティー" and words["2,000円"] == "ニセンエン" and words["5km"] == "ゴキロ"


# ------------------------------------------------------------------------------------ backchannel


def anchor_words(text: str) -> list[str]:
    words = to_words(text)
    return [words[wi].surface for _, wi in backchannel_anchors((words, to_words("うん。")))]


def test_backchannels_only_inside_the_partners_turn():
    sentences = (to_words("昨日さ、駅前のカフェに行ったんだけど、すごく混んでてね。"), to_words("結局帰ったよ。"))
    anchors = backchannel_anchors(sentences)
    last = (len(sentences) - 1, len(sentences[-1]) - 1)
    assert anchors and last not in anchors
    assert (0, len(sentences[0]) - 1) in anchors  # the first sentence's end invites a backchannel


@pytest.mark.parametrize(
    "text, not_after",
    [
        ("仕事で新しいプロジェクトの準備をしていました。", "て"),  # して|いました: て + auxiliary
        ("その部屋にはエアコンは付いていますか？", "て"),  # 付いて|います
        ("昨日は全部食べてしまったんだよね。", "て"),  # 食べて|しまった
        ("あれはたしかに面白かったよね。", "よ"),  # よ|ね stacked final particles
        ("あそこのお店は閉まったかな。", "か"),  # か|な
        ("駅前の新しいカフェもいいね。", "カフェ"),  # not before も
    ],
)
def test_anchors_only_at_real_phrase_ends(text, not_after):
    anchors = anchor_words(text)
    assert not_after not in [a.rstrip("、。！？") for a in anchors], anchors
    assert anchors[-1].endswith(("。", "？"))  # the sentence end is one


def test_anchors_at_clause_ends_and_final_particles():
    anchors = [a.rstrip("、。") for a in anchor_words("昨日駅前のカフェに行ったんだけど、すごく混んでてさ、結局帰ったんだよね。")]
    assert anchors == ["けど", "さ", "ね"]


def test_register_from_sentence_final_forms():
    polite = to_words("昨日は映画を見に行きましたよね。")
    casual_desho = to_words("それ、絶対楽しいでしょ。")
    casual_mashi = to_words("こっちのほうがましな気がする。")
    assert sentence_is_polite(polite) and sentence_is_polite(to_words("お休みですか？"))
    assert not sentence_is_polite(casual_desho) and not sentence_is_polite(casual_mashi)


def _forms(script):
    return [s.text for s in script.backchannels]


def test_casual_friends_get_casual_backchannels_and_polite_speakers_polite_ones():
    cfg = ScriptConfig(filler_rate=0, backchannel_rate=1.0)
    casual = _dialogue(*[("A", "昨日さ、駅前のカフェに行ったんだけど、すごく混んでてさ。結局帰ったんだよね。"),
                         ("B", "まじで？それは残念でしょ。ましな店なかったの？")] * 6)
    script = make_script(casual, cfg, np.random.default_rng(0))
    by_b = [s.text for s in script.backchannels if s.speaker == "B"]
    assert by_b and set(by_b) <= set(cfg.backchannels_casual)
    polite = _dialogue(*[("A", "昨日駅前のカフェに行ったんですけど、すごく混んでいてね。結局帰りました。"),
                         ("B", "そうなんですか。残念でしたね。また行ってみてください。")] * 6)
    script = make_script(polite, cfg, np.random.default_rng(0))
    assert set(_forms(script)) <= set(cfg.backchannels_polite)


def test_forms_vary_within_a_speaker():
    d = _dialogue(*[("A", "昨日さ、駅前のカフェに行ったんだけど、すごく混んでてさ、結局帰ったんだよね。"), ("B", "そっか。")] * 30)
    base = ScriptConfig(filler_rate=0, backchannel_rate=1.0)

    def repeats(cfg):
        forms = [s.text for s in make_script(d, cfg, np.random.default_rng(3)).backchannels if s.speaker == "B"]
        return sum(a == b for a, b in zip(forms, forms[1:])) / (len(forms) - 1), len(set(forms))

    varied, kinds = repeats(base)
    same, _ = repeats(base.model_copy(update={"backchannel_repeat_weight": 1.0}))
    assert varied < same and kinds >= 5
    assert varied < 0.25


def test_no_filler_before_a_reactive_opener():
    assert opens_reactively(to_words("なるほど！")) and opens_reactively(to_words("へー、すごいね。"))
    assert not opens_reactively(to_words("昨日は雨だった。"))
    d = _dialogue(*[("A", "明日は雨らしいよ。"), ("B", "なるほど！じゃあ傘を持っていくね。")] * 10)
    script = make_script(d, ScriptConfig(filler_rate=1.0, backchannel_rate=0), np.random.default_rng(0))
    for seg in script.speech:
        if seg.words[0].pos == "フィラー":
            assert not opens_reactively(seg.words[1:])
    assert any(s.words[0].pos == "フィラー" for s in script.speech)  # the others still get one


def test_fillers_and_backchannels_follow_the_rates():
    turns = [("A", "昨日駅前のカフェに行ったんですけど、すごく混んでいてね。結局帰りました。"), ("B", "そうなんですか。残念でしたね。")]
    d = _dialogue(*(turns * 20))
    cfg = ScriptConfig(filler_rate=0.5, backchannel_rate=0.5)
    script = make_script(d, cfg, np.random.default_rng(1))
    eligible = [s for s in script.speech if not opens_reactively(s.words[1:] if s.words[0].pos == "フィラー" else s.words)]
    fillers = sum(1 for s in eligible if s.words[0].pos == "フィラー")
    assert 0.35 < fillers / len(eligible) < 0.65
    assert all(s.speaker != script.speech[[x.turn for x in script.speech].index(s.turn)].speaker for s in script.backchannels)


def test_make_script_is_deterministic_for_a_seed():
    d = _dialogue(("A", "今日はいい天気だね。散歩でも行く？"), ("B", "いいね、行こう。どこに行く？"))
    a = make_script(d, ScriptConfig(), np.random.default_rng(7))
    b = make_script(d, ScriptConfig(), np.random.default_rng(7))
    assert a == b
