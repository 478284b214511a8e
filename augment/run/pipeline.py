"""Run a recipe on this machine: corpus → (rewrite) → per-dialogue synthesis in worker processes
→ writers and tokens per unit → the run report.

The pieces live beside this module: :mod:`.synthesize` (one dialogue), :mod:`.units` (units,
resume), :mod:`.layout` (the run folder and its unit records), :mod:`.output_formats` (the format
table), :mod:`.token_stage`, :mod:`.worker_pool` (workers watched one by one), :mod:`.failures`
(content vs environment failures) and :mod:`.run_lock` (one run per folder). This module holds
what both executors share (the worker state, one unit start to finish, the output check) and the
local run loop; :mod:`.executor_ray` runs the same units on a Ray cluster.
"""

from __future__ import annotations

import errno
import json
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from jmoshi_augment.augment.run.failures import EnvironmentFailure, RunLog, UnitFailed, UnitsFailed
from jmoshi_augment.augment.run.model_files import model_files
from jmoshi_augment.augment.run.output_formats import token_formats
from jmoshi_augment.augment.run.run_report import build_report
from jmoshi_augment.augment.run.synthesize import DialogueResult, safe_synthesize
from jmoshi_augment.augment.run.run_lock import run_lock
from jmoshi_augment.augment.run.units import Unit, finish_unit, pending_units, rewrite_unit, write_output_identity
from jmoshi_augment.augment.run.worker_pool import TaskRaised, WorkerDied, WorkerPool, sigterm_as_interrupt
from jmoshi_augment.augment.run.token_stage import TokenStage, token_stage_for
from jmoshi_augment.augment.speech.tts import DialogueBackend, TTSBackend
from jmoshi_augment.corpora import Dialogue, SkipCounts
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_write_text
from jmoshi_augment.recipe import Recipe

# ------------------------------------------------------------------------- worker state


@dataclass
class WorkerState:
    """What a process that synthesises dialogues holds: built once, reused for every unit."""

    recipe: Recipe
    backend: TTSBackend | DialogueBackend
    tokens: TokenStage | None  # only where units are finished (tokens + shards) in the same process


def worker_state(recipe: Recipe, *, with_tokens: bool, device: Callable[[Any], Any] = lambda d: d) -> WorkerState:
    """The backend (and, ``with_tokens``, the token stage) for ``recipe``. ``device`` maps the
    recipe's device settings to this process's view (a Ray task sees its one GPU as ``cuda``)."""
    from jmoshi_augment.augment.speech.tts import get_backend

    options = recipe.tts.options
    if "device" in type(options).model_fields:
        options = options.model_copy(update={"device": device(options.device)})
    backend = get_backend(recipe.tts.backend, options)
    tokens = None
    if with_tokens and token_formats(recipe.output.formats):
        tokens = TokenStage(recipe, device=device(recipe.tokenize.device))
    return WorkerState(recipe, backend, tokens)


_worker: dict[str, WorkerState] = {}


def _init_worker(recipe_json: str, in_pool: bool = False) -> None:
    """Pool initializer of the local executor: tokens are made in the main process. In a pool, a
    failure here is kept and raised by the first task instead: an initializer that raises makes
    multiprocessing respawn the worker forever (the run hangs), while a task's exception reaches
    the main process and ends the run with its one line."""
    if in_pool:  # Ctrl-C is the main process's to handle: workers are terminated, not interrupted
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    recipe = Recipe.model_validate_json(recipe_json)
    try:
        _worker["state"] = worker_state(recipe, with_tokens=False)
    except Exception as e:
        if not in_pool:  # built in this process: the same one line (--debug shows the cause)
            raise worker_error(e, recipe.tts.backend) from e
        _worker["error"] = worker_error(e, recipe.tts.backend)


def worker_error(e: BaseException, backend: str) -> JmoshiError:
    """A backend that cannot start, as one line (a JmoshiError keeps its own file and key)."""
    if isinstance(e, JmoshiError):
        return e
    lines = str(e).strip().splitlines()
    return JmoshiError(f"TTS backend {backend!r} failed to start: {type(e).__name__}: {lines[0][:200] if lines else ''}",
                       key="tts.backend")


def _work(dialogue: Dialogue) -> DialogueResult:
    if "error" in _worker:
        raise _worker["error"]
    state = _worker["state"]
    return safe_synthesize(dialogue, state.recipe, state.backend)


# ----------------------------------------------------------------------------------- the run


@dataclass
class SynthSummary:
    out_dir: Path
    units_done: int
    units_resumed: int
    report: dict[str, Any]


def process_unit(recipe: Recipe, unit: Unit, backend: "TTSBackend | DialogueBackend", tokens: TokenStage | None) -> None:
    """One unit start to finish in this process (what a remote executor runs per task). An
    environment failure of one of its dialogues raises :class:`UnitFailed` (the executor retries
    the unit) before anything of the unit is written."""
    unit, rewrite = rewrite_unit(recipe, unit)
    results = []
    for d in unit.dialogues:
        results.append(safe_synthesize(d, recipe, backend))
        if results[-1].failed is not None:
            raise UnitFailed(unit.index, results[-1].failed)
    finish_unit(recipe, unit.index, unit.dialogues, results, tokens, rewrite)


def prepare_output(recipe: Recipe, *, device: str | None = None, claim: bool = True) -> TokenStage | None:
    """Check everything the run needs before any work (all problems at once), then load the token
    models. ``claim``: also claim the output folder now (:func:`claim_output`); the local executor
    claims it later, just before its first unit is written, so that a backend failing to start in
    the workers leaves the folder free for the corrected command. ``device``: where to load Mimi
    for this check (default ``tokenize.device``)."""
    from jmoshi_augment.augment.run.preflight import check_recipe, raise_problems

    raise_problems(check_recipe(recipe))  # everything at once, before any model loads
    tokens = token_stage_for(recipe, device=device)
    if claim:
        claim_output(recipe, tokens)
    return tokens


def claim_output(recipe: Recipe, tokens: TokenStage | None) -> None:
    """Write the folder's identity (``recipe.json``, once) and the model files' hashes."""
    out_dir = Path(recipe.output.dir)
    files = model_files(recipe, tokens)
    write_output_identity(out_dir, recipe)
    atomic_write_text(out_dir / "models.json", json.dumps(files, indent=1, ensure_ascii=False))


@dataclass
class _OpenUnit:
    """A unit whose dialogues are out with the workers."""

    unit: Unit
    rewrite: dict[str, Any] | None
    results: list[DialogueResult | None]
    remaining: int
    failure: EnvironmentFailure | None = None


class _InlinePool:
    """The worker pool's interface, run in this process (``workers: 1``)."""

    def __init__(self, work: Callable[[Dialogue], DialogueResult]) -> None:
        self._work = work
        self._done: list[tuple[Hashable, DialogueResult]] = []

    @property
    def idle(self) -> int:
        return 0 if self._done else 1

    @property
    def busy(self) -> int:
        return len(self._done)

    def submit(self, key: Hashable, item: Dialogue) -> None:
        self._done.append((key, self._work(item)))

    def results(self) -> Iterator[tuple[Hashable, DialogueResult]]:
        done, self._done = self._done, []
        yield from done

    def close(self) -> None:
        pass


_STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # every later unit would fail the same way


@dataclass
class _Run:
    """The local run loop's bookkeeping."""

    recipe: Recipe
    tokens: TokenStage | None
    log: RunLog
    open_units: dict[int, _OpenUnit] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    done_units: int = 0
    claimed: bool = False
    stop: bool = False  # a full or read-only disk: hand out no more work

    def fail(self, k: int, failure: EnvironmentFailure) -> None:
        self.log.write(f"unit {k}: {failure.dialogue_id}: {failure.reason}", failure.traceback)
        u = self.open_units.get(k)
        if u is not None and u.failure is None:
            u.failure = failure

    def answer(self, k: int, pos: int, out: Any) -> bool:
        """Take one dialogue's outcome; True when its unit is complete (finished or failed)."""
        u = self.open_units[k]
        if isinstance(out, TaskRaised):
            raise out.error
        if isinstance(out, WorkerDied):
            self.fail(k, EnvironmentFailure(u.unit.dialogues[pos].id, out.describe()))
        elif out.failed is not None:
            self.fail(k, out.failed)
        else:
            u.results[pos] = out
        u.remaining -= 1
        if u.remaining:
            return False
        del self.open_units[k]
        if u.failure is None:
            self.finish(u)
        if u.failure is not None:
            self.failures.append(f"unit {k}: {u.failure.dialogue_id}: {u.failure.reason}")
        return True

    def finish(self, u: _OpenUnit) -> None:
        recipe = self.recipe
        if not self.claimed:  # the first output file of this run is about to be written
            claim_output(recipe, self.tokens)
            self.claimed = True
        results = [r for r in u.results if r is not None]
        try:
            finish_unit(recipe, u.unit.index, u.unit.dialogues, results, self.tokens, u.rewrite)
        except JmoshiError:
            raise
        except Exception as e:  # a write or the token stage failed: the unit's record is not written
            u.failure = EnvironmentFailure.of("writing the unit", e)
            self.log.write(f"unit {u.unit.index}: {u.failure.dialogue_id}: {u.failure.reason}", u.failure.traceback)
            if isinstance(e, OSError) and e.errno in _STOP_ERRNOS:
                self.stop = True
            return
        self.done_units += 1


def run_synth(recipe: Recipe, *, progress: bool = True) -> SynthSummary:
    """Run every stage of ``recipe`` on this machine; resumable. Returns the run report (also
    written to disk). Dialogues are synthesised in worker processes; tokens and shards are made
    here, one unit at a time. Units failed by an environment fault are not recorded: they are
    listed by :class:`UnitsFailed`, raised once everything else is done and reported."""
    with sigterm_as_interrupt():
        tokens = prepare_output(recipe, claim=False)  # fail on missing inputs first, all at once
        with run_lock(Path(recipe.output.dir)):
            return _run_locked(recipe, tokens, progress)


def _run_locked(recipe: Recipe, tokens: TokenStage | None, progress: bool) -> SynthSummary:
    from tqdm import tqdm

    out_dir = Path(recipe.output.dir)
    skip_counts, filter_counts, resumed = SkipCounts(), Counter(), Counter()
    run = _Run(recipe, tokens, RunLog(out_dir))
    t_start = time.perf_counter()

    def tasks() -> Iterator[tuple[tuple[int, int], Dialogue]]:
        for unit in pending_units(recipe, skip_counts, filter_counts, resumed):
            unit, rewrite = rewrite_unit(recipe, unit)
            run.open_units[unit.index] = _OpenUnit(unit, rewrite, [None] * len(unit.dialogues), len(unit.dialogues))
            for pos, d in enumerate(unit.dialogues):
                yield (unit.index, pos), d

    recipe_json = recipe.model_dump_json()
    pool: WorkerPool | _InlinePool
    if recipe.workers > 1:
        pool = WorkerPool(recipe.workers, _init_worker, (recipe_json, True), _work)
    else:
        _init_worker(recipe_json)
        pool = _InlinePool(_work)
    bar = tqdm(total=recipe.corpus.limit, unit="dlg", desc="script+tts+mix", disable=not progress)
    # one view per stage: the token/shard stage advances a unit (shard) at a time
    unit_bar = tqdm(unit="shard", desc="write+tokens" if tokens else "write", disable=not progress, position=1)
    todo = tasks()
    try:
        exhausted = False
        while True:
            while not exhausted and not run.stop and pool.idle:
                task = next(todo, None)
                if task is None:
                    exhausted = True
                    break
                pool.submit(*task)
            if not pool.busy:
                break
            for (k, pos), out in pool.results():
                bar.update(1)
                if run.answer(k, pos, out):
                    unit_bar.update(1)
    finally:
        bar.close()
        unit_bar.close()
        pool.close()

    if not run.claimed:  # nothing left to do (every unit resumed): the folder is this recipe's anyway
        claim_output(recipe, tokens)
    report = build_report(out_dir, recipe, skip_counts, filter_counts, time.perf_counter() - t_start)
    if run.failures:
        raise UnitsFailed(out_dir, run.failures, run.log.path if run.log.used else None)
    return SynthSummary(out_dir, run.done_units, resumed["units"], report)
