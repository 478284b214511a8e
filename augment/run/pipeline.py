"""Run a recipe on this machine: corpus → (rewrite) → per-dialogue synthesis in worker processes
→ writers and tokens per unit → the run report.

The pieces live beside this module: :mod:`.synthesize` (one dialogue), :mod:`.units` (units,
resume, the unit record), :mod:`.writers` (the format tables and the token stage). This module
holds what both executors share (the worker state, one unit start to finish, the output check)
and the local run loop; :mod:`.executor_ray` runs the same units on a Ray cluster.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from jmoshi_augment.augment.run.run_report import build_report, model_files
from jmoshi_augment.augment.run.synthesize import DialogueResult, safe_synthesize
from jmoshi_augment.augment.run.units import Unit, finish_unit, pending_units, rewrite_unit, write_output_identity
from jmoshi_augment.augment.run.writers import TOKEN_FORMATS, TokenStage
from jmoshi_augment.augment.speech.tts import DialogueBackend, TTSBackend
from jmoshi_augment.corpora import Dialogue, LoadReport
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

    options = dict(recipe.tts.options)
    if "device" in options:
        options["device"] = device(options["device"])
    backend = get_backend(recipe.tts.backend, **options)
    tokens = None
    if with_tokens and set(recipe.output.formats) & TOKEN_FORMATS:
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
    """One unit start to finish in this process (what a remote executor runs per task)."""
    unit, rewrite = rewrite_unit(recipe, unit)
    results = [safe_synthesize(d, recipe, backend) for d in unit.dialogues]
    finish_unit(Path(recipe.output.dir), unit.index, unit.dialogues, results, set(recipe.output.formats), tokens, rewrite,
                recipe.acoustics, recipe.seed)


def prepare_output(recipe: Recipe, *, device: str | None = None, claim: bool = True) -> TokenStage | None:
    """Check everything the run needs before any work (all problems at once), then load the token
    models. ``claim``: also claim the output folder now (:func:`claim_output`); the local executor
    claims it later, just before its first unit is written, so that a backend failing to start in
    the workers leaves the folder free for the corrected command. ``device``: where to load Mimi
    for this check (default ``tokenize.device``)."""
    from jmoshi_augment.augment.run.preflight import check_recipe, raise_problems

    raise_problems(check_recipe(recipe))  # everything at once, before any model loads
    tokens = TokenStage(recipe, device=device) if set(recipe.output.formats) & TOKEN_FORMATS else None
    if claim:
        claim_output(recipe, tokens)
    return tokens


def claim_output(recipe: Recipe, tokens: TokenStage | None) -> None:
    """Write the folder's identity (``recipe.json``, once) and the model files' hashes."""
    out_dir = Path(recipe.output.dir)
    files = model_files(recipe, tokens)
    write_output_identity(out_dir, recipe)
    atomic_write_text(out_dir / "models.json", json.dumps(files, indent=1, ensure_ascii=False))


def run_synth(recipe: Recipe, *, progress: bool = True) -> SynthSummary:
    """Run every stage of ``recipe`` on this machine; resumable. Returns the run report (also
    written to disk). Dialogues of a unit are synthesised in parallel worker processes; tokens
    and shards are made here, one unit at a time."""
    from tqdm import tqdm

    out_dir = Path(recipe.output.dir)
    tokens = prepare_output(recipe, claim=False)  # fail on missing inputs first, all at once
    formats = set(recipe.output.formats)
    load_report, filter_counts, resumed = LoadReport(), Counter(), Counter()
    todo: list[tuple[Unit, dict[str, Any] | None]] = []
    t_start = time.perf_counter()

    def pending() -> Iterator[Dialogue]:
        for unit in pending_units(recipe, load_report, filter_counts, resumed):
            unit, rewrite = rewrite_unit(recipe, unit)
            todo.append((unit, rewrite))
            yield from unit.dialogues

    ctx = mp.get_context("spawn")  # fork after torch/OpenJTalk initialisation is unsafe
    recipe_json = recipe.model_dump_json()
    pool = ctx.Pool(recipe.workers, initializer=_init_worker, initargs=(recipe_json, True)) if recipe.workers > 1 else None
    if pool is None:
        _init_worker(recipe_json)
    results_iter = pool.imap(_work, pending(), chunksize=1) if pool else map(_work, pending())
    bar = tqdm(total=recipe.corpus.limit, unit="dlg", desc="script+tts+mix", disable=not progress)
    # one view per stage: the token/shard stage advances a unit (shard) at a time
    unit_bar = tqdm(unit="shard", desc="write+tokens" if tokens else "write", disable=not progress, position=1)
    done_units = 0
    claimed = False
    try:
        buffer: list[DialogueResult] = []
        for result in results_iter:
            buffer.append(result)
            bar.update(1)
            unit, rewrite = todo[0]
            if len(buffer) == len(unit.dialogues):
                if not claimed:  # the first output file of this run is about to be written
                    claim_output(recipe, tokens)
                    claimed = True
                finish_unit(out_dir, unit.index, unit.dialogues, buffer, formats, tokens, rewrite, recipe.acoustics, recipe.seed)
                todo.pop(0)
                buffer = []
                done_units += 1
                unit_bar.update(1)
    finally:
        bar.close()
        unit_bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()

    if not claimed:  # nothing left to do (every unit resumed): the folder is this recipe's anyway
        claim_output(recipe, tokens)
    report = build_report(out_dir, recipe, load_report, filter_counts, time.perf_counter() - t_start)
    return SynthSummary(out_dir, done_units, resumed["units"], report)


