"""One run per output folder: a second synth on a folder in use is refused with one line naming the
other process; the lock left by a killed run is taken over."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jmoshi_augment.augment.run.run_lock import LOCK_NAME, FolderInUse, run_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from pathlib import Path; from jmoshi_augment.augment.run.run_lock import run_lock\n" \
       "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)\n"


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_other(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        res = subprocess.run([sys.executable, "-m", "jmoshi_augment.cli", "synth", str(ROOT / "recipes/sample.yaml"),
                              "--out", str(out), "--limit", "1", "-q", "--set", "tts.backend=openjtalk"],
                             capture_output=True, text=True, env={**os.environ, "NO_TORCH_COMPILE": "1"}, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {out}: in use by another synth (pid {holder.pid} on {socket.gethostname()}, since ")
    assert not (out / "units").exists()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    holder = _holder(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert f"pid {holder.pid}" in (out / LOCK_NAME).read_text()  # left behind, held by nobody
    with caplog.at_level(logging.INFO), run_lock(out):
        assert f"pid {os.getpid()}" in (out / LOCK_NAME).read_text()
        with pytest.raises(FolderInUse, match=f"pid {os.getpid()}"):  # and now it is ours
            with run_lock(out):
                pass
    assert f"taking over the lock left by a run that ended without releasing it (pid {holder.pid}" in caplog.text
    assert not (out / LOCK_NAME).exists()
