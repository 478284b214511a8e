"""Throughput of the turn-taking analysis: seconds of stereo audio analysed per wall second.

Writes ``--files`` stereo 24 kHz PCM_16 wavs of ``--minutes`` each (dialogue-like bursts on both
channels over a noise floor) into a temporary folder, then times, side by side in one run:

- ``analyze_paths`` on the folder (file reading + energies + events: the CLI's path);
- ``analyze`` on the same audio already in memory (energies + events);
- ``analyze_energies`` alone (the event extraction on precomputed frame energies).

Run: ``.venv/bin/python bench/bench_stats.py --files 6 --minutes 10``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from jmoshi_augment.augment.analysis.stats import analyze, analyze_energies, analyze_paths, summarize
from jmoshi_augment.augment.analysis.vad import frame_energies

SR = 24_000


def dialogue(minutes: float, seed: int) -> np.ndarray:
    """Alternating turns of noise bursts (0.3-3 s), gaps and overlaps, plus backchannels."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR)
    audio = rng.normal(0, 10 ** (-55 / 20), (2, n)).astype(np.float32)
    t, ch = 0.5, 0
    while t < minutes * 60 - 4:
        for _ in range(rng.integers(1, 4)):  # IPUs of one turn
            d = rng.uniform(0.3, 3.0)
            a, b = min(int(t * SR), n), min(int((t + d) * SR), n)
            audio[ch, a:b] += rng.uniform(-0.3, 0.3, b - a).astype(np.float32)
            if rng.random() < 0.3 and d > 1.2:  # a backchannel from the listener
                c = min(int((t + d / 2) * SR), n - int(0.3 * SR))
                audio[1 - ch, c : c + int(0.3 * SR)] += rng.uniform(-0.2, 0.2, int(0.3 * SR)).astype(np.float32)
            t += d + rng.uniform(0.25, 0.8)
        t -= rng.uniform(0.25, 0.8) + rng.normal(0.1, 0.4)  # gap or overlap at the change
        t = max(t, 0.0)
        ch = 1 - ch
    return audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3, help="Best of N timings.")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        audios = [dialogue(args.minutes, seed) for seed in range(args.files)]
        for i, a in enumerate(audios):
            sf.write(Path(tmp) / f"d{i:03d}.wav", a.T, SR, subtype="PCM_16")
        total = sum(a.shape[1] for a in audios) / SR

        def best(fn) -> float:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        t_files = best(lambda: list(analyze_paths([tmp])))
        t_memory = best(lambda: [analyze(a, SR) for a in audios])
        energies = [frame_energies(a, SR) for a in audios]
        t_events = best(lambda: [analyze_energies(e, SR, a.shape[1] / SR) for e, a in zip(energies, audios)])
        s = summarize(analyze_paths([tmp]))

    print(f"audio: {args.files} files x {args.minutes:g} min = {total / 3600:.2f} h stereo 24 kHz PCM_16")
    print(f"analyze_paths (read wav + energies + events): {t_files:.2f} s  -> {total / t_files:,.0f} s of audio per s")
    print(f"analyze (in memory: energies + events):       {t_memory:.2f} s  -> {total / t_memory:,.0f} s of audio per s")
    print(f"analyze_energies (events only):               {t_events:.3f} s  -> {total / t_events:,.0f} s of audio per s")
    print(f"sanity: {s['ipus_per_min']:.1f} IPUs/min, {s['within_overlaps_per_min']:.1f} within overlaps/min, "
          f"{100 * s['overlapped_share']:.0f} % overlapped changes")


if __name__ == "__main__":
    main()
