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

Per-session sampling: the sampler reads each row's temperatures and top-k from device buffers
(:class:`RowSampling`), not from ``LMGen``'s one scalar, so sessions in one batch may sample
differently; a client asks within :class:`SamplingBounds` and the server clamps.
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


SESSION_TOP_K_MAX = 500  # the largest top-k a session may ask for by default (Kyutai's client slider)


@dataclass(frozen=True)
class SamplingBounds:
    """What a client may ask for per session (``?text_temperature=&text_topk=&audio_temperature=
    &audio_topk=``, the names Kyutai's web client sends); values outside are clamped. The default
    ranges are those of Kyutai's web client sliders (client/src/.../ModelParams.tsx)."""

    temp: tuple[float, float] = (0.2, 1.2)
    top_k: tuple[int, int] = (10, SESSION_TOP_K_MAX)

    QUERY = {"text_temperature": "temp_text", "audio_temperature": "temp",
             "text_topk": "top_k_text", "audio_topk": "top_k"}

    def __post_init__(self) -> None:
        if not 0 <= self.temp[0] <= self.temp[1]:
            raise JmoshiError(f"temperature bounds must be 0 <= low <= high, got {self.temp}", key="temp_bounds")
        if not 1 <= self.top_k[0] <= self.top_k[1]:
            raise JmoshiError(f"top-k bounds must be 1 <= low <= high, got {self.top_k}", key="top_k_bounds")

    def apply(self, base: SamplingOptions, query: Mapping[str, str]) -> tuple[SamplingOptions, list[str]]:
        """``base`` with the client's values clamped into bounds; also the notes on what was changed
        (``"audio_topk 900 -> 500"``) or ignored as not a number. A greedy server (temp 0) stays greedy."""
        values: dict[str, Any] = {}
        notes: list[str] = []
        for key, name in self.QUERY.items():
            raw = query.get(key)
            if raw is None or raw == "":
                continue
            is_temp = name.startswith("temp")
            try:
                asked = float(raw)
                if asked != asked or asked in (float("inf"), float("-inf")):
                    raise ValueError
            except ValueError:
                notes.append(f"{key} {raw!r} ignored: not a number")
                continue
            if is_temp and base.temp == 0:
                notes.append(f"{key} ignored: the server decodes greedily")
                continue
            low, high = self.temp if is_temp else self.top_k
            value = min(max(asked, low), high)
            value = float(value) if is_temp else int(round(value))
            if value != asked:
                notes.append(f"{key} {raw} -> {value}")
            values[name] = value
        return replace(base, **values), notes


class RowSampling:
    """Each row's temperatures and top-k, as device buffers at fixed addresses (a CUDA graph
    replays reads of the captured addresses): draw 0 of a step is ``LMGen``'s text token, the
    others are audio codebooks (moshi ``lm.py`` samples text, then the depformer's ``dep_q``).

    The candidates raced per draw are the largest k any row uses (known on the host, so no device
    sync), not the bound: per-row top-k then costs what one top-k cost (``bench/bench_row_sampling.py``).
    Inside a CUDA graph capture the shape is frozen for every later replay, so there it is the bound."""

    def __init__(self, batch_size: int, default: SamplingOptions, max_top_k: int, device: Any) -> None:
        import torch

        self.max_top_k = max(max_top_k, default.top_k, default.top_k_text)
        self.temp = torch.full((batch_size,), float(default.temp), device=device)
        self.temp_text = torch.full((batch_size,), float(default.temp_text), device=device)
        self.top_k = torch.full((batch_size,), int(default.top_k), dtype=torch.long, device=device)
        self.top_k_text = torch.full((batch_size,), int(default.top_k_text), dtype=torch.long, device=device)
        self._k = [int(default.top_k)] * batch_size  # host copies of top_k / top_k_text
        self._k_text = [int(default.top_k_text)] * batch_size
        self._greedy = [default.temp <= 0 or default.temp_text <= 0] * batch_size

    def set(self, row: int, options: SamplingOptions) -> None:
        self._k[row] = min(int(options.top_k), self.max_top_k)
        self._k_text[row] = min(int(options.top_k_text), self.max_top_k)
        self.temp[row], self.temp_text[row] = float(options.temp), float(options.temp_text)
        self.top_k[row], self.top_k_text[row] = self._k[row], self._k_text[row]
        self._greedy[row] = options.temp <= 0 or options.temp_text <= 0

    def move(self, src: int, dst: int) -> None:
        for t in (self.temp, self.temp_text, self.top_k, self.top_k_text):
            t[dst] = t[src]
        self._k[dst], self._k_text[dst] = self._k[src], self._k_text[src]
        self._greedy[dst] = self._greedy[src]

    def plan(self, text: bool, rows: int) -> tuple[int, bool]:
        """For a draw over the first ``rows`` rows: how many top candidates to race, and whether
        any row may be greedy (else the argmax pass is skipped)."""
        import torch

        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            return self.max_top_k, True
        return max((self._k_text if text else self._k)[:rows]), any(self._greedy[:rows])


class SlotSampler:
    """Top-k sampling whose noise for row ``b`` depends only on ``seeds[b]``, ``steps[b]`` and the
    draw's index within the step, with each row's own temperature and top-k (:class:`RowSampling`).
    ``seeds`` and ``steps`` are device tensors the caller keeps at fixed addresses."""

    def __init__(self, rows: RowSampling | None = None) -> None:
        self.rows = rows
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
        counter = self.steps * STREAMS_PER_STEP + self._draw
        text = self._draw == 0
        self._draw += 1
        if self.rows is None:
            k = V if top_k <= 0 else min(top_k, V)
            token = sample(flat[:, 0].float(), temp, k, hash_uniform(self.seeds, counter, k))  # [B]
        else:
            r = self.rows
            temps, ks = (r.temp_text, r.top_k_text) if text else (r.temp, r.top_k)
            k, greedy = r.plan(text, B)
            k = min(k, V)
            token = sample_rows(flat[:, 0].float(), temps[:B], ks[:B], k, hash_uniform(self.seeds, counter, k), greedy)
        return token.view(*logits.shape[:-1])


def sample_rows(logits: "torch.Tensor", temps: "torch.Tensor", top_ks: "torch.Tensor", k_max: int,
                uniform: "torch.Tensor", greedy: bool = True) -> "torch.Tensor":
    """:func:`jmoshi_augment.sampling.sample` with a temperature and top-k per row (``temps`` [B],
    ``top_ks`` [B] <= ``k_max``): the top ``k_max`` candidates race as there, and those past a row's
    own k are struck out, so a row draws exactly what ``sample(..., temp, k)`` draws for it alone
    (column j of ``uniform`` depends on j only). With ``greedy``, a row with temperature 0 takes the
    argmax (without it, the caller promises no row has temperature 0)."""
    import torch

    probs = torch.softmax(logits / (temps.clamp(min=1e-6) if greedy else temps)[:, None], dim=-1)
    p, idx = probs.topk(k_max, dim=-1, sorted=True)
    keep = torch.arange(k_max, device=logits.device)[None, :] < top_ks[:, None]
    race = torch.where(keep, p / -torch.log(uniform[:, :k_max]), torch.zeros_like(p))
    sampled = idx.gather(-1, race.argmax(dim=-1, keepdim=True))[:, 0]
    return torch.where(temps > 0, sampled, logits.argmax(dim=-1)) if greedy else sampled


_local = threading.local()
_original: Any = None


def _dispatch(logits, use_sampling: bool = False, temp: float = 1.0, top_k: int = 0, top_p: float = 0.0):
    sampler = getattr(_local, "sampler", None)
    if sampler is not None and sampler.rows is not None and top_p <= 0:  # per-row settings decide
        return sampler(logits, temp, top_k)
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
