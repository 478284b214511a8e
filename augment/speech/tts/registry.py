"""The TTS backend registry: each backend registers under a name with its typed options model.

A recipe's ``tts.options`` is validated against the named backend's :class:`BackendOptions` when
the recipe is read (unknown keys and bad values are errors with file, line and key, before any
model loads); ``recipe check --show`` prints the options with their defaults; preflight asks the
options which files they name. So no module outside a backend and this registry needs to know
a backend's name or its option keys.

Registration is explicit, as lhotse's ``register_extractor``: a decorator on a build function
that takes the validated options; the heavy import happens inside the build function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jmoshi_augment.augment.speech.tts.base import EDGE_MARGIN
from jmoshi_augment.errors import JmoshiError, JmoshiErrors

if TYPE_CHECKING:
    from jmoshi_augment.augment.speech.tts.base import DialogueBackend, TTSBackend
    from jmoshi_augment.recipe import VoiceConfig

BackendKind = Literal["segment", "dialogue"]
# What a path option names, for preflight and for resolving relative paths against the recipe:
# model: a local folder or a Hugging Face repo id OWNER/NAME; file: a local file or hf://REPO/FILE;
# prompts: stereo audio prompts (or token .npy) or folders of them; voices: voice files or folders.
PathKind = Literal["model", "file", "prompts", "voices"]
DEFAULT_BACKEND = "openjtalk"  # the schema's default: fast, and what ad-hoc recipes and tests use


@dataclass(frozen=True)
class PathOption:
    """Marks an options field as naming files: ``Annotated[str | None, PathOption("file")]``."""

    kind: PathKind


class BackendOptions(BaseModel):
    """A backend's ``tts.options``: frozen, unknown keys refused, every field with a description.
    Fields annotated with :class:`PathOption` name files that preflight checks before any work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Files and provenance a backend brings itself (recorded in models.json).
    bundled_voice: ClassVar[str | None] = None  # what a voice without its own file speaks with
    packages: ClassVar[tuple[str, ...]] = ()  # packages whose versions the run records

    @classmethod
    def path_fields(cls) -> dict[str, PathKind]:
        out = {}
        for name, info in cls.model_fields.items():
            marks = [m for m in info.metadata if isinstance(m, PathOption)]
            if marks:
                out[name] = marks[0].kind
        return out

    def paths(self) -> list[tuple[str, PathKind, str]]:
        """``(key, kind, value)`` for every file this configuration names (lists flattened)."""
        out = []
        for key, kind in self.path_fields().items():
            value = getattr(self, key)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if v is not None:
                    out.append((key, kind, str(v)))
        return out

    def check_files(self, voices: Sequence["VoiceConfig"]) -> Iterable[JmoshiError]:
        """Every problem with the files these options (and the voices) name; headers only, no
        model load. Backends whose files have more structure extend this."""
        from jmoshi_augment.file_checks import check_path

        for key, kind, value in self.paths():
            yield from check_path(kind, value, f"tts.options.{key}")

    def bundled_files(self) -> dict[str, Any]:
        """Files shipped inside a package that the backend speaks with, by hash (models.json)."""
        return {}


class SegmentOptions(BackendOptions):
    """Options every segment backend takes."""

    # The backend contract keeps this much silence at both ends, so the planner alone sets gaps.
    margin: float = Field(EDGE_MARGIN, description="Seconds of silence kept before the first and after the last phoneme.")

    @field_validator("margin")
    @classmethod
    def _margin(cls, v: float) -> float:
        if not 0 <= v <= 1:
            raise ValueError(f"margin must be within 0..1 s, got {v}")
        return float(v)


class DialogueOptions(BackendOptions):
    """Options every dialogue backend (a multi-stream model that times the dialogue) takes."""

    device: str = Field("auto", description="auto, cpu or cuda[:N].")
    backchannels: str = Field("inline", description="inline: each backchannel is a short turn of the script; drop: left out.")

    @field_validator("backchannels")
    @classmethod
    def _backchannels(cls, v: str) -> str:
        if v not in ("inline", "drop"):
            raise ValueError(f"must be inline or drop, got {v!r}")
        return v


BuildFn = Callable[[Any], "TTSBackend | DialogueBackend"]


@dataclass(frozen=True)
class BackendInfo:
    name: str
    kind: BackendKind  # segment: voiced one sentence at a time, planned and mixed by us
    options: type[BackendOptions]
    build: BuildFn
    styles: tuple[str, ...] = ()  # the backend's stock voice styles (voice_space draws from them)
    style_pitch: Mapping[str, float] = field(default_factory=dict)  # each style's own pitch, semitones re 100 Hz

    def parse_options(self, raw: Mapping[str, Any] | BackendOptions | None) -> BackendOptions:
        """``raw`` validated into the options model; every problem at once, keyed ``tts.options.X``."""
        if isinstance(raw, self.options):
            return raw
        try:
            return self.options.model_validate(dict(raw or {}))
        except ValidationError as e:
            errors = [JmoshiError(option_message(self, err), key=".".join(["tts.options", *map(str, err["loc"])]))
                      for err in e.errors()]
            raise (errors[0] if len(errors) == 1 else JmoshiErrors(errors)) from None


def option_message(info: BackendInfo, err: Mapping[str, Any]) -> str:
    """One pydantic error about ``tts.options`` in the project's words."""
    if err["type"] == "extra_forbidden":
        return f"backend {info.name!r} has no option {err['loc'][0]!r}; it takes: {', '.join(info.options.model_fields) or 'no options'}"
    if err["type"] == "missing":
        return f"backend {info.name!r} needs this option"
    return str(err["msg"]).removeprefix("Value error, ")


_REGISTRY: dict[str, BackendInfo] = {}


def register_backend(name: str, *, options: type[BackendOptions], kind: BackendKind = "segment",
                     styles: Sequence[str] = (), style_pitch: Mapping[str, float] | None = None
                     ) -> Callable[[BuildFn], BuildFn]:
    """Register ``build(options)`` under ``name`` (a recipe's ``tts.backend``)."""

    def decorator(build: BuildFn) -> BuildFn:
        info = BackendInfo(name, kind, options, build, tuple(styles), dict(style_pitch or {}))
        if name in _REGISTRY and _REGISTRY[name] != info:
            raise ValueError(f"TTS backend {name!r} is already registered")
        _REGISTRY[name] = info
        return build

    return decorator


def _ensure_registered() -> None:
    import jmoshi_augment.augment.speech.tts  # noqa: F401  (the package registers the built-in backends)


def available_backends() -> list[str]:
    _ensure_registered()
    return sorted(_REGISTRY)


def backend_info(name: str) -> BackendInfo:
    _ensure_registered()
    if name not in _REGISTRY:
        raise JmoshiError(f"unknown TTS backend {name!r}; known: {', '.join(available_backends()) or 'none'}",
                          key="tts.backend")
    return _REGISTRY[name]


def backend_kind(name: str) -> BackendKind:
    """Whether ``name`` voices segments (planned and mixed by us) or whole dialogues."""
    return backend_info(name).kind


def get_backend(name: str, options: BackendOptions | None = None, **raw: Any) -> "TTSBackend | DialogueBackend":
    """Build backend ``name`` from validated ``options`` or from raw ``tts.options`` keywords."""
    info = backend_info(name)
    return info.build(info.parse_options(options if options is not None else raw))

