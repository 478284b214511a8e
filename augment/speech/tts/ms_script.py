"""J-Moshi's multi-stream TTS, the script side: our spoken script written into the one merged text
stream the model was trained on (token 1 before a main-speaker run, 2 before an other-speaker run,
then the run's SentencePiece pieces), and word timings read back from the frames where each
word's first piece was forced (docs/method.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jmoshi_augment.augment.text.punctuation import PROSODIC
from jmoshi_augment.augment.types import FRAME_RATE, MAIN, OTHER, AlignedWord, Seconds, SpokenScript
from jmoshi_augment.constants import TEXT_IDS
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece

logger = logging.getLogger(__name__)

FRAME = 1 / FRAME_RATE
SPEAKER_TOKEN = {MAIN: TEXT_IDS.main_turn, OTHER: TEXT_IDS.other_turn}  # J-Moshi MS-TTS: main/other_speaker_bos_id
MORAE_PER_SECOND = 8.0  # everyday Japanese conversation (CEJC); bounds a word's estimated end
SENTENCE_END = tuple(PROSODIC + "!?")  # ASCII marks too: a rewrite may leave them


# --------------------------------------------------------------------------- script → text stream


@dataclass(frozen=True)
class ScriptWord:
    segment: int  # index into SpokenScript.segments
    index: int  # word index inside the segment
    surface: str
    channel: int
    morae: int
    token: int  # index into ScriptTokens.ids of the first piece covering or following the word; -1: none
    run: int  # which speaker run (stretch of one speaker's words in the merged stream) it is in


@dataclass(frozen=True)
class ScriptTokens:
    """The merged text stream to force, and which script word each piece belongs to."""

    ids: tuple[int, ...]
    words: tuple[ScriptWord, ...]  # in spoken order
    dropped: int = 0  # pieces dropped: unknown (id collides with end-of-padding 0) or byte fallback

    def __len__(self) -> int:
        return len(self.ids)


def speaker_runs(script: SpokenScript, main_speaker: str, backchannels: str = "inline") -> list[tuple[int, list[tuple[int, int]]]]:
    """``[(channel, [(segment, word), ...]), ...]`` in spoken order. With ``inline``, each
    backchannel becomes a short turn of its speaker right after its anchor word in the partner's
    turn (how J-Moshi-ext's rewritten scripts hold 「そうそう！」), or after that turn's last word
    when the anchor is missing."""
    if main_speaker not in script.speakers:
        raise JmoshiError(f"main speaker {main_speaker!r} is not one of the script's speakers {list(script.speakers)}",
                          key=script.dialogue_id)
    channel = {s: (MAIN if s == main_speaker else OTHER) for s in script.speakers}
    at_anchor: dict[tuple[int, int, int], list[int]] = {}
    after_turn: dict[int, list[int]] = {}
    speech = [(i, s) for i, s in enumerate(script.segments) if s.kind == "speech" and s.words]
    known = {(s.turn, s.sentence, w) for _, s in speech for w in range(len(s.words))}
    if backchannels == "inline":
        for i, s in enumerate(script.segments):
            if s.kind != "backchannel" or not s.words:
                continue
            if s.anchor is not None and (s.turn, *s.anchor) in known:
                at_anchor.setdefault((s.turn, *s.anchor), []).append(i)
            else:
                after_turn.setdefault(s.turn, []).append(i)
    last_of_turn = {s.turn: i for i, s in speech}

    runs: list[tuple[int, list[tuple[int, int]]]] = []

    def add(ch: int, seg: int, w: int) -> None:
        if not runs or runs[-1][0] != ch:
            runs.append((ch, []))
        runs[-1][1].append((seg, w))

    for i, seg in speech:
        for w in range(len(seg.words)):
            add(channel[seg.speaker], i, w)
            for b in at_anchor.get((seg.turn, seg.sentence, w), []):
                for bw in range(len(script.segments[b].words)):
                    add(channel[script.segments[b].speaker], b, bw)
        if last_of_turn[seg.turn] == i:
            for b in after_turn.get(seg.turn, []):
                for bw in range(len(script.segments[b].words)):
                    add(channel[script.segments[b].speaker], b, bw)
    return runs


def build_script_tokens(script: SpokenScript, main_speaker: str, sp: "sentencepiece.SentencePieceProcessor", *,
                        backchannels: str = "inline", end_punct: bool = True) -> ScriptTokens:
    """The merged stream J-Moshi's MS-TTS was trained on: a speaker token at each change of
    speaker, then that run's text as SentencePiece pieces, no spaces, leading ``▁`` removed,
    「。」 appended to a run that does not end in punctuation (its inference normaliser does this)."""
    ids: list[int] = []
    words: list[ScriptWord] = []
    dropped = 0
    unk = sp.unk_id()
    for r, (ch, members) in enumerate(speaker_runs(script, main_speaker, backchannels)):
        ids.append(SPEAKER_TOKEN[ch])
        surfaces = [script.segments[s].words[w].spoken for s, w in members]  # the script's readings
        text = "".join(surfaces)
        if end_punct and not text.endswith(SENTENCE_END):
            text += "。"
        starts = np.cumsum([0] + [len(x.encode("utf-8")) for x in surfaces])[:-1]
        piece_ends: list[int] = []  # byte end of each kept piece, parallel to the ids added below
        first_id = len(ids)
        for p in sp.encode(text, out_type="proto").pieces:
            pid, piece = p.id, p.piece
            if pid == unk or sp.is_byte(pid) or sp.is_control(pid):
                dropped += 1
                continue
            if piece.startswith("▁"):
                bare = piece[1:]
                if not bare:
                    continue  # the dummy-prefix space on its own
                alt = sp.piece_to_id(bare)
                if alt != unk:
                    pid = alt
            ids.append(pid)
            piece_ends.append(p.end)
        for (s, w), b in zip(members, starts):
            k = next((j for j, e in enumerate(piece_ends) if e > b), None)
            word = script.segments[s].words[w]
            words.append(ScriptWord(s, w, word.surface, ch, word.morae, -1 if k is None else first_id + k, r))
    if dropped:
        logger.warning("%s: %d SentencePiece pieces dropped (unknown or byte fallback)", script.dialogue_id, dropped)
    return ScriptTokens(tuple(ids), tuple(words), dropped)


def word_timings(tokens: ScriptTokens, consumed_frames: np.ndarray, duration: Seconds) -> list[AlignedWord]:
    """Starts are frame-exact (the frame where the word's first piece was forced); an end is the
    next word's start in the same run, or start + the longer of its pieces' frames and its morae
    at 8 morae/s, never past the next start or the audio."""
    out: list[AlignedWord] = []
    starts = []
    last = 0.0
    for w in tokens.words:
        f = int(consumed_frames[w.token]) if w.token >= 0 else -1
        t = f * FRAME if f >= 0 else last
        t = max(t, last)
        starts.append(min(t, duration))
        last = starts[-1]
    for i, w in enumerate(tokens.words):
        start = starts[i]
        nxt = next((starts[j] for j in range(i + 1, len(tokens.words)) if tokens.words[j].run == w.run
                    and starts[j] > start), None)
        pieces = 1
        if w.token >= 0:
            later = [x.token for x in tokens.words[i + 1:] if x.token > w.token]
            pieces = (min(later) if later else len(tokens.ids)) - w.token
        end = start + max(pieces * FRAME, w.morae / MORAE_PER_SECOND)
        if nxt is not None:
            end = min(end, nxt)
        out.append(AlignedWord(w.surface, start, min(end, duration), w.channel))
    return sorted(out, key=lambda a: (a.start, a.channel))
