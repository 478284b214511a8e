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
    """Every model/voice file the run used, with hashes: stored next to the data it made. The
    backend's options say which files it names, what it speaks with by default and which
    packages and shipped files it brings."""
    from jmoshi_augment.augment.speech.tts.registry import backend_info

    options = recipe.tts.options
    files: dict[str, Any] = dict(tokens.files) if tokens is not None else {}
    if recipe.tts.voice_space is None:
        files["voices"] = {
            v.name: (describe_file(v.htsvoice, "HTS voice") if v.htsvoice else (options.bundled_voice or v.model_dump(mode="json")))
            for v in recipe.tts.voices
        }
    else:  # the voices themselves are drawn per dialogue: see dialogue_voices, added at the end of the run
        files["voice_space"] = recipe.tts.voice_space.model_dump(mode="json")
        if options.bundled_voice:
            files["voices"] = {"drawn from voice_space": options.bundled_voice}
    bundled = options.bundled_files()
    if bundled:
        files[backend_info(recipe.tts.backend).name] = bundled
    neural = {}  # a neural backend's checkpoint folder/files and voice prompts, when local
    for key, _, spec in options.paths():
        path = Path(spec)
        if path.is_dir():
            neural[spec] = {p.name: describe_file(p, key)["digest"] for p in sorted(path.iterdir())
                            if p.suffix in (".safetensors", ".model", ".json", ".npy", ".wav")}
        elif path.is_file():
            neural[spec] = describe_file(path, key)["digest"]
    if neural:
        files["tts_files"] = neural
    try:
        from importlib.metadata import version

        files["packages"] = {p: version(p) for p in ("pyopenjtalk-plus", "moshi", "torch", *options.packages)}
    except Exception:  # a package missing from the metadata is not worth failing a run
        pass
    return files


def record_dialogue_voices(out_dir: Path, renderings: list[RenderingEntry]) -> None:
    """Add what each rendering was spoken with (its unit-record entry) to ``models.json``."""
    path = out_dir / "models.json"
    if not path.is_file():
        return
    files = json.loads(path.read_text(encoding="utf-8"))
    files["dialogue_voices"] = {e.id: e.voice_params or e.voices for e in renderings}
    atomic_write_text(path, json.dumps(files, indent=1, ensure_ascii=False))
