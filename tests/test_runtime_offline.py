"""`jmoshi-augment chat --input in.wav --output out.wav` on the tiny model, through the CLI."""

from __future__ import annotations

import numpy as np
import soundfile
from typer.testing import CliRunner

from jmoshi_augment.cli import app
from jmoshi_augment.constants import FRAME_SIZE, SAMPLE_RATE
from runtime_helpers import speech_like, tiny_model_dir


def test_offline_chat_writes_aligned_stereo_of_the_input_length(tmp_path):
    x = speech_like(0.5, sample_rate=16000, seed=3)  # 16 kHz: resampled to 24 kHz on the way in
    soundfile.write(tmp_path / "in.wav", x, 16000)
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(app, ["chat", str(tiny_model_dir()), "--device", "cpu", "--input",
                                      str(tmp_path / "in.wav"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    data, sr = soundfile.read(out)
    assert sr == SAMPLE_RATE and data.shape == (SAMPLE_RATE // 2, 2)  # 0.5 s at 24 kHz, not rounded up to frames
    assert np.abs(data[:FRAME_SIZE, 0]).max() == 0  # the acoustic delay: the model's first frame is silent
    assert np.abs(data[FRAME_SIZE:, 0]).max() > 0
    assert np.corrcoef(data[:, 1], np.interp(np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE, np.arange(8000) / 16000, x))[0, 1] > 0.9
    assert "real-time factor" in result.output
    assert not list(tmp_path.glob("*.tmp-*"))


def test_offline_chat_needs_both_paths_and_a_readable_input(tmp_path):
    from jmoshi_augment.errors import JmoshiError

    result = CliRunner().invoke(app, ["chat", str(tiny_model_dir()), "--device", "cpu", "--input", "x.wav"])
    assert isinstance(result.exception, JmoshiError) and "needs both --input and --output" in str(result.exception)
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    result = CliRunner().invoke(app, ["chat", str(tiny_model_dir()), "--device", "cpu", "--input",
                                      str(tmp_path / "bad.wav"), "--output", str(tmp_path / "o.wav")])
    assert isinstance(result.exception, JmoshiError) and "cannot read audio" in str(result.exception)
    assert not (tmp_path / "o.wav").exists()


def test_checkpoint_lm_gen_config_is_applied_and_flags_override_it(tmp_path):
    """config.json's lm_gen_config (moshi's place for a model's sampling defaults) sets greedy
    decoding here: the CLI's output equals a greedy run, not a sampled one with the same seed."""
    import json
    import shutil

    from jmoshi_augment.runtime.offline import run_offline
    from jmoshi_augment.runtime.sampling import SamplingOptions
    from runtime_helpers import tiny_model

    merged = SamplingOptions.resolve({"temp": 0.5, "top_k": 100, "cfg_coef": 1.0}, top_k=50, seed=None)
    assert (merged.temp, merged.temp_text, merged.top_k, merged.top_k_text) == (0.5, 0.7, 50, 25)

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), model)
    config = json.loads((model / "config.json").read_text())
    config["lm_gen_config"] = {"temp": 0.0, "temp_text": 0.0}
    (model / "config.json").write_text(json.dumps(config))
    x = speech_like(0.4, seed=4)
    soundfile.write(tmp_path / "in.wav", x, SAMPLE_RATE, subtype="FLOAT")
    result = CliRunner().invoke(app, ["chat", str(model), "--device", "cpu", "--seed", "1", "--input",
                                      str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav")])
    assert result.exit_code == 0, result.output
    got = soundfile.read(tmp_path / "out.wav", dtype="float32")[0][:, 0]
    greedy = run_offline(tiny_model(), x, SamplingOptions(temp=0, temp_text=0))
    sampled = run_offline(tiny_model(), x, SamplingOptions(seed=1))
    assert greedy.text != sampled.text  # the random tiny LM's text shows sampling plainly
    lines = result.output.splitlines()
    assert greedy.text in lines and sampled.text not in lines
    np.testing.assert_allclose(got, greedy.stereo[:, 0], atol=2 / 32767)  # the wav is 16-bit
