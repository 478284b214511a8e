"""Checks an LLM's spoken-style rewrite of a dialogue before anything downstream sees it.

J-Moshi-ext's own rewritten data holds a Korean clause inside a Japanese turn (「うん、운동도 하고
있겠지만」): an LLM rewrite code-switches, invents speakers, drops facts or wraps its answer in
markdown often enough that unvalidated output poisons a TTS corpus. Every check here is a pure
function of (original dialogue, answer text); a failed check returns a short reason code (counted
in the run report) and a detail the retry prompt quotes back to the model.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import RewriteConfig

# Reason codes, in the order the checks run. The run report counts them; RETRY_HINTS tells the
# model how to fix each one.
RETRY_HINTS: dict[str, str] = {
    "malformed_json": "出力が JSON として読めませんでした。前置きや ``` を付けず、JSON オブジェクトだけを出力してください。",
    "truncated": "出力が途中で切れています。JSON を最後まで閉じてください。",
    "refused": "出力が返ってきませんでした。入力の対話を書き換えて JSON で出力してください。",
    "schema": '形式が違います。{"turns": [{"speaker": "話者ラベル", "text": "発話"}]} の形にし、text を空にしないでください。',
    "unknown_speaker": "入力にない話者が出てきました。話者ラベルは入力の speakers にあるものだけを使ってください。",
    "missing_speaker": "入力の話者の発話がなくなっています。全員の発話を残してください。",
    "order": "話の順序か、誰が何を言ったかが入力と食い違っています。発話の順序と話し手を入力どおりにしてください。",
    "foreign_script": "日本語以外の文字が混ざっています。日本語だけで書いてください。",
    "latin_run": "英語などの長い英字列が混ざっています。日本語で言ってください。",
    "markup": "読み上げない記号や注記が本文に入っています。話す言葉だけを書いてください。",
    "privacy_mask": "伏せ字の扱いが違います。入力の伏せ字だけを入力どおりの形で残すか、その部分に触れない言い方にし、読み上げたり新しく作ったりしないでください。",
    "length_ratio": "長さが元の対話から大きく変わっています。内容を足したり削ったりしないでください。",
    "persona_fact": "元の対話に出てくる事実が抜けています。次の語が表す内容を残してください。",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one answer: ``turns`` when accepted, else a reason code and a
    detail naming what was wrong (quoted back to the model on retry)."""

    turns: Optional[tuple[Turn, ...]]
    reason: Optional[str] = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.turns is not None


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in RETRY_HINTS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def validate_rewrite(
    original: Dialogue, content: Optional[str], cfg: RewriteConfig, finish_reason: Optional[str] = None
) -> Verdict:
    """Parse and check one chat-completions answer against the dialogue it rewrites."""
    try:
        turns = parse_turns(content, finish_reason)
        check_turns(original, turns, cfg)
    except _Rejected as e:
        return Verdict(None, e.reason, e.detail)
    return Verdict(turns)


# ------------------------------------------------------------------------------------- structure
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.S)


def parse_turns(content: Optional[str], finish_reason: Optional[str] = None) -> tuple[Turn, ...]:
    """``{"turns": [{"speaker", "text"}, ...]}`` (or the bare list) → turns; a ```json fence
    around it is tolerated since it changes nothing that is spoken."""
    if finish_reason == "content_filter" or not content or not content.strip():
        raise _Rejected("refused", f"empty answer (finish_reason={finish_reason})")
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if finish_reason == "length":
            raise _Rejected("truncated", "the answer hit the token limit") from None
        raise _Rejected("malformed_json", f"{e.msg} at character {e.pos}") from None
    items = data.get("turns") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise _Rejected("schema", 'expected {"turns": [...]} with at least one turn')
    turns = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("speaker"), str) or not isinstance(item.get("text"), str):
            raise _Rejected("schema", f"turn {i + 1} is not {{\"speaker\": string, \"text\": string}}")
        if not item["text"].strip():
            raise _Rejected("schema", f"turn {i + 1} has empty text")
        turns.append(Turn(item["speaker"].strip(), item["text"].strip()))
    return tuple(turns)


def check_turns(original: Dialogue, turns: tuple[Turn, ...], cfg: RewriteConfig) -> None:
    """Run every content check; raise the first failure."""
    source = "\n".join(t.text for t in original.turns)
    norm_source = unicodedata.normalize("NFKC", source)
    speakers = original.speakers
    _check_speakers(original, turns)
    _check_order(original, turns)
    for i, turn in enumerate(turns):
        where = f"turn {i + 1} ({turn.speaker})"
        _check_script(turn.text, source, where)
        _check_latin(turn.text, norm_source, where, cfg.max_latin_run)
        _check_markup(turn.text, source, where, speakers)
    _check_masks(source, "\n".join(t.text for t in turns))
    _check_length(original, turns, cfg)
    _check_persona(original, turns)


def _check_speakers(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    known = original.speakers
    invented = sorted({t.speaker for t in turns} - set(known))
    if invented:
        raise _Rejected("unknown_speaker", f"speakers {invented} are not in the original {known}")
    missing = [s for s in known if s not in {t.speaker for t in turns}]
    if missing:
        raise _Rejected("missing_speaker", f"speakers {missing} no longer speak")


# ---------------------------------------------------------------------------------------- order
def _bigrams(text: str) -> set[str]:
    chars = [c for c in unicodedata.normalize("NFKC", text) if c.isalnum()]
    return {a + b for a, b in zip(chars, chars[1:])}


# An original turn takes part in the order check only when it is long enough to be recognised and
# a rewritten turn shares this much of its character bigrams: short turns (はい。) match anywhere.
_MIN_BIGRAMS = 4
_MIN_SHARE = 0.4


def _check_order(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    """The rewrite may split turns and insert backchannels, but must start with the same speaker,
    keep each recognisable original turn with its speaker, and keep those turns in order."""
    if turns[0].speaker != original.turns[0].speaker:
        raise _Rejected("order", f"starts with {turns[0].speaker}, the original with {original.turns[0].speaker}")
    grams = [_bigrams(t.text) for t in turns]
    last = -1
    for i, turn in enumerate(original.turns):
        mine = _bigrams(turn.text)
        if len(mine) < _MIN_BIGRAMS:
            continue
        shares = [len(mine & g) / len(mine) for g in grams]
        best = max(shares)
        if best < _MIN_SHARE:
            continue
        # Among equally good matches (repeated greetings) prefer the same speaker, then the first
        # one after the previous match.
        ties = [k for k, s in enumerate(shares) if s == best]
        j = min(ties, key=lambda k: (turns[k].speaker != turn.speaker, k < last, k == last, k))
        if turns[j].speaker != turn.speaker:
            raise _Rejected("order", f"original turn {i + 1} ({turn.speaker}: {_clip(turn.text)}) is said by {turns[j].speaker}")
        if j < last:
            raise _Rejected("order", f"original turn {i + 1} ({_clip(turn.text)}) moved before an earlier turn")
        last = j


# --------------------------------------------------------------------------------------- script
_FOREIGN_SCRIPTS: dict[str, re.Pattern[str]] = {
    "Hangul": re.compile(r"[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]"),
    "Cyrillic": re.compile(r"[\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f]"),
    "Arabic": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "Hebrew": re.compile(r"[\u0590-\u05ff]"),
    "Thai": re.compile(r"[\u0e00-\u0e7f]"),
    "Devanagari": re.compile(r"[\u0900-\u097f]"),
    # Simplified-only characters that modern Japanese never writes (这 not 這, 们, 说 not 説, ...):
    # Qwen-style models drift into Chinese the way J-Moshi-ext's data drifted into Korean.
    "simplified Chinese": re.compile("[这们说还时对为吗呢么给让现经问题样见觉应该语话东车门开关长书买卖个吧啊您谢欢习认识]"),
}


def _check_script(text: str, source: str, where: str) -> None:
    for name, pattern in _FOREIGN_SCRIPTS.items():
        for m in pattern.finditer(text):
            if m.group() not in source:
                raise _Rejected("foreign_script", f"{name} in {where}: {_around(text, m.start())}")


_LATIN_RUN = re.compile(r"[A-Za-zＡ-Ｚａ-ｚ]+(?:[ '’\-][A-Za-zＡ-Ｚａ-ｚ]+)*")


def _check_latin(text: str, norm_source: str, where: str, max_run: int) -> None:
    for m in _LATIN_RUN.finditer(text):
        letters = sum(c.isalpha() for c in m.group())
        if letters > max_run and unicodedata.normalize("NFKC", m.group()) not in norm_source:
            raise _Rejected("latin_run", f"{where}: {m.group()[:60]!r}")


# --------------------------------------------------------------------------------------- markup
# Privacy masks as the corpora write them (RealPersonaChat: <XX>さん, ＊＊), handled by
# _check_masks, so the markup patterns skip them.
_MASKS: dict[str, re.Pattern[str]] = {
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

_MARKUP: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tag", re.compile(r"<[^<>\n]{1,60}>|＜[^＜＞\n]{1,60}＞")),
    ("markdown", re.compile(r"```|`|__|^\s*#{1,6}\s|^\s*[-*]\s", re.M)),
    ("bracketed note", re.compile(r"[（(\[［【〔][^）)\]］】〕\n]{0,30}[）)\]］】〕]")),
    ("JSON fragment", re.compile(r"[{}]|\"(?:speaker|text|turns)\"")),
    ("escape", re.compile(r"\\[nrt\"u]|&(?:[a-zA-Z]+|#\d+);")),
    ("emoji", re.compile("[\U0001f300-\U0001faff\U0001f000-\U0001f2ff\u2700-\u27bf\ufe0f]")),
)


def _check_markup(text: str, source: str, where: str, speakers: Iterable[str]) -> None:
    masked = [m.span() for p in _MASKS.values() for m in p.finditer(text)]
    for name, pattern in _MARKUP:
        for m in pattern.finditer(text):
            inside_mask = any(a <= m.start() < b for a, b in masked)
            if not inside_mask and m.group().strip() not in source:
                raise _Rejected("markup", f"{name} in {where}: {_around(text, m.start())}")
    for speaker in speakers:
        if re.match(rf"\s*{re.escape(speaker)}\s*(?:さん)?\s*[:：]", text):
            raise _Rejected("markup", f"speaker label in {where}: {_clip(text)}")


def _check_masks(source: str, rewritten: str) -> None:
    """Masks may be kept verbatim or talked around, never multiplied, invented or spelt out."""
    for kind, pattern in _MASKS.items():
        before, after = Counter(pattern.findall(source)), Counter(pattern.findall(rewritten))
        extra = after - before
        if extra:
            raise _Rejected("privacy_mask", f"masks not in the original: {sorted(extra)}")
        if before:
            for word in _READ_OUT[kind]:
                if word in rewritten and word not in source:
                    raise _Rejected("privacy_mask", f"mask read out as {word!r}")
        if kind == "angle":
            # <AB> spoken as bare "AB" (or ＡＢ) outside brackets
            for mask in before:
                inner = unicodedata.normalize("NFKC", mask)[1:-1]
                bare = re.compile(rf"(?<![<A-Za-z]){re.escape(inner)}(?![>A-Za-z])")
                if bare.search(unicodedata.normalize("NFKC", rewritten)) and not bare.search(unicodedata.normalize("NFKC", source)):
                    raise _Rejected("privacy_mask", f"mask {mask} read out as {inner!r}")
    for word in _ALWAYS_READ_OUT:
        if word in rewritten and word not in source:
            raise _Rejected("privacy_mask", f"mask read out as {word!r}")


# --------------------------------------------------------------------------------------- length
def _content_chars(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def _check_length(original: Dialogue, turns: tuple[Turn, ...], cfg: RewriteConfig) -> None:
    before = sum(_content_chars(t.text) for t in original.turns)
    after = sum(_content_chars(t.text) for t in turns)
    ratio = after / max(before, 1)
    if not cfg.min_length_ratio <= ratio <= cfg.max_length_ratio:
        raise _Rejected(
            "length_ratio",
            f"{after} characters for {before} (ratio {ratio:.2f}, allowed {cfg.min_length_ratio}-{cfg.max_length_ratio})",
        )


# -------------------------------------------------------------------------------------- persona
def persona_sentences(meta: dict[str, Any]) -> list[str]:
    """Persona sentences from ``meta["persona"]``: a list, a string, or ``{speaker: list|str}``
    (the shape the PersonaChat loader writes)."""
    persona = meta.get("persona")
    if isinstance(persona, dict):
        values: Iterable[Any] = persona.values()
    elif persona is None:
        return []
    else:
        values = [persona]
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.extend(s for s in v.splitlines() if s.strip())
        elif isinstance(v, (list, tuple)):
            out.extend(str(s) for s in v if str(s).strip())
    return out


@functools.lru_cache(maxsize=1)
def _tagger() -> Any:
    from fugashi import Tagger

    return Tagger()


# Nouns that carry a persona fact: common, proper and numeral nouns, minus time adverbs
# (最近, 今日), counter-like nouns (回) and formal nouns written in kana (こと, もの).
_FACT_POS2 = {"普通名詞", "固有名詞", "数詞"}
_SKIP_POS3 = {"副詞可能", "助数詞可能"}
# Generic nouns a persona sentence and a chat share without stating a fact.
_GENERIC = frozenset("人 事 物 者 方 時 所 中 上 下 前 後 日 今 気 点 際 頃 他 外 内 感じ 自分 皆 場合 部分 一 1".split())
_KANJI_DIGITS = str.maketrans("〇一二三四五六七八九", "0123456789")


def _fact_key(w: Any) -> Optional[str]:
    """Key of a content word (lemma, so 猫 = ネコ; digits for numerals), or None."""
    f = w.feature
    if f.pos1 != "名詞" or f.pos2 not in _FACT_POS2 or f.pos3 in _SKIP_POS3:
        return None
    if all("\u3040" <= c <= "\u309f" for c in w.surface):
        return None
    key = (getattr(f, "lemma", None) or w.surface).split("-")[0]
    key = key.translate(_KANJI_DIGITS) if f.pos2 == "数詞" else key
    return None if key in _GENERIC else key


@functools.lru_cache(maxsize=4096)
def _fact_phrases(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Noun compounds (看護+師, 高尾+山) as (surface, keys of their content words). Cached: the
    same persona recurs across dialogues and the same original across retries."""
    phrases: list[tuple[str, frozenset[str]]] = []
    surface, keys = "", set()
    for w in _tagger()(unicodedata.normalize("NFKC", text)):
        if w.feature.pos1 in ("名詞", "接尾辞", "接頭辞"):
            surface += w.surface
            key = _fact_key(w)
            if key:
                keys.add(key)
            continue
        if keys:
            phrases.append((surface, frozenset(keys)))
        surface, keys = "", set()
    if keys:
        phrases.append((surface, frozenset(keys)))
    return tuple(phrases)


@functools.lru_cache(maxsize=4096)
def _persona_facts_in(persona_text: str, original_text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Phrases of the original that mention a persona fact, with the persona keys they carry."""
    persona = frozenset().union(*(k for _, k in _fact_phrases(persona_text)))
    facts: dict[str, frozenset[str]] = {}
    for surface, keys in _fact_phrases(original_text):
        if keys & persona:
            facts.setdefault(surface, keys & persona)
    return tuple(facts.items())


def _check_persona(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    """Persona facts that the original dialogue actually mentions must survive the rewrite."""
    sentences = persona_sentences(original.meta)
    if not sentences:
        return
    facts = _persona_facts_in("\n".join(sentences), "\n".join(t.text for t in original.turns))
    rewritten = unicodedata.normalize("NFKC", "\n".join(t.text for t in turns))
    # kept verbatim needs no parse; otherwise compare lemmas (猫 = ネコ, 二 = 2)
    unsure = [(s, k) for s, k in facts if s not in rewritten]
    if not unsure:
        return
    kept = frozenset().union(*(k for _, k in _fact_phrases(rewritten)))
    dropped = [s for s, k in unsure if k - kept]
    if dropped:
        raise _Rejected("persona_fact", "dropped: " + "、".join(dropped))


# -------------------------------------------------------------------------------------- helpers
def _clip(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _around(text: str, pos: int, n: int = 10) -> str:
    return repr(text[max(0, pos - n): pos + n])
