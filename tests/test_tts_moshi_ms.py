"""J-Moshi-style multi-stream TTS on a tiny random Moshi LM loaded through the real checkpoint path.

Random weights give noise for audio, but the decoding invariants are exact: the merged text stream
holds every script token once, in order, with the speaker token at each turn start; the prompt is
forced and then cut; word starts come from the frames where tokens were forced; a batched run
equals runs one by one.
"""

from __future__ import annotations

import numpy as np
import pytest

from jmoshi_augment.augment.speech.tts.moshi_ms import (
    DialogueRequest,
    RenderFailed,
    build_script_tokens,
    speaker_runs,
    trim_end,
)
from jmoshi_augment.augment.speech.tts import get_backend
from jmoshi_augment.augment.speech.tts.ms_decode import DecodeItem, ForcedDecoder, undelay
from jmoshi_augment.sampling import hash_uniform
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE
from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError
from ms_helpers import make_ms_model_dir, tiny_script, write_prompt

HOP = FRAME_SIZE


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batched tiny-model steps spend most of their time in thread hand-offs on 2 shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms")
    folder = make_ms_model_dir(root / "model", shared=tmp_path_factory.getbasetemp() / "ms_shared")
    write_prompt(folder / "pairA.wav")
    return folder


@pytest.fixture(scope="module")
def backend(model_dir):
    # pad_bonus makes the random model propose padding often enough that kept pads are exercised
    return get_backend("moshi_ms", model=str(model_dir), prompts=[str(model_dir / "pairA.wav")], device="cpu", pad_bonus=3.0,
                  max_frames=80, tail_frames=4, batch_size=2)


@pytest.fixture(scope="module")
def batched(backend):
    reqs = [DialogueRequest(tiny_script("t-1"), "A", "pairA", 11), DialogueRequest(tiny_script("t-2"), "B", "pairA", 22),
            DialogueRequest(tiny_script("t-3"), "A", "pairA", 33)]
    return reqs, backend.render_dialogues(reqs)  # 3 items in 2 slots: the third reuses a freed slot


def test_script_tokens_merge_speakers_and_inline_backchannels(backend):
    sp = backend.model.sp
    script = tiny_script()
    runs = speaker_runs(script, "A")
    assert [ch for ch, _ in runs] == [MAIN, OTHER, MAIN, OTHER, MAIN]
    assert runs[1][1] == [(3, 0)]  # うん right after 天気, the anchor word
    toks = build_script_tokens(script, "A", sp)
    speaker_positions = [i for i, t in enumerate(toks.ids) if t in (1, 2)]
    assert [toks.ids[i] for i in speaker_positions] == [1, 2, 1, 2, 1]
    assert all(w.token > speaker_positions[w.run] for w in toks.words)
    assert [w.surface for w in toks.words][:5] == ["今日", "は", "いい", "天気", "うん"]
    flipped = build_script_tokens(script, "B", sp)
    assert flipped.ids[0] == 2 and {w.channel for w in flipped.words if w.surface == "うん"} == {MAIN}
    dropped = build_script_tokens(script, "A", sp, backchannels="drop")
    assert "うん" not in [w.surface for w in dropped.words]
    assert [t for t in dropped.ids if t in (1, 2)] == [1, 2, 1]
    with pytest.raises(JmoshiError, match="main speaker 'C'"):
        speaker_runs(script, "C")


def test_forced_decoding_consumes_script_once_in_order(backend, batched):
    reqs, outs = batched
    for req, out in zip(reqs, outs):
        assert not isinstance(out, RenderFailed)
        expected = build_script_tokens(req.script, req.main_speaker, backend.model.sp).ids
        stream = out.meta["text_stream"]
        assert [t for t in stream if t not in (0, TEXT_IDS.pad)] == list(expected)
        first, last = stream.index(expected[0]), len(stream) - stream[::-1].index(expected[-1])
        assert any(t in (0, TEXT_IDS.pad) for t in stream[first:last]), "the model's own pads are kept"
        assert all(t == TEXT_IDS.pad or t == 0 for t in stream[last:]), "only padding after the script"


def test_rendered_dialogue_shape_words_and_trim(backend, batched):
    reqs, outs = batched
    for req, out in zip(reqs, outs):
        assert out.audio.dtype == np.float32 and out.audio.shape[0] == 2 and out.audio.shape[1] > 0
        assert np.abs(out.audio).max() < 1.0
        assert out.speaker_map == {"main": req.main_speaker, "other": "B" if req.main_speaker == "A" else "A"}
        starts = [w.start for w in out.words]
        assert starts == sorted(starts)
        assert all(0 <= w.start <= w.end <= out.duration + 1e-9 for w in out.words)
        assert len(out.words) == sum(len(s.words) for s in req.script.segments)
        main_words = {w.word for w in out.words if w.channel == MAIN}
        assert ("天気" in main_words) == (req.main_speaker == "A")
        # a word starts on the frame where its first piece was forced
        stream = out.meta["text_stream"]
        for w in out.words:
            f = int(round(w.start * FRAME_RATE))
            assert stream[f] not in (0, TEXT_IDS.pad)
        # trimmed: no more than the tail after the last token, never before it
        last_token = max(i for i, t in enumerate(stream) if t not in (0, TEXT_IDS.pad))
        assert (last_token + 1) * HOP <= out.audio.shape[1] <= (last_token + 1 + 4) * HOP


def test_prompt_is_forced_then_removed(backend, model_dir):
    prompt = backend.prompts.tokens("pairA", backend.model)
    assert prompt.shape == (17, 6) and (prompt[0] == TEXT_IDS.pad).all()
    script = np.asarray(build_script_tokens(tiny_script(), "A", backend.model.sp).ids)
    dec = ForcedDecoder(backend.model.lm, sampling=backend.options.sampling, limits=backend.options.limits)
    out = dec.run([DecodeItem(script, prompt, 5)], batch_size=1)[0]
    frames = undelay(out.steps, backend.model.lm.delays)
    np.testing.assert_array_equal(frames[:, :6], prompt)
    assert out.consumed_at.min() >= 6  # the script starts after the prompt
    rendered = backend._finish(DialogueRequest(tiny_script(), "A", "pairA", 5), build_script_tokens(tiny_script(), "A", backend.model.sp),
                               6, out, backend._decode_audio([frames])[0])
    assert rendered.audio.shape[1] <= (frames.shape[1] - 6) * HOP
    assert rendered.meta["text_stream"][: len(rendered.meta["text_stream"])] == frames[0, 6:][: len(rendered.meta["text_stream"])].tolist()


def test_batched_equals_one_by_one(backend, batched):
    reqs, outs = batched
    alone = backend.render_dialogues([reqs[2]])[0]  # t-3 ran in a slot freed by t-1 or t-2
    assert alone.meta["text_stream"] == outs[2].meta["text_stream"]
    assert alone.words == outs[2].words
    np.testing.assert_allclose(alone.audio, outs[2].audio, atol=1e-4)
    assert outs[0].meta["text_stream"] != outs[2].meta["text_stream"] or not np.allclose(outs[0].audio, outs[2].audio)


def test_render_dialogue_draws_voice_and_seed(backend):
    a = backend.render_dialogue(tiny_script(), "A", None, np.random.default_rng(3))
    assert a.meta["tts"]["voice_pair"] == "pairA" and a.voices == {"main": "pairA:0", "other": "pairA:1"}


def test_script_not_consumed_in_time_is_reported(backend):
    from dataclasses import replace

    from jmoshi_augment.augment.speech.tts.moshi_ms import MoshiMultiStreamTTS
    from jmoshi_augment.augment.speech.tts.ms_decode import DecodeLimits

    short = MoshiMultiStreamTTS(backend.model, backend.prompts, replace(backend.options, limits=DecodeLimits(max_frames=3)))
    with pytest.raises(RenderFailed, match="not consumed within max_frames=3"):
        short.render_dialogue(tiny_script(), "A", None, np.random.default_rng(0))


def test_dialogue_model_is_refused_before_any_work(tmp_path, tmp_path_factory):
    folder = make_ms_model_dir(tmp_path / "dep8", dep_q=8, shared=tmp_path_factory.getbasetemp() / "ms_shared")
    with pytest.raises(JmoshiError, match=r"n_q=16, dep_q=8") as e:
        get_backend("moshi_ms", model=str(folder), device="cpu")
    assert str(folder / "model.safetensors") in str(e.value)


def test_prompt_bank_errors(tmp_path, backend, model_dir):
    from jmoshi_augment.augment.speech.tts.moshi_ms import PromptBank

    mono = write_prompt(tmp_path / "mono.wav", channels=1)
    with pytest.raises(JmoshiError, match="must be stereo"):
        PromptBank([mono]).tokens("mono", backend.model)
    with pytest.raises(JmoshiError, match="unknown voice pair 'x'.*pairA"):
        backend.prompts.tokens("x", backend.model)
    np.save(tmp_path / "bad.npy", np.zeros((9, 4), dtype=np.int64))
    with pytest.raises(JmoshiError, match=r"integer array \[17, T\]"):
        PromptBank([tmp_path / "bad.npy"]).tokens("bad", backend.model)
    with pytest.raises(JmoshiError, match="audio prompt not found"):
        PromptBank([tmp_path / "nope.wav"])
    with pytest.raises(JmoshiError, match="tts.options.backchannels: must be inline or drop"):
        get_backend("moshi_ms", model=str(model_dir), backchannels="sometimes")


def test_trim_end_cuts_trailing_silence_only():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio = np.zeros((2, 2 * SAMPLE_RATE), dtype=np.float32)
    audio[1, :SAMPLE_RATE] = tone
    n = trim_end(audio, keep=0)
    assert SAMPLE_RATE <= n <= SAMPLE_RATE + HOP + 960
    assert trim_end(audio, keep=int(1.5 * SAMPLE_RATE)) == int(1.5 * SAMPLE_RATE) + 960


def test_noise_is_batch_invariant():
    import torch

    seeds = torch.tensor([1, 2**40 + 7, 99], dtype=torch.long)
    steps = torch.tensor([0, 5, 123], dtype=torch.long)
    batch = hash_uniform(seeds, steps, 300)
    for b in range(3):
        torch.testing.assert_close(hash_uniform(seeds[b: b + 1], steps[b: b + 1], 300)[0], batch[b], rtol=0, atol=0)
    assert 0 < float(batch.min()) and float(batch.max()) < 1 and abs(float(batch.mean()) - 0.5) < 0.05
    assert not torch.equal(batch[0], batch[1])


# ----------------------------------------------------------------- CUDA-graph safety of the step
# On CUDA, ForcedDecoder.run captures ``step`` once with moshi's CUDAGraphed and replays it; that is
# only correct if the step never syncs with the host and only writes its slot buffers in place
# (a replay writes to the addresses seen at capture). Both are checked here on the CPU.

_HOST_SYNCS = {"item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__"}


class _NoHostSync:
    """Torch function mode that fails on any call reading a device value back to the host."""

    def __new__(cls):
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                if name in _HOST_SYNCS:
                    raise AssertionError(f"host sync inside the step: {name}")
                return func(*args, **(kwargs or {}))

        return Mode()


def test_step_is_graph_safe_and_wrapped_like_lmgen(backend, monkeypatch):
    from dataclasses import fields

    import moshi.utils.compile as mcompile

    from jmoshi_augment.augment.speech.tts import ms_decode

    wrappers = []

    class Recorder(mcompile.CUDAGraphed):
        def __init__(self, func, warmup_steps=1, disable=False):
            super().__init__(func, warmup_steps, disable)
            self.calls = 0
            wrappers.append(self)

        def __call__(self, *args, **kwargs):
            assert not args and not kwargs  # everything the step touches lives in fixed buffers
            self.calls += 1
            return super().__call__(*args, **kwargs)

    steps: list[dict[str, tuple[int, tuple[int, ...]]]] = []

    class Checked(ForcedDecoder):
        def step(self, st):
            before = {f.name: (getattr(st, f.name).data_ptr(), tuple(getattr(st, f.name).shape)) for f in fields(st)}
            pos = st.pos.clone()
            with _NoHostSync():
                super().step(st)
            after = {f.name: (getattr(st, f.name).data_ptr(), tuple(getattr(st, f.name).shape)) for f in fields(st)}
            assert after == before
            assert np.array_equal(st.pos.numpy(), pos.numpy() + 1)  # pos advanced in place, not rebound
            steps.append(before)

    monkeypatch.setattr(mcompile, "CUDAGraphed", Recorder)
    scripts = [np.asarray(build_script_tokens(tiny_script(f"g-{i}"), "A", backend.model.sp).ids) for i in range(3)]
    prompt = backend.prompts.tokens("pairA", backend.model)
    items = [DecodeItem(s, prompt if i != 1 else prompt[:, :0], 100 + i) for i, s in enumerate(scripts)]
    kw = dict(pad_id=TEXT_IDS.pad, sampling=backend.options.sampling, limits=backend.options.limits)
    checked = Checked(backend.model.lm, **kw).run(items, batch_size=2)  # 3 items in 2 slots: a refill happens
    assert len(wrappers) == 1 and wrappers[0].disable and wrappers[0].calls == len(steps) > 0  # CPU: pass-through
    assert all(s == steps[0] for s in steps)  # the same buffers for every step, refills included
    plain = ms_decode.ForcedDecoder(backend.model.lm, cuda_graph=False, **kw).run(items, batch_size=2)
    for a, b in zip(checked, plain):
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.consumed_at, b.consumed_at)
        assert a.complete == b.complete


def test_host_sync_guard_catches_a_sync():
    import torch

    with pytest.raises(AssertionError, match="host sync inside the step: item"):
        with _NoHostSync():
            torch.ones(2).sum().item()
    with pytest.raises(AssertionError, match="__bool__"):
        with _NoHostSync():
            bool(torch.ones(1) > 0)
