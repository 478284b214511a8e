"""Tiny random models saved in the J-Moshi file layout, shared by the runtime tests.

The LM is built from the real ``moshi`` classes with the smallest shape that still streams through
a real (random) Mimi: audio ``card`` = Mimi's 2048 codes, ``text_card`` = the SentencePiece size.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from jmoshi_augment.constants import FRAME_SIZE, MIMI_CARDINALITY, SAMPLE_RATE, TEXT_IDS
from token_helpers import train_sp

TINY_LM = {
    "dim": 32,
    "text_card": 256,
    "existing_text_padding_id": TEXT_IDS.pad,
    "n_q": 16,
    "dep_q": 8,
    "card": MIMI_CARDINALITY,
    "num_heads": 2,
    "num_layers": 2,
    "hidden_scale": 2,
    "causal": True,
    "context": 50,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 16,
    "depformer_num_heads": 2,
    "depformer_num_layers": 1,
    "depformer_multi_linear": True,
    "depformer_context": 8,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}

SENTENCES = [
    "こんにちは、今日はいい天気ですね。",
    "えっと、明日は映画を見に行こうと思ってるんです。",
    "うん、そうそう、なるほどね。",
    "引っ越ししたんですよね？",
    "へー、ほんとですか。それは楽しそうですね。",
    "まあ、あの、ちょっと考えてみます。",
    "駅の近くに新しいカフェができたらしいよ。",
    "週末は家でゆっくり本を読んでいました。",
]


def train_tokenizer(folder: Path, vocab_size: int = 256) -> Path:
    """A BPE model of :data:`SENTENCES` written to ``folder/spm.model``."""
    return train_sp(folder / "spm.model", SENTENCES * 4, model_type="bpe", vocab_size=vocab_size)


def make_tiny_model_dir(folder: Path, *, seed: int = 0) -> Path:
    """Write model.safetensors, the Mimi file, the tokenizer and config.json into ``folder``."""
    import torch
    from moshi.models.loaders import get_mimi, get_moshi_lm
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(folder)
    tok.rename(folder / "tokenizer_spm_32k_3.model")
    (folder / "spm.vocab").unlink(missing_ok=True)
    import sentencepiece

    config = dict(TINY_LM)
    config["text_card"] = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer_spm_32k_3.model")).vocab_size()
    torch.manual_seed(seed)
    lm = get_moshi_lm(filename=None, lm_kwargs=dict(config), device="cpu", dtype=torch.float32)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, str(folder / "model.safetensors"))
    mimi = get_mimi(filename=None, device="cpu")
    # An untrained Mimi has all-zero codebooks, so every input encodes to code 0 and the LM's input
    # would not depend on the audio. Random codebooks make the codes follow the input.
    with torch.no_grad():
        for name, buf in mimi.named_buffers():
            if name.endswith("_codebook.embedding_sum"):
                buf.copy_(torch.randn_like(buf) * 0.02)
            elif name.endswith("_codebook.cluster_usage"):
                buf.fill_(1.0)
            elif name.endswith("_codebook._initialized"):
                buf.fill_(1.0)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in mimi.state_dict().items()},
              str(folder / "tokenizer-e351c8d8-checkpoint125.safetensors"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-ish signal (harmonics with a syllable envelope): real frames, not zeros."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 220) + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t)) * (np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6)) > -0.3)
    x = 0.2 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


_CACHE: dict[str, object] = {}


def tiny_model_dir() -> Path:
    """One tiny model folder per test process (building Mimi's random weights takes seconds)."""
    import tempfile

    if "dir" not in _CACHE:
        _CACHE["tmp"] = tempfile.TemporaryDirectory(prefix="jmoshi-tiny-")
        _CACHE["dir"] = make_tiny_model_dir(Path(_CACHE["tmp"].name) / "tiny-jmoshi")
    return _CACHE["dir"]  # type: ignore[return-value]


def tiny_model():
    """The tiny model loaded through the real path (``runtime.models.load_model``), cached."""
    import torch

    from jmoshi_augment.runtime.models import load_model

    if "model" not in _CACHE:
        torch.set_num_threads(1)  # the test machine's cores are shared; 2 threads thrash under load
        _CACHE["model"] = load_model(tiny_model_dir(), device="cpu")
    return _CACHE["model"]


def ogg_pages(pcm: np.ndarray, frame: int = FRAME_SIZE, sample_rate: int = SAMPLE_RATE) -> list[bytes]:
    """Encode audio the way a client does: one continuous Ogg-Opus stream, one chunk per frame."""
    import sphn

    writer = sphn.OpusStreamWriter(sample_rate)
    pages = []
    for i in range(0, pcm.size - frame + 1, frame):
        data = writer.append_pcm(pcm[i : i + frame])
        if data:
            pages.append(data)
    return pages


@contextlib.asynccontextmanager
async def running_server(options, slots: int = 2, ssl_context=None, **engine_kwargs):
    """A real server on 127.0.0.1 (any free port) over the tiny model, https with ``ssl_context``;
    yields ``(client session, base url, engine, ChatServer)``."""
    import aiohttp
    from aiohttp import web

    from jmoshi_augment.runtime.engine import Engine, SamplingOptions
    from jmoshi_augment.runtime.server import ChatServer

    engine = Engine(tiny_model(), slots, SamplingOptions(seed=1), **engine_kwargs).start(warmup=False)
    server = ChatServer(engine, options)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        async with aiohttp.ClientSession() as http:
            yield http, f"{scheme}://127.0.0.1:{port}", engine, server
    finally:
        await runner.cleanup()
        engine.stop()


async def talk(ws, pcm: np.ndarray, *, expect_frames: int, timeout: float = 120) -> tuple[np.ndarray, str]:
    """Send audio as Ogg-Opus pages; collect the decoded reply until ``expect_frames`` frames came."""
    import asyncio

    import aiohttp
    import sphn

    from jmoshi_augment.runtime import protocol
    from jmoshi_augment.runtime.protocol import MessageKind

    reader = sphn.OpusStreamReader(SAMPLE_RATE)
    for page in ogg_pages(pcm):
        await ws.send_bytes(protocol.audio(page))
    got, text = [], []
    async with asyncio.timeout(timeout):
        while sum(x.size for x in got) < expect_frames * FRAME_SIZE:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            m = protocol.Message.decode(msg.data)
            if m.kind == MessageKind.AUDIO:
                got.append(reader.append_bytes(m.payload))
            elif m.kind == MessageKind.TEXT:
                text.append(m.payload.decode("utf-8"))
    return np.concatenate(got), "".join(text)


async def handshake(ws) -> None:
    import asyncio

    import aiohttp

    msg = await asyncio.wait_for(ws.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x00"
