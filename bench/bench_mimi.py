"""Mimi encoding throughput: our batched ``MimiEncoder`` vs a plain per-file ``mimi.encode`` loop.

The baseline is what nu-dialogue/moshi-finetune's ``tools/tokenize_audio.py`` does: one channel of
one file per ``mimi.encode`` call. Both run in the same process on the same inputs (stereo
dialogues of varied length), after a warm-up, and the codes of the two are compared.

    python bench/bench_mimi.py                              # CPU, random-weight Mimi
    python bench/bench_mimi.py --device cuda --dialogues 128 --min-seconds 20 --max-seconds 60 \\
        --batch-size 64 --repeat 2 [--mimi tokenizer-e351c8d8-checkpoint125.safetensors]

Speed does not depend on the weights, so a random Mimi (no download) measures the same thing.
Prints one JSON line per method and a summary line; "x_realtime" is dialogue seconds (stereo)
encoded per wall second.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from jmoshi_augment.augment.tokens.tokenize import MimiEncoder
from jmoshi_augment.checkpoints import resolve_device
from jmoshi_augment.augment.types import SAMPLE_RATE


def make_dialogues(n: int, lo: float, hi: float, seed: int) -> list[np.ndarray]:
    """Stereo signals with speech-like envelopes (noise bursts), lengths uniform in [lo, hi] s."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        samples = int(rng.uniform(lo, hi) * SAMPLE_RATE)
        env = np.repeat(rng.random((2, samples // 4800 + 1)) > 0.5, 4800, axis=1)[:, :samples]
        out.append((0.1 * rng.standard_normal((2, samples)) * env).astype(np.float32))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def per_file(mimi, audios: list[np.ndarray], device: str) -> list[np.ndarray]:
    out = []
    with torch.inference_mode():
        for audio in audios:
            chans = [mimi.encode(torch.from_numpy(audio[ch]).to(device)[None, None])[0].to("cpu", torch.int16).numpy() for ch in (0, 1)]
            out.append(np.stack(chans))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mimi", default=None, help="Mimi weights; default: random weights (same speed).")
    ap.add_argument("--dialogues", type=int, default=6)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    ap.add_argument("--max-seconds", type=float, default=15.0)
    ap.add_argument("--batch-size", type=int, default=8, help="Channels per forward pass of the batched encoder.")
    ap.add_argument("--max-batch-seconds", type=float, default=1200.0, help="Cap on padded audio per forward pass.")
    ap.add_argument("--n-q", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    ap.add_argument("--repeat", type=int, default=1, help="Alternate the two methods this many times; keep each one's best.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from moshi.models.loaders import get_mimi

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mimi = get_mimi(filename=args.mimi, device=device, num_codebooks=args.n_q).eval()
    audios = make_dialogues(args.dialogues, args.min_seconds, args.max_seconds, args.seed)
    seconds = sum(a.shape[1] for a in audios) / SAMPLE_RATE
    encoder = MimiEncoder(mimi, n_q=args.n_q, batch_size=args.batch_size, device=device,
                          max_batch_seconds=args.max_batch_seconds)

    warm = make_dialogues(2, 2.0, 3.0, args.seed + 1)  # kernels, allocator, cudnn autotune
    per_file(mimi, warm, device)
    encoder.encode(warm)
    sync(device)

    results: dict[str, dict] = {}
    codes = {}
    methods = (("per_file_loop", lambda: per_file(mimi, audios, device)), ("batched", lambda: encoder.encode(audios)))
    for _ in range(args.repeat):  # alternating, so a change of machine load hits both methods
        for name, fn in methods:
            sync(device)
            t0 = time.perf_counter()
            codes[name] = fn()
            sync(device)
            wall = time.perf_counter() - t0
            if name not in results or wall < results[name]["wall_s"]:
                results[name] = {"method": name, "wall_s": round(wall, 3), "x_realtime": round(seconds / wall, 1)}
    for name, _ in methods:
        print(json.dumps(results[name]))
    same = np.mean([np.mean(a == b) for a, b in zip(codes["per_file_loop"], codes["batched"])])
    summary = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads",
        "dialogues": args.dialogues,
        "audio_s": round(seconds, 1),
        "batch_size": args.batch_size,
        "n_q": args.n_q,
        "repeat": args.repeat,
        "speedup": round(results["per_file_loop"]["wall_s"] / results["batched"]["wall_s"], 2),
        "codes_equal_share": round(float(same), 6),
        # a random-weight Mimi returns code 0 everywhere: then the equality above says nothing
        "distinct_codes": int(len(np.unique(np.concatenate([c.ravel() for c in codes["batched"]])))),
        "torch": torch.__version__,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
