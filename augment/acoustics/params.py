"""What one augmented view drew: every parameter, recorded in the unit record so that a claim
("this view has 12 dB SNR, a 140 ms echo, RT60 0.41 s") can be checked against its audio.

One small frozen dataclass per effect; ``None`` means the effect was not drawn for this view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

Seconds = float


def _tuples(v: Any) -> Any:
    """JSON lists back to the tuples the dataclasses hold (nested for resonances)."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


@dataclass(frozen=True)
class RoomDraw:
    source: str  # "simulated" (pyroomacoustics shoebox from the run's bank) or "file" (rir_dir)
    rt60_s: float  # measured on the impulse response (Schroeder, -5 to -25 dB, x3), what the audio has
    bank_index: Optional[int] = None  # simulated: which room of the bank
    rt60_target_s: Optional[float] = None  # simulated: the Sabine target the absorption was set for
    dims_m: Optional[tuple[float, float, float]] = None
    distance_m: Optional[float] = None  # talker to microphone
    file: Optional[str] = None  # measured RIR: its path relative to rir_dir


@dataclass(frozen=True)
class NoiseDraw:
    kind: str  # "colored", "babble" or "file"
    snr_db: float  # active speech level of the user channel over the noise's mean power
    color_exponent: Optional[float] = None  # colored: power ~ 1/f^beta
    talkers: Optional[tuple[str, ...]] = None  # babble: "RENDERING_ID/CHANNEL" of each talker
    file: Optional[str] = None  # file: path relative to noise_dir
    offset_s: Optional[Seconds] = None  # file: where in the file the view's noise starts


@dataclass(frozen=True)
class EchoDraw:
    delay_ms: float  # the model channel's leak arrives this late in the user channel
    gain_db: float  # level of the leak relative to the model channel (before its filter)
    highpass_hz: float
    lowpass_hz: float
    reverberant: bool  # the leak also passed through the view's room


@dataclass(frozen=True)
class MicDraw:
    gain_db: float  # applied level change (the drawn one, less any headroom it would have clipped)
    floor_dbfs: float  # self-noise level, always added
    highpass_hz: Optional[float] = None  # band-limited microphone
    lowpass_hz: Optional[float] = None
    clip_drive_db: Optional[float] = None  # overdriven input, peak driven this far over full scale
    codec_rate: Optional[int] = None  # Opus round trip: the sample rate it encoded at
    codec_kbps: Optional[float] = None  # the bitrate libopus chose, measured from the stream


@dataclass(frozen=True)
class VoiceDraw:
    source_f0_hz: float  # median f0 of the clean user channel (this module's estimate)
    target_sex: str  # "male" or "female"
    target_f0_hz: float
    pitch_ratio: float  # target / source f0 (as applied: formant step x Rubber Band step)
    formant_ratio: float  # spectral envelope scaling (vocal-tract length: < 1 is longer)
    resample_step: str  # "UP/DOWN" of the resampling that scales the envelope by formant_ratio
    shift_step: str  # the pitch ratio Rubber Band applies after it, a fraction with a small denominator
    resonances: tuple[tuple[float, float, float], ...] = ()  # (centre Hz, gain dB, Q) of each peak filter


@dataclass(frozen=True)
class ViewParams:
    """Everything one view drew, in the order the effects apply: voice, room, echo, noise, mic."""

    user_channel: int
    voice: Optional[VoiceDraw] = None
    room: Optional[RoomDraw] = None
    echo: Optional[EchoDraw] = None
    noise: Optional[NoiseDraw] = None
    mic: Optional[MicDraw] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViewParams":
        kinds = {"voice": VoiceDraw, "room": RoomDraw, "echo": EchoDraw, "noise": NoiseDraw, "mic": MicDraw}
        out: dict[str, Any] = {"user_channel": int(d["user_channel"])}
        for name, kind in kinds.items():
            value = d.get(name)
            if value is not None:
                names = {f.name for f in fields(kind)}
                out[name] = kind(**{k: _tuples(v) for k, v in value.items() if k in names})
        return cls(**out)
