"""The Ray executor: same bytes as the local executor, retried units, resumed runs, Ray optional.

One local Ray instance (2 CPUs) serves the module; its workers carry :mod:`ray_faults`, which
makes chosen attempts fail after they wrote part of a unit.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ray_faults
from jmoshi_augment.augment.run.executor_ray import UnitResources, unit_resources, worker_device
from jmoshi_augment.augment.run.failures import UnitsFailed
from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.augment.run.layout import unit_path
from jmoshi_augment.cli import app
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "recipes/sample.yaml"


# ------------------------------------------------------------------------------- without Ray

BLOCK_RAY = "import sys; sys.modules['ray'] = None\n"


def test_core_imports_and_synth_help_work_without_ray():
    code = BLOCK_RAY + (
        "import jmoshi_augment.augment.run.pipeline, jmoshi_augment.augment.run.executor_ray\n"
        "from jmoshi_augment.cli import app\n"
        "app(['synth', '--help'])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "--executor" in res.stdout and "--ray-address" in res.stdout


def test_ray_executor_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    from jmoshi_augment.augment.run.executor_ray import run_synth_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    recipe = load_recipe(SAMPLE, {"output.dir": str(tmp_path / "o"), "tts.backend": "openjtalk"})
    with pytest.raises(JmoshiError, match=r"pip install 'jmoshi-augment\[ray\]'"):
        run_synth_ray(recipe, progress=False)
    assert not (tmp_path / "o").exists()  # nothing written before the check


def test_ray_executor_needs_an_absolute_output_dir(monkeypatch, tmp_path):
    pytest.importorskip("ray")
    from jmoshi_augment.augment.run.executor_ray import run_synth_ray
    from jmoshi_augment.recipe import Recipe

    monkeypatch.chdir(tmp_path)
    recipe = Recipe.model_validate({"corpus": {"name": "jsonl", "path": "builtin:sample"}, "output": {"dir": "rel/out"}})
    with pytest.raises(JmoshiError, match="output.dir: must be an absolute path on a folder every Ray node mounts"):
        run_synth_ray(recipe, progress=False)
    assert not (tmp_path / "rel").exists()


@pytest.mark.parametrize("args, message", [
    (["--executor", "dask"], "--executor must be local or ray, got 'dask'"),
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
])
def test_cli_rejects_bad_executor_options(tmp_path, args, message):
    result = CliRunner().invoke(app, ["synth", str(SAMPLE), "--out", str(tmp_path / "o"), *args])
    assert isinstance(result.exception, JmoshiError) and str(result.exception) == message
    assert not (tmp_path / "o").exists()


def test_unit_resources_ask_for_a_gpu_only_where_a_model_runs_on_cuda(tmp_path):
    def recipe(**sets):
        return load_recipe(SAMPLE, {"output.dir": str(tmp_path), "models.random_weights": True, "tts.backend": "openjtalk", **sets})

    wav, tar = recipe(), recipe(**{"output.formats": ["wav", "tar"]})
    assert unit_resources(wav, cluster_gpus=8) == unit_resources(wav, 0) == UnitResources(1.0, 0.0)
    assert unit_resources(tar, cluster_gpus=0).num_gpus == 0  # auto on a CPU cluster: Mimi on CPU
    assert unit_resources(tar, cluster_gpus=2).num_gpus == 1  # auto with GPUs: ask, or CUDA is hidden
    assert unit_resources(recipe(**{"output.formats": ["tar"], "tokenize.device": "cpu"}), 2).num_gpus == 0
    assert unit_resources(recipe(**{"output.formats": ["tar"], "tokenize.device": "cuda:1"}), 0).num_gpus == 1
    assert unit_resources(recipe(**{"tokenize.device": "cuda"}), 2).num_gpus == 0  # no token format
    assert unit_resources(recipe(**{"tts.backend": "kokoro", "tts.options": {"device": "cuda"}}), 1).num_gpus == 1  # neural TTS
    assert unit_resources(tar, 2, num_cpus=4, num_gpus=0.5) == UnitResources(4.0, 0.5)  # explicit wins
    with pytest.raises(JmoshiError, match="num_cpus per unit must be > 0"):
        unit_resources(wav, 0, num_cpus=0)
    with pytest.raises(JmoshiError, match="num_gpus per unit must be >= 0"):
        unit_resources(wav, 0, num_gpus=-1)


def test_a_recipes_gpu_index_means_the_gpu_ray_gave_the_task():
    assert worker_device("cuda:3") == "cuda"  # Ray shows a task only its own GPU, as cuda:0
    assert [worker_device(d) for d in ("cuda", "cpu", "auto", None)] == ["cuda", "cpu", "auto", None]


# ----------------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    ray = pytest.importorskip("ray")
    folder = tmp_path_factory.mktemp("faults")
    ray.cloudpickle.register_pickle_by_value(ray_faults)  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {ray_faults.FAULTS_ENV: str(folder)},
        "worker_process_setup_hook": ray_faults.install,
    })
    try:
        yield folder
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def recipe_for(sp_path):
    """Two dialogues, one per unit, written as wav + alignments + manifest + token tar shards."""

    def make(out: Path, **sets):
        return load_recipe(SAMPLE, {"tts.backend": "openjtalk",
            "corpus.limit": 2, "output.shard_size": 1, "output.dir": str(out), "workers": 1, "corpus.filters.max_turns": 2,
            "output.formats": ["wav", "tar"], "models.random_weights": True,
            "models.text_tokenizer": str(sp_path), **sets,
        })

    return make


@pytest.fixture(scope="module")
def local(tmp_path_factory, recipe_for):
    out = tmp_path_factory.mktemp("local") / "out"
    run_synth(recipe_for(out), progress=False)
    return out


def _data(out: Path) -> dict[str, bytes]:
    """Every data file a trainer reads, by relative path."""
    files = [out / "data.jsonl", *(out / "audio").iterdir(), *(out / "shards").glob("*.tar")]
    return {str(p.relative_to(out)): p.read_bytes() for p in files if p.is_file()}


def _records(out: Path) -> list[dict]:
    """Unit records without their timings."""
    return [{k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"}
            for p in sorted((out / "units").iterdir())]


@pytest.fixture(scope="module")
def ray_run(faults, recipe_for, local, tmp_path_factory):
    """A Ray run in which unit 0 raises and unit 1's worker dies, each once, mid-unit."""
    from jmoshi_augment.augment.run.executor_ray import run_synth_ray

    first, second = (r["dialogues"][0] for r in _records(local))
    ray_faults.plant(faults, first, "raise")
    ray_faults.plant(faults, second, "exit")
    out = tmp_path_factory.mktemp("ray") / "out"
    summary = run_synth_ray(recipe_for(out), progress=False, max_retries=2)
    return out, summary, (first, second)


def test_ray_output_is_byte_identical_to_the_local_executors(ray_run, local):
    out, summary, _ = ray_run
    data = _data(out)
    assert sorted(data) == sorted(_data(local))
    assert {p.rsplit(".", 1)[1] for p in data} == {"jsonl", "wav", "json", "tar"}
    assert len([p for p in data if p.endswith(".tar")]) == 2  # one shard per unit
    assert data == _data(local)
    assert _records(out) == _records(local)
    assert summary.units_done == 2 and summary.units_resumed == 0
    assert summary.report["renderings"] == 2 and not summary.report["rejected"]


def test_a_unit_that_fails_once_is_retried(ray_run, faults):
    _, _, (first, second) = ray_run
    # both planted failures happened (a raise in unit 0, a dead worker in unit 1) and yet the
    # output above is complete and identical
    assert ray_faults.claimed(faults) == [f"{first}.raise-claimed", f"{second}.exit-claimed"]


def test_a_rerun_after_an_interruption_redoes_only_the_missing_unit(ray_run, recipe_for, local):
    from jmoshi_augment.augment.run.executor_ray import run_synth_ray

    out, _, (first, second) = ray_run
    # killed inside unit 1: no record, its wav gone; unit 0 must not be touched again
    unit_path(out, 1).unlink()
    next((out / "audio").glob(f"{second}*.wav")).unlink()
    kept = {p: p.stat().st_mtime_ns for p in (out / "audio").glob(f"{first}*")}
    summary = run_synth_ray(recipe_for(out), progress=False)
    assert summary.units_resumed == 1 and summary.units_done == 1
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert _data(out) == _data(local)
    assert summary.report["renderings"] == 2  # the report covers the resumed unit too


def test_a_unit_that_keeps_failing_stops_the_run_and_the_rerun_completes_it(faults, recipe_for, local, tmp_path):
    from jmoshi_augment.augment.run.executor_ray import run_synth_ray

    out = tmp_path / "out"
    recipe = recipe_for(out, **{"output.formats": ["wav"]})
    second = _records(local)[1]["dialogues"][0]
    ray_faults.plant(faults, second, "raise")
    with pytest.raises(UnitsFailed) as e:
        run_synth_ray(recipe, progress=False, max_retries=0)
    assert re.fullmatch(r"unit 1: RuntimeError: injected failure.* \(after 0 retries\)", e.value.lines()[0])
    assert e.value.lines()[1].endswith("1 unit(s) failed and were not recorded as finished; "
                                       f"tracebacks in {out / 'synth.log'}; rerun the same command to redo them")
    assert unit_path(out, 0).exists() and not unit_path(out, 1).exists()
    summary = run_synth_ray(recipe, progress=False, max_retries=0)
    assert summary.units_resumed == 1 and summary.units_done == 1
    wav_only = {k: v for k, v in _data(local).items() if not k.endswith(".tar")}
    assert _data(out) == wav_only


def test_a_bad_option_value_is_refused_before_any_worker_starts(recipe_for, tmp_path):
    # the backend's typed options are validated when the recipe is read (a value it once checked
    # only when a worker built it)
    with pytest.raises(JmoshiError, match=r"tts.options.margin: margin must be within 0..1 s, got 5"):
        recipe_for(tmp_path / "out", **{"output.formats": ["wav"], "tts.options": {"margin": 5}})
    assert not unit_path(tmp_path / "out", 0).exists()
