"""Nothing lost to a passing fault: faults injected into real synth runs (tests/fault_hooks.py) —
a write failing with ENOSPC, a render raising, a worker killed, a model file removed mid-run,
SIGTERM — leave no unit recorded that was not finished and nothing rejected that was not a
content failure; the same command then finishes the run, equal byte for byte to a clean run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fault_hooks
from jmoshi_augment.augment.run.failures import UnitsFailed
from jmoshi_augment.augment.run.layout import unit_path
from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.recipe import load_recipe

LIMIT, SHARD = 4, 2  # two units of two dialogues
TIMING = ("seconds", "stage_seconds", "wall_seconds_this_run", "output_dir")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A recipe with an HTS voice file of its own (so a test can remove it), and its clean run."""
    import pyopenjtalk

    base = tmp_path_factory.mktemp("faults")
    voice = base / "voice.htsvoice"
    shutil.copy(pyopenjtalk.DEFAULT_HTS_VOICE.decode("utf-8"), voice)
    recipe = base / "faults.yaml"
    recipe.write_text(
        "corpus: {name: jsonl, path: 'builtin:sample'}\n"
        f"tts:\n  backend: openjtalk\n  voices:\n    - {{name: a, htsvoice: {voice}}}\n"
        f"    - {{name: b, htsvoice: {voice}, half_tone: 3.0, speed: 1.1}}\n"
        f"output: {{dir: {base / 'clean'}, formats: [wav], shard_size: {SHARD}}}\nworkers: 1\n", encoding="utf-8")
    run_synth(_recipe(recipe, base / "clean"), progress=False)
    return {"recipe": recipe, "voice": voice, "clean": base / "clean"}


def _recipe(path: Path, out: Path):
    return load_recipe(path, {"output.dir": str(out), "corpus.limit": LIMIT})


def _content(out: Path) -> dict[str, object]:
    """Every output file, with the unit records and report.json less their timings (and the
    folder's own path); the recipe copies hold the worker count, the log only a faulted run's."""
    files: dict[str, object] = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if not p.is_file() or rel in ("recipe.yaml", "recipe.json", "synth.log") or rel.startswith(("report_data", "report.html")):
            continue
        if rel.startswith("units/") or rel == "report.json":
            data = json.loads(p.read_text(encoding="utf-8"))
            files[rel] = {k: v for k, v in data.items() if k not in TIMING}
        else:
            files[rel] = p.read_bytes()
    return files


def _assert_same_as_clean(out: Path, clean: Path) -> None:
    got, want = _content(out), _content(clean)
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel] == want[rel], rel
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["rejected"] == {}


def _cli(recipe: Path, out: Path, faults: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jmoshi_augment.cli", "synth", str(recipe), "--out", str(out), "--limit", str(LIMIT),
            "-q", "-j", "2", *extra]


def _env(faults: Path, **more: str) -> dict[str, str]:
    path = os.pathsep.join([str(fault_hooks.SITE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "NO_TORCH_COMPILE": "1", "PYTHONPATH": path, fault_hooks.FAULTS_ENV: str(faults), **more}


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return status != "Z"


# -------------------------------------------------------------------------------- in-process


def test_a_full_disk_fails_the_unit_and_the_rerun_completes_it(setup, tmp_path, monkeypatch):
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    fault_hooks.plant(faults, "sample-002", "enospc")
    monkeypatch.setenv(fault_hooks.FAULTS_ENV, str(faults))
    fault_hooks.install(monkeypatch)
    with pytest.raises(UnitsFailed) as e:
        run_synth(_recipe(setup["recipe"], out), progress=False)
    lines = e.value.lines()
    assert lines[0].startswith("unit 0: writing the unit: OSError: [Errno 28] No space left on device")
    assert lines[-1] == (f"{out}: 1 unit(s) failed and were not recorded as finished; tracebacks in "
                         f"{out / 'synth.log'}; rerun the same command to redo them")
    assert not unit_path(out, 0).exists() and not unit_path(out, 1).exists()  # a full disk: no more work handed out
    assert "Traceback" in (out / "synth.log").read_text(encoding="utf-8")
    assert not list(out.rglob("*.tmp-*"))  # nothing half-written
    summary = run_synth(_recipe(setup["recipe"], out), progress=False)
    assert summary.units_done == 2
    _assert_same_as_clean(out, setup["clean"])


def test_a_render_that_raises_fails_its_unit_not_the_dialogue(setup, tmp_path, monkeypatch):
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    fault_hooks.plant(faults, "sample-003", "raise")
    monkeypatch.setenv(fault_hooks.FAULTS_ENV, str(faults))
    fault_hooks.install(monkeypatch)
    with pytest.raises(UnitsFailed) as e:
        run_synth(_recipe(setup["recipe"], out), progress=False)
    assert e.value.lines()[0] == "unit 1: sample-003: RuntimeError: [ONNXRuntimeError] : 1 : FAIL : injected: cannot read the model"
    assert unit_path(out, 0).exists() and not unit_path(out, 1).exists()
    summary = run_synth(_recipe(setup["recipe"], out), progress=False)
    assert summary.units_resumed == 1 and summary.units_done == 1
    _assert_same_as_clean(out, setup["clean"])


def test_a_render_the_backend_refuses_is_a_recorded_rejection(setup, tmp_path, monkeypatch):
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    fault_hooks.plant(faults, "sample-002", "refuse")
    monkeypatch.setenv(fault_hooks.FAULTS_ENV, str(faults))
    fault_hooks.install(monkeypatch)
    recipe = load_recipe(setup["recipe"], {"output.dir": str(out), "corpus.limit": 2})
    summary = run_synth(recipe, progress=False)  # no failure: a content rejection is a result
    assert summary.report["rejected"] == {"sample-002": "render failed: sample-002: injected: the backend refuses this script"}
    assert json.loads(unit_path(out, 0).read_text(encoding="utf-8"))["rejected"] == summary.report["rejected"]
    again = run_synth(recipe, progress=False)  # would recur: not redone
    assert again.units_resumed == 1 and again.units_done == 0


# ------------------------------------------------------------------------- worker processes


def test_a_killed_worker_fails_its_unit_at_once_and_the_rerun_completes_it(setup, tmp_path):
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    fault_hooks.plant(faults, "sample-002", "kill")
    args = _cli(setup["recipe"], out, faults)
    res = subprocess.run(args, capture_output=True, text=True, env=_env(faults), timeout=240)
    assert res.returncode == 3, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == "error: unit 0: sample-002: worker process died of SIGKILL (killed: out of memory, or by hand)"
    assert "Traceback" not in res.stderr
    assert fault_hooks.claimed(faults) == ["sample-002.kill"]
    assert unit_path(out, 1).exists() and not unit_path(out, 0).exists()  # the run carried on
    res = subprocess.run(args, capture_output=True, text=True, env=_env(faults), timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_same_as_clean(out, setup["clean"])
    assert not [p for p in (faults / "pids").iterdir() if _alive(int(p.name))]


def test_a_model_file_removed_mid_run_loses_nothing(setup, tmp_path):
    """The worker that replaces a killed one starts without the voice file: the run stops with one
    line or fails the units, records nothing it did not finish, and completes once the file is back."""
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    fault_hooks.plant(faults, "sample-002", "kill")
    args = _cli(setup["recipe"], out, faults)
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=240,
                             env=_env(faults, **{fault_hooks.REMOVE_ENV: str(setup["voice"])}))
        assert not setup["voice"].exists()
    finally:
        import pyopenjtalk

        shutil.copy(pyopenjtalk.DEFAULT_HTS_VOICE.decode("utf-8"), setup["voice"])
    assert res.returncode in (2, 3), res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert errors and "Traceback" not in res.stderr
    assert not unit_path(out, 0).exists()  # the unit the killed worker held
    res = subprocess.run(args, capture_output=True, text=True, env=_env(faults), timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_same_as_clean(out, setup["clean"])


def test_sigterm_stops_synth_like_ctrl_c_and_leaves_no_worker(setup, tmp_path):
    out, faults = tmp_path / "clean", tmp_path / "faults"  # the same folder name: the stats title holds it
    faults.mkdir()
    args = _cli(setup["recipe"], out, faults, "--set", "output.shard_size=1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(faults))
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("units/unit-*.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no unit finished within 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the parent only, as systemd or docker stop would
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; rerun the same command to resume"
    assert "Traceback" not in stderr
    time.sleep(0.5)
    pids = [int(p.name) for p in (faults / "pids").iterdir()]
    assert len(pids) >= 3 and not [pid for pid in pids if _alive(pid)]  # the parent and its two workers
    assert not (out / ".synth.lock").exists()
