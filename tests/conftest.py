import os
from pathlib import Path

import pytest

# torch.compile makes tiny-model tests ~5x slower and is not what they check.
os.environ.setdefault("NO_TORCH_COMPILE", "1")
# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def sp_path(tmp_path_factory) -> Path:
    """The tiny character-level SentencePiece model of :func:`token_helpers.train_tiny_sp`, trained
    once per session (training is deterministic, so every test sees the same pieces) and shared by
    the token, shard and pipeline tests that need a file path."""
    from token_helpers import train_tiny_sp

    path = tmp_path_factory.mktemp("sp") / "tiny.model"
    train_tiny_sp(path)
    return path


@pytest.fixture(scope="session")
def sp(sp_path):
    """:func:`sp_path` loaded: the processor the tests encode and decode with."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(sp_path))
