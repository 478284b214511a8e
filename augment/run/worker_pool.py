"""Worker processes of the local executor, watched one by one.

``multiprocessing.Pool`` replaces a worker that dies (killed by the kernel's out-of-memory killer, a
segfault in a native library) but never hands its task out again nor reports it, so the run waits
forever. Here each worker holds at most one task, the parent waits on every worker's pipe *and*
its process sentinel, and a worker that dies turns its task into a :class:`WorkerDied` naming the
signal; a fresh worker takes its place. Workers leave Ctrl-C and SIGTERM to the parent (which ends
them), end themselves when the parent's pipe closes, and on Linux are killed by the kernel when
the parent dies however it dies (``PR_SET_PDEATHSIG``), so no worker outlives its run.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Hashable, Iterator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerDied:
    """The task's worker process ended before answering."""

    exitcode: int | None

    def describe(self) -> str:
        if self.exitcode is not None and self.exitcode < 0:
            try:
                name = signal.Signals(-self.exitcode).name
            except ValueError:
                name = f"signal {-self.exitcode}"
            hint = " (killed: out of memory, or by hand)" if name == "SIGKILL" else ""
            return f"worker process died of {name}{hint}"
        return f"worker process exited with code {self.exitcode}"


@dataclass(frozen=True)
class TaskRaised:
    """The task raised an exception that must stop the run (a :class:`JmoshiError`)."""

    error: BaseException


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # no libc by that name: the closed pipe still ends the worker
        pass


def _worker_main(conn: Connection, init: Callable[..., None], init_args: tuple, work: Callable[[Any], Any]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles stop signals and ends workers
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    init(*init_args)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        key, item = task
        try:
            out: Any = work(item)
        except BaseException as e:  # sent back whole: the parent decides (work() catches what a rerun fixes)
            out = TaskRaised(e)
        try:
            conn.send((key, out))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Slot:
    process: Any
    conn: Connection
    key: Hashable | None = None  # the task it holds


class WorkerPool:
    """``n`` spawned workers, each running ``init(*init_args)`` once, then ``work(item)`` per task."""

    def __init__(self, n: int, init: Callable[..., None], init_args: tuple, work: Callable[[Any], Any]) -> None:
        self._ctx = mp.get_context("spawn")  # fork after torch/OpenJTalk initialisation is unsafe
        self._spec = (init, init_args, work)
        self._slots = [self._start() for _ in range(n)]

    def _start(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        p = self._ctx.Process(target=_worker_main, args=(child, *self._spec), daemon=True)
        p.start()
        child.close()
        return _Slot(p, parent)

    @property
    def idle(self) -> int:
        return sum(1 for s in self._slots if s.key is None)

    @property
    def busy(self) -> int:
        return len(self._slots) - self.idle

    def submit(self, key: Hashable, item: Any) -> None:
        slot = next(s for s in self._slots if s.key is None)
        slot.key = key
        slot.conn.send((key, item))

    def results(self) -> Iterator[tuple[Hashable, Any]]:
        """Block until at least one busy worker answers or dies; yield ``(key, result)`` for each,
        a :class:`WorkerDied` or :class:`TaskRaised` in place of a result."""
        busy = [s for s in self._slots if s.key is not None]
        if not busy:
            return
        ready = set(wait([s.conn for s in busy] + [s.process.sentinel for s in busy]))
        for i, slot in enumerate(self._slots):
            if slot.key is None or not (slot.conn in ready or slot.process.sentinel in ready):
                continue
            key, slot.key = slot.key, None
            answer: Any = None
            with contextlib.suppress(EOFError, OSError):
                if slot.conn.poll():
                    _, answer = slot.conn.recv()
            if answer is None:  # no answer: the process died holding the task
                slot.process.join(5)
                died = WorkerDied(slot.process.exitcode)
                logger.debug("worker pid %s: %s", slot.process.pid, died.describe())
                slot.conn.close()
                self._slots[i] = self._start()
                answer = died
            yield key, answer

    def close(self) -> None:
        """End every worker now (a task in flight is abandoned: its unit is redone on rerun)."""
        for slot in self._slots:
            if slot.key is None:  # idle: asked to leave; busy: killed below
                with contextlib.suppress(OSError, ValueError):
                    slot.conn.send(None)
        for slot in self._slots:
            slot.process.join(0.5 if slot.key is None else 0)
            if slot.process.is_alive():
                slot.process.kill()
            slot.process.join(5)
            slot.conn.close()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (how systemd, Docker and Kubernetes stop a process) takes the Ctrl-C path: finished
    units stay, workers are ended, and the command says how to resume."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
