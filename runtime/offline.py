"""Offline full-duplex run: feed a wav to the model frame by frame, as a live user would.

The output wav has the input's length and two channels in the recording convention (channel 0 = the
model, channel 1 = the user's input, resampled to 24 kHz), sample-aligned the way the model sees
them, so ``jmoshi-augment stats`` can analyse it like any dialogue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.engine import BatchStepper, SamplingOptions
from jmoshi_augment.runtime.protocol import Detokenizer

if TYPE_CHECKING:
    from jmoshi_augment.runtime.models import LoadedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineResult:
    stereo: np.ndarray  # float32 [T, 2]: model, user
    text: str  # the model's text stream, detokenised
    words: list[tuple[float, str]]  # (seconds from the start, piece) for every text token
    real_time_factor: float  # compute seconds / audio seconds


def read_input(path: str | Path, sample_rate: int) -> np.ndarray:
    """Any file libsndfile reads → mono float32 at ``sample_rate``."""
    import soundfile

    try:
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise JmoshiError(f"cannot read audio: {e}", path=path) from None
    if data.shape[0] == 0:
        raise JmoshiError("the input audio is empty", path=path)
    mono = data.mean(axis=1)
    if sr != sample_rate:
        # Zero-phase polyphase resampling: sphn.resample delays the signal (768 samples at 16→24 kHz)
        # and pads the tail, which would shift the user channel against the input file.
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def run_offline(model: "LoadedModel", pcm: np.ndarray, sampling: SamplingOptions = SamplingOptions()) -> OfflineResult:
    """Run one session over ``pcm`` (mono float32 at the model's sample rate)."""
    frame = model.frame_size
    n = -(-pcm.size // frame)
    padded = np.zeros(n * frame, dtype=np.float32)
    padded[: pcm.size] = pcm
    detok = Detokenizer(model.text_tokenizer)
    out = np.zeros(n * frame, dtype=np.float32)
    words: list[tuple[float, str]] = []
    compute = 0.0
    with BatchStepper(model, 1, sampling) as stepper:
        active = np.ones(1, dtype=bool)
        for i in range(n):
            result = stepper.step(padded[None, i * frame : (i + 1) * frame], active)
            compute += result.seconds
            out[i * frame : (i + 1) * frame] = result.pcm[0]
            piece = detok.push(int(result.text[0]))
            if piece:
                words.append((i * frame / model.sample_rate, piece))
    stereo = np.stack([out[: pcm.size], pcm], axis=1)
    rtf = compute / (pcm.size / model.sample_rate)
    logger.info("offline run: %.1f s of audio, real-time factor %.2f", pcm.size / model.sample_rate, rtf)
    return OfflineResult(stereo=stereo, text="".join(p for _, p in words), words=words, real_time_factor=rtf)


def write_output(path: str | Path, result: OfflineResult, sample_rate: int) -> None:
    """Stereo PCM_16 wav, written to a temp name and renamed."""
    import soundfile

    from jmoshi_augment.io import atomic_output

    with atomic_output(path, "wb") as f:
        soundfile.write(f, np.clip(result.stereo, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
