"""The capture chain after the room: microphone band, self-noise, an overdriven input now and then,
the level a browser's gain control leaves, and an Opus round trip (sphn, the codec our runtime's
server decodes the browser's audio with).

sphn's encoder has no bitrate setting: libopus chooses one from the sample rate it encodes at, so
the rate is what is drawn and the bitrate of the actual stream is measured and recorded.
"""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.acoustics.params import MicDraw
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import MicConfig

OPUS_LOOKAHEAD_S = 0.0065  # libopus's encoder delay (its pre-skip): measured 6.5 ms at 8-24 kHz
FULL_SCALE = 0.999  # the writers' PCM_16 limit, with a hair of margin


def band_limit(x: np.ndarray, highpass_hz: float, lowpass_hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [highpass_hz, min(lowpass_hz, 0.95 * SAMPLE_RATE / 2)], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, x.astype(np.float64)).astype(np.float32)


def opus_round_trip(x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """``x`` (24 kHz) encoded and decoded by Opus at ``rate``; returns the audio, realigned to ``x``
    (the encoder's lookahead removed) and the stream's bitrate in kbps."""
    import sphn
    from scipy.signal import resample_poly

    delay = int(round(OPUS_LOOKAHEAD_S * rate))
    frame = rate // 50  # 20 ms, the browser's frame
    pcm = resample_poly(x, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else x.astype(np.float32)
    n = len(pcm)
    pcm = np.concatenate([pcm, np.zeros(delay + 2 * frame - (n + delay) % frame, dtype=np.float32)])
    writer, reader = sphn.OpusStreamWriter(rate), sphn.OpusStreamReader(rate)
    out, size = [], 0
    for i in range(0, len(pcm), frame):
        page = writer.append_pcm(pcm[i:i + frame])
        size += len(page)
        if page:
            out.append(reader.append_bytes(page))
    y = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
    y = y[delay:delay + n]
    y = np.pad(y, (0, n - len(y)))
    if rate != SAMPLE_RATE:
        y = resample_poly(y, SAMPLE_RATE, rate)
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return y.astype(np.float32), size * 8 / 1000 / (len(x) / SAMPLE_RATE)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def capture(x: np.ndarray, cfg: MicConfig, rng: np.random.Generator) -> tuple[np.ndarray, MicDraw]:
    """Band, self-noise, clipping, gain, codec: every value drawn first, in a fixed order, so that
    turning one effect off in the recipe does not change the others' draws."""
    band = rng.random() < cfg.band_prob
    hp, lp = _log_uniform(rng, *cfg.highpass_hz), _log_uniform(rng, *cfg.lowpass_hz)
    floor = float(rng.uniform(*cfg.floor_dbfs))
    clip = rng.random() < cfg.clip_prob
    drive = float(rng.uniform(*cfg.clip_drive_db))
    gain = float(rng.uniform(*cfg.gain_db))
    codec = rng.random() < cfg.codec_prob
    rate = int(cfg.codec_rates[int(rng.integers(len(cfg.codec_rates)))])
    # a microphone's self-noise is mostly thermal, i.e. white: no spectral shaping needed
    floor_noise = rng.standard_normal(len(x), dtype=np.float32) * np.float32(10 ** (floor / 20))

    y = band_limit(x, hp, lp) if band else x.astype(np.float32)
    y = y + floor_noise
    peak = float(np.abs(y).max()) if len(y) else 0.0
    if clip and peak > 0:
        y = np.clip(y * np.float32(10 ** (drive / 20) / peak), -1.0, 1.0)
        peak = float(np.abs(y).max())
    # the drawn gain, less what would push the peak past full scale (the writers' PCM_16 would wrap)
    applied = min(gain, 20 * np.log10(FULL_SCALE / peak)) if peak > 0 else gain
    y = (y * np.float32(10 ** (applied / 20))).astype(np.float32)
    kbps = None
    if codec:
        y, kbps = opus_round_trip(y, rate)
        y = np.clip(y, -FULL_SCALE, FULL_SCALE)  # the decoder may overshoot a full-scale input
    draw = MicDraw(gain_db=round(float(applied), 3), floor_dbfs=round(floor, 3),
                   highpass_hz=round(hp, 1) if band else None, lowpass_hz=round(lp, 1) if band else None,
                   clip_drive_db=round(drive, 3) if clip else None,
                   codec_rate=rate if codec else None, codec_kbps=round(kbps, 2) if kbps is not None else None)
    return y, draw
