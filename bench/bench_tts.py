"""Throughput of the openjtalk backend (audio + word timings) against bare ``pyopenjtalk.tts``.

Same sentences, same voices, same process, interleaved A/B per round so load from other jobs hits
both alike. Both sides are charged for the same audio (the bare rendering's length), so the ratio
is the cost of everything the backend adds: the detailed front end and phoneme mapping, the
duration model, word assignment, resampling to 24 kHz and trimming.

    .venv/bin/python bench/bench_tts.py [--rounds 3] [--dialogues 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.text.script import normalize_text, split_sentences, to_words
from jmoshi_augment.augment.speech.tts import get_backend
from jmoshi_augment.augment.speech.tts.openjtalk import load_pyopenjtalk
from jmoshi_augment.augment.types import Segment
from jmoshi_augment.recipe import TTSConfig

SAMPLE = Path(__file__).resolve().parents[1] / "jmoshi_augment" / "data" / "sample.jsonl"


def sentences(limit: int) -> list[str]:
    out = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:limit]:
        for turn in json.loads(line)["turns"]:
            out.extend(split_sentences(normalize_text(turn["text"]), 80))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dialogues", type=int, default=20)
    args = ap.parse_args()

    pyopenjtalk = load_pyopenjtalk()
    backend = get_backend("openjtalk")
    voices = TTSConfig().voices  # the recipe defaults: two voices with different speed and pitch
    segments = [Segment("A", to_words(t), "speech", 0) for t in sentences(args.dialogues)]  # script work is not timed
    texts = [seg.text for seg in segments]  # bare pyopenjtalk reads the same written words
    jobs = [(t, s, voices[i % len(voices)]) for i, (t, s) in enumerate(zip(texts, segments))]
    backend.render(segments[:2], voices[0])  # warm-up: dictionary, voice, caches
    pyopenjtalk.tts(texts[0])

    rows = []
    for r in range(args.rounds):
        wall = {"bare": 0.0, "ours": 0.0}
        cpu = {"bare": 0.0, "ours": 0.0}
        audio_bare = audio_ours = 0.0
        for k, (text, seg, voice) in enumerate(jobs):
            order = ("bare", "ours") if (k + r) % 2 == 0 else ("ours", "bare")
            for side in order:
                t0, c0 = time.perf_counter(), time.process_time()
                if side == "bare":
                    wave, sr = pyopenjtalk.tts(text, speed=voice.speed, half_tone=voice.half_tone)
                else:
                    out = backend.render([seg], voice)[0]
                wall[side] += time.perf_counter() - t0
                cpu[side] += time.process_time() - c0
            audio_bare += len(wave) / sr
            audio_ours += out.duration
        rows.append((wall, cpu, audio_bare, audio_ours))
        print(f"round {r + 1}: {len(jobs)} sentences, {audio_bare:.1f} s audio (bare, untrimmed), "
              f"{audio_ours:.1f} s returned (trimmed)")
        for name, t in (("wall", wall), ("cpu", cpu)):
            print(f"  {name:4s} bare {t['bare']:6.2f} s = {audio_bare / t['bare']:5.1f} s/s | "
                  f"ours {t['ours']:6.2f} s = {audio_bare / t['ours']:5.1f} s/s | ratio {t['bare'] / t['ours']:.3f}")
    ratios = [cpu["bare"] / cpu["ours"] for _, cpu, _, _ in rows]
    walls = [wall["bare"] / wall["ours"] for wall, _, _, _ in rows]
    print(f"median ratio (bare time / ours, same audio): cpu {np.median(ratios):.3f}, wall {np.median(walls):.3f}")


if __name__ == "__main__":
    main()
