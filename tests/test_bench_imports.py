"""Every benchmark script still imports against the current package layout.

The benchmarks are run by hand, so a renamed helper breaks one silently (``bench_tts.py`` imported
a function that no longer existed); importing each one here makes such a break fail the suite. An
import runs no benchmark: each script's work sits behind ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_the_bench_folder_is_found():
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_imports(script: Path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # some scripts put tests/ on the path
    spec = importlib.util.spec_from_file_location(f"bench_smoke_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
    # RESULTS.md quotes each figure's command; the script's docstring is where it starts
    assert module.__doc__ and f"bench/{script.name}" in module.__doc__, f"{script.name}: docstring gives no command"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_suite_script_parses():
    for script in BENCH.glob("*.sh"):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_replan_refuses_a_malformed_override(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # replan.py puts bench/ on the path
    spec = importlib.util.spec_from_file_location("bench_smoke_replan_overrides", BENCH / "replan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._overrides(["timing.overlap_prob=0.4", " "]) == {"timing.overlap_prob": 0.4}
    with pytest.raises(SystemExit, match=r"expected KEY=VALUE \(e\.g\. timing\.overlap_prob=0\.4\), got 'timing'"):
        module._overrides(["timing"])
    with pytest.raises(SystemExit, match="got '=0.4'"):
        module._overrides(["=0.4"])
