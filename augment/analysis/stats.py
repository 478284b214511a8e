"""Turn-taking statistics of stereo dialogue audio: the numbers the J-Moshi paper family compares
models with human dialogue on, for our synthetic data, real recordings and chat sessions.

The events (IPUs, pauses, gaps, overlaps, floor-transfer offsets, backchannels) and their
definitions are in :mod:`.stats_events`, file and manifest reading in :mod:`.stats_io`; this module
pools dialogues into rates, shares and medians, holds the human reference, and re-exports the
public names of both so that ``from jmoshi_augment.augment.analysis.stats import analyze_paths`` is the one
import callers need.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from jmoshi_augment.augment.analysis.stats_events import (
    BETWEEN,
    OVERLAP_KINDS,
    WITHIN,
    DialogueStats,
    Seconds,
    StatsOptions,
    analyze,
    analyze_energies,
    analyze_intervals,
)
from jmoshi_augment.augment.analysis.reference import HUMAN_REFERENCE, JMOSHI_MSTTS_REFERENCE
from jmoshi_augment.augment.analysis.stats_io import analyze_file, analyze_paths
from jmoshi_augment.augment.analysis.vad import detect_activity

__all__ = [
    "BETWEEN",
    "HUMAN_REFERENCE",
    "JMOSHI_MSTTS_REFERENCE",
    "OVERLAP_KINDS",
    "WITHIN",
    "DialogueStats",
    "Seconds",
    "StatsOptions",
    "analyze",
    "analyze_energies",
    "analyze_file",
    "analyze_intervals",
    "analyze_paths",
    "detect_activity",
    "summarize",
    "write_stats_files",
]


# --------------------------------------------------------------------------------------- summary


def summarize(stats: Iterable[DialogueStats], options: StatsOptions = StatsOptions()) -> dict[str, float]:
    """Pool dialogues: per-minute rates over the total duration, shares and medians over all
    events. Medians of no events are NaN."""
    stats = list(stats)
    minutes = sum(s.minutes for s in stats)
    duration = minutes * 60.0

    def cat(get) -> np.ndarray:
        parts = [np.asarray(get(s), dtype=np.float64).reshape(-1) for s in stats]
        return np.concatenate(parts) if parts else np.zeros(0)

    def durs(get) -> np.ndarray:
        parts = [np.asarray(get(s)).reshape(-1, 2) for s in stats]
        a = np.concatenate(parts) if parts else np.zeros((0, 2))
        return a[:, 1] - a[:, 0]

    def rate(n: float) -> float:
        return n / minutes if minutes > 0 else math.nan

    def share(a: float, b: float) -> float:
        return a / b if b > 0 else math.nan

    def median(a: np.ndarray) -> float:
        return float(np.median(a)) if len(a) else math.nan

    ipus = np.concatenate([durs(lambda s: s.ipus[0]), durs(lambda s: s.ipus[1])])
    pauses, gaps, overlaps = durs(lambda s: s.pauses), durs(lambda s: s.gaps), durs(lambda s: s.overlaps)
    fto = cat(lambda s: s.fto)
    between = sum(int(np.sum(s.overlap_kind == BETWEEN)) for s in stats)
    within = sum(int(np.sum(s.overlap_kind == WITHIN)) for s in stats)
    backchannel_ipus = sum(len(s.backchannels[0]) + len(s.backchannels[1]) for s in stats)
    speech = np.array([s.speech for s in stats]).reshape(-1, 2).sum(axis=0)
    long_silences = sum(s.long_silences for s in stats)
    return {
        "dialogues": float(len(stats)),
        "minutes": minutes,
        "ipus_per_min": rate(len(ipus)),
        "pauses_per_min": rate(len(pauses)),
        "gaps_per_min": rate(len(gaps)),
        "overlaps_per_min": rate(len(overlaps)),
        "speaker_changes_per_min": rate(len(fto)),
        "overlapped_share": share(between, len(gaps) + between),
        "within_overlaps_per_min": rate(within),
        "between_overlaps_per_min": rate(between),
        "backchannel_ipus_per_min": rate(backchannel_ipus),
        "ipu_median": median(ipus),
        "pause_median": median(pauses),
        "gap_median": median(gaps),
        "overlap_median": median(overlaps),
        "fto_median": median(fto),
        "lapse_share": share(float(np.sum(fto > options.lapse)), len(fto)),
        "shift_share_long_silence": share(sum(s.long_silence_shifts for s in stats), long_silences),
        "pause_s_per_min": rate(float(pauses.sum())),
        "gap_s_per_min": rate(float(gaps.sum())),
        "overlap_s_per_min": rate(float(overlaps.sum())),
        "speech_ratio_main": share(float(speech[0]), duration),
        "speech_ratio_other": share(float(speech[1]), duration),
        "overlap_ratio": share(float(overlaps.sum()), duration),
    }


def write_stats_files(
    out_dir: str | Path,
    stats: list[DialogueStats],
    compare: dict[str, list[DialogueStats]] | None = None,
    title: str = "Turn-taking statistics",
    name: str = "data",
    run_dir: str | Path | None = None,
) -> Path:
    """Write ``stats.md``, ``stats.csv``, ``dialogues.csv``, ``stats.json`` and PNG plots into
    ``out_dir`` (atomically, file by file); returns the path of ``stats.md``. ``run_dir``: the
    synth run folder ``stats`` (named by rendering id) come from, for what precedes each silence."""
    from jmoshi_augment.augment.analysis.stats_files import write_report

    return write_report(Path(out_dir), {name: list(stats), **(compare or {})}, title,
                        None if run_dir is None else Path(run_dir))
