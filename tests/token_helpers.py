"""Shared by the token/shard tests: a tiny SentencePiece model trained at test time, a Mimi whose
random codebooks give varied codes, and rendered dialogues built by hand."""

from __future__ import annotations

import io
import types
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE, AlignedWord, RenderedDialogue

SENTENCES = [
    "こんにちは、今日はいい天気ですね。",
    "えっと、明日は雨が降るそうですよ。",
    "うん、そうなんだ。ありがとう。",
    "あ、はい！先週の週末に引っ越したばかりなんです。",
    "なるほどね、それはいいですね。ほんと？へー、すごい。",
    "私は東京に住んでいます。週末は映画を見に行きました。",
]
# Whole pieces whatever the training data: the hand-computed streams rely on them.
SYMBOLS = ["こんにちは", "ありがとう", "天気"]


def train_sp(path: Path, sentences: list[str], *, model_type: str, vocab_size: int, **options) -> Path:
    """Train a SentencePiece model on ``sentences`` in memory and write it to ``path``: rinna's
    special ids (0 <unk>, 1 <s>, 2 </s>, 3 pad), every character covered, ``vocab_size`` an upper
    bound (tiny corpora have fewer pieces), one thread so the pieces are the same on every run;
    ``options`` go to the trainer as they are (``byte_fallback``, ``user_defined_symbols``...)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type=model_type, vocab_size=vocab_size,
        hard_vocab_limit=False, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        num_threads=1, minloglevel=2, **options,
    )
    path.write_bytes(model.getvalue())
    return path


def train_tiny_sp(path: Path):
    """A character-level model with rinna's special ids (pad piece ``[PAD]``), byte fallback on,
    and the :data:`SYMBOLS` as single pieces: every other character is its own piece, so expected
    text streams can be worked out by hand."""
    import sentencepiece as spm

    train_sp(path, SENTENCES * 3, model_type="char", vocab_size=400, byte_fallback=True,
             user_defined_symbols=SYMBOLS, pad_piece="[PAD]")
    return spm.SentencePieceProcessor(model_file=str(path))


def varied_mimi(seed: int = 0):
    """A random-weight Mimi whose codebooks are spread over its own latents: a fresh one has all
    centroids at zero and returns code 0 everywhere, which would make code comparisons vacuous."""
    import torch
    from moshi.models.loaders import get_mimi
    from moshi.quantization.core_vq import EuclideanCodebook

    mimi = get_mimi(filename=None, device="cpu", num_codebooks=8).eval()
    g = torch.Generator().manual_seed(seed)
    books = [m for m in mimi.modules() if isinstance(m, EuclideanCodebook)]
    original = EuclideanCodebook._quantize

    def init_then_quantize(self, x):  # centroids = this layer's inputs + noise of their spread
        if not getattr(self, "_seeded", False):
            idx = torch.randint(0, x.shape[0], (self.codebook_size,), generator=g)
            self.embedding_sum.copy_(x[idx] + x.std(dim=0) * torch.randn(x[idx].shape, generator=g))
            self.cluster_usage.fill_(1.0)
            self._embedding = None
            self._seeded = True
        return original(self, x)

    for b in books:
        b._quantize = types.MethodType(init_then_quantize, b)
    mimi.set_num_codebooks(mimi.total_codebooks)
    audio = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 1, 2 * SAMPLE_RATE)).astype(np.float32) * 0.3)
    with torch.no_grad():
        mimi.encode(audio)
    for b in books:
        del b._quantize
    mimi.set_num_codebooks(8)
    return mimi


def rendered(
    rid: str = "corp-1-mainA",
    *,
    seconds: float = 1.5,
    words: list[tuple[str, float, float, int]] | None = None,
    speaker_map: dict[str, str] | None = None,
    speakers: tuple[str, ...] = ("A", "B"),
    seed: int = 0,
) -> RenderedDialogue:
    """Stereo audio with distinct content per channel, and the given (word, start, end, channel)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    audio = np.stack([
        0.3 * np.sin(2 * np.pi * 220 * t) * rng.random(n),
        0.2 * rng.standard_normal(n) * (t > seconds / 2),
    ]).astype(np.float32)
    if words is None:
        words = [("こんにちは", 0.1, 0.5, MAIN), ("はい", 0.6, 0.8, OTHER), ("天気", 0.9, 1.2, MAIN)]
    aligned = tuple(sorted((AlignedWord(w, s, e, c) for w, s, e, c in words), key=lambda w: (w.start, w.channel)))
    return RenderedDialogue(
        id=rid, dialogue_id=rid.rsplit("-main", 1)[0], corpus="corp", audio=audio, words=aligned,
        speaker_map=speaker_map or {"main": "A", "other": "B"}, speakers=speakers,
        source_turns=(("A", "こんにちは"), ("B", "はい")),
    )
