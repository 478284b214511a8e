"""``report.html``: look at and listen to a synth run in a browser, offline.

Layout written next to the run's own files::

    OUT/report.html               summary, turn-taking plots, list + timeline + player (CSS/JS inlined)
    OUT/report_data/list-K.js     page K of the dialogue list  (``JMR_page(K, [row, ...])``)
    OUT/report_data/detail-K.js   words, text and events of a run of dialogues (``JMR_detail(K, {...})``)

The data files are JSON wrapped in one function call because a page opened from disk (file://)
may load sibling ``<script>`` files but not ``fetch`` JSON. Audio is referenced
(``audio/ID.wav``), never copied. The folder is read defensively (:mod:`.report_read`): a partial
or malformed folder gives a report that lists what is missing (``problems``) instead of an
exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from jmoshi_augment.augment.report.read import Rendering, RunData, read_compare, read_rendering, read_run
from jmoshi_augment.augment.analysis.silence_cues import cues_for_stats
from jmoshi_augment.augment.analysis.stats import HUMAN_REFERENCE, summarize
from jmoshi_augment.augment.speech.timing_state import PlanEvent
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_DIR",
    "REPORT_HTML",
    "Rendering",
    "RunData",
    "plan_reference",
    "read_compare",
    "read_rendering",
    "read_run",
    "report_app",
    "serve_report",
    "write_html_report",
]

REPORT_HTML = "report.html"
DATA_DIR = "report_data"
PAGE_SIZE = 500  # list rows per lazily loaded page
DETAIL_CHUNK = 50  # dialogues per detail file: one small download per click, few files per run


# ----------------------------------------------------------------------------------- writing


def _asset(name: str) -> str:
    return resources.files("jmoshi_augment.augment.report").joinpath("assets", name).read_text(encoding="utf-8")


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
        for key in (PlanEvent.OVERLAPS, PlanEvent.GAPS, PlanEvent.PAUSES, PlanEvent.BACKCHANNELS, PlanEvent.SPEAKER_CHANGES):
            if key in planned:
                out[f"{key}_per_min"] = planned[key] / minutes
        # Every placed backchannel is planned to sit inside the partner's IPU: a dGSLM within overlap.
        out["within_overlaps_per_min"] = planned.get(PlanEvent.BACKCHANNELS, 0) / minutes
    if planned.get(PlanEvent.SPEAKER_CHANGES):
        out["overlapped_share"] = planned.get(PlanEvent.OVERLAPS, 0) / planned[PlanEvent.SPEAKER_CHANGES]
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
    from jmoshi_augment.augment.report.page import render_page

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
        cues={name: cues_for_stats(stats, out_dir if i == 0 else None) for i, (name, stats) in enumerate(sets.items())},
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
