"""Where speech resumes after a pause, from the audio alone: the reference that a TTS backend's
predicted word starts are checked against (tests and bench/RESULTS.md)."""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.speech.mix import MIN_SILENCE, sound_stretches

WINDOW_S, HOP_S = 0.02, 0.005
LEVEL_DB = -35.0  # re the loudest window: below it is pause or closure (as the OpenJTalk test uses)


def energy_onsets(audio: np.ndarray, sr: int, pause: float = 0.1) -> list[float]:
    """Times (s, window centres) where a 20 ms window rises above ``LEVEL_DB`` after at least
    ``pause`` seconds below it; the first sound of the clip counts as following silence."""
    hop, win = int(HOP_S * sr), int(WINDOW_S * sr)
    n = (len(audio) - win) // hop
    if n <= 0:
        return []
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, dtype=np.float64), win)[::hop][:n]
    power = (frames ** 2).mean(axis=1)
    loud = power > power.max() * 10 ** (LEVEL_DB / 10)
    out, quiet = [], 10 ** 9
    for i, is_loud in enumerate(loud):
        if is_loud and quiet * hop / sr >= pause:
            out.append((i * hop + win / 2) / sr)
        quiet = 0 if is_loud else quiet + 1
    return out


def sound_edge_peaks(x: np.ndarray, sr: int, min_silence: float = MIN_SILENCE, edge: float = 0.001) -> np.ndarray:
    """Peak |x| over the first and the last ``edge`` seconds of each stretch of sound of one
    channel, a stretch being what lies between runs of digital silence (exact zeros) of at least
    ``min_silence`` (:func:`~jmoshi_augment.augment.speech.mix.sound_stretches`). A step from
    silence to sound (a click) shows as a high peak; faded edges stay near zero."""
    x = np.asarray(x)
    starts, ends = sound_stretches(x, int(min_silence * sr))
    n = max(int(edge * sr), 1)
    return np.asarray([max(np.abs(x[a : a + n]).max(), np.abs(x[max(b - n, a) : b]).max()) for a, b in zip(starts, ends)])


__all__ = ["energy_onsets", "sound_edge_peaks"]
