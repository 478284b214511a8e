"""The acoustic stage (augment/acoustics/): speed, whether its records are true of its audio, how
many user voices it makes, and that clean stems are untouched.

1. Renders >= 100 short dialogues (3-turn windows of the bundled sample) with OpenJTalk through
   the real pipeline, ``acoustics.views: 1`` with the default section, and a second run without
   views on the first 10 dialogues.
2. Speed: CPU seconds (``time.process_time``, one thread) of ``augment_view`` per view with the
   default section, over all dialogues, as a ratio to the audio's duration. The bank of simulated
   rooms is built first and reported apart (a run pays it once per process).
3. Recovery, each estimated from audio by code independent of the stage's: every view's recorded
   noise, echo and room draws are reapplied alone (``only=``, same generator, so the same draws;
   checked equal to the unit record) and estimated: SNR = clean user's active level (own 20 ms
   framing) over the power of (augmented - clean); echo delay = peak of the cross-correlation of
   (augmented - clean) with the model channel, and also on the full view's audio; RT60 = T20 of
   the Schroeder curve of the response deconvolved from (clean, augmented).
4. Voices (Kokoro): ~5 s of speech per dialogue in the user's voice as the pipeline draws it (the
   sample recipe's voice_space), clean and voice-changed; resemblyzer embeddings clustered at cosine 0.80
   (average linkage) on both sets; median pitch by librosa's pYIN (male < 165 Hz).
5. DNSMOS OVRL (speechmos) of the user channels of the 10 dialogues of the run without views:
   their clean stems there and in the run with views (also compared byte for byte), and views.

    pip install --no-deps resemblyzer speechmos && pip install webrtcvad-wheels librosa
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/bench_acoustics.py --out /tmp/acbench [--parts voices]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

SR = 24000


def windows(n: int, turns: tuple[int, ...] = (3, 2)) -> list[dict]:
    """Short dialogues: ``turns`` consecutive turns of each bundled sample dialogue, every start."""
    from jmoshi_augment.corpora import load_corpus

    out = []
    for k in turns:
        for d in load_corpus("jsonl", "builtin:sample"):
            for s in range(max(0, len(d.turns) - k + 1)):
                window = [{"speaker": t.speaker, "text": t.text} for t in d.turns[s:s + k]]
                if len({t["speaker"] for t in window}) == 2:
                    out.append({"id": f"{d.id}-w{s}" + (f"n{k}" if k != 3 else ""), "corpus": "sample", "turns": window})
    return out[:n]


def render(out: Path, n: int) -> tuple[Path, Path]:
    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.recipe import Recipe

    corpus = out / "windows.jsonl"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in windows(n)), encoding="utf-8")
    runs = {}
    for name, views, limit in (("run", 1, n), ("run-noviews", 0, 10)):
        recipe = Recipe.model_validate({"corpus": {"name": "jsonl", "path": str(corpus), "limit": limit},
                                        "tts": {"backend": "openjtalk"}, "acoustics": {"views": views},
                                        "output": {"dir": str(out / name), "formats": ["wav"], "shard_size": 10}})
        t0 = time.perf_counter()
        run_synth(recipe, progress=False)
        print(f"rendered {out / name} in {time.perf_counter() - t0:.0f} s")
        runs[name] = out / name
    return runs["run"], runs["run-noviews"]


def read_run(run: Path) -> list[tuple[dict, np.ndarray, dict | None]]:
    """(record, clean stereo, record of its view) per clean rendering, in unit order; fills POOLS
    with each rendering's babble pool as ``acoustic_views`` built it (the unit's other dialogues)."""
    import soundfile as sf

    out = []
    for p in sorted((run / "units").glob("unit-*.json")):
        entries = json.loads(p.read_text())["renderings"]
        views = {e["acoustics"]["view_of"]: e for e in entries if e.get("acoustics")}
        unit = []
        for e in entries:
            if not e.get("acoustics"):
                audio, _ = sf.read(run / "audio" / f"{e['id']}.wav", dtype="float32")
                unit.append((e, np.ascontiguousarray(audio.T), views.get(e["id"])))
        for e, _, _ in unit:
            POOLS[e["id"]] = tuple((f"{o['id']}/{ch}", a[ch]) for o, a, _ in unit if o["dialogue_id"] != e["dialogue_id"] for ch in (0, 1))
        out.extend(unit)
    return out


# ------------------------------------------------------------------------ independent estimators


def active_level(x: np.ndarray) -> float:
    frames = x[: len(x) // 480 * 480].astype(np.float64).reshape(-1, 480)
    p = (frames**2).mean(axis=1)
    return float(p[10 * np.log10(p / p.max() + 1e-30) > -40].mean())


def xcorr_delay_ms(leak: np.ndarray, ref: np.ndarray, max_ms: float = 1000) -> float:
    from scipy.signal import correlate

    c = correlate(leak.astype(np.float64), ref.astype(np.float64), mode="full", method="fft")
    zero, span = len(ref) - 1, int(max_ms * SR / 1000)
    window = c[zero:zero + span]
    return float(np.argmax(np.abs(window)) / SR * 1000)


def deconvolve(clean: np.ndarray, wet: np.ndarray, seconds: float = 1.5) -> np.ndarray:
    n = 1 << int(np.ceil(np.log2(len(clean) + int(seconds * SR))))
    x, y = np.fft.rfft(clean, n), np.fft.rfft(wet, n)
    h = np.fft.irfft(y * np.conj(x) / (np.abs(x) ** 2 + 1e-9 * np.max(np.abs(x) ** 2)), n)
    return h[: int(seconds * SR)]


def schroeder_t20(h: np.ndarray) -> float:
    """RT60 from the backward-integrated energy decay: straight-line fit from -5 to -25 dB, x3."""
    edc = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0] + 1e-30)
    i5, i25 = int(np.argmax(db <= -5)), int(np.argmax(db <= -25))
    t = np.arange(i5, i25) / SR
    slope = np.polyfit(t, db[i5:i25], 1)[0]
    return float(-60 / slope)


# ----------------------------------------------------------------------------------- the parts


def speed_by_codec(items, cfg) -> dict:
    """The default section, and the same with the Opus round trip never and always on."""
    out = {"default": speed(items, cfg)}
    for share in (0.0, 1.0):
        mic = cfg.mic.model_copy(update={"codec_prob": share})
        out[f"codec_prob={share}"] = speed(items, cfg.model_copy(update={"mic": mic}))
    return out


def speed(items, cfg) -> dict:
    from jmoshi_augment.augment.acoustics.rooms import simulated_room
    from jmoshi_augment.augment.acoustics.view import Sources, augment_view
    from jmoshi_augment.augment.run.synthesize import dialogue_rng

    t0 = time.process_time()
    for i in range(cfg.room.bank_size):
        simulated_room(0, i, cfg.room.model_dump_json())
    bank = time.process_time() - t0
    cpu, dur = 0.0, 0.0
    for e, audio, _ in items:
        t0 = time.process_time()
        augment_view(audio, 1, cfg, dialogue_rng(0, f"{e['id']}/acoustics/0"), Sources(babble=POOLS[e["id"]]))
        cpu += time.process_time() - t0
        dur += audio.shape[1] / SR
    return {"audio_s": round(dur, 1), "cpu_s": round(cpu, 2), "x_real_time": round(dur / cpu, 1), "room_bank_cpu_s": round(bank, 2)}


def _same(drawn, recorded) -> bool:
    return json.loads(json.dumps(drawn)) == recorded  # tuples in memory, lists in the record


def recovery(items, cfg) -> dict:
    from jmoshi_augment.augment.acoustics.view import Sources, augment_view
    from jmoshi_augment.augment.run.synthesize import dialogue_rng

    snr, echo_iso, echo_full, rt = [], [], [], []
    for e, audio, view in items:
        rid = e["id"]
        rng = lambda: dialogue_rng(0, f"{rid}/acoustics/0")  # noqa: E731  (the view's own generator)
        rec = view["acoustics"]
        if rec["noise"]:  # babble from the unit's other dialogues, as the run drew it
            y, p = augment_view(audio, 1, cfg, rng(), Sources(babble=POOLS[rid]), only=("noise",))
            assert _same(p.to_dict()["noise"], rec["noise"]), (rid, p.noise, rec["noise"])
            est = 10 * np.log10(active_level(audio[1]) / np.mean((y[1] - audio[1]).astype(np.float64) ** 2))
            snr.append(est - rec["noise"]["snr_db"])
        if rec["echo"]:
            y, p = augment_view(audio, 1, cfg, rng(), only=("echo",))
            assert _same(p.to_dict()["echo"], rec["echo"])
            echo_iso.append(xcorr_delay_ms(y[1] - audio[1], audio[0]) - rec["echo"]["delay_ms"])
            echo_full.append(xcorr_delay_ms(VIEWS[rid][1], audio[0]) - rec["echo"]["delay_ms"])
        if rec["room"]:
            y, p = augment_view(audio, 1, cfg, rng(), only=("room",))
            assert _same(p.to_dict()["room"], rec["room"])
            rt.append(schroeder_t20(deconvolve(audio[1], y[1])) / rec["room"]["rt60_s"] - 1)

    def summary(errs, tol, unit):
        a = np.abs(np.array(errs))
        return {"n": len(a), "within": f"{int((a <= tol).sum())}/{len(a)}", "median_abs": round(float(np.median(a)), 3) if len(a) else None,
                "max_abs": round(float(a.max()), 3) if len(a) else None, "unit": unit}

    return {"snr_db": summary(snr, 1.0, "dB"), "echo_delay_isolated_ms": summary(echo_iso, 10.0, "ms"),
            "echo_delay_full_view_ms": summary(echo_full, 10.0, "ms"), "rt60_relative": summary(rt, 0.2, "ratio-1")}


def voices(n: int, out: Path) -> dict:
    """Kokoro user utterances as the pipeline voices them, clean and voice-changed."""
    import librosa
    from resemblyzer import VoiceEncoder, preprocess_wav
    from scipy.cluster.hierarchy import fcluster, linkage

    from jmoshi_augment.augment.acoustics.view import augment_view
    from jmoshi_augment.augment.run.synthesize import dialogue_rng, dialogue_voices
    from jmoshi_augment.augment.speech.tts import get_backend
    from jmoshi_augment.augment.text.script import make_script
    from jmoshi_augment.corpora import Dialogue, Turn
    from jmoshi_augment.recipe import load_recipe
    from jmoshi_augment.recipe_acoustics import AcousticsConfig

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "sample.yaml")
    backend = get_backend("kokoro", **recipe.tts.options)
    cache = out / "kokoro.npz"
    utterances = dict(np.load(cache)) if cache.exists() else {}
    cfg = AcousticsConfig(views=1)
    for d in windows(n):
        if d["id"] in utterances:
            continue
        dialogue = Dialogue(d["id"], "sample", tuple(Turn(t["speaker"], t["text"]) for t in d["turns"]))
        rng = dialogue_rng(recipe.seed, dialogue.id)
        script = make_script(dialogue, recipe.script, rng)
        vs = dialogue_voices(recipe, script.speakers, rng, backend)
        user = script.speakers[1]
        pieces, seconds = [], 0.0
        # ~5 s in the user's voice (the window's sentences, whoever wrote them): short clips give
        # unstable embeddings, which would make even one voice look like many
        for seg in (s for s in script.segments if s.kind == "speech"):
            audio = backend.render([seg], vs[user])[0].audio
            pieces += [audio, np.zeros(SR // 5, dtype=np.float32)]
            seconds += len(audio) / SR
            if seconds >= 5.0:
                break
        utterances[d["id"]] = np.concatenate(pieces)
        np.savez(cache, **utterances)  # resumable: Kokoro is the slow part
    clean, changed = [], []
    for rid, u in utterances.items():
        stereo = np.stack([np.zeros_like(u), u]).astype(np.float32)
        y, _ = augment_view(stereo, 1, cfg, dialogue_rng(0, f"{rid}/acoustics/0"), only=("voice",))
        clean.append(u)
        changed.append(y[1])
    enc = VoiceEncoder("cpu")

    def clusters(wavs) -> int:
        emb = np.stack([enc.embed_utterance(preprocess_wav(w, source_sr=SR)) for w in wavs])
        return int(fcluster(linkage(emb, "average", metric="cosine"), t=1 - 0.80, criterion="distance").max())

    def pitch(w) -> float:
        f0, flag, _ = librosa.pyin(librosa.resample(w.astype(np.float32), orig_sr=SR, target_sr=16000), fmin=60, fmax=400, sr=16000)
        return float(np.nanmedian(f0[flag])) if flag.any() else float("nan")

    p_clean, p_changed = np.array([pitch(w) for w in clean]), np.array([pitch(w) for w in changed])
    share = lambda p: {"male": round(float(np.mean(p < 165)), 3), "female": round(float(np.mean(p >= 165)), 3)}  # noqa: E731
    return {"utterances": len(clean), "mean_seconds": round(float(np.mean([len(w) / SR for w in clean])), 2), "clusters_clean": clusters(clean), "clusters_changed": clusters(changed),
            "pitch_share_clean": share(p_clean), "pitch_share_changed": share(p_changed)}


def dnsmos(items, run: Path, noviews: Path) -> dict:
    """On the dialogues of the run without views: their clean stems there and in the run with
    views (compared byte for byte and by DNSMOS OVRL of the user channel), and their views."""
    import soundfile as sf
    from scipy.signal import resample_poly
    from speechmos import dnsmos as meter

    def score(x):
        return meter.run(np.clip(resample_poly(x, 2, 3), -1, 1).astype(np.float32), sr=16000)["ovrl_mos"]

    ids = [p.stem for p in sorted((noviews / "audio").glob("*.wav"))]
    clean = {e["id"]: a for e, a, _ in items}
    same = [(noviews / "audio" / f"{i}.wav").read_bytes() == (run / "audio" / f"{i}.wav").read_bytes() for i in ids]
    without = [score(sf.read(noviews / "audio" / f"{i}.wav", dtype="float32")[0][:, 1]) for i in ids]
    with_views = [score(clean[i][1]) for i in ids]
    views = [score(VIEWS[i][1]) for i in ids]
    return {"dialogues": len(ids), "clean_stems_byte_identical": f"{sum(same)}/{len(ids)}",
            "ovrl_clean_without_views": round(float(np.mean(without)), 3), "ovrl_clean_with_views": round(float(np.mean(with_views)), 3),
            "ovrl_views": round(float(np.mean(views)), 3), "ovrl_views_min_max": [round(min(views), 3), round(max(views), 3)]}


POOLS: dict[str, tuple] = {}
VIEWS: dict[str, np.ndarray] = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="Work folder (renders are kept: reruns resume).")
    ap.add_argument("--dialogues", type=int, default=110)
    ap.add_argument("--kokoro", type=int, default=104, help="Kokoro voices for the voice part (cached in --out).")
    ap.add_argument("--parts", default="speed,recovery,dnsmos,voices", help="Comma-separated parts to run.")
    args = ap.parse_args()
    import soundfile as sf

    from jmoshi_augment.recipe_acoustics import AcousticsConfig

    parts = set(args.parts.split(","))
    results: dict = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if parts & {"speed", "recovery", "dnsmos"}:
        run, noviews = render(args.out, args.dialogues)
        items = read_run(run)
        for e, audio, view in items:
            VIEWS[e["id"]] = np.ascontiguousarray(sf.read(run / "audio" / f"{view['id']}.wav", dtype="float32")[0].T)
        cfg = AcousticsConfig(views=1)
        results["dialogues"] = len(items)
        for name, part in (("speed", lambda: speed_by_codec(items, cfg)), ("recovery", lambda: recovery(items, cfg)),
                           ("dnsmos", lambda: dnsmos(items, run, noviews))):
            if name in parts:
                results[name] = part()
                print(json.dumps({name: results[name]}))
    if "voices" in parts and args.kokoro:
        results["voices"] = voices(args.kokoro, args.out)
        print(json.dumps(results["voices"]))
    (args.out / f"results-{'-'.join(sorted(parts))}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
