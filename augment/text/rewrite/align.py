"""Turn-level checks of a rewrite: who says what, in which order, and that no original turn is lost.

The stated rule (also in the system prompt's spirit): a rewrite may split an original turn into
several turns of the same speaker, insert short turns (backchannels such as 「へー。」) anywhere, and
merge consecutive original turns *of the same speaker*; every other original turn must have its own
counterpart, said by the same speaker, in the original order.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Sequence

from jmoshi_augment.augment.text.rewrite.reasons import Rejected, clip
from jmoshi_augment.corpora import Dialogue, Turn


@functools.lru_cache(maxsize=8192)
def bigrams(text: str) -> frozenset[str]:
    """Character bigrams of the alphanumeric characters (NFKC). Cached: every check and every
    retry of a dialogue looks at the same original turns."""
    chars = [c for c in unicodedata.normalize("NFKC", text) if c.isalnum()]
    return frozenset(a + b for a, b in zip(chars, chars[1:]))


# An original turn is "recognisable" by its wording when it has this many character bigrams; such
# a turn counts as matched by a rewritten turn that shares this share of them (a spoken-style
# rewrite of 「引っ越しをしたそうですね。」 as 「引っ越ししたんですよね？」 shares 5 of 11 = 0.45).
# Short turns (はい。) match anywhere, so for them only the speaker and position are checked.
MIN_BIGRAMS = 4
MIN_SHARE = 0.4
# Below this share, the turns a recognisable original block was aligned with do not carry it (a
# dropped turn leaves 0%; a free spoken paraphrase keeps a fifth or more of the bigrams): it
# was dropped (or its content went to the wrong place, which check_order names first).
MIN_COVERAGE = 0.15


def check_order(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    """The rewrite must start with the same speaker, keep each recognisable original turn with its
    speaker, and keep those turns in order."""
    if turns[0].speaker != original.turns[0].speaker:
        raise Rejected("order", f"starts with {turns[0].speaker}, the original with {original.turns[0].speaker}")
    grams = [bigrams(t.text) for t in turns]
    last = -1
    for i, turn in enumerate(original.turns):
        mine = bigrams(turn.text)
        if len(mine) < MIN_BIGRAMS:
            continue
        shares = [len(mine & g) / len(mine) for g in grams]
        best = max(shares)
        if best < MIN_SHARE:
            continue
        # Among equally good matches (repeated greetings) prefer the same speaker, then the first
        # one after the previous match.
        ties = [k for k, s in enumerate(shares) if s == best]
        j = min(ties, key=lambda k: (turns[k].speaker != turn.speaker, k < last, k == last, k))
        if turns[j].speaker != turn.speaker:
            raise Rejected("order", f"original turn {i + 1} ({turn.speaker}: {clip(turn.text)}) is said by {turns[j].speaker}")
        if j < last:
            raise Rejected("order", f"original turn {i + 1} ({clip(turn.text)}) moved before an earlier turn")
        last = j


def _blocks(original: Dialogue) -> list[tuple[int, str, str]]:
    """Consecutive same-speaker original turns as one block: (first turn number, speaker, text)."""
    blocks: list[tuple[int, str, str]] = []
    for i, turn in enumerate(original.turns):
        if blocks and blocks[-1][1] == turn.speaker:
            first, speaker, text = blocks[-1]
            blocks[-1] = (first, speaker, text + "\n" + turn.text)
        else:
            blocks.append((i + 1, turn.speaker, turn.text))
    return blocks


# Score of leaving an original block without any rewritten turn: far below any real alignment, so
# a block is skipped only when the rewrite has no same-speaker turn left for it in order.
_SKIP = -1000.0
# Score of a same-speaker assignment on top of the shared bigrams, so that an assignment is always
# preferred over leaving a turn unassigned (an inserted backchannel).
_ASSIGN = 0.01


def align(blocks: Sequence[tuple[str, frozenset[str]]], turns: Sequence[tuple[str, frozenset[str]]]) -> list[list[int]]:
    """Monotone alignment of original blocks (speaker, bigrams) to rewritten turns: every rewritten
    turn belongs to at most one block of its speaker or is an insertion, blocks take turns in
    order, and each block gets at least one turn when the speakers allow it. Returns, per block,
    the indices of its turns (empty: nothing left for it). Dynamic programming, O(blocks × turns)."""
    n, m = len(blocks), len(turns)
    # gains[b][j]: score of giving turn j to block b (None: another speaker); next_of[b][j]: the
    # first block after b that turn j's speaker can take
    gains = [[(_ASSIGN + (len(g & tg) / len(g) if g else 0.0)) if ts == s else None for ts, tg in turns]
             for s, g in blocks]
    next_of = [[next((nb for nb in range(b + 1, n) if blocks[nb][0] == ts), None) for ts, _ in turns]
               for b in range(-1, n)]

    def gain(b: int, j: int) -> float | None:
        return gains[b][j]

    # state (b, has): block b is the open one, has = it already holds a turn; b = -1 before block 0.
    neg = float("-inf")
    best: dict[tuple[int, bool], tuple[float, tuple]] = {(-1, True): (0.0, ())}
    for j in range(m):
        nxt: dict[tuple[int, bool], tuple[float, tuple]] = {}

        def offer(state: tuple[int, bool], score: float, path: tuple) -> None:
            if score > nxt.get(state, (neg, ()))[0]:
                nxt[state] = (score, path)

        for (b, has), (score, path) in best.items():
            offer((b, has), score, path)  # turn j inserted
            g = gain(b, j) if b >= 0 else None
            if g is not None:
                offer((b, True), score + g, path + ((b, j),))
            # open the next block this speaker can take; the ones jumped over stay empty at a heavy cost
            if has or b < 0:
                nb = next_of[b + 1][j]
                if nb is not None:
                    offer((nb, True), score + gains[nb][j] + _SKIP * (nb - b - 1), path + ((nb, j),))
        best = nxt
    final = max(
        ((score + _SKIP * (n - 1 - b) + (0 if has else _SKIP), path) for (b, has), (score, path) in best.items()),
        key=lambda x: x[0],
        default=(0.0, ()),
    )
    out: list[list[int]] = [[] for _ in range(n)]
    for b, j in final[1]:
        out[b].append(j)
    return out


def check_alignment(original: Dialogue, turns: tuple[Turn, ...]) -> None:
    """Every original turn (block of same-speaker turns) has a counterpart: a rewritten turn of the
    same speaker in order and, when its wording is recognisable, one that still carries it."""
    blocks = _blocks(original)
    grams = [bigrams(t.text) for t in turns]
    assigned = align([(s, bigrams(text)) for _, s, text in blocks], [(t.speaker, g) for t, g in zip(turns, grams)])
    for (number, speaker, text), mine in zip(blocks, assigned):
        where = f"original turn {number} ({speaker}: {clip(text.splitlines()[0])})"
        if not mine:
            raise Rejected("dropped_turn", f"{where} has no counterpart in the rewrite")
        block_grams = bigrams(text)
        if len(block_grams) < MIN_BIGRAMS:
            continue
        carried = set().union(*(grams[j] for j in mine))
        coverage = len(block_grams & carried) / len(block_grams)
        if coverage < MIN_COVERAGE:
            raise Rejected("dropped_turn", f"{where} is missing (its turns keep {coverage:.0%} of its wording)")
