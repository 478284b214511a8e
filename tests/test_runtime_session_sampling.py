"""Per-session sampling: a client's temperatures and top-k are clamped into the server's bounds, and
a session sampling with its own settings in a shared batch gets exactly what it gets alone."""

from __future__ import annotations

import numpy as np
import torch

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE
from jmoshi_augment.runtime.engine import BatchStepper, SamplingOptions
from jmoshi_augment.runtime.sampling import SamplingBounds, sample_rows
from jmoshi_augment.sampling import hash_uniform, sample
from runtime_helpers import speech_like, tiny_model

N_FRAMES = 6


def test_client_values_are_clamped_into_the_bounds_and_bad_ones_ignored():
    base = SamplingOptions(temp=0.8, temp_text=0.7, top_k=250, top_k_text=25)
    bounds = SamplingBounds(temp=(0.2, 1.2), top_k=(10, 500))
    got, notes = bounds.apply(base, {"text_temperature": "0.5", "audio_temperature": "9",
                                     "text_topk": "3", "audio_topk": "nan?"})
    assert got == SamplingOptions(temp=1.2, temp_text=0.5, top_k=250, top_k_text=10, seed=base.seed)
    assert notes == ["audio_temperature 9 -> 1.2", "text_topk 3 -> 10", "audio_topk 'nan?' ignored: not a number"]
    assert bounds.apply(base, {}) == (base, [])
    greedy = SamplingOptions(temp=0, temp_text=0)
    assert bounds.apply(greedy, {"audio_temperature": "0.9"})[0] == greedy  # a greedy server stays greedy


def test_per_row_sampling_draws_what_each_row_draws_alone():
    torch.manual_seed(0)
    logits = torch.randn(3, 300)
    seeds, steps = torch.tensor([5, 6, 7]), torch.tensor([0, 4, 9])
    temps, ks = torch.tensor([0.8, 0.3, 0.0]), torch.tensor([250, 10, 40])
    u = hash_uniform(seeds, steps, 300)
    rows = sample_rows(logits, temps, ks, 300, u)
    for b in range(3):
        alone = sample(logits[b : b + 1], float(temps[b]), int(ks[b]), u[b : b + 1])
        assert int(rows[b]) == int(alone[0])


def _frames(seed: int) -> list[np.ndarray]:
    x = speech_like(N_FRAMES / FRAME_RATE, seed=seed)
    return [x[i * FRAME_SIZE : (i + 1) * FRAME_SIZE] for i in range(N_FRAMES)]


def test_a_session_with_its_own_sampling_in_a_batch_equals_it_alone():
    model = tiny_model()
    mine = SamplingOptions(temp=1.1, temp_text=0.3, top_k=400, top_k_text=5, seed=77)  # more candidates than the server's 250
    server = SamplingOptions(temp=0.8, temp_text=0.7, seed=77)
    a, b = _frames(1), _frames(2)
    with BatchStepper(model, 1, mine) as stepper:
        alone = [stepper.step(f[None], np.array([True])) for f in b]
    with BatchStepper(model, 1, server) as stepper:
        default = [stepper.step(f[None], np.array([True])) for f in b]
    with BatchStepper(model, 2, server, max_top_k=500) as stepper:
        stepper.reset([0, 1], seeds=[5, 77], sampling=[server, mine])
        batched = [stepper.step(np.stack([a[i], b[i]]), np.array([True, True])) for i in range(N_FRAMES)]
    np.testing.assert_allclose(np.stack([r.pcm[1] for r in batched]), np.stack([r.pcm[0] for r in alone]), atol=1e-5)
    assert [int(r.text[1]) for r in batched] == [int(r.text[0]) for r in alone]
    assert not np.allclose(np.stack([r.pcm[0] for r in default]), np.stack([r.pcm[0] for r in alone]))


def test_server_refuses_bounds_beyond_what_its_engine_can_sample():
    import pytest

    from jmoshi_augment.errors import JmoshiError
    from jmoshi_augment.runtime.engine import Engine
    from jmoshi_augment.runtime.server import ChatServer, ServerOptions

    engine = Engine(tiny_model(), 1, max_top_k=100)  # not started: only its limits are read
    with pytest.raises(JmoshiError, match="at most 100"):
        ChatServer(engine, ServerOptions(sampling_bounds=SamplingBounds(top_k=(10, 500))))
    ChatServer(engine, ServerOptions(sampling_bounds=SamplingBounds(top_k=(10, 100))))
