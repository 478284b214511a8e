"""Per-channel voice activity from frame energies: a double-threshold (hysteresis) detector.

Why energy and not a neural VAD: the channels we analyse are close-talk (synthetic, Mimi
resynthesised, or a chat session's two streams), so loudness separates speech from silence well,
and an energy detector is exact about onsets and offsets, runs at thousands of times real time and
needs no weights. The thresholds adapt to each channel's own noise floor and speech level, so the
same options work for clean TTS output (digital silence), Mimi's low-level hiss and real recordings.

The detector works on 10 ms frames of mean power (dB re full scale):

- ``floor`` = a low percentile of the channel's frame energies (the noise floor);
- ``level`` = a high percentile of the frames clearly above the floor (the speech level);
- a frame *may* be speech above ``off`` and *starts* speech above ``on`` (hysteresis), where
  ``on = max(floor + min_snr_db, level - dynamic_range_db)`` and ``off = on - hysteresis_db``
  (never closer than ``min_snr_db / 2`` to the floor);
- a run of frames above ``off`` is speech if one of its frames is above ``on`` and it lasts at
  least ``min_speech`` (clicks are not speech).

Energies can be computed from an array or streamed from a file block by block, so a long
recording never has to be in memory as samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jmoshi_augment.errors import JmoshiError

Seconds = float

_SILENCE_DB = -100.0  # energies are clamped here: digital silence is "very quiet", not -inf


@dataclass(frozen=True)
class VadOptions:
    frame: Seconds = 0.01  # analysis hop and window; onsets/offsets are exact to one frame
    floor_percentile: float = 5.0  # a channel is silent at least this share of the time
    level_percentile: float = 90.0  # of frames above floor + min_snr_db: the speech level
    min_snr_db: float = 12.0  # speech must start this far above the noise floor
    dynamic_range_db: float = 40.0  # speech quieter than level - this is not speech
    hysteresis_db: float = 6.0  # once started, speech continues down to on - this
    min_speech: Seconds = 0.05  # dGSLM drops speech blips < 50 ms (clicks); a backchannel うん lasts > 150 ms

    def __post_init__(self) -> None:
        if not 0 < self.frame <= 0.1:
            raise JmoshiError(f"frame must be in (0, 0.1] s, got {self.frame}", key="vad.frame")
        if not 0 <= self.floor_percentile < self.level_percentile <= 100:
            raise JmoshiError(
                "need 0 <= floor_percentile < level_percentile <= 100, "
                f"got {self.floor_percentile} and {self.level_percentile}",
                key="vad.floor_percentile",
            )
        for name in ("min_snr_db", "dynamic_range_db", "hysteresis_db", "min_speech"):
            if getattr(self, name) < 0:
                raise JmoshiError(f"{name} must not be negative", key=f"vad.{name}")


def frame_hop(sample_rate: int, options: VadOptions) -> int:
    """Samples per analysis frame (at least one)."""
    return max(1, int(round(sample_rate * options.frame)))


def frame_energies(audio: np.ndarray, sample_rate: int, options: VadOptions = VadOptions()) -> np.ndarray:
    """Mean power in dB per frame and channel: ``[C, N]`` samples → ``float32 [C, F]``.

    A trailing partial frame (shorter than one hop) is ignored.
    """
    hop = frame_hop(sample_rate, options)
    channels, n = audio.shape
    frames = n // hop
    x = np.ascontiguousarray(audio[:, : frames * hop], dtype=np.float32).reshape(channels, frames, hop)
    power = np.einsum("cfh,cfh->cf", x, x, dtype=np.float32) / np.float32(hop)
    return _to_db(power)


def file_energies(path: Path, options: VadOptions = VadOptions(), block_frames: int = 4096) -> tuple[np.ndarray, int, int]:
    """Stream a sound file and return ``(energies [C, F] dB, sample_rate, num_samples)``.

    Reads ``block_frames`` analysis frames at a time (about 40 s at the default hop), so memory
    stays proportional to the number of frames, not samples.
    """
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # libsndfile's errors name neither the path nor the cause clearly
        raise JmoshiError(f"cannot read audio: {e}", path=path) from e
    with f:
        hop = frame_hop(f.samplerate, options)
        # 16-bit files are read as int16 (4x less conversion work in libsndfile), others as float.
        pcm16 = f.subtype == "PCM_16"
        scale = np.float32(1.0 / (hop * (32768.0**2 if pcm16 else 1.0)))
        powers = []
        block = np.empty((block_frames * hop, f.channels), dtype=np.int16 if pcm16 else np.float32)
        while True:
            got = f.read(out=block)  # soundfile fills the array in its own dtype
            frames = len(got) // hop
            if frames:
                # De-interleave into [C, frames, hop] so the reduction runs over contiguous memory.
                x = got[: frames * hop].T.astype(np.float32, order="C").reshape(f.channels, frames, hop)
                powers.append(np.einsum("cfh,cfh->cf", x, x) * scale)
            if len(got) < len(block):
                break
        power = np.concatenate(powers, axis=1) if powers else np.zeros((f.channels, 0), np.float32)
        return _to_db(power), f.samplerate, f.frames


def _to_db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), _SILENCE_DB).astype(np.float32)


def thresholds(energy_db: np.ndarray, options: VadOptions = VadOptions()) -> tuple[float, float]:
    """``(on, off)`` thresholds in dB for one channel's frame energies."""
    if energy_db.size == 0:
        return np.inf, np.inf
    floor = float(np.percentile(energy_db, options.floor_percentile))
    candidates = energy_db[energy_db > floor + options.min_snr_db]
    level = float(np.percentile(candidates, options.level_percentile)) if candidates.size else floor
    on = max(floor + options.min_snr_db, level - options.dynamic_range_db)
    off = max(on - options.hysteresis_db, floor + options.min_snr_db / 2)
    return on, off


def activity_frames(energy_db: np.ndarray, options: VadOptions = VadOptions()) -> np.ndarray:
    """Speech runs of one channel as frame intervals ``int64 [K, 2]`` (start, end exclusive)."""
    on, off = thresholds(energy_db, options)
    runs = runs_of(energy_db > off)
    if len(runs) == 0:
        return runs
    above_on = np.concatenate([[0], np.cumsum(energy_db > on)])
    starts_speech = above_on[runs[:, 1]] > above_on[runs[:, 0]]
    min_frames = options.min_speech / options.frame - 1e-9
    long_enough = (runs[:, 1] - runs[:, 0]) >= min_frames
    return runs[starts_speech & long_enough]


def runs_of(mask: np.ndarray) -> np.ndarray:
    """Maximal runs of True in a boolean vector as ``int64 [K, 2]`` (start, end exclusive)."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges.reshape(-1, 2).astype(np.int64)


def bridge(intervals: np.ndarray, max_silence: float) -> np.ndarray:
    """Merge sorted intervals separated by less than ``max_silence`` (same unit as the intervals)."""
    if len(intervals) < 2:
        return intervals
    keep_break = (intervals[1:, 0] - intervals[:-1, 1]) >= max_silence
    starts = intervals[np.concatenate([[True], keep_break]), 0]
    ends = intervals[np.concatenate([keep_break, [True]]), 1]
    return np.stack([starts, ends], axis=1)


def detect_activity(
    audio: np.ndarray, sample_rate: int, options: VadOptions = VadOptions()
) -> list[np.ndarray]:
    """Voice activity per channel of ``audio [C, N]``: a list of ``float64 [K, 2]`` (start, end) in
    seconds, before any bridging of short silences (that is the inter-pausal-unit step)."""
    if audio.ndim != 2:
        raise JmoshiError(f"expected audio shaped [channels, samples], got shape {tuple(audio.shape)}")
    energy = frame_energies(audio, sample_rate, options)
    seconds_per_frame = frame_hop(sample_rate, options) / sample_rate
    return [activity_frames(e, options) * seconds_per_frame for e in energy]
