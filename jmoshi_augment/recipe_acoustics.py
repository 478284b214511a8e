"""The recipe's ``acoustics:`` section: what the user's side sounds like through a microphone.

The stage (``augment/acoustics/``) degrades only the channel that is the user's in a training view;
the model's channel stays the clean render. Every number here is a modelling choice with its
source; per-effect probabilities say how often a view gets the effect at all, and each range is
drawn uniformly (log-uniform for frequencies) per view.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from jmoshi_augment.recipe_sections import _Section

Range = tuple[float, float]


def _ordered(name: str, value: Range, lo: float, hi: float) -> Range:
    a, b = value
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must be [min, max] with {lo} <= min <= max <= {hi}, got [{a}, {b}]")
    return value


class RoomConfig(_Section):
    """Reverberation of the user's voice: a simulated shoebox room (pyroomacoustics' image source
    method) or, with ``acoustics.rir_dir``, a measured impulse response from the user's folder."""

    prob: float = Field(0.5, ge=0, le=1, description="Share of views with room reverberation.")
    # Living rooms and offices: Kuttruff (Room Acoustics, 5th ed., ch. 9) gives 0.3-0.6 s for
    # furnished domestic rooms; down to 0.2 s covers a small padded room, the close-talking case.
    rt60: Range = Field((0.2, 0.6), description="Target reverberation time (Sabine), s [min, max].")
    # Rooms a person talks to a laptop or phone in: 3 x 3 m up to an 8 x 6 m living/dining room,
    # ordinary ceiling heights.
    length: Range = Field((3.0, 8.0), description="Room length, m.")
    width: Range = Field((3.0, 6.0), description="Room width, m.")
    height: Range = Field((2.4, 3.2), description="Room height, m.")
    # Mouth to microphone: a headset or phone near the face (0.3 m) to a laptop across a desk (1.5 m).
    distance: Range = Field((0.3, 1.5), description="Talker-to-microphone distance, m.")
    # Each simulated room costs 0.05-0.3 s of CPU (image sources up to RT60's order), more than
    # the rest of a view: rooms are drawn from a bank simulated once per process, seeded by
    # (recipe seed, index), so a run of thousands of dialogues pays for this many rooms only.
    bank_size: int = Field(24, ge=1, le=1024, description="Distinct simulated rooms per run (drawn per view).")

    @field_validator("rt60")
    @classmethod
    def _rt60(cls, v: Range) -> Range:
        return _ordered("room.rt60", v, 0.05, 2.0)

    @field_validator("length", "width", "height")
    @classmethod
    def _dims(cls, v: Range) -> Range:
        return _ordered("room size", v, 1.5, 30.0)

    @field_validator("distance")
    @classmethod
    def _distance(cls, v: Range) -> Range:
        return _ordered("room.distance", v, 0.05, 5.0)


class NoiseConfig(_Section):
    """Background noise at a drawn signal-to-noise ratio (active speech level over noise power)."""

    prob: float = Field(0.7, ge=0, le=1, description="Share of views with background noise.")
    # The DNS Challenge (Reddy et al., Interspeech 2020) synthesises its noisy training speech at
    # 0-40 dB SNR; the ends are trimmed: under 5 dB the user is hard to hear for anyone, over
    # 30 dB the noise is below the microphone's own floor.
    snr_db: Range = Field((5.0, 30.0), description="Signal-to-noise ratio, dB [min, max].")
    # Relative weights of the noise kinds; a kind that has no source (babble without other
    # dialogues in the unit, file without acoustics.noise_dir) drops out of the draw.
    kinds: dict[Literal["colored", "babble", "file"], float] = Field(
        {"colored": 1.0, "babble": 1.0, "file": 2.0}, description="Weights of colored / babble / file noise.")
    # Spectral slope 1/f^beta: 0 white, 1 pink (fans, rain), 2 brown (traffic rumble).
    color_exponent: Range = Field((0.0, 2.0), description="Coloured noise exponent beta (power ~ 1/f^beta).")
    # Babble from 3 talkers up is no longer intelligible as single voices (Krishnamurthy & Hansen,
    # IEEE TASLP 2009, babble with 1-9 talkers), which is what a café background sounds like.
    babble_talkers: tuple[int, int] = Field((3, 6), description="Talkers mixed into babble noise [min, max].")

    @field_validator("snr_db")
    @classmethod
    def _snr(cls, v: Range) -> Range:
        return _ordered("noise.snr_db", v, -10.0, 60.0)

    @field_validator("color_exponent")
    @classmethod
    def _beta(cls, v: Range) -> Range:
        return _ordered("noise.color_exponent", v, 0.0, 3.0)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError("noise.kinds needs non-negative weights, at least one positive")
        return v

    @field_validator("babble_talkers")
    @classmethod
    def _talkers(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (1 <= v[0] <= v[1] <= 16):
            raise ValueError(f"noise.babble_talkers must be [min, max] with 1 <= min <= max <= 16, got {list(v)}")
        return v


class EchoConfig(_Section):
    """The model's own voice leaking from a loudspeaker into the user's microphone (a speakerphone
    or laptop without perfect echo cancellation)."""

    prob: float = Field(0.3, ge=0, le=1, description="Share of views with an echo of the model's channel.")
    # Playback-to-capture latency of browser audio (output buffer + acoustic path + input buffer)
    # is tens to a few hundred ms; Moshi's own client plays with an 80 ms frame buffer.
    delay_ms: Range = Field((30.0, 250.0), description="Echo delay, ms [min, max].")
    # Gain of the leaked model channel: -10 dB is a loud speakerphone without cancellation, -35 dB a
    # residual after a partly converged echo canceller (ITU-T G.168 asks cancellers for >= 30 dB
    # once converged, so a residual stays below that).
    gain_db: Range = Field((-35.0, -10.0), description="Echo level relative to the model channel, dB.")
    # A laptop or phone loudspeaker reproduces little below 200-500 Hz and above 5-8 kHz.
    highpass_hz: Range = Field((200.0, 500.0), description="Loudspeaker low cut, Hz.")
    lowpass_hz: Range = Field((4000.0, 8000.0), description="Loudspeaker high cut, Hz.")
    reverb_prob: float = Field(0.5, ge=0, le=1, description="Share of echoes that pass through the view's room.")

    @field_validator("delay_ms")
    @classmethod
    def _delay(cls, v: Range) -> Range:
        return _ordered("echo.delay_ms", v, 0.0, 2000.0)

    @field_validator("gain_db")
    @classmethod
    def _gain(cls, v: Range) -> Range:
        return _ordered("echo.gain_db", v, -80.0, 0.0)


class MicConfig(_Section):
    """Level, band and codec of the capture chain; always a low noise floor instead of digital zero."""

    # Browser auto gain control and users' distances leave levels spread over about +-10 dB.
    gain_db: Range = Field((-12.0, 6.0), description="Level change of the user channel, dB.")
    band_prob: float = Field(0.3, ge=0, le=1, description="Share of views with a band-limited microphone.")
    # Telephone band 300-3400 Hz (ITU-T G.712) at the narrow end, a wideband headset at the other.
    highpass_hz: Range = Field((80.0, 300.0), description="Microphone low cut, Hz.")
    lowpass_hz: Range = Field((3400.0, 8000.0), description="Microphone high cut, Hz.")
    # sphn's Opus encoder (libopus at its default complexity, no setting exposed) runs at ~70-110x
    # real time, about half of a view's CPU when it is on (bench/RESULTS.md): 0.3 keeps the stage
    # above 100x real time per core. The runtime's browser input is always Opus: a recipe that
    # wants every view coded sets 1.0 and pays for it.
    codec_prob: float = Field(0.3, ge=0, le=1, description="Share of views sent through an Opus round trip.")
    # sphn exposes no bitrate: libopus picks it from the sample rate it encodes at. Measured here
    # (bench/RESULTS.md): 12 kHz -> ~15 kbps, 16 kHz -> ~19 kbps, 24 kHz -> ~32 kbps, the range
    # RFC 7587 sec. 3.1.1 recommends for wideband to fullband speech (16-20, 28-40 kbps). The
    # measured rate of each view is recorded.
    codec_rates: list[Literal[8000, 12000, 16000, 24000]] = Field(
        [12000, 16000, 24000], description="Sample rates Opus encodes at (its bandwidth and bitrate).")
    clip_prob: float = Field(0.05, ge=0, le=1, description="Share of views clipped by an overdriven input.")
    clip_drive_db: Range = Field((2.0, 10.0), description="How far the peak is driven over full scale before clipping, dB.")
    # A quiet room through a consumer microphone: -70 to -55 dBFS of self-noise (DNS Challenge's
    # clean speech itself carries a noise floor; digital zero never occurs in a real capture).
    floor_dbfs: Range = Field((-75.0, -55.0), description="Noise floor level, dBFS (always added).")

    @field_validator("gain_db")
    @classmethod
    def _gain(cls, v: Range) -> Range:
        return _ordered("mic.gain_db", v, -40.0, 20.0)

    @field_validator("floor_dbfs")
    @classmethod
    def _floor(cls, v: Range) -> Range:
        return _ordered("mic.floor_dbfs", v, -120.0, -20.0)

    @field_validator("codec_rates")
    @classmethod
    def _rates(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("mic.codec_rates needs at least one rate")
        return v


class VoiceWarpConfig(_Section):
    """Who the user is: the clean channel's voice moved to a drawn pitch and vocal-tract length,
    so a run holds many more voices than the TTS's stock ones (Kokoro ships four female, one male)."""

    prob: float = Field(1.0, ge=0, le=1, description="Share of views whose user voice is changed.")
    male_share: float = Field(0.5, ge=0, le=1, description="Share of changed voices drawn male.")
    # Adult speaking f0: about 85-155 Hz for men and 165-255 Hz for women (Titze, Principles of
    # Voice Production, 1994); 165 Hz is the boundary the benchmark classifies by.
    male_f0_hz: Range = Field((90.0, 145.0), description="Median f0 a male voice is moved to, Hz.")
    female_f0_hz: Range = Field((180.0, 260.0), description="Median f0 a female voice is moved to, Hz.")
    # Formant frequencies of women are ~15-20 % above men's (Peterson & Barney 1952), so a voice that
    # changes sex moves its formants by about this ratio; the jitter makes vocal tracts of one sex differ.
    sex_formant_ratio: float = Field(0.86, gt=0.6, le=1.0, description="Male/female formant ratio applied when the sex changes.")
    formant_jitter: float = Field(0.06, ge=0, le=0.2, description="Extra formant scaling, +- (uniform).")
    # Vocal tracts differ in shape, not only length: formant amplitudes vary by several dB between
    # speakers of one sex. Without this a speaker-embedding model still groups changed voices by
    # their source voice and sex (bench/RESULTS.md: 9 clusters from 4 source voices, 14 with it).
    resonances: int = Field(3, ge=0, le=8, description="Resonances of the vocal tract boosted or cut per voice.")
    resonance_gain_db: float = Field(6.0, ge=0, le=15, description="Largest boost or cut of a resonance, dB (uniform +-).")

    @model_validator(mode="after")
    def _check(self) -> "VoiceWarpConfig":
        _ordered("voice.male_f0_hz", self.male_f0_hz, 50.0, 400.0)
        _ordered("voice.female_f0_hz", self.female_f0_hz, 50.0, 500.0)
        return self


class AcousticsConfig(_Section):
    """``views: 0`` (default) leaves the run as it was: clean stems only. ``views: N`` writes N
    augmented copies of every rendering (ids ``ID-acK``) beside the clean one."""

    views: int = Field(0, ge=0, le=64, description="Augmented copies per rendering (0: the stage is off).")
    rir_dir: Optional[str] = Field(None, description="Folder of measured RIR wavs (24 kHz mono), used instead of simulated rooms.")
    noise_dir: Optional[str] = Field(None, description="Folder of noise wavs (24 kHz, e.g. MUSAN or DNS Challenge noise) for noise kind 'file'.")
    room: RoomConfig = RoomConfig()
    noise: NoiseConfig = NoiseConfig()
    echo: EchoConfig = EchoConfig()
    mic: MicConfig = MicConfig()
    voice: VoiceWarpConfig = VoiceWarpConfig()
