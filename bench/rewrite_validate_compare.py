"""Validation cost of the allow-list validator (issue 19) against the blacklist one it replaced,
side by side in one run on the same answers: RealPersonaChat sample dialogues (made unique, so no
per-text cache flatters either side), each answered with its own turns (a valid rewrite), validated
by both. The baseline is the previous ``augment/text/rewrite_validate.py`` read from git (commit
given on the command line), loaded as a module of its own.

    .venv/bin/python bench/rewrite_validate_compare.py --corpus PATH [--n 300] [--baseline 0d7e5db]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from rewrite_overhead import _dialogues  # noqa: E402

from jmoshi_augment.augment.text.rewrite.validate import validate_rewrite  # noqa: E402
from jmoshi_augment.recipe import RewriteConfig  # noqa: E402


def _baseline(commit: str):
    source = subprocess.run(["git", "show", f"{commit}:augment/text/rewrite_validate.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "rewrite_validate_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("rewrite_validate_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.validate_rewrite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--baseline", default="0d7e5db")
    args = ap.parse_args()
    # four sets of unique dialogues: each pass of each side sees texts it has never cached
    every = _dialogues(args.corpus, 4 * args.n)
    sets = [every[k * args.n:(k + 1) * args.n] for k in range(4)]
    dialogues = sets[0]
    cfg = RewriteConfig(backend="llm", model="fake")
    sides = {"baseline (blacklist)": _baseline(args.baseline), "allow-list (issue 19)": validate_rewrite}
    warm = _dialogues(args.corpus, 1)[0]
    for fn in sides.values():  # load the tagger once for both
        fn(warm, json.dumps({"turns": [t.to_dict() for t in warm.turns]}, ensure_ascii=False), cfg)
    rates: dict[str, float] = {}
    for rnd in range(2):  # A B A B on a shared machine: each side keeps its better pass
        for s, (name, fn) in enumerate(sides.items()):
            batch = sets[2 * rnd + s]
            answers = [json.dumps({"turns": [t.to_dict() for t in d.turns]}, ensure_ascii=False) for d in batch]
            t0 = time.perf_counter()
            for d, a in zip(batch, answers):
                assert fn(d, a, cfg).ok, d.id
            rates[name] = max(rates.get(name, 0.0), len(batch) / (time.perf_counter() - t0))
    turns = sum(len(d.turns) for d in dialogues) / len(dialogues)
    print(f"{len(dialogues)} dialogues, {turns:.0f} turns each")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} dialogues/s |")
    base, new = rates.values()
    print(f"allow-list / baseline throughput: {new / base:.2f}")


if __name__ == "__main__":
    main()
