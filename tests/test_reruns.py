"""Reruns into the same folder: a smaller --limit never shrinks or orphans a finished run, and Ctrl-C
says how to resume (no traceback from the main process or its workers), after which the same
command finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "recipes" / "sample.yaml"


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_smaller_limit_never_shrinks_or_orphans_a_finished_run(tmp_path):
    out = tmp_path / "run"
    base = {"output.dir": str(out), "output.shard_size": 2, "workers": 1, "tts.backend": "openjtalk"}  # the fast voice: reruns, not voices, are tested
    full = run_synth(load_recipe(SAMPLE, {**base, "corpus.limit": 3}), progress=False)
    assert full.report["renderings"] == 3 and full.units_done == 2
    wavs = sorted(p.name for p in out.rglob("*.wav"))
    records = {p.name: p.read_bytes() for p in (out / "units").iterdir()}

    for limit in (1,):  # cuts unit 0 (two finished dialogues) short, and drops unit 1
        again = run_synth(load_recipe(SAMPLE, {**base, "corpus.limit": limit}), progress=False)
        assert again.units_done == 0 and again.report["renderings"] == 3
        assert sorted(p.name for p in out.rglob("*.wav")) == wavs
        assert {p.name: p.read_bytes() for p in (out / "units").iterdir()} == records
        manifest = [json.loads(line)["path"] for line in (out / "data.jsonl").read_text().splitlines()]
        assert sorted(Path(m).name for m in manifest) == wavs  # every wav listed: none orphaned


def test_ctrl_c_says_how_to_resume_and_the_same_command_finishes(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "jmoshi_augment.cli", "synth", str(SAMPLE), "--out", str(out), "--limit", "4",
            "-q", "-j", "2", "--set", "output.shard_size=1", "--set", "tts.backend=openjtalk"]
    env = {**os.environ, "NO_TORCH_COMPILE": "1"}
    # a session of its own: Ctrl-C reaches the whole process group, workers included, as in a terminal
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("units/unit-*.json")):  # workers are up once a unit is done
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no unit finished within 120 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:  # it finished before the signal landed: nothing to interrupt
        return
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; rerun the same command to resume"
    done = len(list(out.glob("units/unit-*.json")))
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{done} units resumed from an earlier run" in res.stdout
    assert json.loads((out / "report.json").read_text())["renderings"] == 4
