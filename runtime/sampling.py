"""Sampling options and a per-session random stream for ``LMGen``.

``moshi.models.lm.LMGen`` samples through ``moshi.utils.sampling.sample_token``, which draws its
noise for the whole batch from the global torch generator: a session's tokens then depend on which
other sessions share its batch and on their order. :class:`SlotSampler` replaces that noise with a
counter-based hash of (session seed, the session's own step, stream) —
:mod:`jmoshi_augment.sampling`, shared with the multi-stream TTS decoder — so a session sampled in a batch gets exactly what it gets on
its own with the same seed. The hash is pure tensor arithmetic on fixed buffers (no host sync, no
generator state), so it also runs inside moshi's CUDA graphs.

How it is plugged in: ``lm.py`` imported ``sample_token`` by name, so :func:`install` swaps that
module attribute for a dispatcher that calls the original unless a :class:`SlotSampler` is active
on the current thread (only inside ``BatchStepper.step``). Everything else that uses ``LMGen`` in
the process keeps moshi's behaviour.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import torch

STREAMS_PER_STEP = 64  # > 1 text + dep_q audio draws per step; keeps (step, stream) counters distinct


@dataclass(frozen=True)
class SamplingOptions:
    """How ``LMGen`` samples; a temperature of 0 means greedy decoding for that stream."""

    temp: float = 0.8  # audio-token temperature (moshi's default)
    temp_text: float = 0.7  # text-token temperature (moshi's default)
    top_k: int = 250  # audio top-k (moshi's default)
    top_k_text: int = 25  # text top-k (moshi's default)
    seed: int | None = 42424242  # base of the per-session seeds (moshi.server's value); None: random

    def __post_init__(self) -> None:
        for name in ("temp", "temp_text"):
            if getattr(self, name) < 0:
                raise JmoshiError(f"{name} must be >= 0 (0 = greedy), got {getattr(self, name)}", key=name)
        for name in ("top_k", "top_k_text"):
            if getattr(self, name) < 1:
                raise JmoshiError(f"{name} must be >= 1, got {getattr(self, name)}", key=name)
        if (self.temp == 0) != (self.temp_text == 0):
            raise JmoshiError("temp and temp_text must both be 0 (greedy) or both > 0: moshi's LMGen "
                              "has one switch for sampling", key="temp")

    @classmethod
    def resolve(cls, lm_gen_config: Mapping[str, Any] | None, **flags: Any) -> "SamplingOptions":
        """moshi's defaults ← the checkpoint's ``lm_gen_config`` ← flags the user gave (not None).

        Keys of ``lm_gen_config`` that are not sampling options (e.g. ``cfg_coef``) are ignored,
        as moshi.server ignores what its ``LMGen`` call does not take."""
        known = {f.name for f in fields(cls)}
        base = cls()
        values = {k: v for k, v in dict(lm_gen_config or {}).items() if k in known and k != "seed"}
        try:
            merged = replace(base, **values)
        except (TypeError, ValueError) as e:
            raise JmoshiError(f"invalid lm_gen_config in the checkpoint: {e}", key="lm_gen_config") from None
        unknown = set(flags) - known
        if unknown:
            raise TypeError(f"unknown sampling options {sorted(unknown)}")
        return replace(merged, **{k: v for k, v in flags.items() if v is not None})


class SlotSampler:
    """Top-k sampling whose noise for row ``b`` depends only on ``seeds[b]``, ``steps[b]`` and the
    draw's index within the step. ``seeds`` and ``steps`` are device tensors the caller keeps at
    fixed addresses (CUDA graphs replay reads of the captured addresses)."""

    def __init__(self) -> None:
        self.seeds: "torch.Tensor | None" = None  # int64 [B]
        self.steps: "torch.Tensor | None" = None  # int64 [B], the session's own step counter
        self._draw = 0

    def begin_step(self, seeds: "torch.Tensor", steps: "torch.Tensor") -> None:
        self.seeds, self.steps, self._draw = seeds, steps, 0

    def __call__(self, logits: "torch.Tensor", temp: float, top_k: int) -> "torch.Tensor":
        from jmoshi_augment.sampling import hash_uniform, sample

        assert self.seeds is not None and self.steps is not None
        B, V = logits.shape[0], logits.shape[-1]
        flat = logits.reshape(B, -1, V)
        if flat.shape[1] != 1:
            raise ValueError(f"expected one draw per row, got logits {list(logits.shape)}")
        k = V if top_k <= 0 else min(top_k, V)
        counter = self.steps * STREAMS_PER_STEP + self._draw
        self._draw += 1
        token = sample(flat[:, 0].float(), temp, k, hash_uniform(self.seeds, counter, k))  # [B]
        return token.view(*logits.shape[:-1])


_local = threading.local()
_original: Any = None


def _dispatch(logits, use_sampling: bool = False, temp: float = 1.0, top_k: int = 0, top_p: float = 0.0):
    sampler = getattr(_local, "sampler", None)
    if sampler is None or not use_sampling or temp <= 0 or top_p > 0:
        return _original(logits, use_sampling, temp, top_k, top_p)
    return sampler(logits, temp, top_k)


def install() -> None:
    """Route ``LMGen``'s sampling through :func:`_dispatch` (idempotent)."""
    global _original
    from moshi.models import lm as lm_module

    if lm_module.sample_token is not _dispatch:
        _original = lm_module.sample_token
        lm_module.sample_token = _dispatch


class active:
    """``with active(sampler): lm_gen.step(...)`` — the sampler serves this thread's draws."""

    def __init__(self, sampler: SlotSampler) -> None:
        self.sampler = sampler

    def __enter__(self) -> SlotSampler:
        install()
        _local.sampler = self.sampler
        return self.sampler

    def __exit__(self, *exc: object) -> None:
        _local.sampler = None
