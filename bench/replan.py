"""Calibrate the turn-taking keys without paying for the TTS again: the issue-26 figures of
`bench/bench_holds.py` for recipe variants, each dialogue synthesised through the real
``synthesize_dialogue`` (script, voices, plan, mix) with the backend's segment renders kept in a
disk cache. A variant that changes only ``timing.*`` keys re-renders nothing; one that changes the
script re-renders only the segments whose text or voice changed. The cache knows the backend's
name and options, not its package version: delete it (``--cache``) after upgrading a TTS package.

    .venv/bin/python bench/replan.py recipes/sample.yaml --seeds 0,1 \\
        --variant "shipped:" --variant "fewer:timing.backchannel_in_pause_prob=0.3"
    .venv/bin/python bench/replan.py recipes/daily.yaml --set corpus.path=$PWD/tests/fixtures/jdaily/data \\
        --seeds 0-4 --variant "shipped:"

Each ``--variant NAME:KEY=VALUE[,KEY=VALUE...]`` prints one row (stats on the in-memory audio,
the same code as ``jmoshi-augment stats``; cues from the renderings' word timings and scripts, the
same code as ``report.html``). The figures equal a ``synth`` run's with the same recipe and seed
(the cache returns the very segments the backend made).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from jmoshi_augment.augment.analysis.onsets import sound_edge_peaks
from jmoshi_augment.augment.analysis.silence_cues import dialogue_cues, pool_cues
from jmoshi_augment.augment.analysis.stats import analyze, summarize
from jmoshi_augment.augment.run.synthesize import synthesize_dialogue
from jmoshi_augment.augment.run.units import filtered_dialogues
from jmoshi_augment.augment.speech.tts import get_backend
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.corpora import SkipCounts
from jmoshi_augment.recipe import Recipe, load_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_holds, when imported from elsewhere
from bench_holds import COLUMNS, format_row  # noqa: E402


class CachedRenders:
    """A TTS backend whose ``render`` answers each segment from ``cache`` when it rendered the same
    words with the same voice before (keyed on their reprs, the backend and its options). For
    backends that voice each segment on its own (kokoro, openjtalk), as their own memo does."""

    def __init__(self, backend: Any, options: Any, cache: Path) -> None:
        self._backend, self._cache = backend, cache
        self._salt = f"{backend.name}|{options!r}"
        cache.mkdir(parents=True, exist_ok=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def render(self, segments: Sequence[Any], voice: Any) -> list[Any]:
        return [self._render_one(seg, voice) for seg in segments]

    def _render_one(self, seg: Any, voice: Any) -> Any:
        key = hashlib.sha1(f"{self._salt}|{seg.words!r}|{voice!r}".encode()).hexdigest()
        path = self._cache / f"{key}.pkl"
        if path.is_file():
            return pickle.loads(path.read_bytes())
        out = self._backend.render([seg], voice)[0]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(out))
        tmp.replace(path)
        return out


_state: dict[str, Any] = {}


def _measure(task: tuple[str, dict[str, Any], Path]) -> list[tuple[Any, dict[str, Counter], np.ndarray, Counter]]:
    """One (recipe, overrides) run over its corpus: per rendering, stats, cues, edge peaks and the
    planner's event counts."""
    recipe_path, overrides, cache = task
    recipe: Recipe = load_recipe(recipe_path, overrides)
    key = f"{recipe.tts.backend}|{recipe.tts.options!r}"
    if _state.get("key") != key:
        _state.update(key=key, backend=CachedRenders(get_backend(recipe.tts.backend, recipe.tts.options),
                                                     recipe.tts.options, cache))
    out = []
    for dialogue in filtered_dialogues(recipe, SkipCounts(), Counter()):
        for r in synthesize_dialogue(dialogue, recipe, _state["backend"]).renderings:
            stats = analyze(r.audio, SAMPLE_RATE, name=r.id)
            alignments = [(w.word, w.start, w.end, w.channel) for w in r.words]
            cues = dialogue_cues(stats, alignments, r.script, r.speaker_map)
            edges = np.concatenate([sound_edge_peaks(r.audio[ch], SAMPLE_RATE) for ch in (0, 1)])
            out.append((stats, cues, edges, Counter(r.planned)))
    return out


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in filter(str.strip, pairs):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"replan.py: expected KEY=VALUE (e.g. timing.overlap_prob=0.4), got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for every variant")
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE[,KEY=VALUE...]")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/jmoshi-replan-cache"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cues", action="store_true", help="also print what precedes pauses and gaps, by cue")
    args = ap.parse_args()
    base = _overrides(args.set)
    variants = [(name, {**base, **_overrides(spec.split(","))}) for name, _, spec in (v.partition(":") for v in args.variant or [":"])]
    print("| set | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|", flush=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for name, overrides in variants:
            tasks = [(args.recipe, {**overrides, "seed": s}, args.cache) for s in _seeds(args.seeds)]
            per = [x for part in pool.map(_measure, tasks) for x in part]
            cues = pool_cues([p[1] for p in per])
            row = format_row(name or "shipped", summarize([p[0] for p in per]), cues, np.concatenate([p[2] for p in per]))
            print("| " + " | ".join(row) + " |", flush=True)
            if args.cues:
                for kind, shares in (cues or {}).items():
                    print(f"    {kind}: " + ", ".join(f"{c} {100 * v:.0f} %" for c, v in shares.items() if c != "n"), flush=True)
                planned = sum((p[3] for p in per), Counter())
                print("    planned: " + ", ".join(f"{k} {v}" for k, v in sorted(planned.items())), flush=True)


if __name__ == "__main__":
    main()
