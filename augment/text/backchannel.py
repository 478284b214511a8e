"""Where a listener's backchannels fit, which register they take, and which openers take no filler.

Everything reads the UniDic part of speech the script's words carry (``pos1-pos2``), not strings:
- a backchannel fits at a *phrase end* the speaker goes on from: a sentence end, a comma, a
  connective particle (けど, から, て...) or a sentence-final particle (ね, よ...), but not where
  the phrase is still running: て/で before an auxiliary verb (してい|る, 食べてしま|う), between
  stacked final particles (よ|ね, か|な), before も or any other particle or auxiliary
  (Maynard 1986, 1990: backchannels at grammatical completion points and after final particles);
- a speaker's register is read from how their sentences end: です/ます forms at the sentence's
  predicate, after any final particles, not any word that happens to start with でし/まし.
"""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.types import Word
from jmoshi_augment.augment.text.punctuation import PROSODIC

_PUNCT = PROSODIC + "〜"
# UniDic classes that cannot open a new phrase: the word before them does not end one.
_BOUND = ("助詞", "助動詞", "接尾辞")
_BOUND_POS = ("動詞-非自立可能", "形容詞-非自立可能", "名詞-助動詞語幹")
_POLITE_AUX = ("デス", "マス", "デシ", "マシ", "マセ", "デショー")  # です/ます inflections; でしょ (casual) is not
# Reactive openers: a reply that opens with one of these reacts at once; a filler before it
# (えっと、なるほど！) is not what people say.
REACTIVE = frozenset({
    "うん", "ううん", "はい", "ええ", "いえ", "いや", "いいえ", "ああ", "あ", "あっ", "えっ", "えー", "へー", "へえ",
    "ほう", "おお", "わあ", "わー", "なるほど", "そう", "そうそう", "そっか", "そうか", "ほんと", "本当", "ほんとう",
    "まじ", "マジ", "確か", "たしか", "確かに", "たしかに", "すごい", "いいね", "よかった", "ありがとう", "おっ",
    "うわ", "あれ", "ね", "ねえ", "もちろん", "了解", "オッケー", "OK", "こんにちは", "こんばんは", "おはよう",
})


def bare(surface: str) -> str:
    return surface.rstrip(_PUNCT)


def continues_phrase(word: Word, next_word: Word | None) -> bool:
    """True when ``next_word`` attaches to the phrase ``word`` is in: a particle, auxiliary or
    suffix, or a possibly-auxiliary verb/adjective right after the て-form (UniDic tags many
    main verbs 非自立可能 too, so that alone is no sign)."""
    if next_word is None:
        return False
    if next_word.pos.startswith(_BOUND):
        return True
    te_form = word.pos == "助詞-接続助詞" and bare(word.surface) in ("て", "で") and word.surface == bare(word.surface)
    return te_form and next_word.pos in _BOUND_POS


def phrase_ends(words: tuple[Word, ...], min_words: int) -> list[int]:
    """Indices of the words of one sentence after which the phrase is complete."""
    ends = []
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        if nxt is None:
            ends.append(i)
            continue
        if i + 1 < min_words or w.pos == "フィラー" or continues_phrase(w, nxt):  # not after a filler
            continue
        marked = w.surface.endswith(("、", "！", "？", "…"))
        if marked or w.pos in ("助詞-接続助詞", "助詞-終助詞"):
            ends.append(i)
    return ends


def backchannel_anchors(sentences: tuple[tuple[Word, ...], ...], min_words: int = 3) -> list[tuple[int, int]]:
    """Phrase ends inside a turn that invite backchannels, except the turn's final word (a transition
    place: the partner takes the turn there, not a backchannel)."""
    anchors = []
    for si, words in enumerate(sentences):
        for wi in phrase_ends(words, min_words):
            if not (si == len(sentences) - 1 and wi == len(words) - 1):
                anchors.append((si, wi))
    return anchors


def sentence_is_polite(words: tuple[Word, ...]) -> bool:
    """Does the sentence's predicate end in a です/ます form? The final particles (ね, よ, か)
    and plain auxiliaries after it (た, う) are skipped: 行きましたよね is polite, でしょ is not."""
    tail = [w for w in words if not w.pos.startswith(("助詞-終助詞", "助詞-副助詞", "助詞-係助詞"))]
    for w in reversed(tail[-3:]):
        if w.pos.startswith("助動詞") and w.reading.startswith(_POLITE_AUX):
            return w.reading != "デショ"
    return False


def polite_share(sentences: list[tuple[Word, ...]]) -> float:
    """Share of a speaker's sentences (of at least two words) that end politely."""
    scored = [sentence_is_polite(s) for s in sentences if len(s) >= 2]
    return sum(scored) / len(scored) if scored else 0.0


def opens_reactively(words: tuple[Word, ...]) -> bool:
    """A sentence that opens with an interjection or a reactive word (なるほど！, そうなんだ)."""
    if not words:
        return False
    first = words[0]
    return first.pos.startswith("感動詞") or bare(first.surface) in REACTIVE or (
        len(words) > 1 and bare(first.surface + words[1].surface) in REACTIVE)


class FormPicker:
    """Weighted choice of a listener's backchannels forms that varies them: the form just used has
    its weight multiplied by ``repeat_weight`` for the next pick (people do not say the same
    はい at every point, though うん stays the most common)."""

    def __init__(self, weights: dict[str, float], repeat_weight: float, rng: np.random.Generator) -> None:
        self.forms = list(weights)
        self.weights = np.asarray([weights[f] for f in self.forms], dtype=float)
        self.repeat_weight = repeat_weight
        self.rng = rng
        self.last: int | None = None

    def pick(self) -> str:
        p = self.weights.copy()
        if self.last is not None and len(p) > 1:
            p[self.last] *= self.repeat_weight
        i = int(self.rng.choice(len(p), p=p / p.sum()))
        self.last = i
        return self.forms[i]
