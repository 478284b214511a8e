"""Kokoro backend figures for bench/RESULTS.md: word onsets vs the audio's energy onsets, and how
distinct and how spread the voices of a synth run are.

    # word onsets: sentences of the first N sample dialogues, voices drawn as a run draws them
    .venv/bin/python bench/kokoro_voices.py onsets --dialogues 3
    .venv/bin/python bench/kokoro_voices.py onsets --first 3 --dialogues 6    # held out from the rule
    .venv/bin/python bench/kokoro_voices.py onsets --dialogues 6 --holds      # with the script's holds
    # voices: over a finished run's wav output (e.g. the README's sample run)
    .venv/bin/python bench/kokoro_voices.py voices /tmp/sample
    # each stock voice's own pitch (STYLE_PITCH in augment/speech/tts/kokoro.py)
    .venv/bin/python bench/kokoro_voices.py pitches

Distinctness: per rendering, each channel's speech (from its alignments) is cut into two halves;
"within" is the distance between the halves of one channel, "between" the distance between the
two channels' second halves. Spread: the same profiles over all channels of the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jmoshi_augment.constants import SAMPLE_RATE as SR  # noqa: E402


def onsets(dialogues: int, first: int = 0, holds: bool = False) -> None:
    from jmoshi_augment.augment.analysis.onsets import energy_onsets
    from jmoshi_augment.augment.speech.tts import get_backend
    from jmoshi_augment.augment.speech.voices import draw_voice_pair
    from jmoshi_augment.augment.text.script import normalize_text, split_sentences, to_words
    from jmoshi_augment.augment.types import Segment
    from jmoshi_augment.recipe import VoiceSpaceConfig

    sample = Path(__file__).resolve().parents[1] / "jmoshi_augment" / "data" / "sample.jsonl"
    from jmoshi_augment.augment.text.holds import choose_holds
    from jmoshi_augment.recipe import ScriptConfig

    backend = get_backend("kokoro")
    hold_rng, held = np.random.default_rng(0), 0
    errors, signed, closures, n = [], [], 0, 0
    for d, line in enumerate(sample.read_text(encoding="utf-8").splitlines()[first : first + dialogues], start=first):
        pair = draw_voice_pair(VoiceSpaceConfig(), np.random.default_rng([0, d]), styles=backend.styles, style_pitch=backend.style_pitch)
        for k, turn in enumerate(json.loads(line)["turns"]):
            for text in split_sentences(normalize_text(turn["text"]), 80):
                words = to_words(text)
                if holds:  # the script's holds (a comma before each), every sentence at full chance
                    cfg = ScriptConfig()
                    words, at, _ = choose_holds(words, cfg.hold_unit_morae, cfg, hold_rng)
                    held += len(at)
                seg = Segment("A", words, "speech", 0)
                r = backend.render([seg], pair[k % 2])[0]
                n += 1
                starts = np.array([t.start for t in r.words])
                for onset in energy_onsets(r.audio, SR):
                    if any(t.start + 0.08 < onset < t.end and "ッ" in w.reading for w, t in zip(seg.words, r.words)):
                        closures += 1  # a geminate's closure: silence inside a word
                        continue
                    i = int(np.argmin(np.abs(starts - onset)))
                    errors.append(abs(starts[i] - onset))
                    signed.append(onset - starts[i])
    err = np.asarray(errors)
    print(f"{n} sentences ({held} holds), {len(err)} onsets after >= 100 ms of silence ({closures} in-word closures left out)")
    print(f"within 80 ms: {np.mean(err <= 0.08):.1%}; within 40 ms: {np.mean(err <= 0.04):.1%}; "
          f"median |error| {np.median(err) * 1000:.0f} ms; max {err.max() * 1000:.0f} ms; "
          f"median signed (energy - predicted) {np.median(signed) * 1000:+.0f} ms")


def voices(run: Path) -> None:
    import soundfile as sf

    from jmoshi_augment.augment.analysis.voice_distance import voice_profile

    labels = {"SPEAKER_MAIN": 0, "SPEAKER_OTHER": 1}
    within_t, between_t, within_p, between_p, profiles = [], [], [], [], []
    for entry in (json.loads(x) for x in (run / "data.jsonl").read_text().splitlines()):
        wav = run / entry["path"]
        audio, sr = sf.read(wav, dtype="float32")
        words = json.loads(wav.with_suffix(".json").read_text())["alignments"]
        halves = []
        for ch in (0, 1):
            spans = [(s, e) for _, (s, e), who in words if labels[who] == ch and e > s]
            mid = len(spans) // 2
            parts = [np.concatenate([audio[int(s * sr): int(e * sr), ch] for s, e in part]) for part in (spans[:mid], spans[mid:])]
            halves.append([voice_profile(p, sr) for p in parts])
            profiles.append(voice_profile(np.concatenate(parts), sr))
        for ch in (0, 1):
            within_t.append(halves[ch][0].timbre_distance(halves[ch][1]))
            within_p.append(halves[ch][0].pitch_distance(halves[ch][1]))
        between_t.append(halves[0][1].timbre_distance(halves[1][1]))
        between_p.append(halves[0][1].pitch_distance(halves[1][1]))
    ratio_t = np.array(between_t) / np.maximum(np.array(within_t).reshape(-1, 2).max(axis=1), 1e-9)
    print(f"{len(between_t)} renderings")
    print(f"timbre (MFCC distance): within a channel median {np.median(within_t):.2f}, between channels median "
          f"{np.median(between_t):.2f}; between / larger within: median {np.median(ratio_t):.1f}, min {ratio_t.min():.1f}")
    print(f"pitch (semitones): within a channel median {np.median(within_p):.2f}, between channels median "
          f"{np.median(between_p):.2f}, min {np.min(between_p):.2f}")
    pitches = np.array([p.pitch for p in profiles])
    timbres = np.stack([p.timbre for p in profiles])
    pair = np.linalg.norm(timbres[:, None] - timbres[None], axis=2)[np.triu_indices(len(profiles), 1)]
    print(f"spread over the run's {len(profiles)} channels: pitch sd {pitches.std():.1f} st "
          f"(range {pitches.min():.1f}..{pitches.max():.1f} st re 100 Hz); pairwise timbre distance median {np.median(pair):.2f}")


def pitches() -> None:
    """Each stock voice's median F0 at speed 1, no shift, over a few sample sentences: the figures
    behind ``STYLE_PITCH`` in augment/speech/tts/kokoro.py."""
    from jmoshi_augment.augment.analysis.voice_distance import voice_profile
    from jmoshi_augment.augment.speech.tts import get_backend
    from jmoshi_augment.augment.text.script import normalize_text, split_sentences, to_words
    from jmoshi_augment.augment.types import Segment
    from jmoshi_augment.augment.speech.tts.kokoro import KOKORO_VOICES
    from jmoshi_augment.recipe import VoiceConfig

    sample = Path(__file__).resolve().parents[1] / "jmoshi_augment" / "data" / "sample.jsonl"
    texts = [s for t in json.loads(sample.read_text(encoding="utf-8").splitlines()[0])["turns"]
             for s in split_sentences(normalize_text(t["text"]), 80)][:6]
    backend = get_backend("kokoro")
    for name in KOKORO_VOICES:
        audio = np.concatenate([backend.render([Segment("A", to_words(t), "speech", 0)], VoiceConfig(name=name, style=name))[0].audio
                                for t in texts])
        print(f'    "{name}": {voice_profile(audio, SR).pitch:.1f},')


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("onsets")
    o.add_argument("--dialogues", type=int, default=3)
    o.add_argument("--first", type=int, default=0, help="skip this many sample dialogues (3..: not used to set the pause rule)")
    o.add_argument("--holds", action="store_true", help="render each sentence with the script's holds (issue 26)")
    v = sub.add_parser("voices")
    v.add_argument("run", type=Path)
    sub.add_parser("pitches")
    args = ap.parse_args()
    if args.cmd == "onsets":
        onsets(args.dialogues, args.first, args.holds)
    elif args.cmd == "voices":
        voices(args.run)
    else:
        pitches()


if __name__ == "__main__":
    main()
