"""The model's own voice leaking into the user's microphone: a loudspeaker (band-limited), a
playback-to-capture delay, an attenuation, and sometimes the room it crosses on the way.

The loudspeaker's band filter runs forwards and backwards (zero phase), so the leak arrives exactly
``delay_ms`` late: the delay a record claims is the delay in the audio.
"""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.acoustics.params import EchoDraw
from jmoshi_augment.augment.acoustics.rooms import reverberate
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import EchoConfig


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_echo(rng: np.random.Generator, cfg: EchoConfig, *, room_available: bool) -> EchoDraw:
    delay = float(rng.uniform(*cfg.delay_ms))
    gain = float(rng.uniform(*cfg.gain_db))
    hp = _log_uniform(rng, *cfg.highpass_hz)
    lp = _log_uniform(rng, *cfg.lowpass_hz)
    reverberant = bool(rng.random() < cfg.reverb_prob) and room_available
    return EchoDraw(round(delay, 3), round(gain, 3), round(hp, 1), round(lp, 1), reverberant)


def echo_signal(model: np.ndarray, draw: EchoDraw, h: np.ndarray | None = None) -> np.ndarray:
    """The leak of ``model`` (the model's channel) as the user's microphone picks it up."""
    from scipy.signal import butter, sosfiltfilt

    nyquist = SAMPLE_RATE / 2
    sos = butter(2, [draw.highpass_hz, min(draw.lowpass_hz, 0.95 * nyquist)], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    leak = sosfiltfilt(sos, model.astype(np.float64)) * 10 ** (draw.gain_db / 20)
    if draw.reverberant and h is not None:
        leak = reverberate(leak.astype(np.float32), h)
    shift = int(round(draw.delay_ms * SAMPLE_RATE / 1000))
    out = np.zeros(len(model), dtype=np.float32)
    if shift < len(model):
        out[shift:] = leak[: len(model) - shift]
    return out
