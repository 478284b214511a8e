"""Cost of per-session sampling (issue 25): one draw of the chat runtime's sampler with a
temperature and top-k per row (``runtime.sampling.sample_rows``: the top ``k_max`` candidates
raced, each row's own k kept) next to the single-temperature draw it replaced
(``jmoshi_augment.sampling.sample`` with the server's k), same logits, same noise, same process.
``k_max`` is the largest k in use (the runtime's choice outside CUDA graphs: the server's k when no
session asks for more) and, for comparison, the bound 500 (inside a CUDA graph capture).

Shapes are a batched step's: ``B`` rows, the audio vocabulary (2048 Mimi codes, k 250) and the text
vocabulary (32000 pieces, k 25). A 7B step draws 1 text and 8 audio tokens per row.

    python bench/bench_row_sampling.py --device cpu --batch 1,32 --repeat 50
    python bench/bench_row_sampling.py --device cuda --batch 1,32,64 --repeat 200
"""

from __future__ import annotations

import argparse
import json
import time


def _time(fns, repeat: int, sync, rounds: int = 15) -> list[float]:
    """ms per call of each fn: interleaved rounds, the fastest round each (the machine is shared)."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            sync()
            started = time.perf_counter()
            for _ in range(repeat):
                fn()
            sync()
            best[i] = min(best[i], (time.perf_counter() - started) / repeat * 1e3)
    return best


def main() -> None:
    import torch

    from jmoshi_augment.runtime.sampling import sample_rows
    from jmoshi_augment.sampling import hash_uniform, sample

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--bound", type=int, default=500)
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for batch in [int(b) for b in args.batch.split(",")]:
        for stream, vocab, k, temp in (("audio", 2048, 250, 0.8), ("text", 32000, 25, 0.7)):
            logits = torch.randn(batch, vocab, device=device)
            seeds = torch.arange(batch, device=device, dtype=torch.long)
            steps = torch.zeros(batch, dtype=torch.long, device=device)
            temps = torch.full((batch,), temp, device=device)
            ks = torch.full((batch,), k, dtype=torch.long, device=device)
            bound = min(args.bound, vocab)
            assert torch.equal(sample(logits, temp, k, hash_uniform(seeds, steps, k)),
                               sample_rows(logits, temps, ks, bound, hash_uniform(seeds, steps, bound)))
            old, same_k, at_bound = _time([
                lambda: sample(logits, temp, k, hash_uniform(seeds, steps, k)),
                lambda: sample_rows(logits, temps, ks, k, hash_uniform(seeds, steps, k), greedy=False),
                lambda: sample_rows(logits, temps, ks, bound, hash_uniform(seeds, steps, bound)),
            ], args.repeat, sync)
            rows.append({"batch": batch, "stream": stream, "vocab": vocab, "k": k, "one_temp_ms": round(old, 4),
                         "per_row_ms": round(same_k, 4), "ratio": round(same_k / old, 2),
                         f"per_row_k{bound}_ms": round(at_bound, 4), f"ratio_k{bound}": round(at_bound / old, 2)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
