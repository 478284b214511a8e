"""Reading a synth output folder for ``report.html``: the unit records, alignments, wav headers and
turn-taking stats of every dialogue, plus reference sets to compare with.

Everything is read defensively: a partial or malformed folder gives a :class:`RunData` whose
``problems`` list what is missing instead of an exception (only a missing folder raises).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jmoshi_augment.augment.analysis.stats import DialogueStats, analyze_file, analyze_paths
from jmoshi_augment.augment.report.views import view_fields
from jmoshi_augment.augment.run.layout import UNITS_DIR, RenderingEntry, read_unit_records
from jmoshi_augment.augment.speech.timing_state import PlanEvent
from jmoshi_augment.errors import JmoshiError

__all__ = ["Rendering", "RunData", "read_compare", "read_rendering", "read_run"]

LONG_SILENCE = 3.0  # seconds of mutual silence worth a warning in the list
DURATION_TOLERANCE = 0.05  # seconds between the unit record and the wav header


@dataclass
class Rendering:
    """One row of the list and its detail record, as the page reads them."""

    row: dict[str, Any]
    detail: dict[str, Any]
    stats: DialogueStats | None = None


@dataclass
class RunData:
    """Everything the report shows, read from an output folder; ``problems`` says what was missing."""

    out_dir: Path
    recipe_yaml: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    renderings: list[Rendering] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def stats(self) -> list[DialogueStats]:
        """One per clean rendering: a view's stats are its clean rendering's (measured on the clean
        stems), so counting both would count a dialogue twice; a folder of views only keeps them."""
        clean = [r.stats for r in self.renderings if r.stats is not None and not r.row.get("view_of")]
        return clean or [r.stats for r in self.renderings if r.stats is not None]


def _read_json(path: Path, problems: list[str], consequence: str, label: str | None = None) -> Any:
    """Parsed JSON, or None with a line in ``problems`` saying what that costs the report."""
    label = label or path.name
    if not path.is_file():
        problems.append(f"{label}: missing; {consequence}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{label}: unreadable ({type(e).__name__}: {e}); {consequence}")
        return None


def _read_words(path: Path, warnings: list[str]) -> list[list[Any]]:
    """[[word, start, end, channel], ...] from a moshi-finetune alignment file."""
    if not path.is_file():
        warnings.append("no alignments file")
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        channel = {"SPEAKER_MAIN": 0, "SPEAKER_OTHER": 1}
        return [[str(w), float(s), float(e), channel.get(spk, 0)] for w, (s, e), spk in data["alignments"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        warnings.append(f"alignments unreadable ({type(e).__name__})")
        return []


def _audio_seconds(path: Path, warnings: list[str]) -> float | None:
    import soundfile as sf

    if not path.is_file():
        warnings.append("no audio file")
        return None
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as e:  # soundfile raises RuntimeError on a bad header
        warnings.append(f"audio unreadable ({type(e).__name__})")
        return None
    if info.channels != 2:
        warnings.append(f"audio has {info.channels} channel(s), expected 2")
    return info.frames / info.samplerate


def _events(stats: dict[str, Any]) -> dict[str, Any]:
    """The parts of DialogueStats.to_dict() the timeline draws."""
    kinds = stats.get("overlap_kind", [])
    return {
        "ipus": stats.get("ipus", [[], []]),
        "gaps": stats.get("gaps", []),
        "pauses": stats.get("pauses", []),
        "overlaps": [[s, e, k] for (s, e), k in zip(stats.get("overlaps", []), kinds)],
        "backchannels": stats.get("backchannels", [[], []]),
    }


def read_rendering(out_dir: Path, entry: RenderingEntry) -> Rendering:
    """Row + detail for one unit-record entry (or a bare id and duration from data.jsonl)."""
    rid = entry.id
    warnings: list[str] = []
    wav, align = out_dir / "audio" / f"{rid}.wav", out_dir / "audio" / f"{rid}.json"
    audio_s = _audio_seconds(wav, warnings)
    duration = entry.duration
    if audio_s is not None and duration is not None and abs(audio_s - duration) > DURATION_TOLERANCE:
        warnings.append(f"audio is {audio_s:.2f} s, record says {duration:.2f} s")
    duration = float(duration) if duration is not None else audio_s or 0.0
    words = _read_words(align, warnings)
    for ch, name in ((0, "main"), (1, "other")):
        if align.is_file() and words and not any(w[3] == ch for w in words):
            warnings.append(f"no words on the {name} channel")
    late = sum(1 for w in words if w[2] > duration + DURATION_TOLERANCE)
    if late:
        warnings.append(f"{late} word(s) end after the audio")

    stats, stats_dict = None, entry.stats
    if stats_dict is not None:
        try:
            stats = DialogueStats.from_dict(stats_dict)
        except JmoshiError:
            warnings.append("turn-taking stats malformed")
    elif audio_s is not None:
        try:  # a run made without unit records: measure the wav now
            stats = analyze_file(wav, rid)
            stats_dict = stats.to_dict()
        except JmoshiError as e:
            warnings.append(f"stats: {e.message}")
    else:
        warnings.append("no turn-taking stats")
    counts = stats.counts() if stats else {}
    planned = entry.planned
    if planned.get(PlanEvent.BACKCHANNELS, 0) >= 2 and stats and counts["overlaps_within"] == 0:
        warnings.append(f"planned {planned[PlanEvent.BACKCHANNELS]} backchannels, detector found no within overlap")
    silences = [e - s for s, e in [*(stats.gaps.tolist() if stats else []), *(stats.pauses.tolist() if stats else [])]]
    if silences and max(silences) > LONG_SILENCE:
        warnings.append(f"silence of {max(silences):.1f} s")
    if entry.dropped_tokens:
        warnings.append(f"{entry.dropped_tokens} text tokens dropped")

    # an acoustic view: the clean rendering it was made from (played beside it) and what it drew
    view_row, view_detail = view_fields(out_dir, entry.acoustics, warnings) if entry.acoustics else ({"view_of": None}, {})
    speaker_map, voices = entry.speaker_map, entry.voices
    row = {
        "id": rid,
        "dialogue_id": entry.dialogue_id or rid,
        "corpus": entry.corpus or "?",
        "duration": round(duration, 3),
        "turns": entry.turns,
        "overlaps": counts.get("overlaps"),
        "backchannels": counts.get("overlaps_within"),  # dGSLM within overlaps: what a placed backchannel should be
        # the planner's counters omit zeros
        "planned_overlaps": planned.get(PlanEvent.OVERLAPS, 0) if planned else None,
        "planned_backchannels": planned.get(PlanEvent.BACKCHANNELS, 0) if planned else None,
        "main": speaker_map.get("main"),
        "other": speaker_map.get("other"),
        "voices": voices,
        "audio": f"audio/{rid}.wav" if audio_s is not None else None,
        "warnings": warnings,
        **view_row,
    }
    detail = {
        "id": rid,
        "words": words,
        "source_turns": entry.source_turns,
        "script": entry.script,
        "planned": planned,
        "counts": counts,
        "events": _events(stats_dict) if stats_dict is not None else None,
        # best of N: the winner and every candidate's seed, scores and why it lost or failed
        "candidates": entry.candidates,
        **view_detail,
    }
    return Rendering(row, detail, stats)


def _manifest_entries(out_dir: Path, problems: list[str]) -> list[RenderingEntry]:
    """Renderings of a folder without unit records: data.jsonl lines, else every audio/*.wav."""
    manifest = out_dir / "data.jsonl"
    entries = []
    if manifest.is_file():
        for n, line in enumerate(manifest.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                e = json.loads(line)
                entries.append(RenderingEntry.from_dict({"id": Path(e["path"]).stem, "duration": e.get("duration")}))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if line.strip():
                    problems.append(f"data.jsonl:{n}: not a {{\"path\", \"duration\"}} line")
    else:
        entries = [RenderingEntry(p.stem) for p in sorted((out_dir / "audio").glob("*.wav"))]
    return entries


def read_run(out_dir: str | Path) -> RunData:
    """Read an output folder for the report; never raises on missing or malformed content."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise JmoshiError("no such output folder", path=out_dir)
    run = RunData(out_dir)
    p = run.problems
    yaml_path = out_dir / "recipe.yaml"
    if yaml_path.is_file():
        run.recipe_yaml = yaml_path.read_text(encoding="utf-8", errors="replace")
    else:
        p.append("recipe.yaml: missing; resolved recipe not shown")
    run.recipe = _read_json(out_dir / "recipe.json", [], "") or {}
    run.models = _read_json(out_dir / "models.json", p, "model and voice files not shown")
    report = _read_json(out_dir / "report.json", p, "totals recomputed from the unit records")
    run.report = report if isinstance(report, dict) else {}

    records = read_unit_records(out_dir, strict=False)
    for e in records.unreadable:
        p.append(f"{UNITS_DIR}/{Path(str(e.path)).name}: {e.message}; its dialogues are not listed")
    entries = records.renderings
    seconds: dict[str, float] = {}
    for unit in records.ordered():
        run.rejected.update(unit.rejected)
        for k, v in unit.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + float(v)
    n_dialogues = sum(len(u.dialogues) for u in records.ordered())
    if not records.files:
        p.append("units/: no unit records (run not started, or made by another tool): "
                 "dialogues listed from data.jsonl / audio/, without text or plan")
        entries = _manifest_entries(out_dir, p)
    run.renderings = [read_rendering(out_dir, e) for e in entries]
    if not run.renderings:
        p.append("no dialogues found (nothing rendered yet?)")

    # Totals are recomputed from what is on disk, so an interrupted run reports what it holds.
    total = sum(r.row["duration"] for r in run.renderings)
    run.report.setdefault("dialogues", n_dialogues or len({r.row["dialogue_id"] for r in run.renderings}))
    run.report.setdefault("stage_seconds", {k: round(v, 2) for k, v in seconds.items()})
    run.report.update(renderings=len(run.renderings), seconds_of_audio=round(total, 2), hours=round(total / 3600, 4))
    if not run.rejected and isinstance(run.report.get("rejected"), dict):
        run.rejected = {str(k): str(v) for k, v in run.report["rejected"].items()}
    missing_audio = sum(1 for r in run.renderings if r.row["audio"] is None)
    if missing_audio:
        p.append(f"audio/: {missing_audio} of {len(run.renderings)} wav files missing or unreadable")
    return run


def read_compare(path: str | Path) -> tuple[str, list[DialogueStats], list[str]]:
    """A reference set: another run's folder (its unit records), or real recordings (wav files,
    folders of them, data.jsonl manifests) measured now."""
    path = Path(path)
    if not path.exists():
        raise JmoshiError("--compare: no such file or folder", path=path)
    label = path.name or str(path)
    if (path / "units").is_dir() or (path / "report.json").is_file():
        other = read_run(path)
        return label, other.stats, [f"{label}: {m}" for m in other.problems]
    try:
        return label, list(analyze_paths([path])), []
    except (RuntimeError, OSError) as e:  # soundfile's errors for what is not audio
        raise JmoshiError(f"--compare: not a run folder, wav, folder of wavs or data.jsonl manifest ({e})",
                          path=path) from e

