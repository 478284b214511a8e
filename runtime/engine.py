"""The streaming step loop: Mimi encode → ``LMGen.step`` → Mimi decode, for N sessions in one batch.

Two layers:

- :class:`BatchStepper` is the compute: one 80 ms step for all ``B`` slots at once. Slots that have
  no input this step are switched off with moshi's exec mask (their streaming state does not move),
  a new session resets only its own slot (``reset_streaming(mask)``), and ``LMGen`` runs with
  ``support_out_of_sync=True`` so slots at different positions share the batch. Shapes never
  change, which is what lets moshi's CUDA graphs capture the step once.
- :class:`Engine` runs a stepper in its own thread. Sessions talk to it through thread-safe queues
  (input frames in, :class:`StepOutput` out through a callback), so the asyncio server never runs
  model compute, and a slow network client never delays the batch.

Output timing: ``LMGen`` returns the model's frame ``t - max_delay`` at step ``t`` (the acoustic
delay), so the first ``max_delay`` steps of a session produce silence. Every :class:`StepOutput`
carries the user frame consumed at that step and the model frame produced, which is how recordings
and the offline mode stay sample-aligned.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.batch_views import StateViews
from jmoshi_augment.runtime.sampling import SamplingOptions, SlotSampler
from jmoshi_augment.runtime.sampling import active as sampling_active

if TYPE_CHECKING:
    import torch

    from jmoshi_augment.runtime.models import LoadedModel

logger = logging.getLogger(__name__)

NO_TEXT = -1  # text id of a step whose token is padding / end-of-padding / not generated


@dataclass(frozen=True)
class StepResult:
    """One batched step, on the CPU."""

    pcm: np.ndarray  # float32 [B, frame_size], the model's audio (zeros where not generated)
    text: np.ndarray  # int64 [B], the model's text token or NO_TEXT
    generated: np.ndarray  # bool [B], whether the slot produced a real model frame this step
    seconds: float  # wall time of the step


class BatchStepper:
    """Streaming state for ``batch_size`` rows and the batched step over the first rows in use.

    ``step`` takes as many rows as the caller has sessions (``n <= batch_size``) and computes the
    smallest bucket that holds them (:mod:`.batch_views`), so one session on a many-slot stepper
    costs a batch-1 step. Each row samples from its own seeded stream (:mod:`.sampling`)."""

    def __init__(self, model: "LoadedModel", batch_size: int, sampling: SamplingOptions = SamplingOptions()) -> None:
        import torch
        from moshi.models.lm import LMGen

        if batch_size < 1:
            raise JmoshiError(f"batch size must be >= 1, got {batch_size}", key="slots")
        self.model = model
        self.batch_size = batch_size
        self.device = model.device
        self.frame_size = model.frame_size
        self.sampling = sampling
        greedy = sampling.temp == 0
        self.lm_gen = LMGen(
            model.lm,
            use_sampling=not greedy,
            temp=sampling.temp,
            temp_text=sampling.temp_text,
            top_k=sampling.top_k,
            top_k_text=sampling.top_k_text,
            support_out_of_sync=True,
        )
        self._special_text = torch.tensor(
            [model.lm.text_padding_token_id, model.lm.end_of_text_padding_id], device=self.device
        )
        self._n_audio = model.lm.dep_q
        if model.mimi.is_streaming or model.lm.is_streaming:
            raise JmoshiError("this model is already driven by another stepper: close() it first")
        roots = {"mimi": model.mimi, "lm_gen": self.lm_gen, "lm": model.lm}
        self._exit = contextlib.ExitStack()
        with torch.no_grad():
            reference = None
            if batch_size > 1:  # batch-1 states, only to tell each field's batch dimension
                with contextlib.ExitStack() as tmp:
                    tmp.enter_context(model.mimi.streaming(1))
                    tmp.enter_context(self.lm_gen.streaming(1))
                    reference = {name: root.get_streaming_state() for name, root in roots.items()}
            self._exit.enter_context(model.mimi.streaming(batch_size))
            self._exit.enter_context(self.lm_gen.streaming(batch_size))
            self.views = StateViews(roots, batch_size, reference)
        del reference
        base = sampling.seed if sampling.seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
        self._seeds = torch.tensor([base + i for i in range(batch_size)], dtype=torch.long, device=self.device)
        self._seed_views = {k: self._seeds.narrow(0, 0, k) for k in self.views.buckets}
        self._sampler = SlotSampler()

    def close(self) -> None:
        """Leave streaming mode so the model can be driven by another stepper."""
        self.views.activate_full()
        self._exit.close()

    def __enter__(self) -> "BatchStepper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, rows: list[int], seeds: list[int] | None = None) -> None:
        """Start fresh sessions in ``rows`` without touching the others (optionally reseeded)."""
        import torch

        mask = torch.zeros(self.batch_size, dtype=torch.bool)
        mask[rows] = True
        mask = mask.to(self.device)
        self.views.activate_full()
        self.model.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)
        if seeds is not None:
            for row, seed in zip(rows, seeds, strict=True):
                self._seeds[row] = int(seed)

    def move(self, src: int, dst: int) -> None:
        """Move the session in row ``src`` to row ``dst`` (whose session has left)."""
        self.views.move_row(src, dst)
        self._seeds[dst] = self._seeds[src]

    def step(self, pcm: np.ndarray, active: np.ndarray) -> StepResult:
        """One 80 ms step over rows ``0..n-1``. ``pcm`` float32 [n, frame_size] with
        ``n <= batch_size``; ``active`` bool [n] (rows with input this step)."""
        import torch

        started = time.perf_counter()
        n = pcm.shape[0]
        if pcm.ndim != 2 or pcm.shape[1] != self.frame_size or not 1 <= n <= self.batch_size:
            raise ValueError(f"expected pcm [n <= {self.batch_size}, {self.frame_size}], got {list(pcm.shape)}")
        k = self.views.bucket_for(n)
        self.views.activate(k)
        if k > n:
            pcm = np.concatenate([pcm, np.zeros((k - n, self.frame_size), np.float32)])
            active = np.concatenate([np.asarray(active, dtype=bool), np.zeros(k - n, dtype=bool)])
        mimi, lm_gen = self.model.mimi, self.lm_gen
        with torch.no_grad(), sampling_active(self._sampler) as sampler:
            x = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32)).to(self.device)[:, None]  # [k, 1, T]
            exec_mask = torch.from_numpy(np.asarray(active, dtype=bool)).to(self.device)
            mimi.set_exec_mask(exec_mask)
            codes = mimi.encode(x)  # [k, n_q, 1]
            lm_gen.set_exec_mask(exec_mask)
            sampler.begin_step(self._seed_views[k], lm_gen._streaming_state.offsets)
            tokens = lm_gen.step(codes)  # [k, 1 + dep_q, 1]; ungenerated_token_id where not generated
            self.views.after_step()
            assert tokens is not None  # support_out_of_sync: always a tensor
            audio = tokens[:, 1 : 1 + self._n_audio]  # [k, dep_q, 1]
            generated = exec_mask & (audio >= 0).all(dim=1)[:, 0]  # [k]
            mimi.set_exec_mask(generated)
            out = mimi.decode(audio.clamp(min=0))  # [k, 1, T]
            out = torch.where(generated[:, None, None], out, torch.zeros_like(out))
            text = tokens[:, 0, 0]
            text = torch.where(
                generated & ~torch.isin(text, self._special_text) & (text >= 0), text, torch.full_like(text, NO_TEXT)
            )
            pcm_out = out[:n, 0].float().cpu().numpy()
            text_out = text[:n].cpu().numpy()
            generated_out = generated[:n].cpu().numpy()
        return StepResult(pcm_out, text_out, generated_out, time.perf_counter() - started)

    def warmup(self, steps: int = 4) -> None:
        """Run a few silent steps in every bucket (captures each bucket's CUDA graphs on GPU), then
        reset every row.

        Synchronises the device only when it is a CUDA device (moshi.server's warmup calls
        ``torch.cuda.synchronize()`` unconditionally and crashes on CPU-only machines)."""
        import torch

        for k in self.views.buckets:
            silence = np.zeros((k, self.frame_size), dtype=np.float32)
            for _ in range(steps):
                self.step(silence, np.ones(k, dtype=bool))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.reset(list(range(self.batch_size)))

    @property
    def max_delay(self) -> int:
        return int(self.lm_gen.max_delay)


@dataclass(frozen=True)
class StepOutput:
    """What a session gets back for one consumed input frame."""

    index: int  # step number within the session (0 = its first input frame)
    pcm: np.ndarray  # float32 [frame_size], the model's audio for this step (zeros before the delay)
    user_pcm: np.ndarray  # float32 [frame_size], the user frame consumed at this step
    text_id: int  # the model's text token, or NO_TEXT
    step_seconds: float  # wall time of the batched step that produced it


class Session:
    """One conversation in one slot. Feed it PCM with :meth:`push`; outputs arrive via ``on_output``
    (called from the engine thread: keep it cheap and thread-safe, e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self, engine: "Engine", slot: int, on_output: Callable[[StepOutput], None],
                 on_close: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.slot = slot
        self.on_output = on_output
        self.on_close = on_close
        self.frames: deque[np.ndarray] = deque()
        self._buffer = np.zeros(0, dtype=np.float32)
        self.steps = 0
        self.closed = False
        self.max_backlog = engine.max_backlog

    def push(self, pcm: np.ndarray) -> None:
        """Queue user audio (any length, mono float32 at the model's sample rate)."""
        if self.closed:
            return
        frame = self.engine.frame_size
        self._buffer = np.concatenate([self._buffer, np.asarray(pcm, dtype=np.float32).reshape(-1)])
        n = self._buffer.size // frame
        if n:
            with self.engine._cond:
                for i in range(n):
                    self.frames.append(self._buffer[i * frame : (i + 1) * frame])
                dropped = 0
                while len(self.frames) > self.max_backlog:
                    self.frames.popleft()
                    dropped += 1
                self.engine._cond.notify()
            if dropped:
                logger.warning("slot %d: engine is behind, dropped %d queued input frames", self.slot, dropped)
            self._buffer = self._buffer[n * frame :]

    def close(self) -> None:
        """Leave the slot; frames still queued are discarded."""
        self.engine._release(self)


class Engine:
    """A :class:`BatchStepper` driven by its own thread; sessions are paced by their own input.

    Each loop iteration takes at most one queued frame from every session that has one, runs one
    batched step with the others masked off, and hands each session its output. Opening and
    closing sessions is queued and applied by the engine thread between steps."""

    def __init__(self, model: "LoadedModel", slots: int, sampling: SamplingOptions = SamplingOptions(),
                 *, max_backlog_s: float = 2.0) -> None:
        self.model = model
        self.slots = slots
        self.frame_size = model.frame_size
        self.max_backlog = max(1, int(round(max_backlog_s * model.mimi.frame_rate)))
        self._stepper_args = (model, slots, sampling)
        self.stepper: BatchStepper | None = None
        self._cond = threading.Condition()
        self._sessions: dict[int, Session] = {}
        self._to_reset: list[int] = []
        self._thread: threading.Thread | None = None
        self._stop = False
        self.error: BaseException | None = None
        self.step_times: deque[float] = deque(maxlen=1000)

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

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def active_sessions(self) -> int:
        with self._cond:
            return len(self._sessions)

    def open_session(self, on_output: Callable[[StepOutput], None],
                     on_close: Callable[[], None] | None = None) -> Session | None:
        """A session in a free slot, or ``None`` when every slot is taken (the caller says busy)."""
        with self._cond:
            if self.error is not None:
                raise JmoshiError(f"the engine stopped after an error: {self.error}")
            free = [s for s in range(self.slots) if s not in self._sessions]
            if not free:
                return None
            session = Session(self, free[0], on_output, on_close)
            self._sessions[session.slot] = session
            self._to_reset.append(session.slot)
            self._cond.notify()
            return session

    def _release(self, session: Session) -> None:
        with self._cond:
            if session.closed:
                return
            session.closed = True
            session.frames.clear()
            if self._sessions.get(session.slot) is session:
                del self._sessions[session.slot]

    def _run(self) -> None:
        import torch

        assert self.stepper is not None
        stepper = self.stepper
        B, frame = self.slots, self.frame_size
        pcm = np.zeros((B, frame), dtype=np.float32)
        try:
            with torch.no_grad():
                while True:
                    with self._cond:
                        while not self._stop and not any(s.frames for s in self._sessions.values()):
                            self._cond.wait(timeout=0.5)
                        if self._stop:
                            return
                        if self._to_reset:
                            stepper.reset(self._to_reset)
                            self._to_reset = []
                        pcm[:] = 0.0
                        active = np.zeros(B, dtype=bool)
                        batch: list[tuple[Session, np.ndarray]] = []
                        for slot, session in self._sessions.items():
                            if session.frames:
                                pcm[slot] = session.frames.popleft()
                                active[slot] = True
                                batch.append((session, pcm[slot].copy()))
                    result = stepper.step(pcm, active)
                    self.step_times.append(result.seconds)
                    for session, user in batch:
                        if session.closed:
                            continue
                        out = StepOutput(
                            index=session.steps,
                            pcm=result.pcm[session.slot],
                            user_pcm=user,
                            text_id=int(result.text[session.slot]),
                            step_seconds=result.seconds,
                        )
                        session.steps += 1
                        try:
                            session.on_output(out)
                        except Exception:  # a broken consumer must not stop the others
                            logger.exception("slot %d: output callback failed; closing the session", session.slot)
                            self._release(session)
        except BaseException as e:  # surface to open_session and to every waiting session
            logger.exception("engine thread stopped")
            with self._cond:
                self.error = e
                sessions = list(self._sessions.values())
            for session in sessions:
                if session.on_close is not None:
                    session.on_close()
