"""The batched step loop: batched sessions equal independent single sessions; slots, busy, warmup."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.engine import NO_TEXT, BatchStepper, Engine, SamplingOptions, StepOutput
from runtime_helpers import speech_like, tiny_model

GREEDY = SamplingOptions(temp=0, temp_text=0)
N_FRAMES = 8


def _frames(seed: int) -> list[np.ndarray]:
    x = speech_like(N_FRAMES / FRAME_RATE, seed=seed)
    return [x[i * FRAME_SIZE : (i + 1) * FRAME_SIZE] for i in range(N_FRAMES)]


def _single(model, frames) -> tuple[np.ndarray, list[int]]:
    with BatchStepper(model, 1, GREEDY) as stepper:
        results = [stepper.step(f[None], np.array([True])) for f in frames]
    return np.stack([r.pcm[0] for r in results]), [int(r.text[0]) for r in results]


def test_batched_sessions_equal_independent_single_sessions():
    model = tiny_model()
    a, b = _frames(1), _frames(2)
    single_a, text_a = _single(model, a)
    single_b, text_b = _single(model, b)
    assert np.abs(single_a).max() > 0  # real audio came out, not just silence
    assert not np.allclose(single_a, single_b)

    # Slot 0 runs a, pausing at steps 3-4; slot 2 starts b two steps late, after another session
    # had used that slot (so the reset must really isolate it); slot 1 stays empty.
    out_a, out_b, txt_a, txt_b = [], [], [], []
    with BatchStepper(model, 3, GREEDY) as stepper:
        ia = ib = 0
        for step in range(30):
            if ia == N_FRAMES and ib == N_FRAMES:
                break
            pcm = np.zeros((3, model.frame_size), np.float32)
            active = np.zeros(3, bool)
            if ia < N_FRAMES and step not in (3, 4):
                pcm[0], active[0] = a[ia], True
            if step < 2:  # a previous occupant of slot 2
                pcm[2], active[2] = speech_like(1 / FRAME_RATE, seed=9), True
            if step == 2:
                stepper.reset([2])
            if step >= 2 and ib < N_FRAMES:
                pcm[2], active[2] = b[ib], True
            r = stepper.step(pcm, active)
            assert not r.generated[1] and not r.pcm[1].any()
            if step >= 2 and ib < N_FRAMES:
                out_b.append(r.pcm[2]); txt_b.append(int(r.text[2])); ib += 1
            if active[0]:
                out_a.append(r.pcm[0]); txt_a.append(int(r.text[0])); ia += 1
    np.testing.assert_allclose(np.stack(out_a), single_a, atol=1e-5)
    np.testing.assert_allclose(np.stack(out_b), single_b, atol=1e-5)
    assert txt_a == text_a and txt_b == text_b


def test_first_step_is_silent_then_audio_follows():
    model = tiny_model()
    with BatchStepper(model, 1, GREEDY) as stepper:
        first = stepper.step(_frames(3)[0][None], np.array([True]))
        second = stepper.step(_frames(3)[1][None], np.array([True]))
    assert stepper.max_delay == 1
    assert not first.generated[0] and not first.pcm.any() and first.text[0] == NO_TEXT
    assert second.generated[0]


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_model()
    frames = _frames(4)[:4]
    runs = []
    for _ in range(2):
        with BatchStepper(model, 1, SamplingOptions(seed=7)) as stepper:
            runs.append(np.stack([stepper.step(f[None], np.array([True])).pcm[0] for f in frames]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_warmup_on_cpu_does_not_touch_cuda(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("torch.cuda called on a CPU model")

    monkeypatch.setattr(torch.cuda, "synchronize", boom)
    with BatchStepper(tiny_model(), 2, GREEDY) as stepper:
        stepper.warmup(steps=2)


def test_invalid_sampling_options_are_rejected():
    with pytest.raises(JmoshiError, match="temp_text must be >= 0"):
        SamplingOptions(temp_text=-1)
    with pytest.raises(JmoshiError, match="both be 0"):
        SamplingOptions(temp=0, temp_text=0.7)


def test_engine_thread_serves_sessions_and_reports_busy():
    model = tiny_model()
    got: dict[int, list] = {0: [], 1: []}
    done = threading.Event()

    def collect(i):
        def on_output(out):
            got[i].append(out)
            if all(len(v) >= 4 for v in got.values()):
                done.set()
        return on_output

    with Engine(model, 2, GREEDY) as engine:
        s0 = engine.open_session(collect(0))
        s1 = engine.open_session(collect(1))
        assert engine.open_session(lambda out: None) is None  # both slots taken: the caller says busy
        x0, x1 = speech_like(0.32, seed=5), speech_like(0.32, seed=6)
        s0.push(x0[:1000]); s0.push(x0[1000:])  # arbitrary chunking is re-framed
        s1.push(x1)
        assert done.wait(timeout=120)
        s0.close()
        s3 = engine.open_session(lambda out: None)  # the freed slot is reusable at once
        assert s3 is not None and engine.active_sessions == 2
    assert [o.index for o in got[0]] == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.concatenate([o.user_pcm for o in got[0]]), x0[:4 * FRAME_SIZE])
    assert got[0][1].pcm.shape == (FRAME_SIZE,)


SAMPLED = SamplingOptions(temp=0.8, temp_text=0.7, seed=11)


def _single_sampled(model, frames, seed) -> tuple[np.ndarray, list[int]]:
    with BatchStepper(model, 1, SamplingOptions(temp=0.8, temp_text=0.7, seed=seed)) as stepper:
        results = [stepper.step(f[None], np.array([True])) for f in frames]
    return np.stack([r.pcm[0] for r in results]), [int(r.text[0]) for r in results]


def test_sampled_batched_sessions_equal_single_ones_through_compaction():
    """Per-session random streams and compaction: b samples in row 1 of a 4-row stepper next to a,
    then a leaves, b moves to row 0 and goes on in a batch-1 bucket; b's tokens and audio are those
    of b alone with the same seed, and differ from another seed's."""
    model = tiny_model()
    a, b = _frames(1), _frames(2)
    single_b, text_b = _single_sampled(model, b, seed=77)
    other_b, _ = _single_sampled(model, b, seed=78)
    assert not np.allclose(single_b, other_b)  # the seed matters: the draws are really sampled
    out_b, txt_b, buckets = [], [], []
    with BatchStepper(model, 4, SAMPLED) as stepper:
        assert stepper.views.buckets == [1, 2, 4]
        stepper.reset([0, 1], seeds=[5, 77])
        for i in range(N_FRAMES):
            if i < 3:
                r = stepper.step(np.stack([a[i], b[i]]), np.array([True, True]))
                out_b.append(r.pcm[1]); txt_b.append(int(r.text[1]))
            else:
                if i == 3:
                    stepper.move(1, 0)  # a left row 0: b takes its place
                r = stepper.step(b[i][None], np.array([True]))
                out_b.append(r.pcm[0]); txt_b.append(int(r.text[0]))
            buckets.append(stepper.views.active)
    assert buckets == [2, 2, 2, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(np.stack(out_b), single_b, atol=1e-5)
    assert txt_b == text_b


def test_one_session_on_a_many_row_stepper_computes_one_row():
    model = tiny_model()
    with BatchStepper(model, 4, GREEDY) as stepper:
        r = stepper.step(_frames(3)[0][None], np.array([True]))
        assert stepper.views.active == 1 and r.pcm.shape == (1, model.frame_size)
        # the step really ran on a 1-row state: the LM's KV cache view has batch 1
        state = stepper.lm_gen._streaming_state
        assert state.batch_size == 1 and state.offsets.shape == (1,)
        assert state.offsets.data_ptr() == stepper.views.full["lm_gen"][""].offsets.data_ptr()


def test_engine_compacts_rows_when_a_session_leaves():
    """Three sessions on a 4-slot engine; the first leaves; the last moves into its row and the
    engine steps a 2-row bucket. The moved session's stream goes on as if nothing happened: its
    output equals the same session (same seed) run alone."""
    model = tiny_model()
    x = speech_like(N_FRAMES / FRAME_RATE, seed=8)
    alone: list[StepOutput] = []
    with Engine(model, 1, SAMPLED) as engine:
        done = threading.Event()
        s = engine.open_session(lambda o: (alone.append(o), len(alone) == N_FRAMES and done.set()), seed=99)
        s.push(x)
        assert done.wait(timeout=120)

    got: dict[int, list[StepOutput]] = {0: [], 1: [], 2: []}
    half = threading.Event()
    done = threading.Event()

    def collect(i):
        def on_output(out):
            got[i].append(out)
            if i == 2 and len(got[2]) == N_FRAMES // 2:
                half.set()
            if i == 2 and len(got[2]) == N_FRAMES:
                done.set()
        return on_output

    with Engine(model, 4, SAMPLED) as engine:
        sessions = [engine.open_session(collect(0)), engine.open_session(collect(1)),
                    engine.open_session(collect(2), seed=99)]
        for i, s in enumerate(sessions[:2]):
            s.push(speech_like(N_FRAMES / FRAME_RATE, seed=20 + i))
        sessions[2].push(x[: N_FRAMES // 2 * FRAME_SIZE])
        assert half.wait(timeout=120)
        assert sessions[2].row == 2 and engine.stepper.views.active == 4
        sessions[0].close()
        sessions[1].push(np.zeros(0, np.float32))
        sessions[2].push(x[N_FRAMES // 2 * FRAME_SIZE :])
        assert done.wait(timeout=120)
        assert sessions[2].row == 0 and sessions[1].row == 1  # the last row moved into the hole
        assert engine.stepper.views.active == 2
    np.testing.assert_allclose(np.stack([o.pcm for o in got[2]]), np.stack([o.pcm for o in alone]), atol=1e-5)
    assert [o.text_id for o in got[2]] == [o.text_id for o in alone]
