"""Local executor vs Ray executor on the same recipe, side by side in one run.

Starts ``ray.init(num_cpus=CPUS)`` on this machine (timed on its own: a one-off cost per run),
then runs the bundled sample corpus (``recipes/sample.yaml``, wav + alignments) ``--repeat`` times
with each executor, alternating:
  - ``run_synth`` with ``workers`` = CPUS (the local executor: dialogues in a process pool);
  - ``run_synth_ray`` on that instance (one task per unit of ``--shard-size`` dialogues);
then checks that both outputs are byte-identical and prints wall times and audio seconds per wall
second. On one machine this measures Ray's overhead; its gain is running units on many nodes.

    .venv/bin/python bench/ray_executor.py [--dialogues 8] [--shard-size 2] [--cpus 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _data(out: Path) -> dict[str, bytes]:
    files = [out / "data.jsonl", *sorted((out / "audio").iterdir())]
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=8)
    ap.add_argument("--shard-size", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import ray

    from jmoshi_augment.augment.run.executor_ray import run_synth_ray
    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        def recipe(name: str):
            return load_recipe(ROOT / "recipes/sample.yaml", {
                "corpus.limit": args.dialogues, "output.shard_size": args.shard_size,
                "output.dir": str(Path(tmp) / name), "workers": args.cpus,
            })

        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - t0
        t_local, t_ray, identical = [], [], []
        try:
            for r in range(args.repeat):  # alternating, so warm-up and machine load hit both
                t0 = time.perf_counter()
                local = run_synth(recipe(f"local{r}"), progress=False)
                t_local.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                remote = run_synth_ray(recipe(f"ray{r}"), progress=False)
                t_ray.append(time.perf_counter() - t0)
                identical.append(_data(local.out_dir) == _data(remote.out_dir))
        finally:
            ray.shutdown()

        audio = local.report["seconds_of_audio"]
        print(json.dumps({
            "dialogues": args.dialogues, "shard_size": args.shard_size, "cpus": args.cpus,
            "seconds_of_audio": audio,
            "identical_output": all(identical),
            "ray_init_s": round(t_init, 1),
            "local_wall_s": [round(t, 1) for t in t_local],
            "ray_wall_s": [round(t, 1) for t in t_ray],
            "local_audio_s_per_wall_s": round(audio / min(t_local), 2),
            "ray_audio_s_per_wall_s": round(audio / min(t_ray), 2),
            "ray_over_local_wall_best": round(min(t_ray) / min(t_local), 2),
        }, indent=1))


if __name__ == "__main__":
    main()
