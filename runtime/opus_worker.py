"""Opus codecs living in worker processes, so N sessions' Opus work runs on up to W cores.

Why processes: sphn's ``OpusStreamReader.append_bytes`` / ``OpusStreamWriter.append_pcm`` hold the
GIL (sphn 0.2.1; measured: a Python thread beside a sphn loop progresses as little as beside a
pure-Python loop, while beside ``hashlib.sha256`` it runs freely), so a thread pool serialises them
on one core just like the event loop did. The codecs are stateful (one continuous Ogg-Opus stream
per direction), so a session's codecs live in one worker for their whole life: session ``sid``
belongs to worker ``sid % W``, and each worker is a one-process executor that runs its jobs in
submission order, which keeps each session's pages in order.

This module is what the workers import: numpy and sphn only (no torch), started with ``spawn``
(forking a process that holds CUDA state is unsafe).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

_codecs: dict[int, tuple[Any, Any]] = {}  # in a worker: session id → (reader, writer)


def _ping() -> int:
    import sphn  # noqa: F401  (import once now, not on a session's first frame)

    return 0


def _open(sid: int, sample_rate: int) -> None:
    import sphn

    _codecs[sid] = (sphn.OpusStreamReader(sample_rate), sphn.OpusStreamWriter(sample_rate))


def _decode(sid: int, payload: bytes) -> np.ndarray:
    return _codecs[sid][0].append_bytes(payload)


def _encode(sid: int, pcm: np.ndarray) -> bytes:
    return _codecs[sid][1].append_pcm(pcm)


def _close(sid: int) -> None:
    _codecs.pop(sid, None)


class OpusWorkers:
    """``workers`` one-process executors; ``submit(sid, op, *args)`` runs ``op`` for that session
    in its worker. Start them before serving (:meth:`start`): a spawned worker takes ~1 s."""

    OPS = {"open": _open, "decode": _decode, "encode": _encode, "close": _close}

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        ctx = multiprocessing.get_context("spawn")
        self._executors = [ProcessPoolExecutor(1, mp_context=ctx) for _ in range(workers)]

    def start(self) -> None:
        for f in [ex.submit(_ping) for ex in self._executors]:
            f.result(timeout=60)

    def submit(self, sid: int, op: str, *args: Any) -> Future:
        return self._executors[sid % len(self._executors)].submit(self.OPS[op], sid, *args)

    def shutdown(self) -> None:
        for ex in self._executors:
            ex.shutdown(wait=True, cancel_futures=True)
