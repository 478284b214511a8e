"""Whole-pipeline throughput with the stage breakdown: audio hours per wall hour.

One `run_synth` over the bundled sample with every output format on (wav+json, tar token shards,
J-Moshi parquet): script, OpenJTalk, planning/mixing, writing, Mimi encoding (full-size Mimi with
random weights: same compute as the real one) and text tokens (a SentencePiece model trained here
from the sample's own text, since the real one is a download).

    .venv/bin/python bench/bench_pipeline.py [--dialogues 20] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def train_tokenizer(folder: Path, texts: list[str]) -> Path:
    import sentencepiece as spm

    corpus = folder / "text.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=800, model_type="bpe",
        character_coverage=1.0, hard_vocab_limit=False, byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, pad_piece="[PAD]", minloglevel=2,
    )
    return folder / "spm.model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.corpora import load_corpus
    from jmoshi_augment.recipe import parse_recipe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = [t.text for d in load_corpus("jsonl", "builtin:sample") for t in d.turns]
        sp = train_tokenizer(tmp, texts)
        recipe = parse_recipe(
            f"corpus: {{name: jsonl, path: 'builtin:sample', limit: {args.dialogues}}}\n"
            f"output: {{dir: {tmp / 'out'}, formats: [wav, tar, jmoshi], shard_size: 10}}\n"
            f"models: {{random_weights: true, text_tokenizer: {sp}}}\n"
            f"tokenize: {{device: {args.device}, batch_size: 8}}\n"
            f"workers: {args.workers}\n"
        )
        t0 = time.perf_counter()
        summary = run_synth(recipe, progress=False)
        wall = time.perf_counter() - t0
        r = summary.report
    audio = r["seconds_of_audio"]
    stages = r["stage_seconds"]
    print(json.dumps({"dialogues": r["renderings"], "audio_s": audio, "wall_s": round(wall, 1),
                      "audio_hours_per_wall_hour": round(audio / wall, 2), "workers": args.workers,
                      "stage_seconds": stages}, ensure_ascii=False))
    cpu_stages = {k: v for k, v in stages.items() if k in ("script", "tts", "plan_mix")}
    print(f"{audio:.0f} s of stereo dialogue in {wall:.1f} s wall = {audio / wall:.2f} audio hours per wall hour")
    print("stage seconds (script/tts/plan_mix summed over worker processes; write/tokenize in the main process):")
    for k, v in stages.items():
        print(f"  {k:10s} {v:8.1f}" + ("  (in workers)" if k in cpu_stages else ""))


if __name__ == "__main__":
    main()
