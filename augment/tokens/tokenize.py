"""Rendered stereo dialogues → Mimi codes and text tokens on the 12.5 Hz grid.

Mimi is causal (causal convolutions, causal encoder transformer with a 250-frame window), so the
frames of a signal do not depend on what follows it: several channels, zero-padded to a common
length, can share one forward pass and each result is trimmed to its own frame count,
``T = ceil(num_samples / frame_size)``, the same T that ``mimi.encode`` gives for the signal alone
and that nu-dialogue/moshi-finetune's ``tools/tokenize_audio.py`` asserts. Channels are sorted by
length before batching so that padding stays small.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np

from jmoshi_augment.augment.tokens.text_tokens import place_text_tokens
from jmoshi_augment.augment.types import FRAME_RATE, MAIN, OTHER, SAMPLE_RATE, RenderedDialogue, TokenizedDialogue
from jmoshi_augment.checkpoints import resolve_device
from jmoshi_augment.constants import FRAME_SIZE
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece
    import torch
    from moshi.models.compression import MimiModel

    from jmoshi_augment.recipe import TokenizeConfig

logger = logging.getLogger(__name__)


def num_frames(num_samples: int, frame_size: int = FRAME_SIZE) -> int:
    """Mimi frames for a signal of ``num_samples``: it pads the last partial frame with zeros."""
    return -(-num_samples // frame_size)


class MimiEncoder:
    """Batched Mimi encoding of many dialogues' channels.

    ``encode`` takes stereo float32 signals ``[2, N]`` at 24 kHz and returns int16 codes
    ``[2, n_q, T]`` per dialogue. Up to ``batch_size`` channels (from any dialogues) go through one
    forward pass; ``max_batch_seconds`` additionally caps the padded audio per pass, which bounds
    memory (the first encoder layers keep 64 channels at 24 kHz: ~6 MB per second of audio).
    """

    def __init__(
        self,
        mimi: "MimiModel",
        n_q: int = 8,
        batch_size: int = 8,
        device: str = "auto",
        *,
        max_batch_seconds: float = 1200.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 1 <= n_q <= mimi.total_codebooks:
            raise JmoshiError(f"n_q={n_q} but this Mimi has {mimi.total_codebooks} codebooks", key="tokenize.n_q")
        if mimi.sample_rate != SAMPLE_RATE or mimi.frame_rate != FRAME_RATE:
            raise JmoshiError(f"expected a {SAMPLE_RATE} Hz / {FRAME_RATE} Hz Mimi, got {mimi.sample_rate} / {mimi.frame_rate}")
        self.device = resolve_device(device, key="tokenize.device")
        self.mimi = mimi.to(self.device).eval()
        self.mimi.set_num_codebooks(n_q)
        self.n_q = n_q
        self.batch_size = batch_size
        self.frame_size = mimi.frame_size
        self.max_batch_samples = max(self.frame_size, int(max_batch_seconds * SAMPLE_RATE))

    @property
    def cardinality(self) -> int:
        return self.mimi.cardinality

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Channel indices grouped into forward passes, longest first (sorted: little padding)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        padded = 0  # padded length of the open batch: its first (longest) member's
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and padded * (len(batches[-1]) + 1) <= self.max_batch_samples:
                batches[-1].append(i)
            else:
                batches.append([i])
                padded = num_frames(lengths[i], self.frame_size) * self.frame_size
        return batches

    def _encode_batch(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        frames = [num_frames(len(s), self.frame_size) for s in signals]
        batch = torch.zeros(len(signals), 1, max(frames) * self.frame_size, dtype=torch.float32)
        for row, s in enumerate(signals):
            batch[row, 0, : len(s)] = torch.from_numpy(s)
        codes: torch.Tensor = self.mimi.encode(batch.to(self.device))  # [B, n_q, T_max]
        codes = codes.to("cpu", torch.int16)
        return [codes[row, :, :t].numpy() for row, t in enumerate(frames)]

    def encode(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Stereo float32 ``[2, N]`` signals at 24 kHz → int16 codes ``[2, n_q, ceil(N / 1920)]``."""
        import torch

        channels: list[np.ndarray] = []
        for k, audio in enumerate(audios):
            if audio.ndim != 2 or audio.shape[0] != 2 or audio.shape[1] == 0:
                raise JmoshiError(f"audio {k}: expected a non-empty stereo signal [2, N], got shape {tuple(audio.shape)}")
            channels.extend(np.ascontiguousarray(audio, dtype=np.float32))
        out: list[np.ndarray | None] = [None] * len(channels)
        with torch.inference_mode():
            for group in self._batches([len(c) for c in channels]):
                for i, codes in zip(group, self._encode_batch([channels[i] for i in group])):
                    out[i] = codes
        return [np.stack([out[2 * k], out[2 * k + 1]]) for k in range(len(audios))]  # type: ignore[list-item]


def tokenize_dialogues(
    rendered: Sequence[RenderedDialogue],
    encoder: MimiEncoder,
    sp: "sentencepiece.SentencePieceProcessor",
    cfg: "TokenizeConfig",
) -> list[TokenizedDialogue]:
    """Mimi codes for both channels of every dialogue (batched) plus each channel's text stream.

    ``meta`` records what a reader needs without the audio: ids, corpus, speaker map, which
    channel holds the corpus's first speaker (``a_channel``, the trainer's speaker A), duration,
    sample count, ``n_q`` and the dropped tokens (total, and per channel).
    """
    all_codes = encoder.encode([r.audio for r in rendered])
    out = []
    for r, codes in zip(rendered, all_codes):
        t = codes.shape[-1]
        text = np.empty((2, t), dtype=np.int32)
        dropped = []
        for ch in (MAIN, OTHER):
            words = [(w.word, w.start, w.end) for w in r.channel_words(ch)]
            try:
                text[ch], n = place_text_tokens(
                    words, sp, t, pad_id=cfg.text_padding_id, eop_id=cfg.end_of_text_padding_id
                )
            except JmoshiError as e:
                raise JmoshiError(e.message, key=r.id) from None
            dropped.append(n)
        if any(dropped):
            logger.warning("%s: %s text tokens dropped (main, other): no free frame", r.id, dropped)
        a = r.a_channel
        speakers = [r.speaker_map.get("main" if a == MAIN else "other"), r.speaker_map.get("other" if a == MAIN else "main")]
        meta = {
            "id": r.id,
            "dialogue_id": r.dialogue_id,
            "corpus": r.corpus,
            "speaker_map": dict(r.speaker_map),
            "a_channel": a,
            "speakers": speakers,
            "duration": r.duration,
            "num_samples": int(r.audio.shape[-1]),
            "n_q": encoder.n_q,
            "frame_rate": FRAME_RATE,
            "text_padding_id": cfg.text_padding_id,
            "end_of_text_padding_id": cfg.end_of_text_padding_id,
            "dropped_tokens": sum(dropped),
            "dropped_tokens_per_channel": dropped,
            **({"acoustics_view_of": r.meta["acoustics"]["view_of"]} if "acoustics" in r.meta else {}),
        }
        out.append(TokenizedDialogue(id=r.id, codes=codes, text=text, duration=r.duration, meta=meta))
    return out


def expected_frames(duration: float) -> int:
    """Frames Mimi gives for ``duration`` seconds (``duration`` as stored: samples / 24 kHz)."""
    return num_frames(round(duration * SAMPLE_RATE))

