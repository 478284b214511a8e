"""Who the user is: move the clean user channel to a drawn median pitch and vocal-tract length.

A voice differs from another by its pitch *and* its formants (vocal-tract length); a pitch shift
alone makes the same person higher or lower. Two steps change both, independently, at the same
duration (word timings stay valid):

1. resampling scales every frequency, formants and pitch, by the formant ratio (a longer or
   shorter vocal tract) and the duration by its inverse;
2. Rubber Band (pedalboard's ``time_stretch``, formant-preserving) restores the duration and moves
   the pitch the rest of the way to the target, keeping the envelope step 1 made.

Only stretches where the user speaks go through Rubber Band (with margins), the costly part; the
silences between them are left as they are.

The source pitch comes from a small autocorrelation tracker on 8 kHz frames: library trackers
(pYIN, WORLD's DIO) cost more CPU than this whole stage's budget, and a median over a dialogue's
voiced frames needs no more precision than a few Hz.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from jmoshi_augment.augment.acoustics.params import VoiceDraw
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import VoiceWarpConfig

SEX_BOUNDARY_HZ = 165.0  # below: male (Titze 1994's ranges meet near here)
_TRACK_RATE = 8000
_F0_RANGE = (60.0, 400.0)
_VOICED_CORR = 0.5  # normalised autocorrelation peak a voiced frame reaches
_MIN_VOICED = 10  # frames (0.2 s) for a median worth trusting
_MARGIN_S = 0.1  # speech island margin: Rubber Band's window needs context on both sides
_GAP_S = 0.3  # islands closer than this are processed together
_RESAMPLE_DENOMINATOR = 64  # formant step within 0.1 % of the drawn one
_SHIFT_DENOMINATOR = 12  # pitch step: neighbours at most ~8 % apart, all fast in Rubber Band


def median_f0(x: np.ndarray) -> float | None:
    """Median f0 in Hz over the voiced 40 ms frames of ``x``; None if under 0.2 s is voiced."""
    from scipy.signal import resample_poly

    y = resample_poly(x.astype(np.float64), _TRACK_RATE, SAMPLE_RATE)
    win, hop = _TRACK_RATE // 25, _TRACK_RATE // 50
    if len(y) < win:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(y, win)[::hop]
    energy = np.sum(frames**2, axis=1)
    frames = frames[energy > energy.max() * 10 ** -3.5] if energy.max() > 0 else frames[:0]
    if len(frames) < _MIN_VOICED:
        return None
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(win)
    spec = np.fft.rfft(frames, 2 * win, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
    ac /= np.maximum(ac[:, :1], 1e-12)
    ac /= 1 - np.arange(win) / win  # undo the window's taper of long lags
    lo, hi = int(_TRACK_RATE / _F0_RANGE[1]), int(_TRACK_RATE / _F0_RANGE[0])
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(ac)), lag]
    voiced = peak > _VOICED_CORR
    if voiced.sum() < _MIN_VOICED:
        return None
    # parabolic interpolation between lags: at 8 kHz one lag step is 4 % of a 320 Hz period
    rows = np.flatnonzero(voiced)
    lag = lag[rows]
    a, b, c = (ac[rows, lag + d] for d in (-1, 0, 1))
    denom = a - 2 * b + c
    frac = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    return float(np.median(_TRACK_RATE / (lag + np.clip(frac, -0.5, 0.5))))


def draw_voice(rng: np.random.Generator, cfg: VoiceWarpConfig, source_f0: float) -> VoiceDraw:
    """A target sex, median f0 and vocal-tract scaling, realised as the two exact steps
    :func:`change_voice` applies (so the record states what the audio got, not what was asked)."""
    male = bool(rng.random() < cfg.male_share)
    lo, hi = cfg.male_f0_hz if male else cfg.female_f0_hz
    target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    jitter = float(rng.uniform(1 - cfg.formant_jitter, 1 + cfg.formant_jitter))
    source_male = source_f0 < SEX_BOUNDARY_HZ
    sex = 1.0 if male == source_male else (cfg.sex_formant_ratio if male else 1 / cfg.sex_formant_ratio)
    resample = Fraction(1 / (sex * jitter)).limit_denominator(_RESAMPLE_DENOMINATOR)  # UP/DOWN samples
    formant = 1 / resample
    # Rubber Band's cost depends on its resampling ratio: simple fractions run at ~170x real time
    # (measured, bench/RESULTS.md), irrational semitone ratios down to ~20x.
    shift = Fraction(target / source_f0 / formant).limit_denominator(_SHIFT_DENOMINATOR)
    pitch = float(formant * shift)
    resonances = tuple((round(float(np.exp(rng.uniform(np.log(250.0), np.log(5000.0)))), 1),
                        round(float(rng.uniform(-cfg.resonance_gain_db, cfg.resonance_gain_db)), 2),
                        round(float(rng.uniform(0.7, 2.5)), 2)) for _ in range(cfg.resonances))
    return VoiceDraw(round(source_f0, 2), "male" if male else "female", round(source_f0 * pitch, 2),
                     round(pitch, 4), round(float(formant), 4), f"{resample.numerator}/{resample.denominator}",
                     f"{shift.numerator}/{shift.denominator}", resonances)


def _islands(x: np.ndarray) -> list[tuple[int, int]]:
    """Sample spans where ``x`` is not silent (20 ms frames above -60 dB of its loudest), with margins."""
    frame = SAMPLE_RATE // 50
    n = len(x) // frame
    if n == 0:
        return [(0, len(x))] if len(x) else []
    p = np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    active = np.flatnonzero(p > p.max() * 1e-6) if p.max() > 0 else np.zeros(0, dtype=int)
    spans: list[list[int]] = []
    margin, gap = int(_MARGIN_S * SAMPLE_RATE), int(_GAP_S * SAMPLE_RATE)
    for i in active:
        a, b = max(0, i * frame - margin), min(len(x), (i + 1) * frame + margin)
        if spans and a <= spans[-1][1] + gap:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    return [(a, b) for a, b in spans]


def _warp(x: np.ndarray, resample: Fraction, shift: Fraction) -> np.ndarray:
    import pedalboard
    from scipy.signal import resample_poly

    y = resample_poly(x.astype(np.float64), resample.numerator, resample.denominator).astype(np.float32)
    if shift == 1 and len(y) == len(x):
        return y
    z = pedalboard.time_stretch(y[None], SAMPLE_RATE, stretch_factor=len(y) / len(x),
                                pitch_shift_in_semitones=12 * np.log2(float(shift)),
                                high_quality=False, preserve_formants=True)[0]
    return np.pad(z, (0, max(0, len(x) - len(z))))[: len(x)]


def change_voice(x: np.ndarray, draw: VoiceDraw) -> np.ndarray:
    """``x`` spoken with the drawn pitch and vocal tract, same length, silences untouched."""
    out = x.astype(np.float32).copy()
    resample, shift = Fraction(draw.resample_step), Fraction(draw.shift_step)
    for a, b in _islands(x):
        out[a:b] = _warp(x[a:b], resample, shift)
    if draw.resonances:  # the vocal tract's shape: peak filters (formant 250-5000 Hz region, Q 0.7-2.5)
        import pedalboard

        board = pedalboard.Pedalboard([pedalboard.PeakFilter(cutoff_frequency_hz=f, gain_db=g, q=q) for f, g, q in draw.resonances])
        out = board(out, SAMPLE_RATE)
    return out
