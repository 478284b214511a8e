"""Background noise at a drawn SNR: coloured (generated), babble (other dialogues' speech) or a
recording from the user's folder (MUSAN, DNS Challenge noise, ...).

SNR here is the user's *active* speech level over the noise's mean power, so that a dialogue where
the user mostly listens gets the same noise for the same SNR as one where the user talks a lot.
Active speech: 20 ms frames within 40 dB of the loudest frame (a simplified ITU-T P.56 level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from jmoshi_augment.augment.acoustics.folders import read_mono
from jmoshi_augment.augment.acoustics.params import NoiseDraw
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import NoiseConfig

FRAME = SAMPLE_RATE // 50  # 20 ms
ACTIVE_RANGE_DB = 40.0


def active_power(x: np.ndarray) -> float:
    """Mean power of the frames of ``x`` within 40 dB of its loudest frame (0.0 for silence)."""
    n = len(x) // FRAME * FRAME
    if n == 0:
        return 0.0
    p = np.mean(np.square(x[:n].reshape(-1, FRAME), dtype=np.float64), axis=1)
    top = p.max()
    if top <= 0:
        return 0.0
    return float(p[p >= top * 10 ** (-ACTIVE_RANGE_DB / 10)].mean())


def colored_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power Gaussian noise with power spectrum ~ 1/f^beta (shaped in the frequency domain,
    over a length FFTs are fast for, then cut to ``n``)."""
    from scipy import fft

    m = fft.next_fast_len(max(n, 2), real=True)
    spectrum = fft.rfft(rng.standard_normal(m, dtype=np.float32))
    f = np.fft.rfftfreq(m, 1 / SAMPLE_RATE).astype(np.float32)
    f[0] = f[1]
    y = fft.irfft(spectrum * f ** np.float32(-beta / 2), m)[:n]
    return (y / max(float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))), 1e-12)).astype(np.float32)


def _loop(x: np.ndarray, n: int, offset: int) -> np.ndarray:
    """``n`` samples of ``x`` from ``offset`` on, wrapping around (a short clip repeats)."""
    idx = (offset + np.arange(n)) % len(x)
    return x[idx]


def babble(talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Talkers, each at a random starting point and the same active level, summed; unit power."""
    out = np.zeros(n, dtype=np.float64)
    for t in talkers:
        piece = _loop(t, n, int(rng.integers(len(t))))
        p = active_power(piece)
        if p > 0:
            out += piece / np.sqrt(p)
    power = np.mean(out**2)
    return (out / np.sqrt(power)).astype(np.float32) if power > 0 else out.astype(np.float32)


def draw_noise(rng: np.random.Generator, cfg: NoiseConfig, n: int, *, babble_pool: Sequence[tuple[str, np.ndarray]] = (),
               noise_dir: str | None = None, noise_files: tuple[str, ...] = ()) -> tuple[np.ndarray, NoiseDraw]:
    """Unit-power noise of ``n`` samples and what was drawn (its SNR included, not yet applied)."""
    snr = float(rng.uniform(*cfg.snr_db))
    available = {"colored": True, "babble": len(babble_pool) > 0, "file": bool(noise_dir and noise_files)}
    kinds = sorted(k for k, w in cfg.kinds.items() if w > 0 and available[k])
    if not kinds:
        kinds = ["colored"]
    weights = np.array([cfg.kinds.get(k, 1.0) for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    if kind == "colored":
        beta = float(rng.uniform(*cfg.color_exponent))
        return colored_noise(n, beta, rng), NoiseDraw("colored", round(snr, 3), color_exponent=round(beta, 3))
    if kind == "babble":
        k = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
        picks = rng.choice(len(babble_pool), size=min(k, len(babble_pool)), replace=False)
        chosen = [babble_pool[int(i)] for i in sorted(picks)]
        return babble([a for _, a in chosen], n, rng), NoiseDraw("babble", round(snr, 3), talkers=tuple(name for name, _ in chosen))
    name = noise_files[int(rng.integers(len(noise_files)))]
    clip = read_mono(str(Path(noise_dir) / name))  # type: ignore[arg-type]
    offset = int(rng.integers(len(clip)))
    piece = _loop(clip, n, offset).astype(np.float64)
    power = np.mean(piece**2)
    piece = piece / np.sqrt(power) if power > 0 else piece
    return piece.astype(np.float32), NoiseDraw("file", round(snr, 3), file=name, offset_s=round(offset / SAMPLE_RATE, 3))


def add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float, *, reference: np.ndarray | None = None) -> np.ndarray:
    """``x`` plus unit-power ``noise`` scaled to ``snr_db`` below the active level of ``reference``
    (default ``x``: the user's speech, which may differ from ``x`` by an echo already added)."""
    level = active_power(x if reference is None else reference)
    if level <= 0:
        return x
    return (x + noise * np.float32(np.sqrt(level * 10 ** (-snr_db / 10)))).astype(np.float32)
