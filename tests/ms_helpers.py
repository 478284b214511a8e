"""Tiny multi-stream TTS checkpoints and scripts shared by the moshi_ms / candidates tests.

The LM is J-Moshi's MS-TTS layout shrunk: 1 text + 8 + 8 codebooks (``n_q = dep_q = 16``, 17
delays as in moshi's configs), dim 32, 2 layers, random weights, saved as ``model.safetensors`` +
``config.json`` next to a random Mimi and a SentencePiece model trained here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.types import Segment, SpokenScript, Word
from jmoshi_augment.constants import SAMPLE_RATE
from runtime_helpers import TINY_LM, speech_like, train_tokenizer

MS_LM = dict(TINY_LM, n_q=16, dep_q=16, context=200)
MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
TOKENIZER_FILE = "tokenizer_spm_32k_3.model"


def save_lm(folder: Path, config: dict, seed: int = 0, extra: dict | None = None) -> None:
    """``config`` builds the LM; ``extra`` keys (tts_config, model_id, ...) go only into config.json."""
    import torch
    from moshi.models.loaders import get_moshi_lm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    lm = get_moshi_lm(filename=None, lm_kwargs=dict(config), device="cpu", dtype=torch.float32)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, **(extra or {})}), encoding="utf-8")


def make_ms_model_dir(folder: Path, *, dep_q: int = 16, shared: Path | None = None) -> Path:
    """A J-Moshi-layout folder; Mimi and tokenizer are made once in ``shared`` and linked."""
    import sentencepiece
    import torch
    from moshi.models.loaders import get_mimi
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shared = shared or folder.parent / "_shared"
    if not (shared / MIMI_FILE).exists():
        shared.mkdir(parents=True, exist_ok=True)
        train_tokenizer(shared).rename(shared / TOKENIZER_FILE)
        torch.manual_seed(0)
        mimi = get_mimi(filename=None, device="cpu")
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in mimi.state_dict().items()}, str(shared / MIMI_FILE))
    for name in (MIMI_FILE, TOKENIZER_FILE):
        if not (folder / name).exists():
            os.symlink(shared / name, folder / name)
    config = dict(MS_LM, dep_q=dep_q)
    config["text_card"] = sentencepiece.SentencePieceProcessor(model_file=str(shared / TOKENIZER_FILE)).vocab_size()
    save_lm(folder, config)
    return folder


def write_prompt(path: Path, seconds: float = 0.48, channels: int = 2) -> Path:
    import soundfile as sf

    data = np.stack([speech_like(seconds, seed=1 + c) for c in range(channels)], axis=1)
    sf.write(str(path), data if channels > 1 else data[:, 0], SAMPLE_RATE)
    return path


def _w(surface: str, morae: int) -> Word:
    return Word(surface, surface, morae)


def tiny_script(dialogue_id: str = "t-1") -> SpokenScript:
    """A: 今日はいい天気ですね。 (B backchannels うん after ね) B: そうそう。 A: 本を読んでいました。"""
    return SpokenScript(
        dialogue_id=dialogue_id,
        corpus="test",
        speakers=("A", "B"),
        segments=(
            Segment("A", (_w("今日", 2), _w("は", 1), _w("いい", 2), _w("天気", 3), _w("です", 2), _w("ね", 1)), "speech", 0, 0),
            Segment("B", (_w("そうそう", 4), _w("。", 0)), "speech", 1, 0),
            Segment("A", (_w("本", 2), _w("を", 1), _w("読ん", 2), _w("で", 1), _w("い", 1), _w("まし", 2), _w("た", 1)), "speech", 2, 0),
            Segment("B", (_w("うん", 2),), "backchannel", 0, anchor=(0, 3)),
        ),
    )


def copy_model_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
