"""The run's report next to its data: the manifest and other finished formats, ``report.json``,
the turn-taking statistics and ``report.html``. Everything is rebuilt from the unit records, so a
resumed run (or one finished by another executor) reports the whole output, not only its own part.
The model files' record (``models.json``) is :mod:`.model_files`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from jmoshi_augment.augment.run.layout import UnitRecord, read_unit_records
from jmoshi_augment.augment.run.model_files import record_dialogue_voices
from jmoshi_augment.augment.run.output_formats import finalize
from jmoshi_augment.corpora import SkipCounts
from jmoshi_augment.io import atomic_write_text, json_safe
from jmoshi_augment.recipe import Recipe


def _add_counts(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-unit count dicts (nested dicts of numbers); the first text value of a key is kept."""
    total: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            if isinstance(value, dict):
                total[key] = _add_counts([total.get(key, {}), value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def build_report(out_dir: Path, recipe: Recipe, skip_counts: SkipCounts, filter_counts: Counter,
                 wall_seconds: float) -> dict[str, Any]:
    """Manifest + report from the unit records, so a resumed run reports the whole output."""
    from jmoshi_augment.augment.acoustics.outputs import acoustics_summary
    from jmoshi_augment.augment.analysis.stats import DialogueStats, summarize, write_stats_files

    units = read_unit_records(out_dir).ordered()
    renderings = [e for u in units for e in u.renderings]
    finalize(out_dir, renderings, recipe.output.formats)
    planned, seconds, skips, rejected, not_spoken = Counter(), Counter(), Counter(), {}, Counter()
    for u in units:
        seconds.update(u.seconds)
        skips.update(u.skips)
        not_spoken.update(u.not_spoken)
        rejected.update(u.rejected)
    for e in renderings:
        planned.update(e.planned)
    rewrite = _add_counts([u.rewrite for u in units if u.rewrite])
    stats = [DialogueStats.from_dict(e.stats) for e in renderings if e.stats is not None and e.acoustics is None]  # views repeat their clean stats
    total = sum(e.duration or 0.0 for e in renderings)
    report = {
        "output_dir": recipe.output.dir,
        "dialogues": sum(len(u.dialogues) for u in units),
        "renderings": len(renderings),
        "hours": round(total / 3600, 4),
        "seconds_of_audio": round(total, 2),
        "turns": sum(e.turns or 0 for e in renderings),
        "planned_events": dict(planned),
        "rejected": rejected,
        "rejected_by_reason": dict(Counter(r.split(":")[0] for r in rejected.values())),
        "skipped_turns": dict(skips),
        # source characters read (augment/text/normalize.py), and those not spoken by reason
        "source_characters": sum(u.source_characters for u in units),
        "characters_not_spoken": dict(not_spoken),
        "skipped_corpus_rows": dict(skip_counts.skipped),
        "filtered": dict(filter_counts),
        "dropped_text_tokens": sum(e.dropped_tokens or 0 for e in renderings),
        "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "wall_seconds_this_run": round(wall_seconds, 2),
        "rewrite": rewrite,
        "best_of_n": best_of_n_report(units),
        "turn_taking": summarize(stats) if stats else {},
        "acoustics": acoustics_summary(renderings),
        "random_weights": recipe.models.random_weights,
    }
    atomic_write_text(out_dir / "report.json", json.dumps(json_safe(report), ensure_ascii=False, indent=1, allow_nan=False))
    if stats:
        write_stats_files(out_dir / "stats", stats, title=f"turn-taking of {out_dir.name}", run_dir=out_dir)
    from jmoshi_augment.augment.report.build import write_html_report

    write_html_report(out_dir)
    record_dialogue_voices(out_dir, renderings)
    return report


def best_of_n_report(units: list[UnitRecord]) -> dict[str, Any]:
    """Best-of-N provenance of the whole run: per dialogue (rendering id, or dialogue id for one
    whose candidates all failed) the winner and every candidate's seed, scores and fate, plus
    counts of failures by reason. Empty when the run did not select among candidates."""
    per: dict[str, Any] = {}
    failures: Counter = Counter()
    n = 0
    for u in units:
        for e in u.renderings:
            if e.candidates:
                per[e.id] = e.candidates
        for dialogue_id, by_main in u.rejected_candidates.items():
            for main, selection in by_main.items():
                per[f"{dialogue_id}/{main}"] = selection
    for selection in per.values():
        for c in selection.get("candidates", []):
            n += 1
            if c.get("failed"):
                failures[str(c["failed"]).split(":")[0][:80]] += 1
    if not per:
        return {}
    return {
        "dialogues": len(per),
        "candidates": n,
        "no_winner": sum(1 for s in per.values() if s.get("winner") is None),
        "failed_candidates_by_reason": dict(failures),
        "per_dialogue": per,
    }
