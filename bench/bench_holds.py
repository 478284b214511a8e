"""Issue 26 figures for groups of synth run folders: the turn-taking targets measured by `stats`
(the same code for ours and the human reference), what precedes pauses and gaps, and the edges
of every stretch of sound (no step from digital silence to sound above -40 dBFS).

    .venv/bin/python bench/bench_holds.py sample=/tmp/tt/sample-s0,/tmp/tt/sample-s1 daily=/tmp/tt/daily-s*

Each argument is NAME=FOLDER[,FOLDER...] (globs allowed); each folder is a synth output folder
(its data.jsonl, audio/ and units/). Prints one markdown row per group.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from jmoshi_augment.augment.analysis.onsets import sound_edge_peaks
from jmoshi_augment.augment.analysis.silence_cues import cues_for_stats
from jmoshi_augment.augment.analysis.stats import analyze_paths, summarize

COLUMNS = ["pauses / min (8-13)", "shift share > 250 ms (0.40-0.65)", "lapse share (2-8 %)", "IPUs / min (42-55)",
           "within / min (≥ 5.5)", "overlapped share (0.28-0.42)", "gap median, s (0.25-0.45)",
           "pauses after a sentence end (≤ 50 %)", "gaps after a sentence end [or a backchannel] (≥ 80 %)",
           "edges > -40 dBFS", "min"]


def row(name: str, folders: list[Path]) -> list[str]:
    stats = list(analyze_paths([f / "data.jsonl" for f in folders]))
    edges = np.concatenate([sound_edge_peaks(a[:, ch], sr) for f in folders for w in sorted((f / "audio").glob("*.wav"))
                            for a, sr in [sf.read(w, dtype="float32")] for ch in (0, 1)])
    return format_row(name, summarize(stats), cues_for_stats(stats), edges)


def format_row(name: str, s: dict[str, float], cues: dict[str, dict[str, float]] | None, edges: np.ndarray) -> list[str]:
    """One table row: the `stats` summary ``s``, the pooled silence cues and the edge peaks."""
    p, g = (cues or {}).get("pauses", {}), (cues or {}).get("gaps", {})
    return [name, f"{s['pauses_per_min']:.1f}", f"{s['shift_share_long_silence']:.2f}", f"{100 * s['lapse_share']:.1f} %",
            f"{s['ipus_per_min']:.1f}", f"{s['within_overlaps_per_min']:.1f}", f"{100 * s['overlapped_share']:.0f} %",
            f"{s['gap_median']:.2f}", f"{100 * p.get('sentence end', float('nan')):.0f} % (n={int(p.get('n', 0))})",
            f"{100 * g.get('sentence end', float('nan')):.0f} % [{100 * (g.get('sentence end', 0) + g.get('backchannel', 0)):.0f} %] (n={int(g.get('n', 0))})",
            f"{int((edges > 0.01).sum())} of {len(edges)}", f"{s['minutes']:.1f}"]


def main() -> None:
    print("| set | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for arg in sys.argv[1:]:
        name, _, spec = arg.partition("=")
        folders = [Path(f) for part in spec.split(",") for f in sorted(glob.glob(part))]
        print("| " + " | ".join(row(name, folders)) + " |", flush=True)


if __name__ == "__main__":
    main()
