"""Room impulse responses: simulated shoebox rooms (pyroomacoustics, image source method) or the
user's measured ones, and their reverberation time.

Why a bank: simulating one room costs 0.05-0.3 s of CPU, more than everything else a view does,
so a run draws from ``room.bank_size`` rooms, each simulated once per process on first use and
seeded by (recipe seed, index): which process simulates it does not change it.

Every response is cut to start at its direct path (the user's words keep their timings, an echo
its delay) and scaled to a direct-path peak of 1 (reverberation adds the room's energy on top of
the speech level the mixer set).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.acoustics.folders import read_mono
from jmoshi_augment.augment.acoustics.params import RoomDraw
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.recipe_acoustics import RoomConfig

SOUND_SPEED = 343.0  # m/s, air at 20 C
_WALL_MARGIN = 0.5  # m: talker and microphone stay this far from walls (nobody talks into a wall)


@dataclass(frozen=True)
class Rir:
    h: np.ndarray  # float32 impulse response at SAMPLE_RATE, direct path first
    draw: RoomDraw


def rt60(h: np.ndarray) -> float:
    """Reverberation time from the Schroeder decay of ``h`` (pyroomacoustics' measure, -5 to -25 dB
    extrapolated to 60 dB: the T20 that measured rooms are usually quoted with)."""
    import pyroomacoustics as pra

    return float(pra.experimental.measure_rt60(np.asarray(h, dtype=np.float64), fs=SAMPLE_RATE, decay_db=20))


def _direct_first(h: np.ndarray) -> np.ndarray:
    """Cut what precedes the direct path (its fractional-delay filter's leading half kept) and scale
    the direct path's peak to 1."""
    import pyroomacoustics as pra

    half = pra.constants.get("frac_delay_length") // 2
    peak = int(np.argmax(np.abs(h)))
    h = np.asarray(h[max(0, peak - half):], dtype=np.float32)
    return h / np.float32(np.abs(h).max())


def _place(rng: np.random.Generator, dims: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A microphone at desk height and a talker ``distance`` away at mouth height, both inside the
    room's margins; the distance shrinks when the room is too small for it."""
    lo, hi = np.full(3, _WALL_MARGIN), dims - _WALL_MARGIN
    mic = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), rng.uniform(0.7, min(1.3, hi[2]))])
    for _ in range(32):
        angle = rng.uniform(0, 2 * np.pi)
        dz = rng.uniform(0.0, 0.4)  # mouth above the microphone
        horizontal = np.sqrt(max(distance**2 - dz**2, 1e-4))
        src = mic + np.array([horizontal * np.cos(angle), horizontal * np.sin(angle), dz])
        if np.all(src > lo) and np.all(src < hi):
            return mic, src, float(np.linalg.norm(src - mic))
        distance *= 0.9
    src = np.clip(mic + np.array([0.2, 0.0, 0.1]), lo, hi)
    return mic, src, float(np.linalg.norm(src - mic))


@lru_cache(maxsize=1024)
def simulated_room(seed: int, index: int, cfg_json: str) -> Rir:
    """Room ``index`` of the bank of ``seed`` (``cfg_json``: the :class:`RoomConfig`, as JSON)."""
    import pyroomacoustics as pra

    cfg = RoomConfig.model_validate_json(cfg_json)
    rng = np.random.default_rng([seed, index, 0x2007])
    dims = np.array([rng.uniform(*cfg.length), rng.uniform(*cfg.width), rng.uniform(*cfg.height)])
    target = float(rng.uniform(*cfg.rt60))
    mic, src, distance = _place(rng, dims, float(rng.uniform(*cfg.distance)))
    try:
        absorption, max_order = pra.inverse_sabine(target, dims)
    except ValueError:  # the room is too large for so short a time: as absorbent as a room gets
        absorption, max_order = 0.99, 3
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    h = _direct_first(room.rir[0][0])
    draw = RoomDraw(source="simulated", rt60_s=round(rt60(h), 4), bank_index=index, rt60_target_s=round(target, 4),
                    dims_m=tuple(round(float(d), 3) for d in dims), distance_m=round(distance, 3))
    return Rir(h, draw)


@lru_cache(maxsize=256)
def measured_room(root: str, name: str) -> Rir:
    h = _direct_first(read_mono(str(Path(root) / name)))
    return Rir(h, RoomDraw(source="file", rt60_s=round(rt60(h), 4), file=name))


def draw_room(rng: np.random.Generator, cfg: RoomConfig, seed: int, rir_dir: str | None, rir_files: tuple[str, ...]) -> Rir:
    """A measured response when the recipe gives a folder, else one of the simulated bank."""
    if rir_dir and rir_files:
        return measured_room(rir_dir, rir_files[int(rng.integers(len(rir_files)))])
    return simulated_room(seed, int(rng.integers(cfg.bank_size)), cfg.model_dump_json())


def reverberate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` through the room, same length (the tail past the end is cut, as a recording would be)."""
    from scipy.signal import oaconvolve

    return oaconvolve(x, h)[: len(x)].astype(np.float32)
