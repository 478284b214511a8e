"""``report.html``: look at and listen to a synth run in a browser, offline.

Layout written next to the run's own files::

    OUT/report.html               summary, turn-taking plots, list + timeline + player (CSS/JS inlined)
    OUT/report_data/list-K.js     page K of the dialogue list  (``JMR_page(K, [row, ...])``)
    OUT/report_data/detail-K.js   words, text and events of a run of dialogues (``JMR_detail(K, {...})``)

The data files are JSON wrapped in one function call because a page opened from disk (file://)
may load sibling ``<script>`` files but not ``fetch`` JSON. Audio is referenced
(``audio/ID.wav``), never copied. Everything is read defensively: a partial or malformed folder
gives a report that lists what is missing (``problems``) instead of an exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from jmoshi_augment.augment.stats import HUMAN_REFERENCE, DialogueStats, analyze_file, analyze_paths, summarize
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_write_text

logger = logging.getLogger(__name__)

REPORT_HTML = "report.html"
DATA_DIR = "report_data"
PAGE_SIZE = 500  # list rows per lazily loaded page
DETAIL_CHUNK = 50  # dialogues per detail file: one small download per click, few files per run
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
        return [r.stats for r in self.renderings if r.stats is not None]


# ----------------------------------------------------------------------------------- reading


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


def read_rendering(out_dir: Path, entry: dict[str, Any]) -> Rendering:
    """Row + detail for one unit-record entry (or a bare ``{"id", "duration"}`` from data.jsonl)."""
    rid = str(entry.get("id", "?"))
    warnings: list[str] = []
    wav, align = out_dir / "audio" / f"{rid}.wav", out_dir / "audio" / f"{rid}.json"
    audio_s = _audio_seconds(wav, warnings)
    duration = entry.get("duration")
    if audio_s is not None and isinstance(duration, (int, float)) and abs(audio_s - duration) > DURATION_TOLERANCE:
        warnings.append(f"audio is {audio_s:.2f} s, record says {duration:.2f} s")
    duration = float(duration) if isinstance(duration, (int, float)) else audio_s or 0.0
    words = _read_words(align, warnings)
    for ch, name in ((0, "main"), (1, "other")):
        if align.is_file() and words and not any(w[3] == ch for w in words):
            warnings.append(f"no words on the {name} channel")
    late = sum(1 for w in words if w[2] > duration + DURATION_TOLERANCE)
    if late:
        warnings.append(f"{late} word(s) end after the audio")

    stats, stats_dict = None, entry.get("stats")
    if isinstance(stats_dict, dict):
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
    planned = entry.get("planned") if isinstance(entry.get("planned"), dict) else {}
    if planned.get("backchannels", 0) >= 2 and stats and counts["backchannels"] == 0:
        warnings.append(f"planned {planned['backchannels']} backchannels, detector found none")
    silences = [e - s for s, e in [*(stats.gaps.tolist() if stats else []), *(stats.pauses.tolist() if stats else [])]]
    if silences and max(silences) > LONG_SILENCE:
        warnings.append(f"silence of {max(silences):.1f} s")
    if entry.get("dropped_tokens"):
        warnings.append(f"{entry['dropped_tokens']} text tokens dropped")

    speaker_map = entry.get("speaker_map") if isinstance(entry.get("speaker_map"), dict) else {}
    voices = entry.get("voices") if isinstance(entry.get("voices"), dict) else {}
    row = {
        "id": rid,
        "dialogue_id": str(entry.get("dialogue_id", rid)),
        "corpus": str(entry.get("corpus", "?")),
        "duration": round(duration, 3),
        "turns": entry.get("turns"),
        "overlaps": counts.get("overlaps"),
        "backchannels": counts.get("backchannels"),
        # the planner's counters omit zeros
        "planned_overlaps": planned.get("overlaps", 0) if planned else None,
        "planned_backchannels": planned.get("backchannels", 0) if planned else None,
        "main": speaker_map.get("main"),
        "other": speaker_map.get("other"),
        "voices": voices,
        "audio": f"audio/{rid}.wav" if audio_s is not None else None,
        "warnings": warnings,
    }
    detail = {
        "id": rid,
        "words": words,
        "source": entry.get("source") or [],
        "script": entry.get("script") or [],
        "planned": planned,
        "counts": counts,
        "events": _events(stats_dict) if isinstance(stats_dict, dict) else None,
    }
    return Rendering(row, detail, stats)


def _manifest_entries(out_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Renderings of a folder without unit records: data.jsonl lines, else every audio/*.wav."""
    manifest = out_dir / "data.jsonl"
    entries = []
    if manifest.is_file():
        for n, line in enumerate(manifest.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                e = json.loads(line)
                entries.append({"id": Path(e["path"]).stem, "duration": e.get("duration")})
            except (json.JSONDecodeError, KeyError, TypeError):
                if line.strip():
                    problems.append(f"data.jsonl:{n}: not a {{\"path\", \"duration\"}} line")
    else:
        entries = [{"id": p.stem} for p in sorted((out_dir / "audio").glob("*.wav"))]
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

    entries: list[dict[str, Any]] = []
    unit_files = sorted((out_dir / "units").glob("unit-*.json"))
    seconds: dict[str, float] = {}
    n_dialogues = 0
    for path in unit_files:
        unit = _read_json(path, p, "its dialogues are not listed", f"units/{path.name}")
        if not isinstance(unit, dict) or not isinstance(unit.get("renderings"), list):
            if unit is not None:
                p.append(f"units/{path.name}: not a unit record (no renderings list)")
            continue
        n_dialogues += len(unit.get("dialogues") or [])
        entries += [e for e in unit["renderings"] if isinstance(e, dict)]
        run.rejected.update({str(k): str(v) for k, v in (unit.get("rejected") or {}).items()})
        for k, v in (unit.get("seconds") or {}).items():
            seconds[k] = seconds.get(k, 0.0) + float(v)
    if not unit_files:
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


# ----------------------------------------------------------------------------------- writing


def _asset(name: str) -> str:
    return resources.files("jmoshi_augment.augment").joinpath("report_assets", name).read_text(encoding="utf-8")


def _js_call(fn: str, key: int, payload: Any) -> str:
    return f"{fn}({key}, {json.dumps(payload, ensure_ascii=False, separators=(',', ':'), allow_nan=False)});\n"


def _write_data(out_dir: Path, renderings: list[Rendering], page_size: int, detail_chunk: int) -> str:
    """Write report_data/ beside the page (all files, then one rename); returns a content token."""
    final = out_dir / DATA_DIR
    tmp = out_dir / f"{DATA_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    digest = hashlib.sha256()
    try:
        rows = [dict(r.row, chunk=i // detail_chunk) for i, r in enumerate(renderings)]
        for k in range(0, max(len(rows), 1), page_size):
            text = _js_call("JMR_page", k // page_size, rows[k : k + page_size])
            digest.update(text.encode())
            (tmp / f"list-{k // page_size:05d}.js").write_text(text, encoding="utf-8")
        for k in range(0, len(renderings), detail_chunk):
            chunk = {r.row["id"]: r.detail for r in renderings[k : k + detail_chunk]}
            text = _js_call("JMR_detail", k // detail_chunk, chunk)
            digest.update(text.encode())
            (tmp / f"detail-{k // detail_chunk:05d}.js").write_text(text, encoding="utf-8")
        old = out_dir / f"{DATA_DIR}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digest.hexdigest()[:12]


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def plan_reference(run: RunData) -> dict[str, float]:
    """What the recipe asked for, in the summary's units: planned events per minute and the
    recipe's overlap share, to set beside what the detector measured."""
    planned = run.report.get("planned_events") or {}
    minutes = (run.report.get("seconds_of_audio") or 0) / 60
    out: dict[str, float] = {}
    if minutes > 0:
        for key in ("overlaps", "gaps", "pauses", "backchannels", "speaker_changes"):
            if key in planned:
                out[f"{key}_per_min"] = planned[key] / minutes
    if planned.get("speaker_changes"):
        out["overlapped_share"] = planned.get("overlaps", 0) / planned["speaker_changes"]
    timing = run.recipe.get("timing") if isinstance(run.recipe.get("timing"), dict) else {}
    if isinstance(timing.get("overlap_prob"), (int, float)):
        out["overlapped_share"] = float(timing["overlap_prob"])
    return out


def write_html_report(
    out_dir: str | Path,
    compare: list[Path] | None = None,
    *,
    page_size: int = PAGE_SIZE,
    detail_chunk: int = DETAIL_CHUNK,
) -> Path:
    """Write ``OUT/report.html`` (+ ``OUT/report_data/``) for a synth output folder, complete or not;
    ``compare``: other runs or real recordings whose turn-taking is plotted beside this run's."""
    from jmoshi_augment.augment.report_page import render_page

    if page_size < 1 or detail_chunk < 1:
        raise JmoshiError("page_size and detail_chunk must be at least 1")
    out_dir = Path(out_dir)
    references = [read_compare(c) for c in compare or []]  # bad --compare paths fail before writing
    run = read_run(out_dir)
    for _, _, problems in references:
        run.problems += problems
    sets = {out_dir.name or "this run": run.stats}
    for (label, stats, _), path in zip(references, compare or []):
        sets[label if label not in sets else str(path)] = stats
    summaries = {name: summarize(stats) if stats else {} for name, stats in sets.items()}
    token = _write_data(out_dir, run.renderings, page_size, detail_chunk)
    config = {
        "data": DATA_DIR,
        "token": token,
        "total": len(run.renderings),
        "page_size": page_size,
        "pages": max(1, math.ceil(len(run.renderings) / page_size)),
        "corpora": sorted({r.row["corpus"] for r in run.renderings}),
    }
    page = render_page(
        run, sets, _finite(summaries), plan_reference(run), HUMAN_REFERENCE, config,
        style=_asset("report.css"), script=_asset("report.js"), template=_asset("report.html"),
    )
    path = out_dir / REPORT_HTML
    atomic_write_text(path, page)
    logger.info("wrote %s (%d dialogues, %d problems)", path, len(run.renderings), len(run.problems))
    return path



# ----------------------------------------------------------------------------------- serving


def report_app(out_dir: str | Path) -> "Any":
    """An aiohttp app serving the output folder read-only (with Range requests, so the player can
    seek): over http the page may route one channel through Web Audio, which file:// forbids."""
    from aiohttp import web

    root = Path(out_dir).resolve()
    if not (root / REPORT_HTML).is_file():
        raise JmoshiError(f"no {REPORT_HTML} here; run `jmoshi-augment report` first", path=root)

    async def index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{REPORT_HTML}")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_static("/", root, show_index=False, follow_symlinks=False)
    return app


def serve_report(out_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                 on_ready: "Any" = None) -> None:
    """Serve until interrupted; ``on_ready(url)`` is called once the socket listens."""
    import asyncio

    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(report_app(out_dir), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            await runner.cleanup()
            raise JmoshiError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from e
        bound = runner.addresses[0][1]
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}/{REPORT_HTML}")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
