"""Units: the unit of work, resume and shards.

Unit k is the k-th run of ``output.shard_size`` dialogues of the (filtered) corpus and becomes
exactly one shard of each token format. A unit is finished when its record ``units/unit-K.json``
exists (written last, atomically), so a killed run resumes at the first unfinished unit and redoes
it whole.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from jmoshi_augment.augment.run.layout import RenderingEntry, UnitRecord, UnitRecordError, read_unit_record, unit_path
from jmoshi_augment.augment.run.output_formats import write_rendering
from jmoshi_augment.augment.run.synthesize import DialogueResult
from jmoshi_augment.corpora import Dialogue, SkipCounts, load_corpus
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_write_text
from jmoshi_augment.recipe import Recipe

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.token_stage import TokenStage


@dataclass
class Unit:
    """The k-th run of ``output.shard_size`` dialogues: the unit of work, resume and shards."""

    index: int
    dialogues: list[Dialogue]


def pending_units(recipe: Recipe, skip_counts: SkipCounts, filter_counts: Counter, resumed: Counter) -> Iterator[Unit]:
    """Units whose record is missing, lazily; finished ones are counted in ``resumed["units"]``."""
    out_dir = Path(recipe.output.dir)
    dialogues = filtered_dialogues(recipe, skip_counts, filter_counts)
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
        done = read_unit_record(path).dialogues
    except UnitRecordError as e:  # a record this version cannot read stops the run, naming it
        raise UnitRecordError(f"{e.message}; delete it to redo unit {k}", path=path) from None
    ids = [d.id for d in chunk]
    # A smaller corpus.limit cuts this chunk short of a unit already finished with more dialogues:
    # the finished unit stands (redoing it would shrink the run and orphan its other files).
    return done == ids or (len(done) > len(ids) and done[: len(ids)] == ids)


def rewrite_unit(recipe: Recipe, unit: Unit) -> tuple[Unit, dict[str, Any] | None]:
    """The optional LLM rewrite, paid only for units still to do (answers are cached on disk)."""
    if recipe.rewrite.backend == "none":
        return unit, None
    from jmoshi_augment.augment.text.rewrite.llm import RewriteCounts, default_cache_dir, iter_rewrite

    counts = RewriteCounts()
    cache = default_cache_dir(recipe.rewrite, recipe.output.dir)
    return Unit(unit.index, list(iter_rewrite(unit.dialogues, recipe.rewrite, cache, counts))), counts.to_dict()


def filtered_dialogues(recipe: Recipe, skips: SkipCounts, counts: Counter) -> Iterator[Dialogue]:
    c = recipe.corpus
    wanted = set(c.filters.ids) if c.filters.ids else None
    source = load_corpus(c.name, c.path, skips=skips)
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


def write_output_identity(out_dir: Path, recipe: Recipe) -> None:
    """Claim the folder for this recipe (``recipe.json``), once every check has passed: a run that
    fails its checks leaves no identity, so the corrected command may use the same folder. A
    different recipe's folder is refused by the checks (``preflight.output_identity_problem``)."""
    saved = out_dir / "recipe.json"
    if saved.exists():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "recipe.yaml", recipe.to_yaml())
    atomic_write_text(saved, json.dumps(recipe.to_dict(), sort_keys=True, ensure_ascii=False))


def output_defining(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe without the keys that do not change any unit's content: how many processes run
    it, and how far into the corpus it goes (a larger limit extends the same run)."""
    recipe = {k: v for k, v in recipe.items() if k != "workers"}
    recipe["corpus"] = {k: v for k, v in recipe.get("corpus", {}).items() if k != "limit"}
    tts = recipe.get("tts")
    if isinstance(tts, dict):  # runs saved before typed options stored only the keys given
        recipe["tts"] = {**tts, "options": _with_defaults(tts.get("backend"), tts.get("options") or {})}
    if not (recipe.get("acoustics") or {}).get("views"):  # no views: the output of a recipe without the section
        recipe.pop("acoustics", None)
    return recipe


def _with_defaults(backend: Any, options: dict[str, Any]) -> dict[str, Any]:
    from jmoshi_augment.augment.speech.tts.registry import backend_info

    try:
        return backend_info(backend).parse_options(options).model_dump(mode="json")
    except JmoshiError:  # not options of this backend: compared as written
        return options


def finish_unit(recipe: Recipe, k: int, chunk: list[Dialogue], results: list[DialogueResult],
                tokens: TokenStage | None, rewrite: dict[str, Any] | None) -> None:
    """Write unit ``k``: its renderings (and their acoustic views) in the recipe's formats, its
    shards, then its record, last, so a record means the unit is complete."""
    from jmoshi_augment.augment.analysis.stats import analyze
    from jmoshi_augment.augment.types import SAMPLE_RATE

    out_dir, formats = Path(recipe.output.dir), set(recipe.output.formats)
    t0 = time.perf_counter()
    renderings = [r for res in results for r in res.renderings]
    seconds = Counter()
    if recipe.acoustics.views:
        from jmoshi_augment.augment.acoustics.views import acoustic_views

        renderings += acoustic_views(renderings, recipe.acoustics, recipe.seed)
        seconds["acoustics"] = time.perf_counter() - t0
    entries, clean_stats = [], {}
    for r in renderings:
        view = r.meta.get("acoustics")
        # turn-taking from the clean stems: a VAD on noisy, echoing audio would mislead
        stats = clean_stats[view["view_of"]] if view else analyze(r.audio, SAMPLE_RATE, name=r.id).to_dict()
        clean_stats.setdefault(r.id, stats)
        write_rendering(out_dir, r, formats)
        entries.append(RenderingEntry(
            id=r.id,
            dialogue_id=r.dialogue_id,
            corpus=r.corpus,
            duration=round(r.duration, 3),
            speaker_map=r.speaker_map,
            turns=sum(1 for s in r.script if s[1] == "speech"),
            planned=r.planned,
            voices=r.voices,
            voice_params=r.meta.get("voice_params"),
            source_turns=r.source_turns,
            script=r.script,
            not_spoken=dict(r.not_spoken),
            stats=stats,
            acoustics=view,
            # best of N: every candidate's seed, scores, why it lost
            candidates={"winner": r.meta.get("candidate"), "candidates": r.meta["candidates"]} if "candidates" in r.meta else None,
        ))
    for res in results:
        seconds.update(res.seconds)
    seconds["write"] = time.perf_counter() - t0
    if tokens is not None and renderings:
        t1 = time.perf_counter()
        dropped = tokens.write(out_dir, k, renderings)
        seconds["tokenize"] = time.perf_counter() - t1
        entries = [replace(e, dropped_tokens=dropped.get(e.id, 0)) for e in entries]
    record = UnitRecord(
        unit=k,
        dialogues=[d.id for d in chunk],
        renderings=entries,
        rejected={res.dialogue_id: res.rejected for res in results if res.rejected},
        rejected_candidates={res.dialogue_id: res.candidates for res in results if res.candidates},
        skips=dict(Counter(s for res in results for s in res.skips)),
        source_characters=sum(res.source_characters for res in results),
        not_spoken=dict(sum((Counter(res.not_spoken) for res in results), Counter())),
        seconds={k2: round(v, 3) for k2, v in seconds.items()},
        rewrite=rewrite,
    )
    atomic_write_text(unit_path(out_dir, k), record.to_json())
