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
