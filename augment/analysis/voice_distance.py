"""How different two voices sound: median pitch and average timbre of a stretch of speech.

Used to check that a dialogue's two speakers are told apart (the distance between its channels
must be well above the distance between two halves of one channel) and that voices spread across
a run. Pitch: the median F0 of voiced 40 ms frames (normalised autocorrelation, 70-500 Hz), in
semitones re 100 Hz. Timbre: the mean of MFCC 1-12 over loud frames (mel filterbank + DCT of the
log energies, the usual speaker-similarity baseline); coefficient 0 (loudness) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import dct

FRAME_S, HOP_S = 0.04, 0.01
F0_MIN, F0_MAX = 70.0, 500.0
VOICED_CORR = 0.6  # normalised autocorrelation peak that counts a frame as voiced
LOUD_DB = -30.0  # frames within this of the loudest carry the timbre average
N_MELS, N_MFCC = 40, 13


@dataclass(frozen=True)
class VoiceProfile:
    pitch: float  # median F0, semitones re 100 Hz (nan: nothing voiced)
    timbre: np.ndarray  # mean MFCC 1..12

    def pitch_distance(self, other: "VoiceProfile") -> float:
        return abs(self.pitch - other.pitch)

    def timbre_distance(self, other: "VoiceProfile") -> float:
        return float(np.linalg.norm(self.timbre - other.timbre))


def _frames(audio: np.ndarray, sr: int) -> np.ndarray:
    win, hop = int(FRAME_S * sr), int(HOP_S * sr)
    if len(audio) < win:
        audio = np.pad(audio, (0, win - len(audio)))
    n = 1 + (len(audio) - win) // hop
    return np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), win)[::hop][:n]


@lru_cache(maxsize=4)
def _mel_bank(sr: int, n_fft: int) -> np.ndarray:
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(np.array(0.0)), mel(np.array(sr / 2)), N_MELS + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    bank = np.zeros((N_MELS, len(freqs)))
    for m in range(N_MELS):
        lo, mid, hi = edges[m : m + 3]
        bank[m] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


def voice_profile(audio: np.ndarray, sr: int) -> VoiceProfile:
    frames = _frames(np.asarray(audio), sr)
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = (frames ** 2).mean(axis=1)
    loud = energy > energy.max() * 10 ** (LOUD_DB / 10) if energy.max() > 0 else np.zeros(len(frames), bool)
    windowed = frames * np.hanning(frames.shape[1])
    n_fft = 1 << (frames.shape[1] - 1).bit_length()
    spec = np.abs(np.fft.rfft(windowed, n=2 * n_fft, axis=1)) ** 2
    # pitch: autocorrelation via the power spectrum (Wiener-Khinchin), per loud frame
    ac = np.fft.irfft(spec, axis=1)[:, : frames.shape[1]]
    lag_lo, lag_hi = int(sr / F0_MAX), int(sr / F0_MIN)
    norm = ac[:, :1] + 1e-12
    seg = ac[:, lag_lo:lag_hi] / norm
    best = seg.argmax(axis=1)
    voiced = loud & (seg.max(axis=1) > VOICED_CORR)
    f0 = sr / (best[voiced] + lag_lo)
    pitch = float(np.median(12 * np.log2(f0 / 100.0))) if f0.size else float("nan")
    # timbre
    power = np.abs(np.fft.rfft(windowed, n=n_fft, axis=1)) ** 2
    mel = np.log(power[loud] @ _mel_bank(sr, n_fft).T + 1e-10) if loud.any() else np.zeros((1, N_MELS))
    mfcc = dct(mel, type=2, norm="ortho", axis=1)[:, 1:N_MFCC]
    return VoiceProfile(pitch=pitch, timbre=mfcc.mean(axis=0))


__all__ = ["VoiceProfile", "voice_profile"]
