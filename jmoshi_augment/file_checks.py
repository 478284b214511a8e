"""Checks of the files a recipe names, from their headers only (no model load): shared by
preflight (models, ASR, rewrite) and the TTS backends' options (``BackendOptions.check_files``).
Each yields :class:`JmoshiError` lines keyed by the recipe key that named the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterable

from jmoshi_augment.errors import JmoshiError, first_line


def check_path(kind: str, value: Any, key: str) -> Iterable[JmoshiError]:
    if kind == "model":
        yield from model_spec(str(value), key)
    elif kind == "file":
        yield from file_spec(str(value), key)
    elif kind in ("prompts", "voices"):
        yield from _prompt(Path(str(value)), key, voices=kind == "voices")


def model_spec(spec: str, key: str) -> Iterable[JmoshiError]:
    """A local model folder must exist; ``OWNER/NAME`` not present locally is a hub repo id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return
    if path.exists():
        yield JmoshiError("expected a model folder (or a Hugging Face repo id OWNER/NAME), got a file", path=spec, key=key)
    elif spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        yield JmoshiError("model folder not found (nor a Hugging Face repo id OWNER/NAME)", path=spec, key=key)


def file_spec(spec: str, key: str, what: str = "file") -> Iterable[JmoshiError]:
    """A local file must exist; ``hf://`` must be in the cache or the hub reachable."""
    if spec.startswith("hf://"):
        yield from _hub_file(spec, key)
        return
    path = Path(spec).expanduser()
    if not path.is_file():
        yield JmoshiError(f"{what} not found" + (" (a folder)" if path.is_dir() else ""), path=spec, key=key)


def _hub_file(spec: str, key: str) -> Iterable[JmoshiError]:
    from huggingface_hub import try_to_load_from_cache

    from jmoshi_augment.checkpoints import hub_reachable

    parts = spec[len("hf://"):].split("/")
    if len(parts) < 3:
        yield JmoshiError("expected hf://OWNER/REPO/FILE", path=spec, key=key)
        return
    cached = try_to_load_from_cache("/".join(parts[:2]), "/".join(parts[2:]))
    if isinstance(cached, str):
        return
    if not hub_reachable():
        yield JmoshiError("not in the local Hugging Face cache and the hub cannot be reached (HF_HUB_OFFLINE=1 "
                          "or no network); download it once with network access, or pass a local path",
                          path=spec, key=key)


def _prompt(path: Path, key: str, *, voices: bool) -> Iterable[JmoshiError]:
    """An audio prompt / voice file (or a folder of them) exists and its header reads."""
    from jmoshi_augment.augment.speech.tts.ms_model import PROMPT_EXTS

    if path.is_dir():
        files = sorted(q for q in path.iterdir() if q.suffix.lower() in PROMPT_EXTS + (".safetensors",))
        if not files:
            yield JmoshiError(f"folder holds no prompt files ({', '.join(PROMPT_EXTS)})", path=path, key=key)
        for f in files:
            yield from _prompt(f, key, voices=voices)
        return
    if not path.is_file():
        yield JmoshiError(("voice" if voices else "audio prompt") + " not found", path=path, key=key)
        return
    suffix = path.suffix.lower()
    if suffix == ".npy":
        import numpy as np

        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            yield JmoshiError(f"not a readable .npy token prompt ({e})", path=path, key=key)
            return
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            yield JmoshiError(f"a token prompt is an integer [streams, T] array, got {arr.dtype} {arr.shape}", path=path, key=key)
    elif suffix == ".safetensors":
        yield from safetensors_header(path, key)
    else:
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError) as e:
            yield JmoshiError(f"not a readable audio file ({first_line(e)})", path=path, key=key)
            return
        if info.frames == 0:
            yield JmoshiError("audio prompt is empty", path=path, key=key)
        elif not voices and info.channels != 2:
            yield JmoshiError(f"an audio prompt is stereo (channel 0 = main voice), got {info.channels} channel(s)",
                              path=path, key=key)


def safetensors_header(path: Path, key: str) -> Iterable[JmoshiError]:
    """A safetensors file starts with an 8-byte header length and a JSON header: read only that."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
            size = path.stat().st_size
            if not 0 < n <= min(size - 8, 100 << 20):
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
            if not isinstance(header, dict):
                raise ValueError("header is not a JSON object")
    except (OSError, ValueError, struct.error) as e:
        yield JmoshiError(f"not a safetensors file ({first_line(e)})", path=path, key=key)
