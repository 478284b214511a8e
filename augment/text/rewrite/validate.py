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
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from jmoshi_augment.augment.text.rewrite.align import check_alignment, check_order
from jmoshi_augment.augment.text.rewrite.reasons import RETRY_HINTS, Rejected
from jmoshi_augment.augment.text.rewrite.script_check import (
    check_latin,
    check_markup,
    check_masks,
    check_names,
    check_script,
    Word,
    words,
)
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import RewriteConfig

__all__ = ["RETRY_HINTS", "Verdict", "check_turns", "parse_turns", "persona_sentences", "validate_rewrite"]

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


def validate_rewrite(
    original: Dialogue, content: Optional[str], cfg: RewriteConfig, finish_reason: Optional[str] = None
) -> Verdict:
    """Parse and check one chat-completions answer against the dialogue it rewrites."""
    try:
        turns = parse_turns(content, finish_reason)
        check_turns(original, turns, cfg)
    except Rejected as e:
        return Verdict(None, e.reason, e.detail)
    return Verdict(turns)


# ------------------------------------------------------------------------------------- structure
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.S)


def parse_turns(content: Optional[str], finish_reason: Optional[str] = None) -> tuple[Turn, ...]:
    """``{"turns": [{"speaker", "text"}, ...]}`` (or the bare list) → turns; a ```json fence
    around it is tolerated since it changes nothing that is spoken."""
    if finish_reason == "content_filter" or not content or not content.strip():
        raise Rejected("refused", f"empty answer (finish_reason={finish_reason})")
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if finish_reason == "length":
            raise Rejected("truncated", "the answer hit the token limit") from None
        raise Rejected("malformed_json", f"{e.msg} at character {e.pos}") from None
    items = data.get("turns") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise Rejected("schema", 'expected {"turns": [...]} with at least one turn')
    turns = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("speaker"), str) or not isinstance(item.get("text"), str):
            raise Rejected("schema", f"turn {i + 1} is not {{\"speaker\": string, \"text\": string}}")
        if not item["text"].strip():
            raise Rejected("schema", f"turn {i + 1} has empty text")
        turns.append(Turn(item["speaker"].strip(), item["text"].strip()))
    return tuple(turns)


def check_turns(original: Dialogue, turns: tuple[Turn, ...], cfg: RewriteConfig) -> None:
    """Run every content check; raise the first failure."""
    source = "\n".join(t.text for t in original.turns)
    # Names and foreign words may come from the persona as well as from the dialogue itself.
    known = "\n".join([source, *persona_sentences(original.meta)])
    norm_known = unicodedata.normalize("NFKC", known)
    speakers = original.speakers
    _check_speakers(original, turns)
    # Per-turn checks first: a turn answered in English has also "lost" its Japanese wording, and
    # the retry hint must say the language is wrong, not that the turn is missing.
    for i, turn in enumerate(turns):
        where = f"turn {i + 1} ({turn.speaker})"
        check_markup(turn.text, source, where, speakers)
        check_script(turn.text, known, where)
        check_latin(turn.text, norm_known, where, cfg.max_latin_run, cfg.max_latin_share)
    check_order(original, turns)
    check_alignment(original, turns)
    rewritten = "\n".join(t.text for t in turns)
    check_masks(source, rewritten, norm_known)
    check_names(rewritten, known)
    _check_length(original, turns, cfg)
    _check_persona(original, turns)


def _check_speakers(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    known = original.speakers
    invented = sorted({t.speaker for t in turns} - set(known))
    if invented:
        raise Rejected("unknown_speaker", f"speakers {invented} are not in the original {known}")
    missing = [s for s in known if s not in {t.speaker for t in turns}]
    if missing:
        raise Rejected("missing_speaker", f"speakers {missing} no longer speak")


# --------------------------------------------------------------------------------------- length
def _content_chars(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def _check_length(original: Dialogue, turns: tuple[Turn, ...], cfg: RewriteConfig) -> None:
    before = sum(_content_chars(t.text) for t in original.turns)
    after = sum(_content_chars(t.text) for t in turns)
    ratio = after / max(before, 1)
    if not cfg.min_length_ratio <= ratio <= cfg.max_length_ratio:
        raise Rejected(
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


# Nouns that carry a persona fact: common, proper and numeral nouns, minus time adverbs
# (最近, 今日), counter-like nouns (回) and formal nouns written in kana (こと, もの).
_FACT_POS2 = {"普通名詞", "固有名詞", "数詞"}
_SKIP_POS3 = {"副詞可能", "助数詞可能"}
# Generic nouns a persona sentence and a chat share without stating a fact.
_GENERIC = frozenset("人 事 物 者 方 時 所 中 上 下 前 後 日 今 気 点 際 頃 他 外 内 感じ 自分 皆 場合 部分 一 1".split())
_KANJI_DIGITS = str.maketrans("〇一二三四五六七八九", "0123456789")


def _fact_key(w: Word) -> Optional[str]:
    """Key of a content word (lemma, so 猫 = ネコ; digits for numerals), or None."""
    if w.pos1 != "名詞" or w.pos2 not in _FACT_POS2 or w.pos3 in _SKIP_POS3:
        return None
    if all("\u3040" <= c <= "\u309f" for c in w.surface):
        return None
    key = (w.lemma or w.surface).split("-")[0]
    key = key.translate(_KANJI_DIGITS) if w.pos2 == "数詞" else key
    return None if key in _GENERIC else key


@functools.lru_cache(maxsize=4096)
def _fact_phrases(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Noun compounds (看護+師, 高尾+山) as (surface, keys of their content words). Cached: the
    same persona recurs across dialogues and the same original across retries."""
    phrases: list[tuple[str, frozenset[str]]] = []
    surface, keys = "", set()
    for w in words(text):
        if w.pos1 in ("名詞", "接尾辞", "接頭辞"):
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
        raise Rejected("persona_fact", "dropped: " + "、".join(dropped))
