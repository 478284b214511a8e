"""Run a recipe's units as Ray tasks: the same pipeline on a cluster, without a scheduler of our own.

The local executor (:func:`~jmoshi_augment.augment.run.pipeline.run_synth`) already cuts the work into
deterministic units (unit k = the k-th run of ``output.shard_size`` dialogues, finished when its
record ``units/unit-K.json`` exists) and seeds every draw from (recipe seed, dialogue id). So a
unit can run anywhere, any number of times, and writes the same bytes: here each pending unit
becomes one Ray task that runs :func:`~jmoshi_augment.augment.run.pipeline.process_unit` start to
finish in a Ray worker, writing straight into ``output.dir``, which must therefore be one shared
folder (NFS, Lustre, a mounted bucket) at the same path on every node.

What Ray gives us and we do not rebuild: placement by resource request (CPUs for the script and
OpenJTalk, a GPU only where Mimi or a neural TTS runs on CUDA), retries of units whose worker
died or raised, and cluster-wide scheduling. What stays here: the driver reads the corpus, skips
finished units (so a rerun resumes), keeps a bounded number of units in flight, and builds the same
manifest and report as the local executor from the unit records.

Ray is an optional extra (``pip install 'jmoshi-augment[ray]'``) imported only when this executor
runs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmoshi_augment.augment.run.pipeline import SynthSummary, WorkerState, prepare_output, process_unit, worker_state
from jmoshi_augment.augment.run.run_lock import run_lock
from jmoshi_augment.augment.run.run_report import build_report
from jmoshi_augment.augment.run.units import Unit, pending_units
from jmoshi_augment.augment.run.worker_pool import sigterm_as_interrupt
from jmoshi_augment.augment.run.failures import RunLog, UnitFailed, UnitsFailed
from jmoshi_augment.augment.run.output_formats import token_formats
from jmoshi_augment.corpora import SkipCounts
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import Recipe

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'jmoshi-augment[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`JmoshiError` that says how to get it."""
    try:
        import ray
    except ImportError:
        raise JmoshiError(
            f"the ray executor needs Ray, which is not installed: {INSTALL_HINT} (or use --executor local)"
        ) from None
    return ray


# ----------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class UnitResources:
    """What one unit task asks Ray for."""

    num_cpus: float  # script + OpenJTalk run on one core per unit; Ray also sets OMP threads to it
    num_gpus: float  # 1 when Mimi (token formats) or a neural TTS backend runs on CUDA, else 0


def _on_cuda(device: Any, cluster_gpus: float) -> bool:
    """Whether a device setting will land on a GPU inside a Ray worker. ``auto`` does when the
    cluster has GPUs: a task that asks for none sees no CUDA device (Ray hides them), so asking
    is what makes ``auto`` resolve to CUDA there."""
    if device is None:
        return False
    device = str(device)
    return device.startswith("cuda") or (device == "auto" and cluster_gpus > 0)


def unit_resources(recipe: Recipe, cluster_gpus: float, *, num_cpus: float = 1.0,
                   num_gpus: float | None = None) -> UnitResources:
    """Resource request per unit; ``num_gpus`` given explicitly wins (e.g. 0.5 to pack two units
    on one GPU)."""
    if num_cpus <= 0:
        raise JmoshiError(f"num_cpus per unit must be > 0, got {num_cpus}")
    if num_gpus is None:
        tokens = bool(token_formats(recipe.output.formats)) and _on_cuda(recipe.tokenize.device, cluster_gpus)
        tts = _on_cuda(getattr(recipe.tts.options, "device", None), cluster_gpus)
        num_gpus = 1.0 if tokens or tts else 0.0
    if num_gpus < 0:
        raise JmoshiError(f"num_gpus per unit must be >= 0, got {num_gpus}")
    return UnitResources(float(num_cpus), float(num_gpus))


# ------------------------------------------------------------------------- in a Ray worker

# Models are loaded once per worker process and reused by every unit it runs (the task sets
# max_calls=0 so Ray keeps GPU workers alive between tasks too).
_cache: dict[str, Any] = {}


def worker_device(device: Any) -> Any:
    """Ray shows a task only the GPU it was given, as ``cuda:0``: ``cuda:N`` in a recipe written
    for one machine means "a GPU" here."""
    return "cuda" if isinstance(device, str) and device.startswith("cuda:") else device


def _worker_state(recipe_json: str) -> WorkerState:
    key = hashlib.sha256(recipe_json.encode("utf-8")).hexdigest()
    if _cache.get("key") != key:
        _cache.clear()
        state = worker_state(Recipe.model_validate_json(recipe_json), with_tokens=True, device=worker_device)
        _cache.update(key=key, state=state)
    return _cache["state"]


def run_unit(recipe_json: str, unit: Unit) -> dict[str, Any]:
    """The body of one Ray task. A :class:`JmoshiError` (bad input, missing model) comes back as a
    value because retrying cannot fix it; any other exception propagates so Ray retries the unit.
    A retry redoes the unit whole: its files are rewritten atomically with the same bytes and its
    record is written last."""
    t0 = time.perf_counter()
    try:
        state = _worker_state(recipe_json)
        process_unit(state.recipe, unit, state.backend, state.tokens)
    except JmoshiError as e:
        return {"unit": unit.index, "error": [e.message, e.path, e.line, e.key]}
    return {"unit": unit.index, "error": None, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------- driver


def _describe(error: Exception) -> str:
    """One line for a task that used up its retries (Ray's own messages span many lines)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, UnitFailed):
        return f"{cause.failure.dialogue_id}: {cause.failure.reason}"
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (``auto``, ``ray://host:10001``, ``host:6379``), or ``RAY_ADDRESS``, or start
    a local instance. Returns whether this call started the connection (and must end it); a Ray
    the caller already initialised is used as it is."""
    if ray.is_initialized():
        if address is not None:
            logger.warning("Ray is already initialised in this process; ignoring address %r", address)
        return False
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, ImportError) as e:
        where = address or "a new local instance"
        raise JmoshiError(f"could not start or reach Ray ({where}): {e}".splitlines()[0]) from None
    return True


def run_synth_ray(
    recipe: Recipe,
    *,
    address: str | None = None,
    progress: bool = True,
    max_retries: int = 2,
    num_cpus: float = 1.0,
    num_gpus: float | None = None,
    max_in_flight: int | None = None,
) -> SynthSummary:
    """Run every pending unit of ``recipe`` as a Ray task; same outputs and report as
    :func:`~jmoshi_augment.augment.run.pipeline.run_synth`, resumable the same way.

    ``address``: the cluster to join (default: ``RAY_ADDRESS`` or a new local instance).
    ``max_retries``: extra attempts per unit, after a raised exception or a dead worker/node.
    ``num_cpus``/``num_gpus``: resource request per unit (:func:`unit_resources`).
    ``max_in_flight``: units submitted ahead (default: twice the units the cluster fits at once),
    so the driver reads the corpus lazily and a failure stops the run early.
    ``recipe.workers`` is not used: Ray's scheduler decides how many units run at once.
    """
    if max_retries < 0:
        raise JmoshiError(f"max_retries must be >= 0, got {max_retries}")
    ray = import_ray()
    out_dir = Path(recipe.output.dir)
    if not out_dir.is_absolute():  # workers on other nodes do not share the driver's folder
        raise JmoshiError("must be an absolute path on a folder every Ray node mounts at the same place, "
                          f"got {recipe.output.dir!r}", key="output.dir")
    # Fail on a foreign output folder or missing models before the cluster is involved; the
    # driver may have no GPU, so it checks and hashes the models on its CPU and then drops them.
    with sigterm_as_interrupt():
        prepare_output(recipe, device="cpu")
        with run_lock(out_dir):
            return _run_locked(ray, recipe, address, progress, max_retries, num_cpus, num_gpus, max_in_flight)


def _run_locked(ray: Any, recipe: Recipe, address: str | None, progress: bool, max_retries: int, num_cpus: float,
                num_gpus: float | None, max_in_flight: int | None) -> SynthSummary:
    from tqdm import tqdm

    out_dir = Path(recipe.output.dir)
    started = _connect(ray, address)
    skip_counts, filter_counts, resumed = SkipCounts(), Counter(), Counter()
    log = RunLog(out_dir)
    t_start = time.perf_counter()
    in_flight: dict[Any, int] = {}
    try:
        cluster = ray.cluster_resources()
        res = unit_resources(recipe, cluster.get("GPU", 0.0), num_cpus=num_cpus, num_gpus=num_gpus)
        if res.num_gpus > cluster.get("GPU", 0.0) or res.num_cpus > cluster.get("CPU", 0.0):
            logger.warning("each unit asks for %s CPU and %s GPU but the cluster has %s CPU and %s GPU now: "
                           "units wait until such a node joins", res.num_cpus, res.num_gpus,
                           cluster.get("CPU", 0), cluster.get("GPU", 0))
        fits = min(cluster.get("CPU", 0.0) / res.num_cpus,
                   cluster.get("GPU", 0.0) / res.num_gpus if res.num_gpus else math.inf)
        window = max_in_flight or max(2, 2 * int(fits))
        task = ray.remote(
            num_cpus=res.num_cpus, num_gpus=res.num_gpus, max_retries=max_retries,
            retry_exceptions=True, max_calls=0,
        )(run_unit)
        recipe_ref = ray.put(recipe.model_dump_json())
        logger.info("ray: %s CPU / %s GPU per unit, up to %d units in flight on %s", res.num_cpus,
                    res.num_gpus, window, {k: v for k, v in cluster.items() if k in ("CPU", "GPU")})

        units = pending_units(recipe, skip_counts, filter_counts, resumed)
        limit = recipe.corpus.limit
        bar = tqdm(total=math.ceil(limit / recipe.output.shard_size) if limit else None, unit="unit",
                   desc="synth (ray)", disable=not progress)
        done, shown_resumed, exhausted = 0, 0, False
        failures: list[str] = []
        user_error: JmoshiError | None = None
        try:
            while True:
                while not exhausted and not failures and user_error is None and len(in_flight) < window:
                    unit = next(units, None)
                    bar.update(resumed["units"] - shown_resumed)
                    shown_resumed = resumed["units"]
                    if unit is None:
                        exhausted = True
                        break
                    in_flight[task.remote(recipe_ref, unit)] = unit.index
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    k = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries used up
                        failures.append(f"unit {k}: {_describe(e)} (after {max_retries} retries)")
                        log.write(f"unit {k} failed after {max_retries} retries: {_describe(e)}", str(e))
                        continue
                    if outcome["error"] is not None:
                        message, path, line, key = outcome["error"]
                        user_error = user_error or JmoshiError(message, path=path, line=line, key=key)
                        continue
                    done += 1
                    bar.update(1)
        finally:
            bar.close()
        if user_error is not None:
            raise user_error
    finally:
        for ref in in_flight:  # interrupted: unfinished units leave no record and are redone on rerun
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()

    report = build_report(out_dir, recipe, skip_counts, filter_counts, time.perf_counter() - t_start)
    if failures:
        raise UnitsFailed(out_dir, failures, log.path if log.used else None)
    return SynthSummary(out_dir, done, resumed["units"], report)
