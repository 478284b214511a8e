"""The user's folders of measured impulse responses and noise recordings: listed, checked and read.

``recipe check`` calls :func:`folder_problems` so that a folder that is empty, unreadable, of the
wrong sample rate or too short is one line with its path before anything is written; the stage
itself reads files through :func:`read_mono` lazily, one at a time, when a view draws them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError

AUDIO_SUFFIXES = (".wav", ".flac")
# An impulse response shorter than 50 ms holds no reverberation to speak of; a noise clip shorter
# than 1 s loops audibly within a single sentence.
MIN_SECONDS = {"rir_dir": 0.05, "noise_dir": 1.0}


def list_audio(folder: str | Path) -> tuple[str, ...]:
    """Audio files under ``folder`` (recursively), relative and sorted: the draw does not depend on
    the order the file system lists them in."""
    root = Path(folder)
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()))


def folder_problems(folder: str | Path, key: str) -> list[JmoshiError]:
    """One line per problem of ``folder`` as an ``acoustics.rir_dir`` / ``acoustics.noise_dir``."""
    import soundfile as sf

    root = Path(folder)
    if not root.is_dir():
        return [JmoshiError("folder not found", path=root, key=f"acoustics.{key}")]
    try:
        files = list_audio(root)
    except OSError as e:
        return [JmoshiError(f"folder cannot be listed ({e.strerror})", path=root, key=f"acoustics.{key}")]
    if not files:
        return [JmoshiError(f"no {'/'.join(AUDIO_SUFFIXES)} files in the folder", path=root, key=f"acoustics.{key}")]
    problems = []
    for name in files:
        path = root / name
        try:
            info = sf.info(str(path))
        except Exception as e:  # soundfile raises its own LibsndfileError (a RuntimeError) or OSError
            problems.append(JmoshiError(f"not a readable audio file ({type(e).__name__})", path=path, key=f"acoustics.{key}"))
            continue
        if info.samplerate != SAMPLE_RATE:
            problems.append(JmoshiError(f"sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz (resample the folder first)",
                                        path=path, key=f"acoustics.{key}"))
        elif info.frames / info.samplerate < MIN_SECONDS[key]:
            problems.append(JmoshiError(f"{info.frames / info.samplerate:.3f} s long, expected at least {MIN_SECONDS[key]} s",
                                        path=path, key=f"acoustics.{key}"))
    return problems


@lru_cache(maxsize=64)
def read_mono(path: str) -> np.ndarray:
    """The first channel as float32 (files drawn again are read once per process)."""
    import soundfile as sf

    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        raise JmoshiError(f"not a readable audio file ({type(e).__name__})", path=path) from None
    if rate != SAMPLE_RATE:
        raise JmoshiError(f"sample rate {rate} Hz, expected {SAMPLE_RATE} Hz", path=path)
    return np.ascontiguousarray(audio[:, 0])
