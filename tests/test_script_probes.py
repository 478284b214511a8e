"""Table-driven probes of the spoken script's normalisation: what Japanese speakers say for written
forms a dictionary or a TTS front end drops or misreads, and the count of every source character
that is not spoken.

Each probe: (written text, {surface: katakana reading} expected among the script's words,
{reason: characters} expected not spoken). Every probe also checks the accounting independently:
the words' surfaces plus the counted characters give back the source (``unaccounted`` == 0).
"""

from __future__ import annotations

from collections import Counter

import pytest

from jmoshi_augment.augment.text.normalize import normalize_text, split_sentences, unaccounted
from jmoshi_augment.augment.text.script import to_words

PROBES = [
    # single letters by name, acronyms spelled, common Latin words as said
    ("Tシャツを買った", {"T": "ティー", "シャツ": "シャツ"}, {}),
    ("Jリーグ見た？", {"J": "ジェー"}, {}),
    ("Wi-Fiが遅い", {"Wi-Fi": "ワイファイ"}, {}),
    ("wifiある？", {"wifi": "ワイファイ"}, {}),
    ("NHKで見た", {"NHK": "エヌエイチケー"}, {}),
    ("SNSやってる？", {"SNS": "エスエヌエス"}, {}),
    ("PCが壊れた", {"PC": "ピーシー"}, {}),
    ("iPhoneとAndroid", {"iPhone": "アイフォン", "Android": "アンドロイド"}, {}),
    ("LINEして", {"LINE": "ライン"}, {}),
    ("OKです", {"OK": "オーケー"}, {}),
    ("AIの研究", {"AI": "エーアイ"}, {}),
    ("AとBどっち？", {"A": "エー", "B": "ビー"}, {}),
    ("Mr.ビーン", {"Mr": "ミスター"}, {"punctuation": 1}),
    ("3Dの映画", {"3D": "スリーディー"}, {}),
    ("5Gに変えた", {"5G": "ファイブジー"}, {}),
    # units after numbers, as said in conversation
    ("5km走った", {"5km": "ゴキロ"}, {}),
    ("60kgです", {"60kg": "ロクジュッキロ"}, {}),
    ("170cmくらい", {"170cm": "ヒャクナナジュッセンチ"}, {}),
    ("30℃超え", {"30°C": "サンジュード"}, {}),
    ("-5℃だって", {"-5°C": "マイナスゴド"}, {}),
    ("50%オフ", {"50%": "ゴジュッパーセント"}, {}),
    ("100%無理", {"100%": "ヒャクパーセント"}, {}),
    # decimals and thousands separators
    ("3.5キロ痩せた", {"3.5キロ": "サンテンゴキロ"}, {}),
    ("1.5倍になった", {"1.5倍": "イッテンゴバイ"}, {}),
    ("2,000円だった", {"2,000円": "ニセンエン"}, {}),
    ("1,000,000円", {"1,000,000円": "ヒャクマンエン"}, {}),
    ("12345人", {"12345人": "イチマンニセンサンビャクヨンジューゴニン"}, {}),
    # counters with their sound changes
    ("3本ください", {"3本": "サンボン"}, {}),
    ("1分待って", {"1分": "イップン"}, {}),
    ("1人で行った", {"1人": "ヒトリ"}, {}),
    ("2人とも", {"2人": "フタリ"}, {}),
    ("100万人", {"100万人": "ヒャクマンニン"}, {}),
    ("20歳になった", {"20歳": "ハタチ"}, {}),
    ("3時間かかる", {"3時間": "サンジカン"}, {}),
    ("2日間休み", {"2日間": "フツカカン"}, {}),
    ("3日目に着いた", {"3日目": "ミッカメ"}, {}),
    ("2世帯住宅", {"2": "ニ"}, {}),  # 世 is no counter here: the number stands alone
    ("何時に集合？", {"何": "ナン"}, {}),  # the front end alone says ナニジ
    ("何人来る？", {"何": "ナン"}, {}),
    ("お母さんに聞いた", {"母": "カー"}, {}),  # context reading (UniDic alone: ハハ)
    ("はちみつ好き", {"はちみつ": "ハチミツ"}, {}),  # kana says what it writes (front end: ワチミツ)
    # 〜: range から vs lengthener
    ("そうだね〜", {"ね〜": "ネー"}, {}),
    ("いいな～", {"な〜": "ナー"}, {}),
    ("3〜5人", {"3": "サン", "〜": "カラ", "5人": "ゴニン"}, {}),
    ("10時〜12時", {"〜": "カラ", "12時": "ジューニジ"}, {}),
    ("東京〜大阪", {"〜": "カラ"}, {}),
    # No.1, fractions, dates in context, times
    ("No.1の店", {"No.1": "ナンバーワン"}, {}),
    ("1/2の確率", {"1/2": "ニブンノイチ"}, {}),
    ("1/3くらい", {"1/3": "サンブンノイチ"}, {}),
    ("3/4に会おう", {"3/4": "サンガツヨッカ"}, {}),  # a date cue after it
    ("5/3(金)に行く", {"5/3": "ゴガツミッカ", "(金)": "キンヨー"}, {}),
    ("12/25に会おう", {"12/25": "ジューニガツニジューゴニチ"}, {}),
    ("2024/5/3に行った", {"2024/5/3": "ニセンニジューヨネンゴガツミッカ"}, {}),
    ("5月1日から", {"5月1日": "ゴガツツイタチ"}, {}),
    ("7月7日は七夕", {"7月7日": "シチガツナノカ"}, {}),
    ("14:30に集合", {"14:30": "ジューヨジハン"}, {}),
    ("9:05に出発", {"9:05": "クジゴフン"}, {}),
    ("090-1234-5678に電話", {"090-1234-5678": "ゼロキューゼロノイチニーサンヨンノゴーロクナナハチ"}, {}),
    # symbols with a spoken name; privacy masks
    ("A&Bで", {"&": "アンド"}, {}),
    ("<XX>さんこんにちは", {"<XX>": "マルマル"}, {}),
    ("＊＊に住んでます", {"**": "マルマル"}, {}),
    ("○○駅で", {"○○": "マルマル"}, {}),
    # full-width and half-width forms
    ("ｶﾀｶﾅ", {"カタカナ": "カタカナ"}, {}),
    ("ＡＢＣは１２３円です", {"ABC": "エービーシー", "123円": "ヒャクニジューサンエン"}, {}),
    # not spoken, counted by reason
    ("まじでwww", {"まじ": "マジ"}, {"laughter": 3}),
    ("最高(笑)", {"最高": "サイコー"}, {"laughter": 3}),
    ("まじかw", {"まじか": "マジカ"}, {"laughter": 1}),
    ("wの文字", {"w": "ダブリュー"}, {}),  # a lone letter, not laughter
    ("楽しかった😊また行こう", {"また": "マタ"}, {"emoji": 1}),
    ("了解(^_^)明日ね", {"了解": "リョーカイ"}, {"kaomoji": 5}),
    ("「本当？」って言った", {"本当？": "ホントー"}, {"punctuation": 2}),
    ("【速報】雨", {"雨": "アメ"}, {"punctuation": 2}),
    ("すごい！！！", {"すごい！": "スゴイ"}, {"punctuation": 2}),
    ("え？？", {"え？": "エ"}, {"punctuation": 1}),
    ("了解\ue04aまたね", {"了解": "リョーカイ", "また": "マタ"}, {"private-use symbol": 1}),  # a carrier emoji
]


def spoken(text: str) -> tuple[list, Counter]:
    lost: Counter = Counter()
    words = [w for s in split_sentences(normalize_text(text, lost), 80, lost) for w in to_words(s, lost)]
    return words, +lost


@pytest.mark.parametrize("text, readings, not_spoken", PROBES, ids=[p[0] for p in PROBES])
def test_probe(text, readings, not_spoken):
    words, lost = spoken(text)
    got = {w.surface: w.reading for w in words}
    for surface, reading in readings.items():
        assert got.get(surface) == reading, f"{surface}: {got}"
    assert dict(lost) == not_spoken
    assert all(w.morae > 0 and w.reading for w in words)
    assert unaccounted(text, "".join(w.surface for w in words), sum(lost.values())) == 0


def test_enough_probes():
    assert len(PROBES) >= 50


def test_unaccounted_sees_a_silent_drop():
    """The check is independent of the rules' bookkeeping: a character missing from the surfaces
    and not counted shows up."""
    words, lost = spoken("Tシャツを買った")
    surfaces = "".join(w.surface for w in words)
    assert unaccounted("Tシャツを買った", surfaces.replace("T", ""), sum(lost.values())) == 1
    assert unaccounted("Tシャツを買った", surfaces, 1) == 1  # counted but spoken: also wrong
