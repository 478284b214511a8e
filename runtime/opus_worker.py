"""Opus codecs living in worker processes, so N sessions' Opus work runs on up to W cores.

Why processes: sphn's ``OpusStreamReader.append_bytes`` / ``OpusStreamWriter.append_pcm`` hold the
GIL (sphn 0.2.1; measured: a Python thread beside a sphn loop progresses as little as beside a
pure-Python loop, while beside ``hashlib.sha256`` it runs freely), so a thread pool serialises them
on one core just like the event loop did. The codecs are stateful (one continuous Ogg-Opus stream
per direction), so a session's codecs live in one worker for their whole life: session ``sid``
belongs to worker ``sid % W``, and each worker is a one-process executor that runs its jobs in
submission order, which keeps each session's pages in order. Jobs are batched per event-loop
iteration (:class:`OpusWorkers`), so the server process's cost per session-frame is a share of one
round trip, not a round trip.

This module is what the workers import: numpy and sphn only (no torch), started with ``spawn``
(forking a process that holds CUDA state is unsafe).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

_codecs: dict[int, tuple[Any, Any]] = {}  # in a worker: session id → (reader, writer)


def _init_worker() -> None:
    """Ctrl-C reaches the whole process group, and systemd sends SIGTERM to every process of the
    service: the server shuts its workers down itself, and a worker killed by either signal would
    break its executor mid-shutdown, so both are ignored here. In exchange a worker exits as soon
    as its parent is gone, however the parent died (SIGKILL, out of memory): otherwise it would
    live on, and with it multiprocessing's resource tracker, which waits for every user of its pipe."""
    import multiprocessing
    import os
    import signal
    import threading
    from multiprocessing.connection import wait

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        def watch() -> None:
            wait([parent.sentinel])
            os._exit(0)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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


def _batch(jobs: list[tuple[str, int, tuple]]) -> list[tuple[bool, Any]]:
    """Run one round trip's jobs in order; an error is returned in its slot, not raised."""
    out: list[tuple[bool, Any]] = []
    for op, sid, args in jobs:
        try:
            out.append((True, OPS[op](sid, *args)))
        except Exception as e:  # e.g. sphn's ValueError on a payload that is not Ogg-Opus
            out.append((False, e))
    return out


OPS = {"open": _open, "decode": _decode, "encode": _encode, "close": _close}


class OpusWorkers:
    """``workers`` one-process executors. From the event loop, ``await call(sid, op, *args)`` runs
    ``op`` for that session in its worker; ``post`` does the same without waiting for the result.

    Jobs for the same worker issued in one event-loop iteration (the engine hands every session its
    step output at once) travel as one message: the server process pays one pickling round trip per
    worker and step instead of one per session. Start the workers before serving (:meth:`start`): a
    spawned worker takes ~1 s."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        ctx = multiprocessing.get_context("spawn")
        self._executors = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker)
                           for _ in range(workers)]
        self._pending: list[list[tuple[str, int, tuple, "asyncio.Future | None"]]] = [[] for _ in range(workers)]

    def start(self) -> None:
        for f in [ex.submit(_ping) for ex in self._executors]:
            f.result(timeout=60)

    def _queue(self, sid: int, op: str, args: tuple, fut: "asyncio.Future | None") -> None:
        w = sid % len(self._executors)
        self._pending[w].append((op, sid, args, fut))
        if len(self._pending[w]) == 1:
            asyncio.get_running_loop().call_soon(self._flush, w)

    async def call(self, sid: int, op: str, *args: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self._queue(sid, op, args, fut)
        return await fut

    def post(self, sid: int, op: str, *args: Any) -> None:
        self._queue(sid, op, args, None)

    def _flush(self, w: int) -> None:
        items, self._pending[w] = self._pending[w], []
        loop = asyncio.get_running_loop()
        try:
            done = self._executors[w].submit(_batch, [(op, sid, args) for op, sid, args, _ in items])
        except RuntimeError as e:  # shut down: fail the waiters instead of leaving them hanging
            self._deliver(items, [(False, e)] * len(items))
            return

        def deliver(f: Future) -> None:
            try:
                results = f.result()
            except Exception as e:  # the worker died
                results = [(False, e)] * len(items)
            loop.call_soon_threadsafe(self._deliver, items, results)

        done.add_done_callback(deliver)

    @staticmethod
    def _deliver(items: list, results: list[tuple[bool, Any]]) -> None:
        for (_, _, _, fut), (ok, value) in zip(items, results):
            if fut is None or fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def shutdown(self) -> None:
        for ex in self._executors:
            ex.shutdown(wait=True, cancel_futures=True)
