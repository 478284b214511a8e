"""Generation speed of the moshi_ms multi-stream TTS vs batch size, side by side with OpenJTalk.

The workload is fixed so batch sizes compare fairly: random weights would pad at random, so the
padding logit gets -1e4 and every step forces one script token; each dialogue is ``--tokens``
script tokens + ``--tail`` frames after a ``--prompt``-frame audio prompt (prompt frames are
generated but not counted as output). Throughput counts seconds of *stereo dialogue* produced
(frames × 80 ms) per wall second, for the step loop alone and with Mimi decoding of both channels.

    # CPU, tiny model (dim 32, 2 layers; random Mimi), a few minutes on 2 cores:
    .venv/bin/python bench/bench_ms_tts.py --arch tiny --device cpu --batches 1,2,4,8 --tokens 60
    # GPU, the full Moshi 7B architecture with dep_q=16 (J-Moshi MS-TTS), random bf16 weights:
    .venv/bin/python bench/bench_ms_tts.py --arch 7b --device cuda --batches 1,8,16,32,64 --tokens 250
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("NO_TORCH_COMPILE", "1")

TINY = {
    "dim": 32, "text_card": 256, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 16, "card": 2048,
    "num_heads": 2, "num_layers": 2, "hidden_scale": 2, "causal": True, "context": 500, "max_period": 10000,
    "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope", "depformer_dim": 16,
    "depformer_num_heads": 2, "depformer_num_layers": 1, "depformer_multi_linear": True, "depformer_context": 16,
    "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
    "depformer_weights_per_step": True, "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}


def build(arch: str, device: str):
    import torch
    from moshi.models import loaders

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    kwargs = dict(TINY) if arch == "tiny" else dict(loaders._lm_kwargs, dep_q=16)
    torch.manual_seed(0)
    lm = loaders.get_moshi_lm(filename=None, lm_kwargs=kwargs, device=device, dtype=dtype).eval()
    mimi = loaders.get_mimi(filename=None, device=device, num_codebooks=8)
    return lm, mimi


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_batch(lm, mimi, device: str, batch: int, n_items: int, tokens: int, tail: int, prompt: int) -> dict:
    import torch

    from jmoshi_augment.augment.speech.tts.ms_decode import DecodeItem, DecodeLimits, ForcedDecoder, StreamSampling, undelay

    rng = np.random.default_rng(0)
    items = [DecodeItem(rng.integers(4, lm.text_card, size=tokens).astype(np.int64),
                        np.concatenate([np.full((1, prompt), 3), rng.integers(0, lm.card, size=(16, prompt))]).astype(np.int64),
                        int(rng.integers(2**62))) for _ in range(n_items)]
    dec = ForcedDecoder(lm, sampling=StreamSampling(pad_bonus=-1e4),
                        limits=DecodeLimits(max_frames=tokens + tail + 8, tail_frames=tail, sync_every=8))
    sync(device)
    t0 = time.perf_counter()
    outs = dec.run(items, batch)
    sync(device)
    t1 = time.perf_counter()
    frames = [undelay(o.steps, lm.delays) for o in outs]
    with torch.no_grad():
        for a in range(0, len(frames), batch):
            group = frames[a: a + batch]
            T = max(f.shape[1] for f in group)
            codes = np.zeros((2 * len(group), 8, T), dtype=np.int64)
            for j, f in enumerate(group):
                codes[2 * j, :, : f.shape[1]] = f[1:9]
                codes[2 * j + 1, :, : f.shape[1]] = f[9:17]
            mimi.decode(torch.from_numpy(np.clip(codes, 0, 2047)).to(device))
    sync(device)
    t2 = time.perf_counter()
    audio_s = sum(f.shape[1] - prompt for f in frames) * 0.08
    assert all(o.complete for o in outs)
    return {"batch": batch, "items": n_items, "audio_s": round(audio_s, 1), "lm_s": round(t1 - t0, 2),
            "mimi_s": round(t2 - t1, 2), "x_realtime_lm": round(audio_s / (t1 - t0), 2),
            "x_realtime_total": round(audio_s / (t2 - t0), 2),
            "ms_per_step": round(1000 * (t1 - t0) / max(1, sum(o.steps.shape[1] for o in outs) / batch), 1)}


def openjtalk_rate(seconds_budget: float = 20.0) -> dict:
    """OpenJTalk backend on the CPU (one process): seconds of mono speech per wall second."""
    from jmoshi_augment.augment.text.script import to_words
    from jmoshi_augment.augment.speech.tts import get_backend
    from jmoshi_augment.augment.types import Segment
    from jmoshi_augment.recipe import TTSConfig

    backend = get_backend("openjtalk")
    voice = TTSConfig().voices[0]
    texts = ["えっと、明日は映画を見に行こうと思ってるんです。", "駅の近くに新しいカフェができたらしいよ。",
             "週末は家でゆっくり本を読んでいました。", "へー、ほんとですか。それは楽しそうですね。"]
    segs = [Segment("A", to_words(t), "speech", 0) for t in texts]
    backend.render(segs[:1], voice)
    audio = wall = 0.0
    while wall < seconds_budget:
        t0 = time.perf_counter()
        out = backend.render(segs, voice)
        wall += time.perf_counter() - t0
        audio += sum(r.duration for r in out)
    # a stereo dialogue needs both channels rendered: per second of dialogue, about the speech
    # of both speakers; count mono speech seconds as produced
    return {"backend": "openjtalk (1 CPU process)", "speech_s": round(audio, 1), "wall_s": round(wall, 2),
            "x_realtime": round(audio / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["tiny", "7b"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--items-per-batch", type=int, default=2, help="dialogues = batch × this (slots get refilled)")
    ap.add_argument("--tokens", type=int, default=60)
    ap.add_argument("--tail", type=int, default=25)
    ap.add_argument("--prompt", type=int, default=25)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-openjtalk", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lm, mimi = build(args.arch, args.device)
    print(json.dumps({"arch": args.arch, "device": args.device, "params_b": round(sum(p.numel() for p in lm.parameters()) / 1e9, 3),
                      "build_s": round(time.perf_counter() - t0, 1),
                      "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}), flush=True)
    run_batch(lm, mimi, args.device, 1, 1, 8, 2, 4)  # warm-up
    for b in (int(x) for x in args.batches.split(",")):
        try:
            row = run_batch(lm, mimi, args.device, b, b * args.items_per_batch, args.tokens, args.tail, args.prompt)
        except torch.OutOfMemoryError:
            row = {"batch": b, "error": "out of memory"}
            torch.cuda.empty_cache()
        if args.device.startswith("cuda"):
            row["max_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        print(json.dumps(row), flush=True)
    if not args.no_openjtalk:
        print(json.dumps(openjtalk_rate()), flush=True)


if __name__ == "__main__":
    main()
