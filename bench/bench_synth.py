"""Synth-stage throughput: seconds of dialogue audio per wall second.

Side by side in one run, on the same dialogues (the bundled sample corpus):
  1. bare ``pyopenjtalk.tts`` on each turn's raw text (no timings, no planning, no mixing);
  2. our CPU stages for one dialogue (script → OpenJTalk with word timings → plan → mix), 1 process;
  3. the full ``run_synth`` (writing wav + json) with 1 and with 2 worker processes.

    .venv/bin/python bench/bench_synth.py [--dialogues 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=20)
    args = ap.parse_args()

    import pyopenjtalk

    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.augment.run.synthesize import synthesize_dialogue
    from jmoshi_augment.augment.speech.tts import get_backend
    from jmoshi_augment.corpora import load_corpus
    from jmoshi_augment.recipe import parse_recipe

    dialogues = list(islice(load_corpus("jsonl", "builtin:sample"), args.dialogues))
    base = "corpus: {name: jsonl, path: 'builtin:sample', limit: %d}\noutput: {dir: %s, formats: [wav], shard_size: 5}\n"

    with tempfile.TemporaryDirectory() as tmp:
        recipe = parse_recipe(base % (args.dialogues, f"{tmp}/warm"))
        backend = get_backend(recipe.tts.backend, **recipe.tts.options)
        synthesize_dialogue(dialogues[0], recipe, backend)  # warm-up: dictionary, tagger
        pyopenjtalk.tts("こんにちは")

        t = time.perf_counter()
        bare_audio = 0.0
        for d in dialogues:
            for turn in d.turns:
                wav, sr = pyopenjtalk.tts(turn.text)
                bare_audio += len(wav) / sr
        bare_wall = time.perf_counter() - t

        t = time.perf_counter()
        ours_audio = 0.0
        for d in dialogues:
            res = synthesize_dialogue(d, recipe, backend)
            ours_audio += sum(r.duration for r in res.renderings)
        ours_wall = time.perf_counter() - t

        runs = {}
        for workers in (1, 2):
            r = parse_recipe(base % (args.dialogues, f"{tmp}/w{workers}") + f"workers: {workers}\n")
            t = time.perf_counter()
            summary = run_synth(r, progress=False)
            runs[workers] = (summary.report["seconds_of_audio"], time.perf_counter() - t)

    bare = bare_audio / bare_wall
    ours = ours_audio / ours_wall
    print(f"dialogues: {len(dialogues)}")
    print(f"bare pyopenjtalk.tts           : {bare_audio:7.1f} s audio in {bare_wall:6.2f} s = {bare:6.1f} x real time")
    print(f"our synth stages (1 process)   : {ours_audio:7.1f} s audio in {ours_wall:6.2f} s = {ours:6.1f} x real time")
    print(f"ratio ours / bare              : {ours / bare:.2f}")
    for w, (audio, wall) in runs.items():
        print(f"run_synth, {w} worker(s)         : {audio:7.1f} s audio in {wall:6.2f} s = {audio / wall:6.1f} x real time")
    print(f"speed-up 2 vs 1 workers        : {(runs[2][0] / runs[2][1]) / (runs[1][0] / runs[1][1]):.2f}")


if __name__ == "__main__":
    main()
