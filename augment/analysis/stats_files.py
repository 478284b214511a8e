"""Turn-taking report files: summary table (markdown, CSV), per-dialogue CSV, JSON and plots.

Kept apart from :mod:`.stats` so that analysing audio never imports matplotlib or pandas. Every
file is written to a temporary name and renamed (:mod:`jmoshi_augment.io`), so a crash leaves the
previous report or none, never half of one.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jmoshi_augment.augment.analysis.silence_cues import cue_rows, cues_for_stats
from jmoshi_augment.augment.analysis.stats import HUMAN_REFERENCE, DialogueStats, summarize
from jmoshi_augment.io import atomic_write_bytes, atomic_write_text, json_safe

# key → (label, kind); kind picks the display format
METRICS: dict[str, tuple[str, str]] = {
    "dialogues": ("dialogues", "int"),
    "minutes": ("minutes of audio", "num"),
    "ipus_per_min": ("IPUs / min", "num"),
    "pauses_per_min": ("pauses / min", "num"),
    "gaps_per_min": ("gaps / min", "num"),
    "overlaps_per_min": ("overlaps / min", "num"),
    "speaker_changes_per_min": ("speaker changes / min", "num"),
    "overlapped_share": ("overlapped speaker changes (between / (gaps + between))", "pct"),
    "within_overlaps_per_min": ("within overlaps (backchannel-like) / min", "num"),
    "between_overlaps_per_min": ("between overlaps / min", "num"),
    "backchannel_ipus_per_min": ("backchannel IPUs (not dGSLM: ≤ 1 s, ≥ half inside) / min", "num"),
    "ipu_median": ("IPU median", "sec"),
    "pause_median": ("pause median", "sec"),
    "gap_median": ("gap median", "sec"),
    "overlap_median": ("overlap median", "sec"),
    "fto_median": ("FTO median", "sec"),
    "lapse_share": ("speaker changes after > 1 s", "pct"),
    "shift_share_long_silence": ("shifts at silences > 250 ms", "pct"),
    "pause_s_per_min": ("pause time, s / min", "num"),
    "gap_s_per_min": ("gap time, s / min", "num"),
    "overlap_s_per_min": ("overlap time, s / min", "num"),
    "speech_ratio_main": ("speech ratio, main (ch 0)", "pct"),
    "speech_ratio_other": ("speech ratio, other (ch 1)", "pct"),
    "overlap_ratio": ("both speaking", "pct"),
}


def format_value(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    kind = METRICS.get(key, (key, "num"))[1]
    if kind == "int":
        return f"{int(value)}"
    if kind == "pct":
        return f"{100 * value:.0f} %"
    if kind == "sec":
        return f"{value:.2f} s"
    return f"{value:.1f}"


def summary_rows(summaries: dict[str, dict[str, float]]) -> list[list[str]]:
    """Table rows ``[label, value per set..., human reference]`` (formatted strings)."""
    return [
        [label, *(format_value(key, s.get(key)) for s in summaries.values()), format_value(key, HUMAN_REFERENCE.get(key))]
        for key, (label, _) in METRICS.items()
    ]


def write_report(out_dir: Path, sets: dict[str, list[DialogueStats]], title: str, run_dir: Path | None = None) -> Path:
    summaries = {name: summarize(stats) for name, stats in sets.items()}
    cues = {name: cues_for_stats(stats, run_dir if i == 0 else None) for i, (name, stats) in enumerate(sets.items())}
    header = ["metric", *summaries, "human reference"]
    rows = summary_rows(summaries)

    md = [f"# {title}", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [
        "",
        "Human reference: J-Moshi's five Mimi-resynthesised human dialogues, measured by this same code "
        "(docs/turn-taking.md). Events as in dGSLM (Nguyen et al. 2023): IPUs are speech whose "
        "inner silences are < 200 ms (blips < 50 ms dropped); a pause is a silence between IPUs of one speaker, "
        "a gap one at a speaker change; an overlap is *within* (backchannel-like) when the shorter IPU lies "
        "entirely inside the other's and lasts < 1 s, else *between*; overlapped share = between / (gaps + "
        "between). Backchannel IPUs are a separate, non-dGSLM view: an IPU ≤ 1 s at least half inside the "
        "partner's speech, the partner keeping the floor.",
        "",
        *(["## What precedes the silence", "",
            "The last word before each pause and each gap, from the word timings and unit records of a "
            "synth run (human recordings have neither): a sentence end yields the floor; a filler, a "
            "continuative particle or a clause comma holds it (silence_cues.py in augment/analysis).", "",
            *cue_rows(cues), ""] if any(cues.values()) else []),
        "![floor-transfer offsets](fto.png)",
        "",
        "![durations](durations.png)",
        "",
    ]
    atomic_write_text(out_dir / "stats.md", "\n".join(md))

    import pandas as pd

    raw = pd.DataFrame(
        {"metric": list(METRICS), **{n: [s[k] for k in METRICS] for n, s in summaries.items()},
         "human_reference": [HUMAN_REFERENCE.get(k, np.nan) for k in METRICS]}
    )
    atomic_write_text(out_dir / "stats.csv", raw.to_csv(index=False))
    per_dialogue = pd.DataFrame(
        [{"set": n, "name": s.name, "duration": round(s.duration, 3), **s.counts()} for n, ss in sets.items() for s in ss]
    )
    atomic_write_text(out_dir / "dialogues.csv", per_dialogue.to_csv(index=False))

    doc = {
        "title": title,
        "human_reference": HUMAN_REFERENCE,
        "sets": {n: {"summary": summaries[n], **({"silence_cues": cues[n]} if cues[n] else {}),
                     "dialogues": [s.to_dict() for s in ss]} for n, ss in sets.items()},
    }
    atomic_write_text(out_dir / "stats.json", json.dumps(json_safe(doc), ensure_ascii=False, indent=1))

    atomic_write_bytes(out_dir / "fto.png", _plot_fto(sets))
    atomic_write_bytes(out_dir / "durations.png", _plot_durations(sets))
    return out_dir / "stats.md"


def _durations(stats: list[DialogueStats], get: Callable[[DialogueStats], Any]) -> np.ndarray:
    parts = [np.asarray(get(s)).reshape(-1, 2) for s in stats]
    a = np.concatenate(parts) if parts else np.zeros((0, 2))
    return a[:, 1] - a[:, 0]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _figure().close(fig)
    return buf.getvalue()


def _overlay(ax, sets: dict[str, np.ndarray], bins: np.ndarray) -> None:
    for name, values in sets.items():
        if len(values):
            ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, density=True, histtype="step", linewidth=1.5,
                    label=f"{name} (n={len(values)})")
        else:
            ax.plot([], [], label=f"{name} (n=0)")
    ax.legend(fontsize=8)


def _plot_fto(sets: dict[str, list[DialogueStats]]) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    fto = {n: np.concatenate([s.fto for s in ss]) if ss else np.zeros(0) for n, ss in sets.items()}
    _overlay(ax, fto, np.arange(-2.0, 2.0001, 0.05))
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("floor-transfer offset, s (< 0: overlapped speaker change; clipped to ±2 s)")
    ax.set_ylabel("density")
    ax.set_title("Speaker changes")
    fig.tight_layout()
    return _png(fig)


def _plot_durations(sets: dict[str, list[DialogueStats]]) -> bytes:
    plt = _figure()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        ("IPU", lambda s: np.concatenate([s.ipus[0], s.ipus[1]]), np.arange(0, 8.001, 0.2)),
        ("gap", lambda s: s.gaps, np.arange(0, 2.001, 0.05)),
        ("pause", lambda s: s.pauses, np.arange(0, 2.001, 0.05)),
        ("overlap", lambda s: s.overlaps, np.arange(0, 2.001, 0.05)),
    ]
    for ax, (label, get, bins) in zip(axes.flat, panels):
        _overlay(ax, {n: _durations(ss, get) for n, ss in sets.items()}, bins)
        ax.set_xlabel(f"{label} duration, s (clipped to {bins[-1]:.0f} s)")
        ax.set_ylabel("density")
    fig.tight_layout()
    return _png(fig)
