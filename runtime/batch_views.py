"""Run a streaming batch of capacity ``B`` on its first ``k`` rows only (batch compaction).

moshi keeps each streaming module's state in a ``State`` dataclass whose tensors have one batch
dimension. A model put in ``streaming(B)`` therefore computes ``B`` rows every step, even when only
one session is connected: with exec masks the idle rows are only kept from *changing*, not from
being computed. Here the ``B``-row state is allocated once, and for every bucket size ``k`` (1, 2,
4, ..., B) we build a second tree of ``State`` objects whose batched tensors are views
(``narrow(dim, 0, k)``) of the full ones. Activating bucket ``k`` swaps those view states into the
modules, so a step computes ``k`` rows and writes straight into the full state's storage: no
memory is duplicated and switching buckets copies nothing. The caller keeps its sessions in rows
``0..n-1`` (:meth:`StateViews.move_row` fills the hole a leaving session makes).

Which dimension of a field is the batch: found by building the states once more at batch size 1
and comparing shapes (the KV cache's batch is dimension 1, a conv state's dimension 0, LMGen's
``initial`` has none). Each view keeps fresh ``CUDAGraphed`` wrappers, so each bucket captures its
own CUDA graphs over addresses that never move.

moshi rebinds a few state tensors instead of updating them in place (``LMGen._step`` does
``state.offsets = torch.where(...)``); :meth:`StateViews.after_step` copies such a tensor back into
the full storage and re-points the view at it, so the next step sees the shared address again.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from moshi.modules.streaming import StreamingModule


def bucket_sizes(capacity: int) -> list[int]:
    """Powers of two below ``capacity``, then ``capacity``: at most 2x the rows actually needed,
    and few enough buckets that capturing a CUDA graph per bucket stays cheap."""
    sizes, k = [], 1
    while k < capacity:
        sizes.append(k)
        k *= 2
    return sizes + [capacity]


@dataclass
class _Batched:
    owner: Any  # the full State (or a nested object such as a RingKVCache)
    attr: str
    dim: int


def _is_container(value: Any) -> bool:
    """Nested objects holding batched tensors (moshi's ``RingKVCache``), not helpers."""
    from moshi.utils.compile import CUDAGraphed

    return (hasattr(value, "__dict__") and not callable(value) and not isinstance(value, CUDAGraphed)
            and not isinstance(value, contextlib.ExitStack) and type(value).__module__.startswith("moshi."))


def _find_batched(full: Any, ref: Any, out: list[_Batched]) -> None:
    import torch

    for attr, value in vars(full).items():
        other = getattr(ref, attr, None)
        if isinstance(value, torch.Tensor):
            diff = [d for d in range(value.dim()) if value.shape[d] != other.shape[d]]
            if len(diff) > 1:
                raise RuntimeError(f"{type(full).__name__}.{attr}: more than one batch dimension")
            if diff:
                out.append(_Batched(full, attr, diff[0]))
        elif _is_container(value) and other is not None:
            _find_batched(value, other, out)


class StateViews:
    """Full streaming state of ``roots`` at ``capacity`` rows, plus a view tree per bucket."""

    def __init__(self, roots: dict[str, "StreamingModule"], capacity: int,
                 reference: "dict[str, dict[str, Any]] | None") -> None:
        """``roots`` are streaming at ``capacity`` rows; ``reference`` holds their states at batch
        size 1 (None when ``capacity == 1``: nothing to compact)."""
        self.roots = roots
        self.capacity = capacity
        self.full = {name: root.get_streaming_state() for name, root in roots.items()}
        self._batched: list[_Batched] = []
        if reference is not None:
            for name, states in self.full.items():
                for key, state in states.items():
                    _find_batched(state, reference[name][key], self._batched)
        self._by_owner: dict[int, list[_Batched]] = {}
        for b in self._batched:
            self._by_owner.setdefault(id(b.owner), []).append(b)
        self.buckets = bucket_sizes(capacity) if reference is not None else [capacity]
        self._views: dict[int, tuple[dict[str, dict[str, Any]], list[tuple[Any, str, "torch.Tensor"]]]] = {}
        for k in self.buckets:
            self._views[k] = self._build(k)
        self.active: int | None = None

    def _view_of(self, obj: Any, k: int, pinned: list) -> Any:
        from moshi.utils.compile import CUDAGraphed

        view = copy.copy(obj)
        batched = {b.attr: b.dim for b in self._by_owner.get(id(obj), [])}
        for attr, value in vars(obj).items():
            if attr in batched:
                narrow = value.narrow(batched[attr], 0, k)
                setattr(view, attr, narrow)
                pinned.append((view, attr, narrow))
            elif isinstance(value, CUDAGraphed):
                setattr(view, attr, CUDAGraphed(value.func, disable=value.disable))
            elif isinstance(value, contextlib.ExitStack):
                setattr(view, attr, contextlib.ExitStack())  # the full state owns what was entered
            elif attr == "_set_exec_mask_graphed":
                setattr(view, attr, None)
            elif _is_container(value):
                setattr(view, attr, self._view_of(value, k, pinned))
        if hasattr(view, "batch_size"):
            view.batch_size = k
        return view

    def _build(self, k: int):
        pinned: list = []
        if k == self.capacity and len(self.buckets) == 1:
            return self.full, pinned  # nothing to narrow: run on the full state itself
        trees = {name: {key: self._view_of(state, k, pinned) for key, state in states.items()}
                 for name, states in self.full.items()}
        return trees, pinned

    def activate(self, k: int) -> None:
        """Put bucket ``k``'s states into the modules (a no-op if already there)."""
        if self.active == k:
            return
        trees, _ = self._views[k]
        for name, root in self.roots.items():
            root.set_streaming_state(trees[name])
        self.active = k

    def activate_full(self) -> None:
        for name, root in self.roots.items():
            root.set_streaming_state(self.full[name])
        self.active = None

    def bucket_for(self, rows: int) -> int:
        return next(k for k in self.buckets if k >= rows)

    def after_step(self) -> None:
        """Re-point view fields that moshi rebound during the step at the shared storage."""
        if self.active is None:
            return
        for owner, attr, narrow in self._views[self.active][1]:
            current = getattr(owner, attr)
            if current is not narrow:
                narrow.copy_(current)
                setattr(owner, attr, narrow)

    def move_row(self, src: int, dst: int) -> None:
        """Copy row ``src`` of every batched state tensor over row ``dst``."""
        for b in self._batched:
            t = getattr(b.owner, b.attr)
            t.select(b.dim, dst).copy_(t.select(b.dim, src))
