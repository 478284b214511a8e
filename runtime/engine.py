"""The session loop: a :class:`~.stepper.BatchStepper` driven by its own thread.

Sessions talk to the engine through thread-safe queues (input frames in, :class:`StepOutput` out
through a callback), so the asyncio server never runs model compute, and a slow network client
never delays the batch. Each loop iteration takes at most one queued frame from every session that
has one, runs one batched step with the others masked off, and hands each session its output.

Sessions occupy rows ``0..n-1`` of the batch: when one leaves, the session in the last row moves
into its row (``BatchStepper.move``), so the step only ever computes the sessions present (one user
on a 32-slot server pays a batch-1 step). Opening, closing and moving are applied by the engine
thread between steps. Every :class:`StepOutput` carries the user frame consumed at that step and the
model frame produced, which is how recordings and the offline mode stay sample-aligned.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.ratelog import RateLimitedLog
from jmoshi_augment.runtime.sampling import SESSION_TOP_K_MAX, SamplingOptions
from jmoshi_augment.runtime.stepper import NO_TEXT, BatchStepper, StepResult

if TYPE_CHECKING:
    from jmoshi_augment.runtime.models import LoadedModel

__all__ = ["NO_TEXT", "BatchStepper", "Engine", "SamplingOptions", "Session", "StepOutput", "StepResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutput:
    """What a session gets back for one consumed input frame."""

    index: int  # step number within the session (0 = its first input frame)
    pcm: np.ndarray  # float32 [frame_size], the model's audio for this step (zeros before the delay)
    user_pcm: np.ndarray  # float32 [frame_size], the user frame consumed at this step
    text_id: int  # the model's text token, or NO_TEXT
    step_seconds: float  # wall time of the batched step that produced it


class Session:
    """One conversation. Feed it PCM with :meth:`push`; outputs arrive via ``on_output`` (called
    from the engine thread: keep it cheap and thread-safe, e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self, engine: "Engine", session_id: int, seed: int, on_output: Callable[[StepOutput], None],
                 on_close: Callable[[], None] | None = None, sampling: SamplingOptions | None = None) -> None:
        self.engine = engine
        self.id = session_id
        self.seed = seed  # its sampling stream: the same seed gives the same conversation
        self.sampling = sampling or engine.sampling  # its temperatures and top-k
        self.row: int | None = None  # its row in the batch, set by the engine thread; may change
        self.on_output = on_output
        self.on_close = on_close
        self.frames: deque[np.ndarray] = deque()
        self._buffer = np.zeros(0, dtype=np.float32)
        self.steps = 0
        self.dropped = 0  # input frames discarded because the engine was behind
        self.closed = False
        self.max_backlog = engine.max_backlog

    def push(self, pcm: np.ndarray) -> int:
        """Queue user audio (any length, mono float32 at the model's sample rate). Returns how many
        queued frames were dropped to keep the backlog under ``max_backlog_s`` (0 normally)."""
        if self.closed:
            return 0
        frame = self.engine.frame_size
        self._buffer = np.concatenate([self._buffer, np.asarray(pcm, dtype=np.float32).reshape(-1)])
        n = self._buffer.size // frame
        dropped = 0
        if n:
            with self.engine._cond:
                for i in range(n):
                    self.frames.append(self._buffer[i * frame : (i + 1) * frame])
                while len(self.frames) > self.max_backlog:
                    self.frames.popleft()
                    dropped += 1
                self.engine._cond.notify()
            self._buffer = self._buffer[n * frame :]
        if dropped:
            self.dropped += dropped
            self.engine.drop_log.add(dropped)
        return dropped

    def close(self) -> None:
        """Leave the batch; frames still queued are discarded and the slot is free at once."""
        self.engine._release(self)


class Engine:
    """Runs the batched step for up to ``slots`` sessions, paced by their own input."""

    def __init__(self, model: "LoadedModel", slots: int, sampling: SamplingOptions = SamplingOptions(),
                 *, max_backlog_s: float = 2.0, log_interval_s: float = 10.0, max_top_k: int = SESSION_TOP_K_MAX) -> None:
        self.model = model
        self.slots = slots
        self.frame_size = model.frame_size
        self.max_backlog = max(1, int(round(max_backlog_s * model.mimi.frame_rate)))
        self.sampling = sampling
        self.max_top_k = max_top_k  # the largest top-k a session may ask for
        self._stepper_args = (model, slots, sampling, max_top_k)
        self.stepper: BatchStepper | None = None
        self._cond = threading.Condition()
        self._rows: list[Session] = []  # row i of the batch holds _rows[i]; engine thread only
        self._joining: list[Session] = []
        self._open = 0  # sessions admitted and not closed (rows + joining - closed)
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self.error: BaseException | None = None
        self.step_times: deque[float] = deque(maxlen=1000)
        self.drop_log = RateLimitedLog(logger, log_interval_s,
                                       "engine is behind: dropped %d queued input frames (oldest first)")

    def start(self, warmup: bool = True) -> "Engine":
        self.stepper = BatchStepper(*self._stepper_args)
        if warmup:
            self.stepper.warmup()
        self._thread = threading.Thread(target=self._run, name="jmoshi-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.stepper is not None:
            self.stepper.close()
            self.stepper = None
        self.drop_log.flush()

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def active_sessions(self) -> int:
        with self._cond:
            return self._open

    def open_session(self, on_output: Callable[[StepOutput], None], on_close: Callable[[], None] | None = None,
                     *, seed: int | None = None, sampling: SamplingOptions | None = None) -> Session | None:
        """A new session, or ``None`` when every slot is taken (the caller says busy). Without a
        ``seed``, session ``i`` gets ``sampling.seed + i`` (random when ``sampling.seed`` is None);
        ``sampling`` sets its temperatures and top-k (default: the engine's)."""
        with self._cond:
            if self.error is not None:
                raise JmoshiError(f"the engine stopped after an error: {self.error}")
            if self._open >= self.slots:
                return None
            if seed is None:
                base = self.sampling.seed
                seed = base + self._next_id if base is not None else int(np.random.SeedSequence().generate_state(1)[0])
            session = Session(self, self._next_id, seed, on_output, on_close, sampling)
            self._next_id += 1
            self._open += 1
            self._joining.append(session)
            self._cond.notify()
            return session

    def _release(self, session: Session) -> None:
        with self._cond:
            if session.closed:
                return
            session.closed = True
            session.frames.clear()
            self._open -= 1
            self._cond.notify()

    def _apply_membership(self, stepper: BatchStepper) -> None:
        """Fill the rows of closed sessions from the end, then give joiners the next rows (with the
        lock held, between steps)."""
        rows = self._rows
        i = 0
        while i < len(rows):
            if not rows[i].closed:
                i += 1
                continue
            last = rows.pop()
            if i < len(rows):
                stepper.move(len(rows), i)
                rows[i] = last
                last.row = i
        joining = [s for s in self._joining if not s.closed]
        self._joining = []
        if joining:
            for s in joining:
                s.row = len(rows)
                rows.append(s)
            stepper.reset([s.row for s in joining], seeds=[s.seed for s in joining],
                          sampling=[s.sampling for s in joining])

    def _run(self) -> None:
        import torch

        assert self.stepper is not None
        stepper = self.stepper
        pcm = np.zeros((self.slots, self.frame_size), dtype=np.float32)
        try:
            with torch.no_grad():
                while True:
                    with self._cond:
                        while True:
                            if self._stop:
                                return
                            self._apply_membership(stepper)
                            if any(s.frames for s in self._rows):
                                break
                            self._cond.wait(timeout=0.5)
                        n = len(self._rows)
                        pcm[:n] = 0.0
                        active = np.zeros(n, dtype=bool)
                        batch: list[tuple[Session, int, np.ndarray]] = []
                        for row, session in enumerate(self._rows):
                            if session.frames:
                                pcm[row] = session.frames.popleft()
                                active[row] = True
                                batch.append((session, row, pcm[row].copy()))
                    result = stepper.step(pcm[:n], active)
                    self.step_times.append(result.seconds)
                    for session, row, user in batch:
                        if session.closed:
                            continue
                        out = StepOutput(
                            index=session.steps,
                            pcm=result.pcm[row],
                            user_pcm=user,
                            text_id=int(result.text[row]),
                            step_seconds=result.seconds,
                        )
                        session.steps += 1
                        try:
                            session.on_output(out)
                        except Exception:  # a broken consumer must not stop the others
                            logger.exception("session %d: output callback failed; closing it", session.id)
                            self._release(session)
        except BaseException as e:  # surface to open_session and to every waiting session
            logger.exception("engine thread stopped")
            with self._cond:
                self.error = e
                sessions = [s for s in self._rows + self._joining if not s.closed]
            for session in sessions:
                if session.on_close is not None:
                    session.on_close()
