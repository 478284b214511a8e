"""Per-step latency and real-time capacity of the streaming runtime, next to a moshi.server-shaped loop.

For each batch size N, :class:`BatchStepper` runs N sessions in one batched step (Mimi encode →
LMGen.step → Mimi decode, exec masks, out-of-sync LMGen). The baseline is the per-frame body of
``moshi.server``'s ``recv_loop`` (encode, ``LMGen.step``, decode, ``.cpu()``, Opus encode, text
``.item()``), batch 1: that server serves one session at a time behind a lock, so N sessions cost at
least N such steps per 80 ms frame. Both run in the same process on the same weights.

    # CPU, tiny random LM (what the 2-core dev machine can run)
    python bench/bench_runtime.py --device cpu --arch tiny --sessions 1,2 --steps 20
    # GPU, the full 7B J-Moshi architecture with random bf16 weights, CUDA graphs on
    python bench/bench_runtime.py --device cuda --arch 7b --sessions 1,2,4,8,12,16 --steps 100

Opus: after every step each session's reply frame is encoded and a client page decoded through the
server's own ``SessionCodec`` (recording off), once inline on the event loop's thread
(``opus_workers=0``, how the server worked before) and once in the server's Opus worker processes
(``--opus-workers``); "+opus" columns add that wall time to the step (the server overlaps them, so
this is an upper bound). ``--opus-sessions`` times the Opus work alone for more sessions.

Compaction (``--compaction-slots S``): one session on an ``S``-row stepper, stepping only its row
(what the engine does now) vs all ``S`` rows with the others masked off (before), interleaved step by
step on the same stepper, next to a 1-row stepper.

Random weights: the work per step does not depend on the values (fixed shapes, top-k sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

FRAME_BUDGET_MS = 80.0


def build_model(arch: str, device: str, dtype_name: str):
    import torch
    from moshi.models.loaders import _lm_kwargs, get_mimi, get_moshi_lm

    from jmoshi_augment.runtime.models import LoadedModel

    dtype = getattr(torch, dtype_name)
    if arch == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from runtime_helpers import TINY_LM

        kwargs = dict(TINY_LM, text_card=32000)
    else:
        kwargs = dict(_lm_kwargs)  # stock Moshi 7B = J-Moshi(-ext)
    t0 = time.perf_counter()
    lm = get_moshi_lm(filename=None, lm_kwargs=kwargs, device=device, dtype=dtype)
    mimi = get_mimi(filename=None, device=device)
    with torch.no_grad():  # untrained codebooks are all zero; random ones make codes vary like real audio
        for name, buf in mimi.named_buffers():
            if name.endswith("_codebook.embedding_sum"):
                buf.copy_(torch.randn_like(buf) * 0.02)
            elif name.endswith(("_codebook.cluster_usage", "_codebook._initialized")):
                buf.fill_(1.0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    n_params = sum(p.numel() for p in lm.parameters())
    print(f"built {arch} LM ({n_params / 1e9:.2f} B params, {dtype_name}) + Mimi in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return LoadedModel(mimi=mimi, lm=lm, text_tokenizer=None, info=None), n_params


def speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 24000
    return (0.2 * np.sin(2 * np.pi * rng.uniform(100, 220) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def stats(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def client_pages(n_frames: int, seed: int) -> list[bytes]:
    """A client's Ogg-Opus stream, one chunk per 80 ms frame (as the page and Kyutai's client send)."""
    import sphn

    writer = sphn.OpusStreamWriter(24000)
    pcm = speechlike(1920 * n_frames, seed)
    return [writer.append_pcm(pcm[i * 1920:(i + 1) * 1920]) for i in range(n_frames)]


class CodecSet:
    """N sessions' server-side codecs (``runtime.session_io.SessionCodec``), inline and on a pool."""

    def __init__(self, n: int, workers: int, n_frames: int) -> None:
        import asyncio

        from jmoshi_augment.runtime.opus_worker import OpusWorkers
        from jmoshi_augment.runtime.session_io import SessionCodec

        self.loop = asyncio.new_event_loop()
        self.workers = OpusWorkers(workers) if workers else None
        if self.workers is not None:
            self.workers.start()
        async def make() -> list:  # worker-backed codecs queue their "open" on the running loop
            return [SessionCodec(i, 24000, None, self.workers) for i in range(n)]

        self.codecs = self.loop.run_until_complete(make())
        self.pages = [client_pages(n_frames, seed=100 + i) for i in range(n)]

    def frame(self, i: int, pcm: np.ndarray) -> tuple[float, float]:
        """Decode each session's page ``i`` and encode its reply; returns (wall, server-process CPU)
        seconds: the CPU time is what the event loop's process spends, workers excluded."""
        import asyncio

        from jmoshi_augment.runtime.engine import NO_TEXT, StepOutput

        async def one(s: int) -> None:
            await self.codecs[s].decode(self.pages[s][i % len(self.pages[s])])
            await self.codecs[s].encode(StepOutput(i, pcm[s], pcm[s], NO_TEXT, 0.0))

        async def every() -> None:
            await asyncio.gather(*(one(s) for s in range(len(self.codecs))))

        t, c = time.perf_counter(), time.process_time()
        self.loop.run_until_complete(every())
        return time.perf_counter() - t, time.process_time() - c

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown()
        self.loop.close()


def bench_batched(model, n: int, steps: int, warmup: int, opus_workers: int) -> dict:
    from jmoshi_augment.runtime.engine import BatchStepper, SamplingOptions

    frame = model.frame_size
    audio = np.stack([speechlike(frame * (steps + warmup), seed=i) for i in range(n)])
    active = np.ones(n, dtype=bool)
    inline, pooled = CodecSet(n, 0, steps + warmup), CodecSet(n, opus_workers, steps + warmup)
    with BatchStepper(model, n, SamplingOptions(seed=1)) as stepper:
        stepper.warmup(steps=max(2, warmup))  # on CUDA this captures the graphs
        times, opus_inline, opus_pool = [], [], []
        for i in range(steps + warmup):
            r = stepper.step(audio[:, i * frame:(i + 1) * frame], active)
            a, b = inline.frame(i, r.pcm)[0], pooled.frame(i, r.pcm)[0]
            if i >= warmup:
                times.append(r.seconds)
                opus_inline.append(a)
                opus_pool.append(b)
    inline.close()
    pooled.close()
    t = np.asarray(times)
    out = stats(times)
    for name, opus in (("inline", opus_inline), ("pool", opus_pool)):
        out[f"opus_{name}_p50_ms"] = float(np.percentile(np.asarray(opus) * 1000, 50))
        out[f"with_opus_{name}_p99_ms"] = float(np.percentile((t + np.asarray(opus)) * 1000, 99))
    out["with_opus_p99_ms"] = out["with_opus_pool_p99_ms"]
    return out


def bench_opus(n: int, frames: int, workers: int) -> dict:
    """Per 80 ms frame, the Opus work of ``n`` sessions (decode the client's page, encode the reply)
    through ``SessionCodec``: inline on the event loop vs in ``workers`` processes, alternating."""
    replies = np.stack([speechlike(1920 * frames, seed=200 + s) for s in range(n)])
    inline, pooled = CodecSet(n, 0, frames), CodecSet(n, workers, frames)
    a, b = [], []
    for i in range(frames):
        pcm = replies[:, i * 1920:(i + 1) * 1920]
        a.append(inline.frame(i, pcm))
        b.append(pooled.frame(i, pcm))
    inline.close()
    pooled.close()
    out = {"sessions": n, "workers": workers, "inline": stats([x[0] for x in a]), "pool": stats([x[0] for x in b])}
    out["inline_cpu_ms"] = float(np.mean([x[1] for x in a]) * 1000)
    out["pool_cpu_ms"] = float(np.mean([x[1] for x in b]) * 1000)
    return out


def bench_compaction(model, slots: int, steps: int, warmup: int) -> dict:
    from jmoshi_augment.runtime.engine import BatchStepper, SamplingOptions

    frame = model.frame_size
    audio = speechlike(frame * (steps + warmup), seed=0)
    one = np.ones(1, dtype=bool)
    single = []
    with BatchStepper(model, 1, SamplingOptions(seed=1)) as stepper:
        stepper.warmup(steps=2)
        for i in range(steps + warmup):
            r = stepper.step(audio[None, i * frame:(i + 1) * frame], one)
            if i >= warmup:
                single.append(r.seconds)
    compact, masked = [], []
    mask = np.zeros(slots, dtype=bool)
    mask[0] = True
    with BatchStepper(model, slots, SamplingOptions(seed=1)) as stepper:
        stepper.warmup(steps=2)
        for i in range(steps + warmup):
            x = audio[i * frame:(i + 1) * frame]
            a = stepper.step(x[None], one)  # rows in use: 1 → the batch-1 bucket
            padded = np.zeros((slots, frame), np.float32)
            padded[0] = x
            b = stepper.step(padded, mask)  # all rows, the idle ones masked off (the old engine)
            if i >= warmup:
                compact.append(a.seconds)
                masked.append(b.seconds)
    return {"slots": slots, "one_slot": stats(single), "compacted": stats(compact), "masked": stats(masked)}


def bench_moshi_server_loop(model, steps: int, warmup: int) -> dict:
    """The per-frame body of moshi.server's recv_loop + decode_and_send, batch 1."""
    import sphn
    import torch
    from moshi.models.lm import LMGen

    frame = model.frame_size
    audio = speechlike(frame * (steps + warmup + 4), seed=0)
    lm_gen = LMGen(model.lm, temp=0.8, temp_text=0.7, top_k=250, top_k_text=25)
    device = model.device
    times = []
    with torch.no_grad(), model.mimi.streaming(1), lm_gen.streaming(1):
        writer = sphn.OpusStreamWriter(24000)
        for i in range(steps + warmup + 4):
            t = time.perf_counter()
            chunk = torch.from_numpy(audio[i * frame:(i + 1) * frame]).to(device)[None, None]
            codes = model.mimi.encode(chunk)
            tokens = lm_gen.step(codes[:, :, 0:1])
            if tokens is not None:
                pcm = model.mimi.decode(tokens[:, 1:]).cpu()
                writer.append_pcm(pcm[0, 0].float().numpy())
                tokens[0, 0, 0].item()
            if i >= warmup + 4:  # 4 extra: moshi.server warms up with 4 frames before serving
                times.append(time.perf_counter() - t)
    return stats(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", choices=["tiny", "7b"], default="tiny")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--sessions", default="1,2", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--compile", action="store_true", help="allow torch.compile (off by default on CPU)")
    ap.add_argument("--opus-workers", type=int, default=4, help="Opus worker processes for the pooled columns")
    ap.add_argument("--opus-sessions", default="", help="also time Opus alone for these session counts")
    ap.add_argument("--opus-frames", type=int, default=50)
    ap.add_argument("--compaction-slots", type=int, default=0, help="also measure 1 session on this many slots")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if not args.compile and args.device == "cpu":
        os.environ.setdefault("NO_TORCH_COMPILE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    model, n_params = build_model(args.arch, args.device, dtype)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {device_name}; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else device_name)
    results = {"device": device_name, "arch": args.arch, "params": n_params, "dtype": dtype, "steps": args.steps}
    if args.sessions:  # "" skips the model table (e.g. to time Opus alone)
        base = bench_moshi_server_loop(model, args.steps, args.warmup)
        results["moshi_server_loop_b1"] = base
        print(f"moshi.server-shaped loop, 1 session: p50 {base['p50_ms']:.1f} ms, p99 {base['p99_ms']:.1f} ms per frame "
              f"(N sessions served one after another need N x this per 80 ms frame)")
        print(f"{'N':>3} {'p50 ms':>8} {'p99 ms':>8} {'ms/sess':>8} {'opus 1thr':>9} {'opus wkrs':>9} "
              f"{'+opus1 p99':>10} {'+wkrs p99':>9} {'N x moshi p50':>13} {'speed-up':>8} {'real time (p99<80ms)':>20}")
        results["batched"] = {}
        best = 0
        for n in [int(x) for x in args.sessions.split(",")]:
            r = bench_batched(model, n, args.steps, args.warmup, args.opus_workers)
            if args.device.startswith("cuda"):  # free this size's KV caches and graph pools before the next
                import gc

                gc.collect()
                torch.cuda.empty_cache()
            results["batched"][n] = r
            ok = r["with_opus_p99_ms"] < FRAME_BUDGET_MS
            best = n if ok else best
            serial = n * base["p50_ms"]
            print(f"{n:>3} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['p50_ms'] / n:>8.1f} {r['opus_inline_p50_ms']:>9.1f} "
                  f"{r['opus_pool_p50_ms']:>9.1f} {r['with_opus_inline_p99_ms']:>10.1f} {r['with_opus_pool_p99_ms']:>9.1f} "
                  f"{serial:>13.1f} {serial / r['p50_ms']:>8.2f} {'yes' if ok else 'no':>20}")
        results["max_realtime_sessions"] = best
        print(f"largest N with p99 (step + Opus in the workers) under {FRAME_BUDGET_MS:.0f} ms: {best}")
    if args.opus_sessions:
        results["opus"] = []
        print(f"Opus per 80 ms frame (decode + encode every session), {os.cpu_count()} CPU cores:")
        for n in [int(x) for x in args.opus_sessions.split(",")]:
            o = bench_opus(n, args.opus_frames, args.opus_workers)
            results["opus"].append(o)
            print(f"  {n:>3} sessions: event loop p50 {o['inline']['p50_ms']:.1f} ms (p99 {o['inline']['p99_ms']:.1f}, "
                  f"server CPU {o['inline_cpu_ms']:.1f} ms); {args.opus_workers} workers p50 {o['pool']['p50_ms']:.1f} ms "
                  f"(p99 {o['pool']['p99_ms']:.1f}, server CPU {o['pool_cpu_ms']:.1f} ms); wall {o['inline']['p50_ms'] / o['pool']['p50_ms']:.2f}x, "
                  f"server CPU {o['inline_cpu_ms'] / max(o['pool_cpu_ms'], 1e-9):.2f}x")
    if args.compaction_slots:
        c = bench_compaction(model, args.compaction_slots, args.steps, args.warmup)
        results["compaction"] = c
        print(f"1 session, p50 step: 1-slot stepper {c['one_slot']['p50_ms']:.1f} ms; {c['slots']}-slot stepper "
              f"compacted {c['compacted']['p50_ms']:.1f} ms, masked (all rows) {c['masked']['p50_ms']:.1f} ms; "
              f"masked/compacted {c['masked']['p50_ms'] / c['compacted']['p50_ms']:.2f}x, "
              f"compacted/1-slot {c['compacted']['p50_ms'] / c['one_slot']['p50_ms']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
