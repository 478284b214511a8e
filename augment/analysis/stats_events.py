"""Turn-taking statistics of stereo dialogue audio: the numbers the J-Moshi paper family compares
models with human dialogue on, for our synthetic data, real recordings and chat sessions.

Events follow the dGSLM definitions (Nguyen et al. 2023, TACL 11:250-266), as described for users in
``docs/turn-taking.md`` ("Events"), on per-channel voice activity (:mod:`.vad`, blips < 50 ms dropped):

- **IPU** (inter-pausal unit): one channel's speech whose inner silences are < 200 ms;
- **pause**: silence between two IPUs of the same speaker with no speech of the other in between;
- **gap**: silence between an IPU of one speaker and the next IPU of the other;
- **overlap**: a maximal stretch where both channels speak. It is *within* (backchannel-like) when
  the shorter of the two IPUs involved lies entirely inside the other's IPU and lasts < 1 s,
  otherwise *between* (an overlapped speaker change);
- silences at the file edges are neither pauses nor gaps;
- **overlapped share of speaker changes** = between / (gaps + between);
- **FTO** (floor-transfer offset) per speaker change (gap or between-overlap), chronological: the
  gap duration, or minus the overlap duration.

One further view, *not* a dGSLM quantity and named apart: **backchannel IPUs** — an IPU ≤ 1 s lying
at least half inside the partner's speech, after which the partner speaks again before its speaker
does. It also counts backchannels that straddle a partner's pause (which dGSLM counts as *between*).

Everything is vectorised over 10 ms frames. Files are read in :mod:`.stats_io`; pooling and the
human reference are in :mod:`.stats`, which re-exports this module's public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jmoshi_augment.augment.analysis.vad import (
    VadOptions,
    activity_frames,
    bridge,
    frame_energies,
    frame_hop,
    runs_of,
)
from jmoshi_augment.errors import JmoshiError

Seconds = float

__all__ = [
    "BETWEEN",
    "OVERLAP_KINDS",
    "WITHIN",
    "DialogueStats",
    "StatsOptions",
    "analyze",
    "analyze_energies",
    "analyze_intervals",
    "check_stereo",
]

BETWEEN, WITHIN = 1, 2  # overlap kinds (dGSLM)
OVERLAP_KINDS = {BETWEEN: "between", WITHIN: "within"}


@dataclass(frozen=True)
class StatsOptions:
    vad: VadOptions = field(default_factory=VadOptions)
    ipu_silence: Seconds = 0.2  # dGSLM's IPU rule (inner silences < 200 ms); the literature uses 50 ms to 1 s
    within_max: Seconds = 1.0  # dGSLM: a within overlap's shorter IPU lasts < 1 s
    backchannel_max: Seconds = 1.0  # the backchannel-IPU view: Ekstedt & Skantze 2022's heuristic
    backchannel_inside: float = 0.5  # share of the unit inside the partner's speech
    lapse: Seconds = 1.0  # gaps longer than this are lapses (Jefferson's ~1 s standard maximum)
    long_silence: Seconds = 0.25  # shift/hold share at silences above this (Inoue et al. 2024)

    def __post_init__(self) -> None:
        for name in ("ipu_silence", "within_max", "backchannel_max", "lapse", "long_silence"):
            if getattr(self, name) < 0:
                raise JmoshiError(f"{name} must not be negative", key=f"stats.{name}")
        if not 0 < self.backchannel_inside <= 1:
            raise JmoshiError("backchannel_inside must be in (0, 1]", key="stats.backchannel_inside")


def _intervals(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True, eq=False)
class DialogueStats:
    """Turn-taking events of one stereo dialogue; intervals are ``float [K, 2]`` (start, end) in
    seconds, channel 0 = main (the model's side), 1 = other."""

    name: str
    duration: Seconds
    ipus: tuple[np.ndarray, np.ndarray]
    pauses: np.ndarray
    gaps: np.ndarray
    overlaps: np.ndarray
    overlap_kind: np.ndarray  # int [K]: BETWEEN or WITHIN per overlap (dGSLM)
    fto: np.ndarray  # float [K]: floor-transfer offset per speaker change, chronological
    backchannels: tuple[np.ndarray, np.ndarray]  # the backchannel-IPU view (not dGSLM), per channel
    long_silences: int = 0  # interior mutual silences longer than StatsOptions.long_silence
    long_silence_shifts: int = 0  # ... of which the other speaker spoke next

    @property
    def minutes(self) -> float:
        return self.duration / 60.0

    @property
    def num_ipus(self) -> int:
        return len(self.ipus[0]) + len(self.ipus[1])

    @property
    def speech(self) -> tuple[Seconds, Seconds]:
        """Seconds of IPU speech per channel."""
        return tuple(float(np.sum(i[:, 1] - i[:, 0])) for i in self.ipus)  # type: ignore[return-value]

    def overlaps_of(self, kind: int) -> np.ndarray:
        return self.overlaps[self.overlap_kind == kind]

    def counts(self) -> dict[str, int]:
        return {
            "ipus": self.num_ipus,
            "pauses": len(self.pauses),
            "gaps": len(self.gaps),
            "overlaps": len(self.overlaps),
            "overlaps_between": int(np.sum(self.overlap_kind == BETWEEN)),
            "overlaps_within": int(np.sum(self.overlap_kind == WITHIN)),
            "speaker_changes": len(self.fto),
            "backchannel_ipus": len(self.backchannels[0]) + len(self.backchannels[1]),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts plus every event, times rounded to the millisecond."""

        def iv(a: np.ndarray) -> list[list[float]]:
            return np.round(a, 3).tolist()

        return {
            "name": self.name,
            "duration": round(self.duration, 3),
            "counts": self.counts(),
            "ipus": [iv(self.ipus[0]), iv(self.ipus[1])],
            "pauses": iv(self.pauses),
            "gaps": iv(self.gaps),
            "overlaps": iv(self.overlaps),
            "overlap_kind": [OVERLAP_KINDS[int(k)] for k in self.overlap_kind],
            "fto": np.round(self.fto, 3).tolist(),
            "backchannels": [iv(self.backchannels[0]), iv(self.backchannels[1])],
            "long_silences": self.long_silences,
            "long_silence_shifts": self.long_silence_shifts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DialogueStats":
        kinds = {v: k for k, v in OVERLAP_KINDS.items()}
        try:
            return cls(
                name=d["name"],
                duration=float(d["duration"]),
                ipus=(_intervals(d["ipus"][0]), _intervals(d["ipus"][1])),
                pauses=_intervals(d["pauses"]),
                gaps=_intervals(d["gaps"]),
                overlaps=_intervals(d["overlaps"]),
                overlap_kind=np.array([kinds[k] for k in d["overlap_kind"]], dtype=np.int8),
                fto=np.asarray(d["fto"], dtype=np.float64),
                backchannels=(_intervals(d["backchannels"][0]), _intervals(d["backchannels"][1])),
                long_silences=int(d.get("long_silences", 0)),
                long_silence_shifts=int(d.get("long_silence_shifts", 0)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise JmoshiError(f"not a dialogue stats record ({type(e).__name__}: {e})") from e


# -------------------------------------------------------------------------------------- analysis


def analyze(audio: np.ndarray, sample_rate: int, name: str = "", options: StatsOptions = StatsOptions()) -> DialogueStats:
    """Turn-taking events of stereo ``audio`` (``[2, N]``, float in [-1, 1] or int16)."""
    audio = np.asarray(audio)
    check_stereo(audio.shape[0] if audio.ndim == 2 else None, name, shape=audio.shape)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / np.float32(np.iinfo(audio.dtype).max + 1)
    energy = frame_energies(audio, sample_rate, options.vad)
    return analyze_energies(energy, sample_rate, audio.shape[1] / sample_rate, name, options)


def check_stereo(channels: int | None, path: str | Path | None, shape: tuple[int, ...] | None = None) -> None:
    if channels == 2:
        return
    if shape is not None and len(shape) == 2 and shape[1] == 2:
        msg = f"expected stereo audio shaped [2, samples], got {tuple(shape)}: transpose it"
    elif channels is None:
        msg = f"expected stereo audio shaped [2, samples], got shape {tuple(shape or ())}"
    else:
        what = "mono" if channels == 1 else f"{channels} channels"
        msg = f"expected stereo audio (channel 0 = main, 1 = other), got {what}"
    raise JmoshiError(msg, path=path or None)


def analyze_energies(
    energy_db: np.ndarray, sample_rate: int, duration: Seconds, name: str = "", options: StatsOptions = StatsOptions()
) -> DialogueStats:
    """Events from frame energies ``[2, F]`` (see :func:`.vad.frame_energies`)."""
    sec = frame_hop(sample_rate, options.vad) / sample_rate  # seconds per frame
    activity = [activity_frames(e, options.vad) for e in energy_db]
    return _events(activity, energy_db.shape[1], sec, duration, name, options)


def analyze_intervals(
    activity: list[np.ndarray], duration: Seconds, name: str = "", options: StatsOptions = StatsOptions()
) -> DialogueStats:
    """Events from given speech intervals per channel (``[K, 2]`` seconds, e.g. word alignments or
    a plan), on the same frame grid as the audio analysis: the ground truth to check it against."""
    if len(activity) != 2:
        raise JmoshiError(f"expected activity for 2 channels, got {len(activity)}")
    sec = options.vad.frame
    n_frames = int(round(duration / sec))
    frames = []
    for a in activity:
        f = np.clip(np.round(_intervals(a) / sec).astype(np.int64), 0, n_frames)
        f = f[np.argsort(f[:, 0], kind="stable")]
        f = f[f[:, 1] > f[:, 0]]
        frames.append(runs_of(_mask_overlapping(f, n_frames)))  # union of possibly overlapping spans
    return _events(frames, n_frames, sec, duration, name, options)


def _mask_overlapping(intervals: np.ndarray, n: int) -> np.ndarray:
    d = np.zeros(n + 1, np.int32)
    np.add.at(d, intervals[:, 0], 1)
    np.add.at(d, intervals[:, 1], -1)
    return np.cumsum(d[:n]) > 0


def _events(
    activity: list[np.ndarray], n_frames: int, sec: float, duration: Seconds, name: str, options: StatsOptions
) -> DialogueStats:
    """The event logic on per-channel activity frame intervals (see the module docstring)."""
    bridge_frames = options.ipu_silence / sec - 1e-9
    ipu_frames = [bridge(a, bridge_frames) for a in activity]
    active = [_mask(i, n_frames) for i in ipu_frames]

    # Run-length encode the joint state: 0 silence, 1 main alone, 2 other alone, 3 both.
    state = active[0].astype(np.int8) + 2 * active[1].astype(np.int8)
    cuts = np.flatnonzero(np.diff(state)) + 1
    seg = np.stack([np.concatenate([[0], cuts]), np.concatenate([cuts, [n_frames]])], axis=1)
    seg = seg[seg[:, 1] > seg[:, 0]]  # no frames at all: no segments
    s = state[seg[:, 0]]
    k = np.arange(len(s))
    solo = (s == 1) | (s == 2)
    speaker = np.where(solo, s - 1, -1)
    # Who held the floor before segment k: the last speaker heard alone.
    last_solo = np.maximum.accumulate(np.where(solo, k, -1))
    before = np.full(len(s), -1)
    before[1:] = np.where(last_solo[:-1] >= 0, speaker[np.maximum(last_solo[:-1], 0)], -1)
    after = np.full(len(s), -1)  # who is alone right after segment k
    after[:-1] = speaker[1:]

    interior = (k > 0) & (k < len(s) - 1)
    silence = (s == 0) & interior & (before >= 0)
    # After a silence both may start at once; the floor then stays with its holder.
    next_speaker = np.where(after >= 0, after, before)
    is_gap = silence & (next_speaker != before)
    is_pause = silence & (next_speaker == before)
    is_overlap = s == 3
    kind = _overlap_kinds(seg[is_overlap, 0], ipu_frames, options.within_max / sec - 1e-9)
    kind_of_seg = np.zeros(len(s), dtype=np.int8)
    kind_of_seg[is_overlap] = kind

    seg_s = seg * sec
    dur = seg_s[:, 1] - seg_s[:, 0]
    change = is_gap | (kind_of_seg == BETWEEN)
    fto = np.where(is_gap, dur, -dur)[change]
    long_silence = silence & (dur > options.long_silence + 1e-9)

    return DialogueStats(
        name=name,
        duration=float(duration),
        ipus=(ipu_frames[0] * sec, ipu_frames[1] * sec),
        pauses=seg_s[is_pause],
        gaps=seg_s[is_gap],
        overlaps=seg_s[is_overlap],
        overlap_kind=kind,
        fto=fto,
        backchannels=tuple(  # type: ignore[arg-type]
            _backchannels(ipu_frames[c], ipu_frames[1 - c], active[1 - c], options, sec) * sec for c in (0, 1)
        ),
        long_silences=int(long_silence.sum()),
        long_silence_shifts=int((long_silence & is_gap).sum()),
    )


def _overlap_kinds(starts: np.ndarray, ipus: list[np.ndarray], within_max: float) -> np.ndarray:
    """dGSLM kind of each overlap starting at frame ``starts``: WITHIN when the shorter of the two
    IPUs it lies in sits entirely inside the other and is shorter than ``within_max`` frames."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int8)
    # A maximal double-talk stretch lies inside exactly one IPU of each channel.
    a = ipus[0][np.searchsorted(ipus[0][:, 0], starts, side="right") - 1]
    b = ipus[1][np.searchsorted(ipus[1][:, 0], starts, side="right") - 1]
    a_shorter = (a[:, 1] - a[:, 0]) <= (b[:, 1] - b[:, 0])
    short = np.where(a_shorter[:, None], a, b)
    long = np.where(a_shorter[:, None], b, a)
    inside = (short[:, 0] >= long[:, 0]) & (short[:, 1] <= long[:, 1])
    within = inside & ((short[:, 1] - short[:, 0]) < within_max)
    return np.where(within, WITHIN, BETWEEN).astype(np.int8)


def _mask(intervals: np.ndarray, n: int) -> np.ndarray:
    d = np.zeros(n + 1, np.int32)
    d[intervals[:, 0]] += 1  # starts are distinct, and so are ends
    d[intervals[:, 1]] -= 1
    return np.cumsum(d[:n]) > 0


def _backchannels(
    own: np.ndarray, partner: np.ndarray, partner_active: np.ndarray, options: StatsOptions, sec: float
) -> np.ndarray:
    """Frame intervals of ``own`` IPUs that are backchannels to ``partner`` (see module doc)."""
    if len(own) == 0 or len(partner) == 0:
        return own[:0]
    length = own[:, 1] - own[:, 0]
    covered = np.concatenate([[0], np.cumsum(partner_active)])
    inside = (covered[own[:, 1]] - covered[own[:, 0]]) / np.maximum(length, 1)
    # When does the partner speak after the unit: at once (still talking) or at its next onset?
    n = len(partner_active)
    still = partner_active[np.minimum(own[:, 1], n - 1)] & (own[:, 1] < n)
    nxt = np.searchsorted(partner[:, 0], own[:, 1], side="left")
    partner_next = np.where(still, own[:, 1], partner[np.minimum(nxt, len(partner) - 1), 0])
    partner_next = np.where(still | (nxt < len(partner)), partner_next, np.iinfo(np.int64).max)
    own_next = np.concatenate([own[1:, 0], [np.iinfo(np.int64).max]])
    keeps_floor = partner_next < own_next
    short = length * sec <= options.backchannel_max + 1e-9
    return own[short & (inside >= options.backchannel_inside) & keeps_floor]
