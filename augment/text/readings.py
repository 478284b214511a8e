"""Readings the script decides itself, where a dictionary or a TTS front end would drop or misread
the written form: Latin letters and words, numbers with their units and counters, times, dates,
fractions, ranges. Every reading is katakana, as Japanese speakers say it.

A rule-read stretch travels through sentence splitting inside the text as one *fixed word*:
``FIXED_OPEN surface FIXED_SEP reading FIXED_CLOSE`` (private-use code points, which
:func:`normalize.canonical` removes from any input), so the tagger never re-cuts it and the
written surface stays what the source said.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from functools import lru_cache
from typing import Any, Iterator, Sequence

FIXED_OPEN, FIXED_SEP, FIXED_CLOSE = "\ue000", "\ue001", "\ue002"
FIXED_WORD = re.compile(f"{FIXED_OPEN}([^{FIXED_SEP}]*){FIXED_SEP}([^{FIXED_CLOSE}]*){FIXED_CLOSE}")
KATAKANA = re.compile(r"^[ァ-ヺー]+$")
_SMALL_KANA = set("ァィゥェォャュョヮぁぃぅぇぉゃゅょゎ")

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def load_pyopenjtalk() -> Any:
    """Import pyopenjtalk, OpenJTalk's front end (the script's readings; the HTS backend's engine),
    with its import-time notice (printed to stdout) sent to the log."""
    notice = io.StringIO()
    with contextlib.redirect_stdout(notice):
        import pyopenjtalk
    if notice.getvalue().strip():
        logger.debug("pyopenjtalk: %s", notice.getvalue().strip())
    return pyopenjtalk


def fixed(surface: str, reading: str) -> str:
    return f"{FIXED_OPEN}{surface}{FIXED_SEP}{reading}{FIXED_CLOSE}"


def count_morae(kana: str) -> int:
    """Morae of a katakana reading: every kana except the small glide kana (ッ and ー count)."""
    return sum(1 for c in kana if ("ァ" <= c <= "ヺ" or c == "ー") and c not in _SMALL_KANA)


def to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


# Letter names as Japanese speakers say them (JIS Z 8102 style katakana, the common variants).
LETTER_NAMES = {
    "A": "エー", "B": "ビー", "C": "シー", "D": "ディー", "E": "イー", "F": "エフ", "G": "ジー",
    "H": "エイチ", "I": "アイ", "J": "ジェー", "K": "ケー", "L": "エル", "M": "エム", "N": "エヌ",
    "O": "オー", "P": "ピー", "Q": "キュー", "R": "アール", "S": "エス", "T": "ティー", "U": "ユー",
    "V": "ブイ", "W": "ダブリュー", "X": "エックス", "Y": "ワイ", "Z": "ゼット",
}

# Latin words common in Japanese chat that neither UniDic nor OpenJTalk reads as people say them
# (OpenJTalk spells what it does not know: Wi-Fi's "Fi" becomes エフアイ). Keys are lower case.
LATIN_WORDS = {
    "wi-fi": "ワイファイ", "wifi": "ワイファイ", "ok": "オーケー", "okay": "オーケー", "line": "ライン",
    "google": "グーグル", "twitter": "ツイッター", "instagram": "インスタグラム", "insta": "インスタ",
    "facebook": "フェイスブック", "youtube": "ユーチューブ", "youtuber": "ユーチューバー",
    "netflix": "ネットフリックス", "amazon": "アマゾン", "iphone": "アイフォン", "ipad": "アイパッド",
    "android": "アンドロイド", "apple": "アップル", "mac": "マック", "windows": "ウィンドウズ",
    "zoom": "ズーム", "tiktok": "ティックトック", "e-mail": "イーメール", "email": "イーメール",
    "mail": "メール", "web": "ウェブ", "blog": "ブログ", "app": "アプリ", "game": "ゲーム",
    "no": "ナンバー", "vs": "ブイエス", "etc": "エトセトラ", "ps": "ピーエス", "switch": "スイッチ",
    "nintendo": "ニンテンドー", "sony": "ソニー", "suica": "スイカ", "pasmo": "パスモ", "ufo": "ユーフォー",
    "lol": "ロル", "mr": "ミスター", "ms": "ミズ", "mrs": "ミセス", "dr": "ドクター", "cd": "シーディー", "dvd": "ディーブイディー", "tv": "テレビ", "dj": "ディージェー",
}

# Units after a number, read the way they are said in conversation (5km → ごキロ: "キロメートル"
# is the written register). Longest keys first when matching.
UNITS = {
    "km/h": "キロ", "km": "キロ", "kg": "キロ", "mg": "ミリグラム", "g": "グラム", "cm": "センチ",
    "mm": "ミリ", "m": "メートル", "ml": "ミリリットル", "mL": "ミリリットル", "L": "リットル",
    "l": "リットル", "℃": "ド", "°C": "ド", "°": "ド", "%": "パーセント", "kcal": "キロカロリー",
    "cal": "カロリー", "GB": "ギガ", "MB": "メガ", "TB": "テラ", "kb": "キロバイト", "KB": "キロバイト",
    "h": "ジカン", "min": "フン", "sec": "ビョー", "m²": "ヘーホーメートル", "㎡": "ヘーホーメートル",
    "yen": "エン", "$": "ドル", "¥": "エン", "€": "ユーロ", "kW": "キロワット", "W": "ワット",
    "V": "ボルト", "Hz": "ヘルツ", "MHz": "メガヘルツ", "GHz": "ギガヘルツ", "ha": "ヘクタール",
}
# A digit and a letter said as one English term (people say スリーディー, not さんディー).
NUMBER_LETTER = {"2D": "ツーディー", "3D": "スリーディー", "4G": "フォージー", "5G": "ファイブジー",
                 "4K": "ヨンケー", "8K": "ハチケー", "2K": "ツーケー"}
PHONE_DIGITS = ("ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー")
SYMBOL_WORDS = {"&": "アンド", "+": "プラス", "=": "イコール", "#": "シャープ", "×": "カケル", "÷": "ワル"}


def spell(letters: str) -> str:
    """Latin letters by name: NHK → エヌエイチケー, T → ティー."""
    return "".join(LETTER_NAMES[c] for c in letters.upper() if c in LETTER_NAMES)


def latin_reading(word: str) -> str | None:
    """A Latin word's reading when the script must decide it; ``None`` leaves it to the
    dictionary (YouTube, coffee names... that UniDic reads). Acronyms and single letters are
    spelled; known chat words come from :data:`LATIN_WORDS`."""
    known = LATIN_WORDS.get(word.lower())
    if known:
        return known
    if len(word) == 1 or (word.isupper() and len(word) <= 5) or not re.search(r"[aeiouy]", word.lower()):
        return spell(word)
    return None


@lru_cache(maxsize=1)
def tagger():
    """The fugashi tagger with the bundled unidic-lite dictionary, one per process."""
    import fugashi

    return fugashi.Tagger()


@lru_cache(maxsize=8192)
def front_end_reading(text: str) -> str:
    """OpenJTalk's reading of a short Japanese stretch (numbers with counters get their sound
    changes there: 3本 サンボン, 1分 イップン); ``""`` when it returns anything but katakana."""
    kana = load_pyopenjtalk().g2p(text, kana=True).replace("’", "")
    return kana if KATAKANA.match(kana) else ""


_DIGITS = "〇一二三四五六七八九"
_ENGLISH = ("ゼロ", "ワン", "ツー", "スリー", "フォー", "ファイブ", "シックス", "セブン", "エイト", "ナイン", "テン")


def english_number(digits: str) -> str:
    """No.1 is ナンバーワン: small numbers after an English label are said in English."""
    n = int(digits)
    return _ENGLISH[n] if n <= 10 else number_reading(digits)


def number_words(digits: str) -> str:
    """An integer's kanji numeral (2000 → 二千), which the front end reads with its sound
    changes; a leading zero or a long string is read digit by digit (phone numbers, codes)."""
    if len(digits) > 1 and digits.startswith("0") or len(digits) > 16:
        return "".join(_DIGITS[int(c)] for c in digits)
    n = int(digits)
    if n == 0:
        return "ゼロ"
    out = []
    for unit, size in (("兆", 10**12), ("億", 10**8), ("万", 10**4), ("", 1)):
        part, n = divmod(n, size)
        if part:
            out.append(_small_number(part) + unit)
    return "".join(out)


def _small_number(n: int) -> str:
    out = []
    for unit, size in (("千", 1000), ("百", 100), ("十", 10)):
        d, n = divmod(n, size)
        if d:
            out.append(("" if d == 1 else _DIGITS[d]) + unit)
    if n:
        out.append(_DIGITS[n])
    return "".join(out)


def number_reading(integer: str, decimals: str = "", after: str = "") -> str:
    """Reading of a number (with its decimals and a following counter/unit, in Japanese
    script): 3.5 + キロ → サンテンゴキロ, 2000 + 円 → ニセンエン."""
    text = number_words(integer)
    if decimals:
        text += "点" + "".join(_DIGITS[int(c)] for c in decimals)
    return front_end_reading(text + after)


def _front_end_prons(text: str) -> list[tuple[int, int, str]]:
    """OpenJTalk's morphemes of ``text``: (start, end, pronunciation) with character spans."""
    pyopenjtalk = load_pyopenjtalk()
    njd, morphs = pyopenjtalk.run_frontend_detailed(text)
    try:
        mapping = pyopenjtalk.make_phoneme_mapping(njd, morphs, caller_text=text)
    except (ValueError, RuntimeError):
        return []
    out = []
    for e in mapping:
        a, b = e["char_span"]
        kana = "".join(c for c in str(e.get("pron", "")) if "ァ" <= c <= "ヺ" or c == "ー").replace("ヲ", "オ")
        if b > a:
            out.append((a, b, kana))
        elif out and kana:  # a morpheme the front end inserted (the 十 of 2024): its predecessor's
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + kana)
    return out


def context_readings(text: str, spans: list[tuple[int, int]], readings: list[str],
                     keep: list[bool] | None = None, kana: list[bool] | None = None) -> list[str]:
    """Readings of dictionary words (UniDic short units at ``spans`` of ``text``) as the sentence
    is said: UniDic gives each unit its isolated pronunciation (金曜|日 → キンヨー|ヒ), while
    OpenJTalk's front end applies sound changes and context readings (キンヨービ). For each
    stretch where both cut the text at the same places, the front end's reading is split over
    the words by aligning it with theirs. A stretch keeps the given readings where the front end
    leaves it unread, where it holds a word whose reading a rule decided (``keep``), or where all
    its words are written in kana (``kana``: they say what they write; the front end can only
    misread them, はちみつ as ワチミツ)."""
    morphs = _front_end_prons(text)
    if not morphs:
        return readings
    out = list(readings)
    for ws, ms in aligned_stretches(spans, [(a, b) for a, b, _ in morphs]):
        said = "".join(morphs[j][2] for j in ms)
        vetoed = (keep and any(keep[ws.start : ws.stop])) or (kana and all(kana[ws.start : ws.stop]))
        if said and count_morae(said) and not vetoed:
            out[ws.start : ws.stop] = _split_like(said, readings[ws.start : ws.stop])
    return out


def aligned_stretches(spans: Sequence[tuple[int, int]], m_spans: Sequence[tuple[int, int]]) -> Iterator[tuple[range, range]]:
    """Two segmentations of one text (our words at ``spans``, the front end's morphemes at
    ``m_spans``, character offsets) as stretches that both cut at the same places: per stretch,
    its word indices and its morpheme indices, in order."""
    ends = {b for _, b in spans} & {b for _, b in m_spans}
    i = j = 0
    while i < len(spans):
        k = i
        while spans[k][1] not in ends and k + 1 < len(spans):
            k += 1
        j0 = j
        while j < len(m_spans) and m_spans[j][0] < spans[k][1]:
            j += 1
        yield range(i, k + 1), range(j0, j)
        i = k + 1


def _split_like(said: str, parts: list[str]) -> list[str]:
    """``said`` cut where the concatenated ``parts`` are cut, mapped through a character
    alignment; a part that would come out empty keeps its own reading."""
    import difflib

    if len(parts) == 1:
        return [said]
    ours = "".join(parts)
    cuts, pos = [], 0
    for p in parts[:-1]:
        pos += len(p)
        cuts.append(pos)
    sm = difflib.SequenceMatcher(None, ours, said, autojunk=False)

    def mapped(x: int) -> int:
        for tag, a0, a1, b0, b1 in sm.get_opcodes():
            if a0 <= x < a1 or (x == a1 and tag != "equal"):
                return b0 + (x - a0 if tag == "equal" else round((x - a0) * (b1 - b0) / max(a1 - a0, 1)))
        return len(said)

    bounds = [0] + [mapped(c) for c in cuts] + [len(said)]
    pieces = [said[a:b] for a, b in zip(bounds, bounds[1:])]
    if any(count_morae(p) == 0 for p in pieces) or "".join(pieces) != said:
        return parts
    return pieces
