"""The acoustic stage on short synthetic signals: determinism, the model channel untouched, and the
numbers a view records (SNR, echo delay, codec alignment, voice pitch, RT60) true of its audio."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import correlate

from jmoshi_augment.augment.acoustics.echo import echo_signal
from jmoshi_augment.augment.acoustics.mic import opus_round_trip
from jmoshi_augment.augment.acoustics.noise import active_power
from jmoshi_augment.augment.acoustics.params import EchoDraw, ViewParams
from jmoshi_augment.augment.acoustics.rooms import reverberate, rt60, simulated_room
from jmoshi_augment.augment.acoustics.view import Sources, augment_view
from jmoshi_augment.augment.acoustics.voice import change_voice, draw_voice, median_f0
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import AcousticsConfig, RoomConfig, VoiceWarpConfig

SR = SAMPLE_RATE
# small rooms, short RT60: a simulation takes milliseconds
FAST_ROOM = {"rt60": (0.15, 0.25), "length": (3.0, 4.0), "width": (3.0, 4.0), "height": (2.4, 2.6), "bank_size": 4}


def voiced(f0: float, seconds: float, *, seed: int = 0, bursts: int = 4) -> np.ndarray:
    """Speech-like: a harmonic source at ``f0`` through two resonances, in syllable bursts with pauses."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    t = np.arange(n) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))) / SR
    src = sum(np.sin(k * phase) / k for k in range(1, int(4000 / f0)))
    for fc in (700.0, 1800.0):  # resonances (formants)
        r, w = 0.97, 2 * np.pi * fc / SR
        src = lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], src)
    env = np.zeros(n)
    rng = np.random.default_rng(seed)
    for start in np.sort(rng.uniform(0.1, seconds - 0.5, bursts)):
        a, b = int(start * SR), int((start + rng.uniform(0.25, 0.4)) * SR)
        env[a:b] = np.hanning(b - a)
    x = src * env
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def stereo(seconds: float = 3.0) -> np.ndarray:
    return np.stack([voiced(120.0, seconds, seed=1), voiced(230.0, seconds, seed=2)])


def cfg(**sections) -> AcousticsConfig:
    return AcousticsConfig.model_validate({"views": 1, "room": FAST_ROOM, **sections})


def test_same_seed_same_bytes_and_the_model_channel_untouched():
    x, c = stereo(), cfg(room={**FAST_ROOM, "prob": 1.0}, echo={"prob": 1.0}, noise={"prob": 1.0},
                         mic={"codec_prob": 1.0, "band_prob": 1.0})
    a, pa = augment_view(x, 1, c, np.random.default_rng(7))
    b, pb = augment_view(x, 1, c, np.random.default_rng(7))
    assert a.tobytes() == b.tobytes() and pa == pb
    assert np.array_equal(a[0], x[0]) and not np.allclose(a[1], x[1])
    other, _ = augment_view(x, 1, c, np.random.default_rng(8))
    assert not np.array_equal(other[1], a[1])
    # the user may be channel 0 (a trainer's other direction): then channel 1 stays
    flipped, _ = augment_view(x, 0, c, np.random.default_rng(7))
    assert np.array_equal(flipped[1], x[1]) and not np.allclose(flipped[0], x[0])


def test_drawn_parameters_round_trip_through_json():
    x, c = stereo(), cfg(room={**FAST_ROOM, "prob": 1.0}, echo={"prob": 1.0}, noise={"prob": 1.0}, mic={"codec_prob": 1.0})
    _, p = augment_view(x, 1, c, np.random.default_rng(3))
    assert p.voice and p.room and p.echo and p.noise and p.mic and p.mic.codec_kbps
    assert ViewParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_switching_one_effect_off_keeps_the_other_draws():
    x = stereo()
    full = cfg(echo={"prob": 1.0}, noise={"prob": 1.0})
    _, p = augment_view(x, 1, full, np.random.default_rng(5))
    _, q = augment_view(x, 1, cfg(echo={"prob": 1.0}, noise={"prob": 1.0}, voice={"prob": 0.0}), np.random.default_rng(5))
    assert p.voice is not None and q.voice is None and (q.room, q.echo, q.noise) == (p.room, p.echo, p.noise)
    # the codec's bitrate is measured on the audio, which differs; every drawn value is the same
    assert replace(q.mic, codec_kbps=None) == replace(p.mic, codec_kbps=None)


@pytest.mark.parametrize("kind", ["colored", "babble"])
def test_recorded_snr_is_the_snr_of_the_audio(kind):
    x = stereo()
    sources = Sources(babble=tuple((f"talker{i}", voiced(150.0 + 30 * i, 3.0, seed=10 + i)) for i in range(4)))
    c = cfg(noise={"prob": 1.0, "kinds": {kind: 1.0}})
    for seed in range(3):
        y, p = augment_view(x, 1, c, np.random.default_rng(seed), sources, only=("noise",))
        assert p.noise.kind == kind
        noise = y[1] - x[1]
        snr = 10 * np.log10(active_power(x[1]) / np.mean(noise.astype(np.float64) ** 2))
        assert abs(snr - p.noise.snr_db) < 0.1


def test_echo_arrives_with_the_recorded_delay():
    x = stereo()
    for seed in range(3):
        y, p = augment_view(x, 1, cfg(echo={"prob": 1.0, "reverb_prob": 0.0}), np.random.default_rng(seed), only=("echo",))
        leak = y[1] - x[1]
        c = correlate(leak, x[0], mode="full", method="fft")
        lag_ms = (np.argmax(c) - (len(x[0]) - 1)) / SR * 1000
        assert abs(lag_ms - p.echo.delay_ms) < 1.0


def test_echo_of_silence_is_silence_and_a_delay_past_the_end_is_nothing():
    draw = EchoDraw(delay_ms=5000, gain_db=-10, highpass_hz=300, lowpass_hz=5000, reverberant=False)
    assert not echo_signal(voiced(120, 1.0), draw).any()


@pytest.mark.parametrize("rate", [12000, 16000, 24000])
def test_opus_round_trip_is_aligned_and_reports_its_bitrate(rate):
    x = voiced(180.0, 2.0, bursts=5)
    y, kbps = opus_round_trip(x, rate)
    assert len(y) == len(x)
    c = correlate(y, x, mode="full", method="fft")
    assert abs(np.argmax(c) - (len(x) - 1)) <= 3  # 0.125 ms: the codec reshapes phase, not timing
    assert 5 < kbps < 64


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_median_f0_of_a_harmonic_voice(f0):
    assert abs(median_f0(voiced(f0, 2.0)) - f0) < 0.03 * f0


def test_voice_change_reaches_its_target_and_keeps_timing():
    x = voiced(230.0, 2.5, bursts=5)
    rng = np.random.default_rng(0)
    for male in (True, False):
        vc = VoiceWarpConfig(male_share=1.0 if male else 0.0)
        d = draw_voice(rng, vc, median_f0(x))
        y = change_voice(x, d)
        assert len(y) == len(x) and d.target_sex == ("male" if male else "female")
        assert abs(median_f0(y) - d.target_f0_hz) < 0.08 * d.target_f0_hz
        # timing: the envelopes line up within 10 ms
        env = [np.convolve(np.abs(s), np.ones(240) / 240, "same")[::24] for s in (x, y)]
        lag = np.argmax(correlate(env[1], env[0], mode="full")) - (len(env[0]) - 1)
        assert abs(lag) <= 10
    assert draw_voice(rng, VoiceWarpConfig(male_share=1.0), 230.0).formant_ratio < 0.95  # a woman made a man: longer tract


def test_simulated_rooms_are_a_seeded_bank_with_their_measured_rt60():
    room = RoomConfig(**FAST_ROOM)
    a = simulated_room(0, 1, room.model_dump_json())
    simulated_room.cache_clear()
    b = simulated_room(0, 1, room.model_dump_json())
    assert np.array_equal(a.h, b.h) and a.draw == b.draw
    assert a.draw.rt60_s == pytest.approx(rt60(a.h), abs=1e-3) and 0.05 < a.draw.rt60_s < 0.6
    assert np.argmax(np.abs(a.h)) < 50  # direct path first: the user's words keep their timings
    x = voiced(150.0, 1.0)
    assert len(reverberate(x, a.h)) == len(x)


def test_a_view_never_exceeds_full_scale():
    x = stereo() * 3  # a hot input
    c = cfg(mic={"gain_db": (10.0, 20.0), "clip_prob": 1.0})
    y, p = augment_view(x, 1, c, np.random.default_rng(0))
    assert np.abs(y[1]).max() <= 1.0 and p.mic.clip_drive_db is not None and p.mic.gain_db < 10.0
