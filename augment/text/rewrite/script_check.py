"""Character- and word-level checks of a rewritten turn: Japanese script only (an allow-list),
a bounded amount of Latin, no markup, privacy masks kept or talked around, no invented names.

Allow-list, not a blacklist: a blacklist of Hangul, Cyrillic, ... let Greek, Vietnamese and most
Chinese through. Anything the original (or persona) itself contains is always allowed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from jmoshi_augment.augment.text.rewrite.reasons import Rejected, around, clip

# Symbols Japanese chat text uses beyond the CJK punctuation and full-width blocks.
_JA_SYMBOLS = frozenset("♪☆★○●◎△▲▽▼□■◇◆→←↑↓⇒♡♥※〒℃°×÷±¥‰′″§")


def _is_han(c: str) -> bool:
    o = ord(c)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF


@functools.lru_cache(maxsize=65536)
def japanese_char(c: str) -> bool:
    """Kana, kanji as Japanese writes them, Japanese punctuation, digits, ASCII and full-width forms
    (their Latin letters are budgeted separately). Kanji = a Han character in Windows-31J (JIS X
    0208 plus the vendor extensions every Japanese system has): simplified Chinese forms (这, 说, 们)
    and Chinese-only characters (吧, 欢) are not in it."""
    o = ord(c)
    if 0x20 <= o <= 0x7E or c in "\n\t":
        return True
    if 0x3000 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:  # CJK punctuation, hiragana, katakana
        return True
    if 0xFF01 <= o <= 0xFF9F or 0xFFE0 <= o <= 0xFFE6:  # full-width forms, half-width katakana
        return True
    if 0x2010 <= o <= 0x203B or c in _JA_SYMBOLS:  # dashes, quotes, …, ‥, ※
        return True
    if _is_han(c):
        try:
            c.encode("cp932")
            return True
        except UnicodeEncodeError:
            return False
    return False


def _script_name(c: str) -> str:
    if _is_han(c):
        return "Chinese"  # a Han character outside Japanese use
    name = unicodedata.name(c, "")
    first = name.split(" ")[0] if name else "unnamed"
    if first == "LATIN":
        return "Latin with diacritics"
    return first.capitalize() if first.isupper() else first


def _is_kana(c: str) -> bool:
    return "\u3040" <= c <= "\u30ff" or "\uff66" <= c <= "\uff9d"


# A turn of this many Han characters without a single kana is Chinese, not Japanese: spoken
# Japanese of that length always has particles or inflections in kana.
_HAN_WITHOUT_KANA = 4


def check_script(text: str, allowed_source: str, where: str) -> None:
    for i, c in enumerate(text):
        if not japanese_char(c) and c not in allowed_source:
            raise Rejected("foreign_script", f"{_script_name(c)} in {where}: {around(text, i)}")
    han = sum(_is_han(c) for c in text)
    if han >= _HAN_WITHOUT_KANA and not any(_is_kana(c) for c in text) and text.strip() not in allowed_source:
        raise Rejected("foreign_script", f"Chinese (kanji without any kana) in {where}: {clip(text)!r}")


_LATIN_RUN = re.compile(r"[A-Za-zＡ-Ｚａ-ｚ]+(?:[ '’\-][A-Za-zＡ-Ｚａ-ｚ]+)*")
# Up to this many Latin letters per turn are always fine (OK, PC, SNS, DVD), whatever the share.
_LATIN_FREE = 3


def check_latin(text: str, norm_source: str, where: str, max_run: int, max_share: float) -> None:
    """A Latin run longer than ``max_run`` letters, or unsourced Latin letters above ``max_share``
    of the turn's letters (「Yes, sure, okay.」 is short runs, all Latin), fail."""
    unsourced = 0
    for m in _LATIN_RUN.finditer(text):
        if unicodedata.normalize("NFKC", m.group()) in norm_source:
            continue
        letters = sum(c.isalpha() for c in m.group())
        if letters > max_run:
            raise Rejected("latin_run", f"{where}: {m.group()[:60]!r}")
        unsourced += letters
    total = sum(c.isalpha() for c in text)
    if unsourced > _LATIN_FREE and unsourced > max_share * total:
        raise Rejected("latin_run", f"{where}: {unsourced} of {total} letters are Latin: {clip(text, 40)!r}")


# Privacy masks as the corpora write them (RealPersonaChat: <XX>さん, ＊＊), handled by
# check_masks, so the markup patterns skip them.
MASKS: dict[str, re.Pattern[str]] = {
    "angle": re.compile(r"[<＜][A-ZＡ-Ｚ]{1,4}[>＞]"),
    "asterisk": re.compile(r"[＊*]{2,}"),
    "circle": re.compile(r"[〇○]{2,}"),
    "cross": re.compile(r"[×✕]{2,}"),
}
# How a TTS or an LLM "reads out" each kind of mask.
_READ_OUT: dict[str, tuple[str, ...]] = {
    "angle": ("エックスエックス", "えっくすえっくす"),
    "asterisk": ("アスタリスク", "ほしほし", "ホシホシ", "米印"),
    "circle": ("まるまる", "マルマル"),
    "cross": ("ばつばつ", "バツバツ", "ペケペケ", "ぺけぺけ"),
}
_ALWAYS_READ_OUT = ("伏せ字", "ふせじ", "伏字")

# Markdown emphasis is markup even though its asterisks look like an ASCII mask (＊＊ / **):
# checked before the mask spans are excluded, so **bold** is refused as markup, not as a mask.
_EMPHASIS = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<![*\w])\*[^*\s][^*\n]*\*(?![*\w])")
_MARKUP: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tag", re.compile(r"<[^<>\n]{1,60}>|＜[^＜＞\n]{1,60}＞")),
    ("markdown", re.compile(r"```|`|__|^\s*#{1,6}\s|^\s*[-*]\s", re.M)),
    ("bracketed note", re.compile(r"[（(\[［【〔][^）)\]］】〕\n]{0,30}[）)\]］】〕]")),
    ("JSON fragment", re.compile(r"[{}]|\"(?:speaker|text|turns)\"")),
    ("escape", re.compile(r"\\[nrt\"u]|&(?:[a-zA-Z]+|#\d+);")),
    ("emoji", re.compile("[\U0001f300-\U0001faff\U0001f000-\U0001f2ff\u2700-\u27bf\ufe0f]")),
)


def check_markup(text: str, source: str, where: str, speakers: Iterable[str]) -> None:
    for m in _EMPHASIS.finditer(text):
        if m.group() not in source:
            raise Rejected("markup", f"markdown emphasis in {where}: {around(text, m.start())}")
    masked = [m.span() for p in MASKS.values() for m in p.finditer(text)]
    for name, pattern in _MARKUP:
        for m in pattern.finditer(text):
            inside_mask = any(a <= m.start() < b for a, b in masked)
            if not inside_mask and m.group().strip() not in source:
                raise Rejected("markup", f"{name} in {where}: {around(text, m.start())}")
    for speaker in speakers:
        if re.match(rf"\s*{re.escape(speaker)}\s*(?:さん)?\s*[:：]", text):
            raise Rejected("markup", f"speaker label in {where}: {clip(text)}")


def check_masks(source: str, rewritten: str, known: str) -> None:
    """Masks may be kept verbatim or talked around, never multiplied, invented, spelt out or
    replaced by a name (``known``: source and persona text, where real names may come from)."""
    for kind, pattern in MASKS.items():
        before, after = Counter(pattern.findall(source)), Counter(pattern.findall(rewritten))
        extra = after - before
        if extra:
            raise Rejected("privacy_mask", f"masks not in the original: {sorted(extra)}")
        if before:
            for word in _READ_OUT[kind]:
                if word in rewritten and word not in source:
                    raise Rejected("privacy_mask", f"mask read out as {word!r}")
        if kind == "angle":
            # <AB> spoken as bare "AB" (or ＡＢ) outside brackets
            for mask in before:
                inner = unicodedata.normalize("NFKC", mask)[1:-1]
                bare = re.compile(rf"(?<![<A-Za-z]){re.escape(inner)}(?![>A-Za-z])")
                if bare.search(unicodedata.normalize("NFKC", rewritten)) and not bare.search(unicodedata.normalize("NFKC", source)):
                    raise Rejected("privacy_mask", f"mask {mask} read out as {inner!r}")
        lost = before - after
        if lost:
            # A mask that disappeared may be talked around, but not stood in for by a name.
            for name in _named_people(rewritten):
                if name not in known:
                    raise Rejected("privacy_mask", f"mask {sorted(lost)[0]} replaced by the name {name!r}")
    for word in _ALWAYS_READ_OUT:
        if word in rewritten and word not in source:
            raise Rejected("privacy_mask", f"mask read out as {word!r}")


@functools.lru_cache(maxsize=1)
def tagger() -> Any:
    from fugashi import Tagger

    return Tagger()


@dataclass(frozen=True)
class Word:
    surface: str
    pos1: str
    pos2: str
    pos3: str
    lemma: str | None


@functools.lru_cache(maxsize=256)
def words(text: str) -> tuple[Word, ...]:
    """UniDic words of an NFKC-normalised text, parsed once however many checks read them (names,
    masks, persona facts all look at the same rewritten text)."""
    out = []
    for w in tagger()(unicodedata.normalize("NFKC", text)):
        f = w.feature
        out.append(Word(w.surface, f.pos1, f.pos2, f.pos3, getattr(f, "lemma", None)))
    return tuple(out)


# Honorifics after a name: what a mask like <AB>さん is usually replaced with.
_HONORIFICS = frozenset("さん くん 君 ちゃん 様 さま 氏 先生".split())
# Nouns before an honorific that are not names (お客さん, 皆さん, 店員さん, お母さん).
_NOT_NAMES = frozenset("客 皆 みな みんな 店員 母 父 兄 姉 弟 妹 お母 お父 お兄 お姉 奥 旦那 先輩 後輩 彼 彼女 相手 隣 あなた お前".split())


def _named_people(text: str) -> list[str]:
    """Person names in a text: UniDic 固有名詞 (人名), and any noun right before an honorific."""
    ws = words(text)
    names: list[str] = []
    for k, w in enumerate(ws):
        before_honorific = k + 1 < len(ws) and ws[k + 1].surface in _HONORIFICS
        if w.pos1 == "名詞" and (w.pos3 == "人名" or (before_honorific and w.surface not in _NOT_NAMES)):
            names.append(w.surface)
    return names


def proper_nouns(text: str) -> list[str]:
    """UniDic 固有名詞 (people, places, organisations) in a text, consecutive ones joined (田中+太郎)."""
    out: list[str] = []
    current = ""
    for w in words(text):
        if w.pos1 == "名詞" and w.pos2 == "固有名詞":
            current += w.surface
            continue
        if current:
            out.append(current)
        current = ""
    if current:
        out.append(current)
    return out


def check_names(rewritten: str, known: str) -> None:
    """No proper noun that the original dialogue or its persona does not contain. A name is known
    when its text occurs in ``known`` (NFKC) or all its parts do (田中太郎 from 田中 and 太郎)."""
    norm_known = unicodedata.normalize("NFKC", known)
    for name in proper_nouns(rewritten):
        if name in norm_known:
            continue
        parts = [w.surface for w in words(name)]
        if parts and all(p in norm_known for p in parts):
            continue
        raise Rejected("invented_name", f"{name!r} is not in the original or its persona")
