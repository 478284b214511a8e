"""Text tokens on Mimi's 12.5 Hz grid, placed the way J-Moshi was trained.

This reproduces the text placement of nu-dialogue/moshi-finetune (``tools/tokenize_text.py`` run
with ``--no_whitespace_before_word --text_padding_id 3 --end_of_text_padding_id 0``, then
``tools/prepare_dataset.py``), so shards made here train J-Moshi the way it was trained:

1. one speaker's words, sorted by start time (stable), joined with no separator (Japanese has no
   spaces; we never insert ``▁``);
2. the joined text is split into SentencePiece pieces; the dummy-prefix ``▁`` that SentencePiece
   puts before the first piece is not a token, and byte-fallback pieces are removed (see below);
3. each word's time span is split evenly over its characters, and a token starts at the start
   time of its first character;
4. a token goes to frame ``int(start // (1 / frame_rate))``, or the next frame that still holds
   padding (a frame holding end-of-padding counts as taken, as in the trainer); tokens that find
   no frame are dropped;
5. end-of-padding is written into the frame just before each token when that frame is padding;
6. the stream is first ``int((last_token_end + 1 s) * frame_rate)`` frames long (the trainer's
   length, which decides what is dropped), then cut or padded to the audio's frame count.

Two deliberate differences, both where the trainer cannot produce output at all:

- Characters are mapped to pieces through SentencePiece's offset mapping rather than by counting
  piece lengths. The two agree whenever normalisation keeps the text's length (all normal
  Japanese text); where NFKC changes it (half-width kana, ``…``) the trainer's count fails its own
  assertion, while offsets still give every token its own characters' time.
- Byte-fallback pieces are removed. The trainer's ``encode_as_pieces_wo_byte_fallback`` meant to
  replace a run of byte pieces by the decoded character, whose id is ``<unk>`` (0 in rinna's model,
  the same id as end-of-padding), but its text cursor is one character off after the dummy-prefix
  ``▁`` and it raises ``ValueError`` on any text with a byte-fallback character; so no J-Moshi data
  holds such tokens, and we drop them rather than write a spurious end-of-padding.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np

from jmoshi_augment.augment.types import FRAME_RATE
from jmoshi_augment.constants import TEXT_IDS
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece

logger = logging.getLogger(__name__)

# Moshi's text stream conventions (moshi.models.tts.TokenIds, J-Moshi's trainer defaults).
SP_SPACE = "\u2581"  # "▁", SentencePiece's whitespace marker


def piece_spans(sp: "sentencepiece.SentencePieceProcessor", text: str) -> list[tuple[int, int, int]]:
    """``(piece id, first char, end char)`` for every piece of ``text`` that becomes a token.

    Character indices refer to ``text`` as given (before SentencePiece's normalisation). The
    dummy-prefix ``▁`` and byte-fallback pieces are left out.
    """
    if not text:
        return []
    encode = getattr(sp, "encode_as_offset_mapping", None)
    if encode is None:  # sentencepiece < 0.2.2
        raise JmoshiError("text tokens need sentencepiece>=0.2.2 (for its offset mapping): pip install -U sentencepiece")
    enc = encode(text)
    spans = []
    last = len(text) - 1
    for piece_id, (begin, end) in zip(enc["ids"], enc["offsets"]):
        if sp.is_byte(piece_id):
            continue
        if begin == end and sp.id_to_piece(piece_id) == SP_SPACE:
            continue  # the dummy prefix: covers no character of the input
        spans.append((piece_id, min(begin, last), min(max(end - 1, begin), last)))
    return spans


def place_text_tokens(
    words: Sequence[tuple[str, float, float]],
    sp: "sentencepiece.SentencePieceProcessor",
    num_frames: int,
    *,
    pad_id: int = TEXT_IDS.pad,
    eop_id: int = TEXT_IDS.end_of_padding,
    frame_rate: float = FRAME_RATE,
) -> tuple[np.ndarray, int]:
    """One speaker's ``(word, start_s, end_s)`` list → ``(int32 [num_frames] text stream, dropped)``.

    ``dropped`` counts tokens missing from the result: those that found no free frame within the
    trainer's stream length plus those cut off at ``num_frames`` (the audio's length).
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    for word, start, end in words:
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end < start:
            raise JmoshiError(f"word {word!r} has a bad time span [{start}, {end}] (need 0 <= start <= end)")
    # Stable sort by start, as the trainer's sorted(); empty words carry no character.
    ordered = sorted((w for w in words if w[0]), key=lambda w: w[1])
    text = "".join(w for w, _, _ in ordered)
    char_start: list[float] = []
    char_end: list[float] = []
    for word, start, end in ordered:
        step = (end - start) / len(word)
        char_start.extend(start + i * step for i in range(len(word)))
        char_end.extend(start + (i + 1) * step for i in range(len(word)))

    spans = piece_spans(sp, text)
    stream = np.full(num_frames, pad_id, dtype=np.int32)
    if not spans:
        return stream, 0
    seconds_per_frame = 1 / frame_rate
    length = int((char_end[spans[-1][2]] + 1) * frame_rate)  # the trainer's own stream length
    ids = [pad_id] * length
    placed: list[int] = []  # frames that received a token
    for piece_id, first, _ in spans:
        frame = int(char_start[first] // seconds_per_frame)
        while frame < length and ids[frame] != pad_id:
            frame += 1
        if frame >= length:
            break  # every later token starts no earlier, so none of them finds a frame either
        ids[frame] = piece_id
        placed.append(frame)
        if frame > 0 and ids[frame - 1] == pad_id:
            ids[frame - 1] = eop_id
    keep = min(length, num_frames)
    stream[:keep] = ids[:keep]
    dropped = len(spans) - sum(1 for f in placed if f < keep)
    if dropped:
        logger.debug("%d of %d text tokens dropped (stream of %d frames)", dropped, len(spans), num_frames)
    return stream, dropped


def display_piece(sp: "sentencepiece.SentencePieceProcessor", token_id: int) -> str:
    """A piece as a person reads it: Japanese shows no ``▁`` word-boundary marks."""
    return sp.id_to_piece(int(token_id)).replace(SP_SPACE, "")
