"""Written chat text → text whose every part is either spoken or counted as not spoken.

The accounting unit is the *source character*: a non-space character of :func:`canonical` of a
turn's text (NFKC, Japanese punctuation). Each rule that removes characters counts them under a
reason (laughter, emoji, punctuation, ...); rules that decide a reading (numbers, units, letters,
dates) keep the written form as the word's surface (see :mod:`readings`). So the concatenated
surfaces of a turn's words plus the counted characters give back the canonical source, which
:func:`unaccounted` checks independently with a sequence diff.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from typing import Callable

from jmoshi_augment.augment.text.readings import (
    FIXED_WORD,
    NUMBER_LETTER,
    PHONE_DIGITS,
    SYMBOL_WORDS,
    UNITS,
    english_number,
    fixed,
    front_end_reading,
    latin_reading,
    number_reading,
    number_words,
    tagger,
)
from jmoshi_augment.augment.text.punctuation import EXCLAIM_QUESTION, LENGTHENERS, PROSODIC, SENTENCE_FINAL

# Privacy masks of RealPersonaChat (<XX>さん, ＊＊, ○○) must not be read out as symbols: Japanese
# broadcast convention reads an elided name as まるまる.
_MASK = re.compile(r"<[A-Za-z]{1,4}>|\*{2,}|[○〇◯]{2,}|[×✕]{2,}")
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U00002B00-\U00002BFF\U0000FE0F\U0000200D"
    "\U000020E3\U00002190-\U000021FF]+"
)
_KAOMOJI = re.compile(r"\([^()ぁ-んァ-ン一-龥a-zA-Z0-9]{1,12}\)")
# Chat laughter: ww..., a single w right after Japanese text (まじかw), (笑), 草草.
_LAUGH = re.compile(r"(?<![A-Za-z])w{2,}(?![A-Za-z])|(?<=[ぁ-ヺ一-鿿ー！？。、…])w(?![A-Za-z])|\(笑\)|草{2,}")
_PRIVATE = re.compile("[\ue000-\uf8ff]")
_DATE = re.compile(r"(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})")
_TIME = re.compile(r"(?<![\d:])(\d{1,2}):([0-5]\d)(?![\d:])")
_SLASH = re.compile(r"(?<![\d/])(\d{1,3})/(\d{1,3})(?![\d/])")
_WEEKDAY = re.compile(r"^\s*\(?[月火水木金土日](曜日?)?\)")
_WEEKDAY_PAREN = re.compile(r"\(([月火水木金土日])\)")
_NUMBER_NO = re.compile(r"\b[Nn]o\.\s?(\d+)")
_UNIT_KEYS = sorted(UNITS, key=len, reverse=True)
_COUNTER_KANA = ("キロ", "センチ", "ミリ", "メートル", "グラム", "パーセント", "ドル", "ユーロ", "ページ", "カ月", "ヶ月", "か月", "つ")
# Counters read together with their number, for the sound changes (3本 サンボン, 1分 イップン,
# 6階 ロッカイ); any other kanji after a number starts a new word for the tagger.
_COUNTER_KANJI = "人円本個回枚匹杯冊台歳才階件分秒時日月年週度位番点倍割着足泊軒社品曲話頭羽通票問歩首席発敗勝戦期代名組号巻缶箱袋粒錠周次局機線万億"
_PHONE = re.compile(r"(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])")
_MONTH_DAY = re.compile(r"(?<!\d)(1[0-2]|0?[1-9])月(3[01]|[12]\d|0?[1-9])日")
_NUMBER_LETTER = re.compile(r"(?<![\dA-Za-z])(\d[A-Za-z])(?![A-Za-z\d])")
_NUMBER = re.compile(
    r"(?<![\d.A-Za-z])(-|−)?(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?([万億兆])?\s?("
    + "(?:" + "|".join(re.escape(u) for u in _UNIT_KEYS) + r")(?![A-Za-z])|" + "|".join(_COUNTER_KANA) + "|[" + _COUNTER_KANJI + "][間目]?)?"
)
_RANGE = re.compile(r"(?<=[\d一-鿿])〜(?=\s?[\d一-鿿ァ-ヺ])|(?<=[ァ-ヺ])〜(?=\s?\d)")
_TILDE = re.compile(r"〜+")
_LATIN = re.compile(r"[A-Za-z](?:[A-Za-z'\-]*[A-Za-z])?")
_UNSPOKEN = re.compile(r"[\"'“”‘’「」『』【】\[\]{}<>《》〈〉()*_^|\\/@;:・\-]+")
_REPEATED_MARKS = re.compile(f"([{PROSODIC}{LENGTHENERS}])\\1+")
_SENTENCE_END = re.compile(f"(?<=[{SENTENCE_FINAL}])")
SPEECH_CHARS = re.compile(r"[ぁ-ゖァ-ヺ一-鿿々〆ヵヶA-Za-z0-9\ue000]")

Ledger = Counter  # reason → number of source characters not spoken


def canonical(text: str) -> str:
    """The form characters are counted in: NFKC (full-width ASCII → ASCII, half-width kana →
    full), ASCII sentence marks → Japanese ones, a comma between digits kept only as a thousands
    separator, every tilde → 〜."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("...", "…").replace("!", "！").replace("?", "？").replace("~", "〜").replace("～", "〜")
    return re.sub(r",(?!\d{3}(?!\d))|(?<!\d),", "、", text)


def _nonspace(s: str) -> int:
    return sum(1 for c in s if not c.isspace())


def _outside_fixed(text: str, pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str]) -> str:
    """``pattern.sub`` on the parts of ``text`` that are not already fixed words."""
    out, pos = [], 0
    for m in FIXED_WORD.finditer(text):
        out.append(pattern.sub(repl, text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(pattern.sub(repl, text[pos:]))
    return "".join(out)


def _drop(lost: Ledger, reason: str, replacement: str = "") -> Callable[[re.Match[str]], str]:
    def repl(m: re.Match[str]) -> str:
        lost[reason] += _nonspace(m.group(0))
        return replacement

    return repl


def _date(m: re.Match[str]) -> str:
    y, mo, d = m[1], int(m[2]), int(m[3])
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return fixed(m.group(0), front_end_reading(f"{number_words(y)}年{number_words(str(mo))}月{number_words(str(d))}日"))


def _time(m: re.Match[str]) -> str:
    h, mi = int(m[1]), int(m[2])
    if h > 29:
        return m.group(0)
    minutes = "半" if mi == 30 else "" if mi == 0 else f"{number_words(str(mi))}分"
    return fixed(m.group(0), front_end_reading(f"{number_words(str(h))}時{minutes}"))


def _slash(m: re.Match[str]) -> str:
    """m/d is a date in chat (5/3, 12/25); a/b with a < b ≤ 10 reads as a fraction (1/2 →
    ニブンノイチ, 3/4くらい) unless a date cue follows: a weekday, or に/から/まで/〜 (3/4に会おう)."""
    a, b = int(m[1]), int(m[2])
    after = m.string[m.end() : m.end() + 4]
    date_cue = _WEEKDAY.match(after) or after.lstrip().startswith(("に", "から", "まで", "〜"))
    is_date = 1 <= a <= 12 and 1 <= b <= 31 and not (a < b <= 10 and not date_cue)
    if is_date:
        return fixed(m.group(0), front_end_reading(f"{number_words(m[1])}月{number_words(m[2])}日"))
    if b == 0:
        return m.group(0)
    return fixed(m.group(0), front_end_reading(f"{number_words(m[2])}分の{number_words(m[1])}"))


def _phone(m: re.Match[str]) -> str:
    """Phone numbers digit by digit, groups joined by の (ゼロキューゼロノ...)."""
    groups = ["".join(PHONE_DIGITS[int(c)] for c in g) for g in m.group(0).split("-")]
    return fixed(m.group(0), "ノ".join(groups))


def _month_day(m: re.Match[str]) -> str:
    """A month and day read together: 5月1日 is ゴガツツイタチ, not ゴガツイチニチ."""
    return fixed(m.group(0), front_end_reading(f"{number_words(str(int(m[1])))}月{number_words(str(int(m[2])))}日"))


def _number(m: re.Match[str]) -> str:
    minus = "マイナス" if m[1] else ""
    integer, decimals, big, after = m[2].replace(",", ""), m[3] or "", m[4] or "", m[5] or ""
    spoken_after = big + UNITS.get(after, after)
    if after == "人" and not decimals:  # the front end says 百万ジン; ひとり, ふたり, then ニン
        people = {"1": "ヒトリ", "2": "フタリ"}.get(integer) if not big else None
        reading = people or number_reading(integer, "", big) + "ニン"
    else:
        reading = number_reading(integer, decimals, spoken_after)
    if not reading:  # the counter made the front end fail: read the number alone, keep the rest
        reading = number_reading(integer, decimals, big)
        return fixed(m.group(0)[: len(m.group(0)) - len(after)], minus + reading) + after
    return fixed(m.group(0), minus + reading)


def _latin(m: re.Match[str]) -> str:
    word = m.group(0)
    reading = latin_reading(word)
    return fixed(word, reading) if reading else word


def _tilde(m: re.Match[str], lost: Ledger) -> str:
    """〜 after kana lengthens the vowel (そうだね〜): kept for the word maker to glue on as ー;
    anywhere else (not a range either) it is a decoration."""
    before = m.string[m.start() - 1] if m.start() else ""
    if re.match(r"[ぁ-ゖァ-ヺー]", before):
        return "〜"
    lost["punctuation"] += len(m.group(0))
    return ""


def _keep_one(m: re.Match[str], lost: Ledger) -> str:
    lost["punctuation"] += len(m.group(0)) - 1
    return m[1]


def _weekday(m: re.Match[str]) -> str:
    return fixed(m.group(0), front_end_reading(m[1] + "曜"))


def normalize_text(text: str, lost: Ledger | None = None) -> str:
    """One turn's text → normalised text with fixed words; what is not spoken is added to
    ``lost`` by reason."""
    lost = Ledger() if lost is None else lost
    text = canonical(text)
    # Private-use code points (carrier emoji, app-specific glyphs) have no reading, and the fixed
    # words' markers live there.
    text = _PRIVATE.sub(_drop(lost, "private-use symbol", "\n"), text)
    text = _LAUGH.sub(_drop(lost, "laughter"), text)
    # In chat, an emoji or kaomoji usually ends a sentence: keep that boundary, drop the symbol.
    text = _EMOJI.sub(_drop(lost, "emoji", "\n"), text)
    text = _KAOMOJI.sub(_drop(lost, "kaomoji", "\n"), text)
    text = _outside_fixed(text, _MASK, lambda m: fixed(m.group(0), "マルマル"))
    text = _outside_fixed(text, _NUMBER_NO, lambda m: fixed(m.group(0), "ナンバー" + english_number(m[1])))
    text = _outside_fixed(text, _DATE, _date)
    text = _outside_fixed(text, _PHONE, _phone)
    text = _outside_fixed(text, _TIME, _time)
    text = _outside_fixed(text, _MONTH_DAY, _month_day)
    text = _outside_fixed(text, _SLASH, _slash)
    text = _outside_fixed(text, _WEEKDAY_PAREN, _weekday)
    text = _outside_fixed(text, _RANGE, lambda m: fixed("〜", "カラ"))
    text = _outside_fixed(text, _NUMBER_LETTER, lambda m: fixed(m[1], NUMBER_LETTER[m[1].upper()]) if m[1].upper() in NUMBER_LETTER else m[1])
    text = _outside_fixed(text, _NUMBER, _number)
    text = _outside_fixed(text, re.compile("[%s]" % re.escape("".join(SYMBOL_WORDS))),
                          lambda m: fixed(m.group(0), SYMBOL_WORDS[m.group(0)]))
    text = _outside_fixed(text, re.compile("%"), lambda m: fixed("%", "パーセント"))
    text = _outside_fixed(text, _LATIN, _latin)
    text = _outside_fixed(text, _TILDE, lambda m: _tilde(m, lost))
    text = _outside_fixed(text, _UNSPOKEN, _drop(lost, "punctuation", " "))
    text = _outside_fixed(text, _REPEATED_MARKS, lambda m: _keep_one(m, lost))
    text = re.sub(r"[ \t\u3000]+", " ", text)
    # A space between Japanese characters separates sentences in chat style (すごいね また今度).
    text = re.sub(r"(?<=[^\x00-\x7f\ue000-\ue002]) (?=[^\x00-\x7f\ue000-\ue002])", "\n", text)
    return re.sub(r" *\n[\n ]*", "\n", text).strip()


# ------------------------------------------------------------------------------------ sentences


def _opens_like_continuation(piece: str) -> bool:
    """A piece after ？/！ that opens with a particle, auxiliary or quotative (が見れる…, って
    言ってた, と思う) continues the clause: people do not pause there."""
    plain = FIXED_WORD.sub("X", piece.lstrip())
    if not plain:
        return False
    first = next(iter(tagger()(plain[:12])), None)
    return first is not None and first.feature.pos1 in ("助詞", "助動詞")


def split_sentences(text: str, max_chars: int, lost: Ledger | None = None) -> list[str]:
    """Sentences at 。！？… and line breaks (not at a ？/！ the clause runs on from); an over-long
    sentence is split at 、 (or hard-wrapped between words)."""
    lost = Ledger() if lost is None else lost
    pieces: list[str] = []
    for line in text.split("\n"):
        line_pieces: list[str] = []
        for piece in _SENTENCE_END.split(line):
            if line_pieces and line_pieces[-1][-1:] in EXCLAIM_QUESTION and piece and _opens_like_continuation(piece):
                line_pieces[-1] += piece
            elif piece:
                line_pieces.append(piece)
        pieces += line_pieces
    out: list[str] = []
    for sentence in pieces:
        sentence = _strip_edges(sentence, lost)
        while len(sentence) > max_chars:
            cut = sentence.rfind("、", 0, max_chars)
            cut = cut + 1 if cut > max_chars // 3 else _safe_cut(sentence, max_chars)
            out.append(_strip_edges(sentence[:cut], lost))
            sentence = _strip_edges(sentence[cut:], lost)
        if sentence:
            out.append(sentence)
    kept = []
    for s in out:
        if SPEECH_CHARS.search(s):
            kept.append(s)
        else:
            lost["punctuation"] += _nonspace(s)
    return kept


def _strip_edges(s: str, lost: Ledger) -> str:
    stripped = s.strip(" \n、")
    lost["punctuation"] += s.count("、") - stripped.count("、")
    return stripped


def _safe_cut(sentence: str, at: int) -> int:
    """A hard wrap position that does not cut a fixed word in two."""
    for m in FIXED_WORD.finditer(sentence):
        if m.start() < at < m.end():
            return m.start() if m.start() > 0 else m.end()
    return at


# ----------------------------------------------------------------------------- the independent check


def unaccounted(source: str, surfaces: str, counted: int) -> int:
    """Source characters neither spoken (found, in order, in the concatenated word surfaces) nor
    counted under a reason: the "characters lost" figure, which must be 0. Computed by a sequence
    diff, independently of the rules' own bookkeeping."""
    a = [c for c in canonical(source) if not c.isspace()]
    b = [c for c in surfaces if not c.isspace()]
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    matched = sum(block.size for block in sm.get_matching_blocks())
    return abs(len(a) - matched - counted)


__all__ = ["Ledger", "SPEECH_CHARS", "canonical", "normalize_text", "split_sentences", "unaccounted"]
