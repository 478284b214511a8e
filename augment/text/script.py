"""Text dialogue → spoken script: normalised sentences of UniDic words, each with its surface and
its katakana reading decided here once for every backend, with fillers and the listener's backchannels
placed at phrase ends of the partner's speech.

Everything here is a pure function of (dialogue, options, random generator); the only heavy
resources are the fugashi tagger and pyopenjtalk's reading front end, created once per process.
Characters of the source that are not spoken are counted by reason (``SpokenScript.not_spoken``);
see :mod:`normalize` for the accounting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jmoshi_augment.augment.text.backchannel import FormPicker, backchannel_anchors, opens_reactively, polite_share
from jmoshi_augment.augment.text.holds import choose_holds, insert_mid_filler
from jmoshi_augment.augment.text.normalize import Ledger, canonical, normalize_text, split_sentences
from jmoshi_augment.augment.text.readings import (
    FIXED_WORD,
    context_readings,
    count_morae,
    front_end_reading,
    spell,
    tagger,
    to_katakana,
)
from jmoshi_augment.augment.types import Segment, SpokenScript, Word
from jmoshi_augment.corpora.dialogue import Dialogue
from jmoshi_augment.recipe import ScriptConfig
from jmoshi_augment.augment.text.punctuation import EXCLAIM_QUESTION, LENGTHENERS, PROSODIC

__all__ = ["backchannel_anchors", "count_morae", "make_script", "make_word", "normalize_text", "split_sentences", "to_words"]

# --------------------------------------------------------------------------------------- words

# A word written in kana says its kana (UniDic's pron adds は → ワ and long vowels); the front end
# can only misread it (はちみつ as ワチミツ, ね〜 as ネカラ), so its reading is not taken from there.
_KANA_ONLY = re.compile(r"^[ぁ-ゖァ-ヺー〜]+$")


@dataclass
class _Token:
    surface: str
    reading: str
    pos: str
    fixed: bool  # reading decided by a normalisation rule
    glued: str = ""  # punctuation and lengtheners that follow it


def _tokens(text: str, lost: Ledger, out: list[_Token]) -> None:
    """Tag ``text`` and append its tokens to ``out`` (whose last token takes glued marks)."""
    for token in tagger()(text):
        f = token.feature
        pos = f"{f.pos1}-{f.pos2}" if f.pos2 not in (None, "*", "") else str(f.pos1)
        if f.pos1 in ("補助記号", "空白"):
            if out and all(c in PROSODIC + LENGTHENERS for c in token.surface):
                out[-1].glued += token.surface
            elif not token.surface.isspace():
                lost["punctuation"] += len(token.surface)
            continue
        reading = f.pron if f.pron not in (None, "*", "") else ""
        if not reading:  # UniDic has no entry: OpenJTalk's front end, then letters by name
            reading = front_end_reading(token.surface) or spell(token.surface) or to_katakana(token.surface)
        if count_morae(reading) == 0:
            lost["no reading"] += len(token.surface)
            continue
        if token.surface == "何" and pos == "名詞-数詞":  # 何 before a counter: ナンジ, ナンニン
            out.append(_Token(token.surface, "ナン", pos, True))  # (the front end says ナニジ)
            continue
        out.append(_Token(token.surface, reading, pos, False))


def to_words(sentence: str, lost: Ledger | None = None) -> tuple[Word, ...]:
    """UniDic short units with their readings as said in context (:func:`readings.context_readings`)
    and the fixed words the normaliser decided (numbers, letters, dates: one word each, ``pos``
    名詞-数詞 or 名詞-固有名詞); punctuation is glued to the word before so every word is voiced and
    carries its pause cue into the TTS text, a lengthener (ね〜) stretches its last vowel."""
    lost = Ledger() if lost is None else lost
    tokens: list[_Token] = []
    pos = 0
    for m in FIXED_WORD.finditer(sentence):
        _tokens(sentence[pos : m.start()], lost, tokens)
        surface, reading = m[1], m[2]
        if count_morae(reading) == 0:
            lost["no reading"] += len(surface)
        else:
            kind = "名詞-数詞" if any(c.isdigit() for c in surface) else "名詞-固有名詞"
            tokens.append(_Token(surface, reading, kind, True))
        pos = m.end()
    _tokens(sentence[pos:], lost, tokens)
    if not tokens:
        return ()
    spans, cursor = [], 0
    for t in tokens:
        spans.append((cursor, cursor + len(t.surface)))
        cursor += len(t.surface)
    said = context_readings("".join(t.surface for t in tokens), spans, [t.reading for t in tokens],
                            [t.fixed for t in tokens], [_KANA_ONLY.match(t.surface) is not None for t in tokens])
    words = []
    for t, reading in zip(tokens, said):
        reading += "ー" * sum(1 for c in t.glued if c in LENGTHENERS)
        words.append(Word(t.surface + t.glued, reading, count_morae(reading), t.pos, t.fixed))
    return tuple(words)


@lru_cache(maxsize=256)
def make_word(text: str, pos: str = "感動詞") -> Word:
    """A single inserted word (filler or backchannel) as one unit (a handful of forms, cached)."""
    reading = "".join(w.reading for w in to_words(text))
    return Word(text, reading, count_morae(reading), pos)


# ---------------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class _Turn:
    speaker: str
    sentences: tuple[tuple[Word, ...], ...]
    merged_from: tuple[int, ...]  # indices of the dialogue turns merged into this one


def _cut_turn(text: str, max_chars: int) -> str:
    """A turn over ``max_chars`` ends at its last sentence end before the limit."""
    cut = max(text.rfind(m, 0, max_chars) for m in "。" + EXCLAIM_QUESTION)
    return text[: cut + 1] if cut > 0 else text[:max_chars]


def make_script(dialogue: Dialogue, cfg: ScriptConfig, rng: np.random.Generator) -> SpokenScript:
    """Normalise and segment every turn, add fillers and the listener's backchannels."""
    skipped: list[str] = []
    lost = Ledger()
    turns: list[_Turn] = []
    for k, turn in enumerate(dialogue.turns):
        turn_lost = Ledger()
        text = turn.text
        if len(text) > cfg.max_turn_chars:
            kept = _cut_turn(text, cfg.max_turn_chars)
            turn_lost["turn cut at max_turn_chars"] += sum(1 for c in text[len(kept):] if not c.isspace())
            text = kept
            skipped.append("turn cut at max_turn_chars")
        norm = normalize_text(text, turn_lost)
        sentences = tuple(ws for ws in (to_words(s, turn_lost) for s in split_sentences(norm, cfg.max_sentence_chars, turn_lost)) if ws)
        if not sentences:
            skipped.append("turn empty after normalisation")
            lost.update(turn_lost)
            continue
        lost.update(turn_lost)
        if turns and turns[-1].speaker == turn.speaker:  # two turns in a row: one longer turn
            turns[-1] = _Turn(turn.speaker, turns[-1].sentences + sentences, turns[-1].merged_from + (k,))
        else:
            turns.append(_Turn(turn.speaker, sentences, (k,)))

    speech: list[Segment] = []
    plain: list[tuple[Word, ...]] = []  # each sentence's words before hold commas: backchannel anchors
    for ti, turn in enumerate(turns):
        run = 0.0  # morae since the speaker's last hold
        for si, words in enumerate(turn.sentences):
            # A filler never precedes an interjection or a reactive opener (えっと、なるほど！).
            if cfg.fillers and rng.random() < cfg.filler_rate and not opens_reactively(words):
                filler = make_word(_pick(rng, cfg.fillers))
                words = (Word(filler.surface + "、", filler.reading, filler.morae, "フィラー"),) + words
            if cfg.mid_fillers and rng.random() < cfg.mid_filler_rate:
                words = insert_mid_filler(words, make_word(_pick(rng, cfg.mid_fillers)), rng)
            plain.append(words)
            words, holds, run = choose_holds(words, run, cfg, rng)
            speech.append(Segment(turn.speaker, words, "speech", ti, si, holds=holds))

    speakers = tuple(dict.fromkeys(t.speaker for t in turns))
    backchannels = _backchannels(turns, speech, plain, speakers, cfg, rng)
    return SpokenScript(
        dialogue_id=dialogue.id,
        corpus=dialogue.corpus,
        speakers=speakers,
        segments=tuple(speech + backchannels),
        skipped=tuple(skipped),
        source_turns=tuple((t.speaker, t.text) for t in dialogue.turns),
        not_spoken=tuple(sorted((r, n) for r, n in lost.items() if n)),
    )


def source_characters(script: SpokenScript) -> int:
    """Source characters of the dialogue, as :mod:`normalize` counts them."""
    return sum(1 for _, text in script.source_turns for c in canonical(text) if not c.isspace())


def _pick(rng: np.random.Generator, weighted: dict[str, float]) -> str:
    forms = list(weighted)
    p = np.asarray([weighted[f] for f in forms], dtype=float)
    return forms[int(rng.choice(len(forms), p=p / p.sum()))]


def listener_register(turns: list[_Turn], speaker: str, threshold: float) -> str:
    """``"polite"`` when the speaker ends at least ``threshold`` of their sentences in です/ます."""
    own = [s for t in turns if t.speaker == speaker for s in t.sentences]
    return "polite" if polite_share(own) >= threshold else "casual"


def _backchannels(turns: list[_Turn], speech: list[Segment], plain: list[tuple[Word, ...]], speakers: tuple[str, ...],
                  cfg: ScriptConfig, rng: np.random.Generator) -> list[Segment]:
    """Backchannel of each listener at the phrase ends of the partner's turns. Anchors are computed on
    the segments as spoken (fillers included), so word indices match the rendered word timings
    the planner reads, but before the hold commas (``plain``): a hold invites a backchannel only
    where its phrase end would anyway (a clause end), not at every planning pause."""
    by_turn: dict[int, list[tuple[Word, ...]]] = {}
    for seg, words in zip(speech, plain):
        by_turn.setdefault(seg.turn, []).append(words)
    pickers = {}
    for spk in speakers:
        register = listener_register(turns, spk, cfg.polite_share)
        forms = cfg.backchannels_polite if register == "polite" else cfg.backchannels_casual
        pickers[spk] = FormPicker(forms, cfg.backchannel_repeat_weight, rng)
    out: list[Segment] = []
    for ti, segs in by_turn.items():
        listener = next((s for s in speakers if s != turns[ti].speaker), None)
        if listener is None:
            continue
        for anchor in backchannel_anchors(tuple(segs), cfg.anchor_min_words):
            if rng.random() < cfg.backchannel_rate:
                token = make_word(pickers[listener].pick())
                out.append(Segment(listener, (token,), "backchannel", ti, anchor=anchor))
    return out
