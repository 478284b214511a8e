"""Batch-invariant seeded sampling: each row of a batch draws its noise from a counter-based hash
of (its seed, its step, the draw index), so a row samples exactly what it would sample alone.
Shared by the multi-stream TTS decoder (one row per dialogue and seed) and the chat runtime (one
row per session); moshi's own sampling draws from the global torch generator instead, which ties
a row's output to its batch neighbours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

M32 = 0xFFFFFFFF


def _mul32(a: "torch.Tensor", b: int) -> "torch.Tensor":
    """``a * b mod 2**32`` for int64 ``a < 2**32`` without int64 overflow (CPU and CUDA agree)."""
    lo, hi = b & 0xFFFF, b >> 16
    return (a * lo + ((a * hi) & 0xFFFF) * 65536) & M32


def _mix32(x: "torch.Tensor") -> "torch.Tensor":
    """Wellons' lowbias32 integer hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_uniform(seeds: "torch.Tensor", steps: "torch.Tensor", n: int) -> "torch.Tensor":
    """float32 ``[B, n]`` in (0, 1): column ``j`` of row ``b`` is a pure function of
    (``seeds[b]``, ``steps[b]``, ``j``), whatever else is in the batch."""
    import torch

    h = _mix32((seeds & M32) ^ 0x9E3779B9)
    h = _mix32(h ^ ((seeds >> 32) & M32))
    h = _mix32(h ^ (steps & M32))[:, None]
    h = _mix32(h ^ torch.arange(n, device=seeds.device, dtype=torch.long)[None, :])
    return ((h >> 8).float() + 0.5) / float(1 << 24)


def sample(logits: "torch.Tensor", temp: float, top_k: int, uniform: "torch.Tensor") -> "torch.Tensor":
    """Top-k sampling of ``logits [B, V]`` driven by ``uniform [B, >= k]`` (an exponential race,
    as moshi's ``multinomial`` does); ``temp <= 0`` is greedy. Returns int64 ``[B]``."""
    import torch

    if temp <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temp, dim=-1)
    k = probs.shape[-1] if top_k <= 0 else min(top_k, probs.shape[-1])
    p, idx = probs.topk(k, dim=-1, sorted=True)
    race = p / -torch.log(uniform[:, :k])
    return idx.gather(-1, race.argmax(dim=-1, keepdim=True))[:, 0]
