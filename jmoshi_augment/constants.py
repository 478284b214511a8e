"""Numbers fixed by the models and formats we produce for, in one place.

These are not modelling choices (those live in the recipe with their sources): they are Mimi's
geometry, Moshi's text-stream ids and our audio headroom, shared by synthesis, tokens, writers,
verification and the runtime. The special ids are grouped in a frozen dataclass the way
``moshi.models.tts.TokenIds`` groups its own.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 24_000  # Mimi's sample rate; every rendered signal is converted to it
FRAME_RATE = 12.5  # Mimi frames per second (80 ms)
FRAME_SIZE = int(SAMPLE_RATE / FRAME_RATE)  # samples per Mimi frame (1920)
MIMI_CARDINALITY = 2048  # entries per Mimi codebook


@dataclass(frozen=True)
class TextTokenIds:
    """Moshi's text stream as J-Moshi was trained (rinna's SentencePiece: 0 <unk>, 3 [PAD])."""

    pad: int = 3  # a frame with no new text token
    end_of_padding: int = 0  # the frame just before a new word (Moshi's "new word" id)
    main_turn: int = 1  # multi-stream TTS: before a main-speaker turn in the merged text stream
    other_turn: int = 2  # multi-stream TTS: before an other-speaker turn


TEXT_IDS = TextTokenIds()

# Audio headroom. A TTS backend's output is scaled below TTS_PEAK_LIMIT (never clipped); the mixer
# then normalises loudness per channel and keeps peaks below the lower MIX_PEAK_LIMIT, leaving
# room for the other channel's overlap when a user downmixes.
TTS_PEAK_LIMIT = 0.99
MIX_PEAK_LIMIT = 0.97
