"""The static half of ``report.html``: run summary, turn-taking table and SVG plots, as HTML text.

Pure functions of the data read by :mod:`.report`; the interactive half (list, timeline, player)
is ``assets/report.js``. Plots are inline SVG drawn here, so the page needs no plotting
library and shows them with JavaScript switched off.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Callable

import numpy as np

from jmoshi_augment.augment.analysis.silence_cues import CUES
from jmoshi_augment.augment.analysis.stats import DialogueStats
from jmoshi_augment.augment.analysis.stats_files import METRICS, format_value

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
PLAN, HUMAN = "plan (recipe)", "human reference"
# The metrics whose bars are drawn; the table lists every metric of stats_files.METRICS.
PLOTTED = [
    "ipus_per_min", "speaker_changes_per_min", "overlapped_share", "within_overlaps_per_min",
    "overlaps_per_min", "gap_median", "overlap_median", "fto_median",
]
# (title, events of one dialogue as [K, 2] intervals or [K] values, histogram bin edges)
DISTRIBUTIONS: list[tuple[str, Callable[[DialogueStats], np.ndarray], np.ndarray]] = [
    ("floor-transfer offset, s (< 0: overlapped change)", lambda s: s.fto, np.arange(-2.0, 2.0001, 0.1)),
    ("gap duration, s", lambda s: s.gaps, np.arange(0.0, 2.0001, 0.1)),
    ("overlap duration, s", lambda s: s.overlaps, np.arange(0.0, 2.0001, 0.1)),
    ("IPU duration, s", lambda s: np.concatenate([s.ipus[0], s.ipus[1]]), np.arange(0.0, 8.0001, 0.4)),
]


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ------------------------------------------------------------------------------------ summary


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, dict):
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, str(d))]


def summary_html(run: Any) -> str:
    r = run.report
    minutes = (r.get("seconds_of_audio") or 0) / 60
    figures = [
        ["dialogues read", r.get("dialogues", "–")],
        ["renderings (rows below)", r.get("renderings", 0)],
        ["audio", f"{r.get('hours', 0):.3f} h ({minutes:.1f} min)"],
        ["turns", r.get("turns", "–")],
        ["rejected dialogues", len(run.rejected)],
        ["dropped text tokens", r.get("dropped_text_tokens", "–")],
        ["source characters read", r.get("source_characters", "–")],
        ["wall time of the last run", f"{r['wall_seconds_this_run']} s" if "wall_seconds_this_run" in r else "–"],
    ]
    bon = r.get("best_of_n") or {}
    if bon:  # the per-dialogue detail is in each dialogue's panel below and in report.json
        figures += [["best of N: dialogues selected", bon.get("dialogues", "–")],
                    ["best of N: candidates rendered", bon.get("candidates", "–")],
                    ["best of N: dialogues without a winner", bon.get("no_winner", 0)]]
        figures += [[f"best of N: failed candidates: {k}", v] for k, v in (bon.get("failed_candidates_by_reason") or {}).items()]
    for key, label in (("planned_events", "planned"), ("skipped_turns", "skipped turns"),
                       ("characters_not_spoken", "characters not spoken"),
                       ("skipped_corpus_rows", "skipped corpus rows"), ("filtered", "filtered out")):
        for k, v in (r.get(key) or {}).items():
            figures.append([f"{label}: {k}", v])
    parts = ['<section id="summary"><h2>Run</h2><div class="cols">', _table(["", ""], figures, "kv")]
    stages = r.get("stage_seconds") or {}
    if stages:
        top = max(stages.values()) or 1
        bars = "".join(
            f'<div class="stage"><span>{esc(k)}</span><span class="bar" style="width:{120 * v / top:.0f}px"></span>'
            f"<span>{v:.1f} s</span></div>"
            for k, v in sorted(stages.items(), key=lambda kv: -kv[1])
        )
        parts.append(f'<div><h3>Time per stage (CPU seconds, all workers)</h3>{bars}</div>')
    parts.append("</div>")
    if run.rejected:
        rows = [[k, v] for k, v in list(run.rejected.items())[:1000]]
        more = f"<p>… and {len(run.rejected) - 1000} more in report.json</p>" if len(run.rejected) > 1000 else ""
        parts.append(f"<details open><summary>Rejected dialogues ({len(run.rejected)})</summary>"
                     f"{_table(['dialogue', 'reason'], rows)}{more}</details>")
    if run.models is not None:
        parts.append(f"<details><summary>Model and voice files</summary>{_table(['file', 'value'], _flatten(run.models))}</details>")
    if run.recipe_yaml is not None:
        parts.append(f'<details><summary>Recipe (resolved)</summary><pre id="recipe">{esc(run.recipe_yaml)}</pre></details>')
    parts.append("</section>")
    return "".join(parts)


def problems_html(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return f'<section id="problems" class="problems"><h2>What is missing or malformed</h2><ul>{items}</ul></section>'


# ------------------------------------------------------------------------------- turn-taking


def _columns(summaries: dict[str, dict[str, float]], plan: dict[str, float], human: dict[str, float]) -> dict[str, dict[str, float]]:
    return {**summaries, PLAN: plan, HUMAN: human}


def metrics_table(columns: dict[str, dict[str, float]]) -> str:
    rows = [[label, *(format_value(key, c.get(key)) for c in columns.values())] for key, (label, _) in METRICS.items()]
    rows = [r for r in rows if any(v != "–" for v in r[1:])]
    return _table(["metric", *columns], rows, "metrics")


def bars_svg(key: str, columns: dict[str, dict[str, float]]) -> str:
    """One metric as horizontal bars, one per set that has it."""
    label, kind = METRICS[key]
    items = [(i, name, c[key]) for i, (name, c) in enumerate(columns.items())
             if isinstance(c.get(key), (int, float)) and np.isfinite(c[key])]
    w, bar, top = 300, 14, 22
    h = top + len(items) * (bar + 4) + 4
    peak = max([abs(v) for _, _, v in items] + [1e-9])
    out = [f'<svg class="plot bars" data-metric="{esc(key)}" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f'<text x="0" y="14" class="title">{esc(label)}</text>']
    for row, (i, name, v) in enumerate(items):
        y = top + row * (bar + 4)
        length = 150 * abs(v) / peak
        out.append(f'<rect x="110" y="{y}" width="{length:.1f}" height="{bar}" fill="{PALETTE[i % len(PALETTE)]}">'
                   f"<title>{esc(name)}: {esc(format_value(key, v))}</title></rect>")
        out.append(f'<text x="105" y="{y + 11}" text-anchor="end" class="small">{esc(name[:18])}</text>')
        out.append(f'<text x="{114 + length:.1f}" y="{y + 11}" class="small">{esc(format_value(key, v))}</text>')
    out.append("</svg>")
    return "".join(out)


def _values(stats: list[DialogueStats], get: Callable[[DialogueStats], np.ndarray]) -> np.ndarray:
    parts = []
    for s in stats:
        a = np.asarray(get(s), dtype=np.float64)
        parts.append(a[:, 1] - a[:, 0] if a.ndim == 2 else a.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0)


def histogram_svg(title: str, sets: dict[str, np.ndarray], bins: np.ndarray) -> str:
    """Density step lines, one per set, values clipped into the outer bins."""
    w, h, left, bottom, top = 420, 200, 36, 28, 20
    pw, ph = w - left - 10, h - top - bottom
    dens = {}
    for name, v in sets.items():
        if len(v):
            counts, _ = np.histogram(np.clip(v, bins[0], bins[-1]), bins=bins)
            dens[name] = counts / counts.sum()
    peak = max([d.max() for d in dens.values()] + [1e-9])
    x = lambda t: left + pw * (t - bins[0]) / (bins[-1] - bins[0])  # noqa: E731
    y = lambda d: top + ph * (1 - d / peak)  # noqa: E731
    out = [f'<svg class="plot hist" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f'<text x="{left}" y="13" class="title">{esc(title)}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>']
    for t in np.linspace(bins[0], bins[-1], 5).round(6):
        out.append(f'<text x="{x(t):.1f}" y="{top + ph + 14}" text-anchor="middle" class="small">{t + 0:g}</text>')
    if bins[0] < 0 < bins[-1]:
        out.append(f'<line x1="{x(0):.1f}" y1="{top}" x2="{x(0):.1f}" y2="{top + ph}" class="zero"/>')
    for i, (name, v) in enumerate(sets.items()):
        color = PALETTE[i % len(PALETTE)]
        if name in dens:
            pts = []
            for lo, hi, d in zip(bins[:-1], bins[1:], dens[name]):
                pts += [f"{x(lo):.1f},{y(d):.1f}", f"{x(hi):.1f},{y(d):.1f}"]
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(pts)}"/>')
        out.append(f'<text x="{left + pw - 4}" y="{top + 12 + 12 * i}" text-anchor="end" class="small" fill="{color}">'
                   f"{esc(name[:24])} (n={len(v)})</text>")
    out.append("</svg>")
    return "".join(out)


def cues_html(cues: dict[str, Any] | None) -> str:
    """What precedes the pauses and the gaps (silence_cues.py), one column per set and kind."""
    sets = {n: c for n, c in (cues or {}).items() if c}
    if not sets:
        return ""
    header = ["what precedes the silence"] + [f"{esc(n)}: {k} (n={int(c[k]['n'])})" for n, c in sets.items() for k in ("pauses", "gaps")]
    rows = [[cue] + ["–" if c[k][cue] != c[k][cue] else f"{100 * c[k][cue]:.0f} %" for c in sets.values() for k in ("pauses", "gaps")]
            for cue in CUES]
    note = ("The last word before each silence: a sentence end yields the floor; a filler, a continuative "
            "particle or a clause comma holds it. A model learns from these which silence is its turn.")
    return f'<h3>What precedes the silence</h3><p class="note">{note}</p>{_table(header, rows)}'


def turn_taking_html(sets: dict[str, list[DialogueStats]], summaries: dict[str, dict[str, float]],
                     plan: dict[str, float], human: dict[str, float], cues: dict[str, Any] | None = None) -> str:
    columns = _columns(summaries, plan, human)
    bars = "".join(bars_svg(k, columns) for k in PLOTTED)
    hists = "".join(histogram_svg(t, {n: _values(s, get) for n, s in sets.items()}, bins) for t, get, bins in DISTRIBUTIONS)
    note = ("Measured with the energy detector of <code>jmoshi-augment stats</code> (dGSLM events). "
            f"<b>{esc(PLAN)}</b>: the planner's own event counts per minute and the recipe's "
            "<code>timing.overlap_prob</code>; <b>human reference</b>: J-Moshi's five Mimi-resynthesised "
            "human dialogues (docs/turn-taking.md). Add another run or real recordings with <code>--compare</code>.")
    return (f'<section id="turn-taking"><h2>Turn-taking</h2><p class="note">{note}</p>'
            f'<div class="plots">{bars}</div><div class="plots">{hists}</div>{cues_html(cues)}'
            f"<details><summary>All metrics</summary>{metrics_table(columns)}</details></section>")


# --------------------------------------------------------------------------------------- page


def render_page(run: Any, sets: dict[str, list[DialogueStats]], summaries: dict[str, dict[str, float]],
                plan: dict[str, float], human: dict[str, float], config: dict[str, Any], *,
                style: str, script: str, template: str, cues: dict[str, Any] | None = None) -> str:
    title = f"{run.out_dir.name or run.out_dir}: synth report"
    # JSON inside <script>: "</" would end the element early.
    config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    parts = {
        "<!--TITLE-->": esc(title),
        "<!--STYLE-->": style,
        "<!--CONFIG-->": config_json,
        "<!--PROBLEMS-->": problems_html(run.problems),
        "<!--SUMMARY-->": summary_html(run),
        "<!--TURNTAKING-->": turn_taking_html(sets, summaries, plan, human, cues),
        "<!--SCRIPT-->": script,
    }
    # One pass, so text already substituted is never searched for markers again.
    return re.sub(r"<!--[A-Z]+-->", lambda m: parts.get(m.group(0), m.group(0)), template)
