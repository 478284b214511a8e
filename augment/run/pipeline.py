"""Run a recipe: corpus → (rewrite) → script → TTS → plan → mix → writers, then the report.

Work is cut into *units*: unit k is the k-th run of ``output.shard_size`` dialogues of the
(filtered) corpus, and becomes exactly one shard of each token format. A unit is finished when its
record ``units/unit-K.json`` exists (written last, atomically), so a killed run resumes at the
first unfinished unit and redoes it whole; every random draw is seeded from (recipe seed, dialogue
id), so the resumed output is identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from jmoshi_augment.augment.speech.mix import mix
from jmoshi_augment.augment.run.run_report import build_report, describe_file, model_files, unit_path
from jmoshi_augment.augment.text.script import make_script
from jmoshi_augment.augment.speech.timing import plan_timeline
from jmoshi_augment.augment.types import RenderedDialogue, RenderedSegment, SpokenScript
from jmoshi_augment.corpora import Dialogue, LoadReport, load_corpus
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_write_text, json_safe
from jmoshi_augment.recipe import Recipe

logger = logging.getLogger(__name__)

TOKEN_FORMATS = {"tar", "jmoshi"}


# ------------------------------------------------------------------------------ one dialogue


def dialogue_rng(seed: int, key: str) -> np.random.Generator:
    """Independent of processing order and worker count: seeded by (recipe seed, key)."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def main_speakers(speakers: tuple[str, ...], mode: str) -> list[str]:
    return {"first": [speakers[0]], "second": [speakers[1]], "both": list(speakers)}[mode]


@dataclass
class DialogueResult:
    dialogue_id: str
    renderings: list[RenderedDialogue] = field(default_factory=list)
    rejected: str | None = None
    skips: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def synthesize_dialogue(dialogue: Dialogue, recipe: Recipe, backend: Any) -> DialogueResult:
    """Everything CPU-bound for one dialogue; returns one rendering per main-speaker choice."""
    result = DialogueResult(dialogue.id)
    t0 = time.perf_counter()
    rng = dialogue_rng(recipe.seed, dialogue.id)
    script = make_script(dialogue, recipe.script, rng)
    result.skips = list(script.skipped)
    t1 = time.perf_counter()
    result.seconds["script"] = t1 - t0
    if len(script.speakers) != 2:
        result.rejected = f"needs exactly 2 speakers after normalisation, has {len(script.speakers)}"
        return result
    if getattr(backend, "dialogue_level", False):
        return _synthesize_whole(dialogue, script, recipe, backend, result, t1)

    voice_idx = rng.choice(len(recipe.tts.voices), size=2, replace=False)
    voices = {spk: recipe.tts.voices[int(i)] for spk, i in zip(script.speakers, voice_idx)}
    rendered: list[RenderedSegment | None] = [None] * len(script.segments)
    for speaker, voice in voices.items():
        idx = [i for i, s in enumerate(script.segments) if s.speaker == speaker]
        for i, r in zip(idx, backend.render([script.segments[i] for i in idx], voice)):
            rendered[i] = r
    t2 = time.perf_counter()
    result.seconds["tts"] = t2 - t1
    result.skips += [f"segment not voiced: {r.reason}" for r in rendered if getattr(r, "reason", "")]
    if not any(r.duration > 0 for r, s in zip(rendered, script.segments) if s.kind == "speech"):
        result.rejected = "no speech could be rendered"
        return result

    for main in main_speakers(script.speakers, recipe.output.main_speaker):
        timeline = plan_timeline(script, rendered, recipe.timing, main, dialogue_rng(recipe.seed, f"{dialogue.id}/{main}"))
        other = next(s for s in script.speakers if s != main)
        out = mix(script, rendered, timeline, loudness_dbfs=recipe.tts.loudness_dbfs,
                  gains_db=(voices[main].gain_db, voices[other].gain_db))
        out.meta.update(_rendering_meta(dialogue, script), voices={"main": voices[main].name, "other": voices[other].name})
        result.renderings.append(out)
    result.seconds["plan_mix"] = time.perf_counter() - t2
    return result


def _rendering_meta(dialogue: Dialogue, script: SpokenScript) -> dict[str, Any]:
    """What every rendering carries for writers and reports, whichever backend made it."""
    return {
        "speakers": list(script.speakers),  # corpus order: the J-Moshi format puts speakers[0] left
        "source": [list(t) for t in script.source_text],
        "script": [[s.speaker, s.kind, s.text] for s in script.segments],
        "dialogue_meta": dialogue.meta,
    }


@lru_cache(maxsize=2)
def _scorers(candidates_json: str) -> list[Any]:
    """Best-of-N scorers, built once per process: a CER scorer loads a whole ASR model."""
    from jmoshi_augment.augment.run.candidates import build_scorers
    from jmoshi_augment.recipe import CandidatesConfig

    c = CandidatesConfig.model_validate_json(candidates_json)
    return build_scorers(turn_taking=c.turn_taking, cer=c.cer, asr_model=c.asr_model, device=c.device, target=c.target)


def _synthesize_whole(dialogue: Dialogue, script: SpokenScript, recipe: Recipe, backend: Any, result: DialogueResult,
                      t_start: float) -> DialogueResult:
    """A multi-stream model renders the whole dialogue and decides its own timing (J-Moshi's
    method): no planner, no mixer; best of ``candidates.n`` seeds when asked."""
    from jmoshi_augment.augment.run.candidates import best_of_n
    from jmoshi_augment.augment.speech.tts.moshi_ms import RenderFailed

    cand = recipe.candidates
    scorers = _scorers(cand.model_dump_json()) if cand.n > 1 else []
    for main in main_speakers(script.speakers, recipe.output.main_speaker):
        rng = dialogue_rng(recipe.seed, f"{dialogue.id}/{main}")
        if cand.n > 1:
            out = best_of_n(backend, script, main, None, rng, cand.n, scorers).best
            if out is None:
                result.rejected = f"all {cand.n} candidates failed"
                return result
        else:
            try:
                out = backend.render_dialogue(script, main, None, rng)
            except RenderFailed as e:
                result.rejected = f"render failed: {e}"
                return result
        out.meta.update(_rendering_meta(dialogue, script))  # the backend sets meta["voices"]
        out.meta.setdefault("planned", {})
        out.meta.setdefault("skipped", list(script.skipped))
        result.renderings.append(out)
    result.seconds["tts"] = time.perf_counter() - t_start
    return result


# ------------------------------------------------------------------------- worker processes

_worker: dict[str, Any] = {}


def _init_worker(recipe_json: str) -> None:
    from jmoshi_augment.augment.speech.tts import get_backend

    recipe = Recipe.model_validate_json(recipe_json)
    _worker["recipe"] = recipe
    _worker["backend"] = get_backend(recipe.tts.backend, **recipe.tts.options)


def safe_synthesize(dialogue: Dialogue, recipe: Recipe, backend: Any) -> DialogueResult:
    """:func:`synthesize_dialogue`, with a dialogue that raises turned into a rejection: one bad
    dialogue must not kill a 600-hour run, and every executor must reject the same ones."""
    try:
        return synthesize_dialogue(dialogue, recipe, backend)
    except JmoshiError:
        raise
    except Exception as e:
        logger.exception("dialogue %s failed", dialogue.id)
        return DialogueResult(dialogue.id, rejected=f"error: {type(e).__name__}: {e}")


def _work(dialogue: Dialogue) -> DialogueResult:
    return safe_synthesize(dialogue, _worker["recipe"], _worker["backend"])


# ----------------------------------------------------------------------------------- the run


def filtered_dialogues(recipe: Recipe, report: LoadReport, counts: Counter) -> Iterator[Dialogue]:
    c = recipe.corpus
    wanted = set(c.filters.ids) if c.filters.ids else None
    source = load_corpus(c.name, c.path, report=report)
    n = 0
    for d in source:
        if wanted is not None and d.id not in wanted:
            continue
        if c.filters.max_turns is not None and len(d.turns) > c.filters.max_turns:
            d = d.with_turns(d.turns[: c.filters.max_turns])
        if len(d.turns) < c.filters.min_turns:
            counts["fewer than min_turns"] += 1
            continue
        yield d
        n += 1
        if c.limit is not None and n >= c.limit:
            return


def _chunks(items: Iterable[Dialogue], size: int) -> Iterator[list[Dialogue]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _check_output_dir(out_dir: Path, recipe: Recipe) -> None:
    """Refuse to resume into a folder made by a different recipe: the outputs would not match."""
    saved = out_dir / "recipe.json"
    current = json.dumps(recipe.to_dict(), sort_keys=True, ensure_ascii=False)
    if saved.exists():
        if _output_defining(json.loads(saved.read_text(encoding="utf-8"))) != _output_defining(json.loads(current)):
            raise JmoshiError(
                "holds the output of a different recipe; choose another output.dir or delete this one",
                path=out_dir,
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, current)
        atomic_write_text(out_dir / "recipe.yaml", recipe.to_yaml())


def _output_defining(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe without the keys that do not change any unit's content: how many processes run
    it, and how far into the corpus it goes (a larger limit extends the same run)."""
    recipe = {k: v for k, v in recipe.items() if k != "workers"}
    recipe["corpus"] = {k: v for k, v in recipe.get("corpus", {}).items() if k != "limit"}
    return recipe


class TokenStage:
    """Mimi + SentencePiece and the token writers, created only when a token format is asked for."""

    def __init__(self, recipe: Recipe, *, device: str | None = None) -> None:
        """``device`` overrides ``tokenize.device`` (a Ray driver checks the models on its CPU)."""
        from jmoshi_augment.augment.tokens.tokenize import MimiEncoder, resolve_device
        from jmoshi_augment.checkpoints import load_mimi, load_text_tokenizer

        self.recipe = recipe
        m, t = recipe.models, recipe.tokenize
        device = resolve_device(device or t.device)
        if m.text_tokenizer is None:
            raise JmoshiError("models.text_tokenizer is required for token formats", key="models.text_tokenizer")
        self.sp = load_text_tokenizer(m.text_tokenizer)
        mimi = load_mimi(m.mimi, device=device, num_codebooks=t.n_q, random_weights=m.random_weights)
        self.encoder = MimiEncoder(mimi, n_q=t.n_q, batch_size=t.batch_size, device=device)
        self.files = {
            "mimi": "random weights" if m.random_weights else describe_file(m.mimi, "Mimi weights"),
            "text_tokenizer": describe_file(m.text_tokenizer, "text tokenizer"),
        }

    def write(self, out_dir: Path, k: int, renderings: list[RenderedDialogue]) -> dict[str, Any]:
        from jmoshi_augment.augment.tokens.tokenize import tokenize_dialogues

        tokens = tokenize_dialogues(renderings, self.encoder, self.sp, self.recipe.tokenize)
        formats = self.recipe.output.formats
        if "tar" in formats:
            from jmoshi_augment.augment.formats.shards import write_tar_shard

            write_tar_shard(out_dir / "shards" / f"shard-{k:05d}.tar", tokens)
        if "jmoshi" in formats:
            from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_parquet

            write_jmoshi_parquet(out_dir / "jmoshi" / "parquet" / f"unit-{k:05d}.parquet", tokens)
        return {t.id: int(t.meta.get("dropped_tokens", 0)) for t in tokens}


@dataclass
class SynthSummary:
    out_dir: Path
    units_done: int
    units_resumed: int
    report: dict[str, Any]


@dataclass
class Unit:
    """The k-th run of ``output.shard_size`` dialogues: the unit of work, resume and shards."""

    index: int
    dialogues: list[Dialogue]


def pending_units(recipe: Recipe, load_report: LoadReport, filter_counts: Counter, resumed: Counter) -> Iterator[Unit]:
    """Units whose record is missing, lazily; finished ones are counted in ``resumed["units"]``."""
    out_dir = Path(recipe.output.dir)
    dialogues = filtered_dialogues(recipe, load_report, filter_counts)
    for k, chunk in enumerate(_chunks(dialogues, recipe.output.shard_size)):
        if _unit_done(out_dir, k, chunk):
            resumed["units"] += 1
            continue
        yield Unit(k, chunk)


def _unit_done(out_dir: Path, k: int, chunk: list[Dialogue]) -> bool:
    """A unit is done when its record exists and holds exactly these dialogues (a run with a
    larger ``corpus.limit`` must redo a last unit that was cut short)."""
    path = unit_path(out_dir, k)
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8"))["dialogues"] == [d.id for d in chunk]
    except (ValueError, KeyError):  # a record from a crashed writer cannot exist (atomic), but be safe
        return False


def rewrite_unit(recipe: Recipe, unit: Unit) -> tuple[Unit, dict[str, Any] | None]:
    """The optional LLM rewrite, paid only for units still to do (answers are cached on disk)."""
    if recipe.rewrite.backend == "none":
        return unit, None
    from jmoshi_augment.augment.text.rewrite import RewriteReport, default_cache_dir, iter_rewrite

    report = RewriteReport()
    cache = default_cache_dir(recipe.rewrite, recipe.output.dir)
    return Unit(unit.index, list(iter_rewrite(unit.dialogues, recipe.rewrite, cache, report))), report.to_dict()


def process_unit(recipe: Recipe, unit: Unit, backend: Any, tokens: "TokenStage | None") -> None:
    """One unit start to finish in this process (what a remote executor runs per task)."""
    unit, rewrite = rewrite_unit(recipe, unit)
    results = [safe_synthesize(d, recipe, backend) for d in unit.dialogues]
    _finish_unit(Path(recipe.output.dir), unit.index, unit.dialogues, results, set(recipe.output.formats), tokens, rewrite)


def prepare_output(recipe: Recipe, *, device: str | None = None) -> "TokenStage | None":
    """Check the output folder and the model files before any work; save the recipe and hashes.
    ``device``: where to load Mimi for this check (default ``tokenize.device``)."""
    out_dir = Path(recipe.output.dir)
    _check_output_dir(out_dir, recipe)
    tokens = TokenStage(recipe, device=device) if set(recipe.output.formats) & TOKEN_FORMATS else None
    atomic_write_text(out_dir / "models.json", json.dumps(model_files(recipe, tokens), indent=1, ensure_ascii=False))
    return tokens


def run_synth(recipe: Recipe, *, progress: bool = True) -> SynthSummary:
    """Run every stage of ``recipe`` on this machine; resumable. Returns the run report (also
    written to disk). Dialogues of a unit are synthesised in parallel worker processes; tokens
    and shards are made here, one unit at a time."""
    from tqdm import tqdm

    out_dir = Path(recipe.output.dir)
    tokens = prepare_output(recipe)  # fail on missing models first
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
    pool = ctx.Pool(recipe.workers, initializer=_init_worker, initargs=(recipe_json,)) if recipe.workers > 1 else None
    if pool is None:
        _init_worker(recipe_json)
    results_iter = pool.imap(_work, pending(), chunksize=1) if pool else map(_work, pending())
    bar = tqdm(total=recipe.corpus.limit, unit="dlg", desc="script+tts+mix", disable=not progress)
    # one view per stage: the token/shard stage advances a unit (shard) at a time
    unit_bar = tqdm(unit="shard", desc="write+tokens" if tokens else "write", disable=not progress, position=1)
    done_units = 0
    try:
        buffer: list[DialogueResult] = []
        for result in results_iter:
            buffer.append(result)
            bar.update(1)
            unit, rewrite = todo[0]
            if len(buffer) == len(unit.dialogues):
                _finish_unit(out_dir, unit.index, unit.dialogues, buffer, formats, tokens, rewrite)
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

    report = build_report(out_dir, recipe, load_report, filter_counts, time.perf_counter() - t_start)
    return SynthSummary(out_dir, done_units, resumed["units"], report)


def _finish_unit(out_dir: Path, k: int, chunk: list[Dialogue], results: list[DialogueResult],
                 formats: set[str], tokens: TokenStage | None, rewrite: dict[str, Any] | None) -> None:
    from jmoshi_augment.augment.analysis.stats import analyze
    from jmoshi_augment.augment.types import SAMPLE_RATE
    from jmoshi_augment.augment.formats.wav_format import write_wav_dialogue

    t0 = time.perf_counter()
    renderings = [r for res in results for r in res.renderings]
    entries = []
    for r in renderings:
        if "wav" in formats:
            write_wav_dialogue(out_dir, r)
        if "jmoshi" in formats:
            from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_dialogue

            write_jmoshi_dialogue(out_dir / "jmoshi", r)
        entries.append({
            "id": r.id,
            "dialogue_id": r.dialogue_id,
            "corpus": r.corpus,
            "duration": round(r.duration, 3),
            "speaker_map": r.speaker_map,
            "turns": sum(1 for s in r.meta["script"] if s[1] == "speech"),
            "planned": r.meta["planned"],
            "voices": r.meta["voices"],
            "source": r.meta["source"],
            "script": r.meta["script"],
            "stats": analyze(r.audio, SAMPLE_RATE, name=r.id).to_dict(),
        })
    seconds = Counter()
    for res in results:
        seconds.update(res.seconds)
    seconds["write"] = time.perf_counter() - t0
    if tokens is not None and renderings:
        t1 = time.perf_counter()
        dropped = tokens.write(out_dir, k, renderings)
        seconds["tokenize"] = time.perf_counter() - t1
        for e in entries:
            e["dropped_tokens"] = dropped.get(e["id"], 0)
    record = {
        "unit": k,
        "dialogues": [d.id for d in chunk],
        "renderings": entries,
        "rejected": {res.dialogue_id: res.rejected for res in results if res.rejected},
        "skips": dict(Counter(s for res in results for s in res.skips)),
        "seconds": {k2: round(v, 3) for k2, v in seconds.items()},
        "rewrite": rewrite,
    }
    atomic_write_text(unit_path(out_dir, k), json.dumps(json_safe(record), ensure_ascii=False, indent=1, allow_nan=False))
