"""The recipe's ``tts:`` section: voices (stock styles, blends, a voice space drawn per dialogue,
per-instance variation) and the backend with its options, which the named backend's own options
model validates (augment/speech/tts/registry.py). Import the names from :mod:`jmoshi_augment.recipe`.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe_sections import _Section

Style = Union[str, tuple[tuple[str, float], ...]]


def _check_style(style: Any) -> Any:
    """A stock voice name, or a blend ``{voice: weight}`` kept as sorted pairs (hashable, so a
    voice can key a memo); weights must be >= 0 and are normalised to sum 1 (a convex blend).
    Whether the names exist is the backend's to say (:meth:`TTSConfig._check`)."""
    if style is None:
        return None
    if isinstance(style, str):
        return style
    if isinstance(style, dict):
        pairs = list(style.items())
    elif isinstance(style, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in style):
        pairs = [tuple(p) for p in style]
    else:
        raise ValueError(f"style must be a voice name or a mapping voice: weight, got {style!r}")
    for name, weight in pairs:
        if not isinstance(name, str):
            raise ValueError(f"a style blend maps voice names to weights, got {name!r}")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight >= 0:
            raise ValueError(f"blend weight of {name!r} must be a number >= 0, got {weight!r}")
    total = float(sum(w for _, w in pairs))
    if total <= 0:
        raise ValueError("a style blend needs a positive weight")
    merged: dict[str, float] = {}
    for name, weight in pairs:
        merged[name] = merged.get(name, 0.0) + float(weight) / total
    return tuple(sorted((n, round(w, 6)) for n, w in merged.items() if w > 0))


def style_names(style: Any) -> list[str]:
    return [] if style is None else [style] if isinstance(style, str) else [n for n, _ in style]


class VoiceConfig(_Section):
    name: str
    htsvoice: Optional[str] = Field(None, description="An .htsvoice file, for backends that speak HTS voices; default: the backend's bundled voice.")
    style: Optional[Style] = Field(
        None, description="One of the backend's stock voices or a blend {voice: weight} (`jmoshi-augment recipe check --show`); ignored by backends without styles."
    )
    half_tone: float = Field(0.0, ge=-24, le=24, description="Pitch shift in semitones.")
    speed: float = Field(1.0, gt=0.3, lt=3.0, description="Speaking-rate factor.")
    gain_db: float = Field(0.0, ge=-30, le=12, description="Extra gain after loudness normalisation.")

    @field_validator("style", mode="before")
    @classmethod
    def _style(cls, v: Any) -> Any:
        return _check_style(v)


class VoiceSpaceConfig(_Section):
    """A distinct pair of voices drawn per dialogue (seeded by recipe seed and dialogue id), instead
    of two from ``tts.voices``. Styles are used by backends that have them (kokoro); speed and
    pitch apply to every backend. Ranges are relative to each backend's own rate and pitch."""

    styles: Optional[list[str]] = Field(
        None, description="Stock voices a speaker's style is drawn from (two distinct per dialogue); default: all of the backend's."
    )
    # Blends (convex combinations of style tables) fill the space between stock voices; the
    # speaker's own voice keeps over half the weight, so the two speakers stay apart.
    blend_prob: float = Field(0.5, ge=0, le=1, description="Share of speakers whose style blends in a second stock voice.")
    blend_max: float = Field(0.4, ge=0, lt=0.5, description="Most weight the blended-in voice gets.")
    # Kokoro at speed 1 speaks ~6.5 morae/s on the sample (bench/RESULTS.md); everyday conversation
    # runs at ~8 morae/s (CEJC), hence a range above 1.
    speed: tuple[float, float] = Field((1.0, 1.2), description="Speaking-rate range [min, max].")
    # A few semitones keep a voice natural after the tape-style shift (it moves formants too).
    half_tone: tuple[float, float] = Field((-2.0, 2.0), description="Pitch-shift range in semitones [min, max].")
    min_half_tone_gap: float = Field(1.5, ge=0, description="The two speakers' pitch shifts differ by at least this, semitones.")

    @field_validator("styles")
    @classmethod
    def _two(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None and len(set(v)) < 2:
            raise ValueError("voice_space.styles needs at least two distinct voices")
        return v

    @model_validator(mode="after")
    def _check(self) -> "VoiceSpaceConfig":
        for key, (lo, hi), (a, b) in (("speed", self.speed, (0.5, 2.0)), ("half_tone", self.half_tone, (-12, 12))):
            if not (a <= lo <= hi <= b):
                raise ValueError(f"voice_space.{key} must be [min, max] with {a} <= min <= max <= {b}, got [{lo}, {hi}]")
        if self.min_half_tone_gap > self.half_tone[1] - self.half_tone[0]:
            raise ValueError("voice_space.min_half_tone_gap is wider than the half_tone range")
        return self


class VariationConfig(_Section):
    """Every backchannel instance is its own rendering: small seeded draws around the speaker's voice,
    so a run never repeats one clip (a listener's うん varies in rate and pitch)."""

    speed: float = Field(0.08, ge=0, le=0.3, description="Relative speed jitter (uniform, +-).")
    half_tone: float = Field(0.5, ge=0, le=3, description="Pitch jitter, semitones (uniform, +-).")
    style: float = Field(0.15, ge=0, lt=0.5, description="Most weight moved toward another stock voice (backends with styles).")


def _default_backend() -> str:
    from jmoshi_augment.augment.speech.tts.registry import DEFAULT_BACKEND

    return DEFAULT_BACKEND


class TTSConfig(_Section):
    backend: str = Field(default_factory=_default_backend, description="TTS backend name (`jmoshi-augment recipe check --show` lists them).")
    # Two clearly different voices from the one bundled HTS voice: a lower, slightly slower one and
    # a higher, faster one. Everyday conversation runs at ~8 morae/s (CEJC); OpenJTalk's default
    # is slower, hence speed > 1.
    voices: list[VoiceConfig] = [
        VoiceConfig(name="low", half_tone=-4.0, speed=1.15),
        VoiceConfig(name="high", half_tone=2.0, speed=1.25),
    ]
    voice_space: Optional[VoiceSpaceConfig] = Field(None, description="Draw a distinct voice pair per dialogue (ignores voices).")
    variation: VariationConfig = VariationConfig()
    loudness_dbfs: float = Field(-23.0, le=0, description="Per-channel speech RMS target, dBFS.")
    # Validated into the backend's own options model (augment/speech/tts/registry.py), so a wrong
    # key or value is an error with its line when the recipe is read, and the resolved recipe
    # shows every option with its default.
    options: Any = Field(default_factory=dict, description="Backend-specific options (the backend's options model).")

    @model_validator(mode="after")
    def _check(self) -> "TTSConfig":
        from jmoshi_augment.augment.speech.tts.registry import backend_info, option_message

        if len(self.voices) < 2:
            raise ValueError("a dialogue needs at least two voices")
        try:
            info = backend_info(self.backend)
        except JmoshiError as e:
            _fail(("backend",), e.message, self.backend)
        if not isinstance(self.options, (dict, info.options)):
            _fail(("options",), "expected a mapping option: value", self.options)
        try:
            options = info.options.model_validate(self.options if isinstance(self.options, dict) else self.options.model_dump())
        except ValidationError as e:
            raise ValidationError.from_exception_data("TTSConfig", [
                InitErrorDetails(type=PydanticCustomError("value_error", option_message(info, err)),
                                 loc=("options", *err["loc"]), input=err.get("input")) for err in e.errors()]) from None
        space = self.voice_space
        if info.styles:
            known = ", ".join(info.styles)
            for i, voice in enumerate(self.voices):
                for name in style_names(voice.style):
                    if name not in info.styles:
                        _fail(("voices", i, "style"), f"unknown {info.name} voice {name!r}; known: {known}", voice.style)
            for name in (space.styles or []) if space is not None else []:
                if name not in info.styles:
                    _fail(("voice_space", "styles"), f"unknown {info.name} voice {name!r}; known: {known}", space.styles)
            if space is not None and space.styles is None:
                space = space.model_copy(update={"styles": list(info.styles)})
        # Frozen, and a validator must return self: the validated values replace the raw ones in place.
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "voice_space", space)
        return self


def _fail(loc: tuple[Any, ...], message: str, value: Any) -> None:
    """A validation error at ``loc`` below the section, so the recipe reports its key and line."""
    raise ValidationError.from_exception_data("TTSConfig", [
        InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)])
