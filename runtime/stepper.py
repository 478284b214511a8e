"""The batched model step: Mimi encode → ``LMGen.step`` → Mimi decode for the rows in use.

Rows that have no input this step are switched off with moshi's exec mask (their streaming state
does not move), a new session resets only its own row (``reset_streaming(mask)``), and ``LMGen``
runs with ``support_out_of_sync=True`` so rows at different positions share the batch. The
computed batch is the smallest bucket holding the rows in use (:mod:`.batch_views`); every bucket
has fixed shapes, which is what lets moshi's CUDA graphs capture it once.

Output timing: ``LMGen`` returns the model's frame ``t - max_delay`` at step ``t`` (the acoustic
delay), so the first ``max_delay`` steps of a session produce silence.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.batch_views import StateViews
from jmoshi_augment.runtime.sampling import SESSION_TOP_K_MAX, RowSampling, SamplingOptions, SlotSampler
from jmoshi_augment.runtime.sampling import active as sampling_active

if TYPE_CHECKING:
    from jmoshi_augment.runtime.models import LoadedModel

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

    def __init__(self, model: "LoadedModel", batch_size: int, sampling: SamplingOptions = SamplingOptions(),
                 max_top_k: int = SESSION_TOP_K_MAX) -> None:
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
        # The sampler reads each row's step counter from a buffer that never moves: LMGen rebinds
        # its own ``offsets`` every step, and a CUDA graph replays reads of captured addresses.
        self._steps = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self._step_views = {k: self._steps.narrow(0, 0, k) for k in self.views.buckets}
        # Per-row temperatures and top-k (sessions may ask for their own, up to max_top_k).
        self._row_sampling = RowSampling(batch_size, sampling, max_top_k, self.device)
        self._sampler = SlotSampler(self._row_sampling)

    def close(self) -> None:
        """Leave streaming mode so the model can be driven by another stepper."""
        self.views.activate_full()
        self._exit.close()

    def __enter__(self) -> "BatchStepper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, rows: list[int], seeds: list[int] | None = None,
              sampling: list[SamplingOptions] | None = None) -> None:
        """Start fresh sessions in ``rows`` without touching the others (optionally reseeded, and
        with their own sampling options; else the stepper's)."""
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
        for i, row in enumerate(rows):
            self._row_sampling.set(row, sampling[i] if sampling is not None else self.sampling)

    def move(self, src: int, dst: int) -> None:
        """Move the session in row ``src`` to row ``dst`` (whose session has left)."""
        self.views.move_row(src, dst)
        self._seeds[dst] = self._seeds[src]
        self._row_sampling.move(src, dst)

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
            self._step_views[k].copy_(lm_gen._streaming_state.offsets)
            sampler.begin_step(self._seed_views[k], self._step_views[k])
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
