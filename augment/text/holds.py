"""Where a speaker pauses mid-sentence and keeps the floor: hesitation and planning pauses, and the
mid-sentence fillers people put there.

People pause inside turns while planning speech: at phrase (bunsetsu) and clause boundaries,
after fillers, before a content word (a hard word most of all), more often the longer they have
talked since their last pause (Seligman et al. 1997: pause units average 5.89 morphemes; Watanabe
et al. 2004: fillers and pauses grow with the complexity of what follows). The silence is marked as
a hold by what precedes it: a filler, a continuative particle or て-form, non-final pitch.

Everything reads the UniDic part of speech the script's words carry, so a hold never falls inside
a bunsetsu: the word after it is a content word that opens a new phrase (not a particle,
auxiliary or suffix attaching to the word before), and the word before it closes one (a particle,
a conjunction or adverb, a filler or interjection).

A hold is rendered as a clause: the word before it gets a comma glued to its surface, so every TTS
gives non-final (continuation) prosody there and leaves a silence the planner re-times as the
pause. The comma is added, never taken from the source, so the characters-not-spoken accounting
(which matches source characters in the words' surfaces) is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jmoshi_augment.augment.text.backchannel import continues_phrase
from jmoshi_augment.augment.text.punctuation import CLAUSE, PROSODIC
from jmoshi_augment.augment.types import Word
from jmoshi_augment.recipe import ScriptConfig

FILLER = "フィラー"
# UniDic classes that open a new bunsetsu: a content word (a hold may precede it).
_CONTENT = ("名詞", "代名詞", "動詞", "形容詞", "形状詞", "副詞", "連体詞", "接頭辞", "接続詞")
# Words that close a bunsetsu and after which people pause: particles (case, topic, adverbial,
# connective, and final particles said mid-sentence like 昨日ね、), conjunctions and adverbs.
_CLOSING = ("助詞", "接続詞", "副詞")
# Kinds of hold point, each with its own chance (ScriptConfig.hold_prob_*).
CLAUSE_END, PHRASE_END, AFTER_FILLER = "clause", "phrase", "filler"


def is_filler(word: Word) -> bool:
    return word.pos == FILLER or word.pos == "感動詞-フィラー"


def hold_points(words: tuple[Word, ...], min_morae_after: int = 3) -> list[tuple[int, str]]:
    """Word indices ``j`` after which a speaker may pause and hold the floor, with the kind of the
    boundary: after a filler, at a clause end (a connective particle: けど, から, て...), or at a
    phrase end before a content word. Never after a word that already carries punctuation (that
    junction is the planner's already), never inside a bunsetsu, never with fewer than
    ``min_morae_after`` morae left (a pause right before the last word is not planning)."""
    out: list[tuple[int, str]] = []
    left = sum(w.morae for w in words)
    for j, w in enumerate(words[:-1]):
        left -= w.morae
        nxt = words[j + 1]
        if left < min_morae_after or w.surface.endswith(tuple(PROSODIC)) and not is_filler(w):
            continue
        if is_filler(w):
            if not is_filler(nxt):
                out.append((j, AFTER_FILLER))
            continue
        if continues_phrase(w, nxt) or not nxt.pos.startswith(_CONTENT) and not is_filler(nxt):
            continue
        if w.pos == "助詞-接続助詞":
            out.append((j, CLAUSE_END))
        elif w.pos.startswith(_CLOSING):
            out.append((j, PHRASE_END))
    return out


def insert_mid_filler(words: tuple[Word, ...], filler: Word, rng: np.random.Generator) -> tuple[Word, ...]:
    """The sentence with ``filler`` said at one of its phrase or clause boundaries (drawn
    uniformly), where people say あの, その, えーと (mid-clause, before what they are planning:
    Watanabe & Shirahata 2019); unchanged when the sentence has none."""
    points = [j for j, kind in hold_points(words) if kind != AFTER_FILLER]
    if not points:
        return words
    j = points[int(rng.integers(len(points)))]
    said = Word(filler.surface + CLAUSE, filler.reading, filler.morae, FILLER)
    return words[: j + 1] + (said,) + words[j + 1 :]


def choose_holds(words: tuple[Word, ...], run: float, cfg: ScriptConfig, rng: np.random.Generator
                 ) -> tuple[tuple[Word, ...], tuple[int, ...], float]:
    """Draw the holds of one sentence, given ``run``, the morae the speaker has said since their
    last hold (in this turn). A point's chance is its kind's probability times the share of
    ``hold_unit_morae`` said since the last hold, a filler's in full (a filler announces the
    pause). Returns the words (a comma glued to the word before each hold, for continuation
    prosody), the hold indices, and the run after the sentence. One draw per point, whatever the
    outcome."""
    prob = {CLAUSE_END: cfg.hold_prob_clause, PHRASE_END: cfg.hold_prob_phrase, AFTER_FILLER: cfg.hold_prob_filler}
    points = dict(hold_points(words))
    out = list(words)
    holds: list[int] = []
    for j, w in enumerate(words):
        run += w.morae
        if j not in points:
            continue
        kind = points[j]
        grow = 1.0 if kind == AFTER_FILLER else min(1.0, run / cfg.hold_unit_morae)
        if rng.random() < prob[kind] * grow:
            holds.append(j)
            run = 0.0
            if not w.surface.endswith(CLAUSE):
                out[j] = replace(w, surface=w.surface + CLAUSE)
    return tuple(out), tuple(holds), run
