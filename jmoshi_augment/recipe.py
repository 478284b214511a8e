"""Recipe schema: one flat YAML file declares a whole ``synth`` run.

Unknown keys and wrong types are errors (reported with the key path and YAML line). Relative paths
are resolved against the recipe file's folder. Numbers that are modelling choices carry a comment
with their source (the sections live in :mod:`jmoshi_augment.recipe_sections`); see also
``recipes/*.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from jmoshi_augment.errors import JmoshiError, JmoshiErrors
from jmoshi_augment.recipe_acoustics import AcousticsConfig
from jmoshi_augment.recipe_sections import (  # noqa: F401  (re-exported: the recipe's public names)
    CandidatesConfig,
    CorpusConfig,
    CorpusFilters,
    ModelsConfig,
    OutputConfig,
    OutputFormat,
    RewriteConfig,
    ScriptConfig,
    TimingConfig,
    TokenizeConfig,
    _Section,
)
from jmoshi_augment.recipe_tts import TTSConfig, VariationConfig, VoiceConfig, VoiceSpaceConfig  # noqa: F401


# --------------------------------------------------------------------------------------- recipe
class Recipe(_Section):
    corpus: CorpusConfig
    rewrite: RewriteConfig = RewriteConfig()
    script: ScriptConfig = ScriptConfig()
    timing: TimingConfig = TimingConfig()
    tts: TTSConfig = TTSConfig()
    candidates: CandidatesConfig = CandidatesConfig()
    models: ModelsConfig = ModelsConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    acoustics: AcousticsConfig = AcousticsConfig()  # the user's side through a microphone (augment/acoustics/)
    output: OutputConfig
    seed: int = 0
    workers: int = Field(1, ge=1, description="Worker processes for script + TTS.")

    @model_validator(mode="after")
    def _check(self) -> "Recipe":
        from jmoshi_augment.augment.run.output_formats import token_formats
        from jmoshi_augment.augment.speech.tts.registry import available_backends, backend_kind

        if self.candidates.n > 1 and backend_kind(self.tts.backend) != "dialogue":
            dialogue = [b for b in available_backends() if backend_kind(b) == "dialogue"]
            raise ValueError(
                f"candidates.n > 1 needs a neural dialogue-level backend (tts.backend: {' or '.join(dialogue)}), "
                f"not {self.tts.backend!r}: it renders the same audio for every seed"
            )
        needs_tokens = token_formats(self.output.formats)
        if needs_tokens and not self.models.random_weights and not (self.models.mimi and self.models.text_tokenizer):
            raise ValueError(
                f"output.formats {needs_tokens} need models.mimi and models.text_tokenizer "
                "(or models.random_weights: true for tests)"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False)


def _yaml_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node found along ``loc``."""
    node, line = root, None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next((v for k, v in node.value if k.value == key), None)
            if hit is None:
                # an unknown key: report where it is written
                hit_key = next((k for k, _ in node.value if k.value == key), None)
                return hit_key.start_mark.line + 1 if hit_key is not None else line
            line, node = hit.start_mark.line + 1, hit
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def fix(p: Any) -> Any:
        if not isinstance(p, str) or p.startswith(("builtin:", "hf://")) or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    corpus = data.get("corpus")
    if isinstance(corpus, dict) and "path" in corpus:
        corpus["path"] = fix(corpus["path"])
    output = data.get("output")
    if isinstance(output, dict) and "dir" in output:
        output["dir"] = fix(output["dir"])
    models = data.get("models")
    if isinstance(models, dict):
        for k in ("mimi", "text_tokenizer"):
            if k in models:
                models[k] = fix(models[k])
    rewrite = data.get("rewrite")
    if isinstance(rewrite, dict):
        for k in ("prompt_file", "cache_dir"):
            if k in rewrite:
                rewrite[k] = fix(rewrite[k])
    tts = data.get("tts")
    if isinstance(tts, dict):
        for v in tts.get("voices") or []:
            if isinstance(v, dict) and "htsvoice" in v:
                v["htsvoice"] = fix(v["htsvoice"])
        options = tts.get("options")
        if isinstance(options, dict):  # the files the backend's options model marks as paths
            for k, kind in _path_options(tts.get("backend")).items():
                value = options.get(k)
                if value is None:
                    continue
                if isinstance(value, list):
                    options[k] = [fix(x) for x in value]
                elif kind != "model" or (isinstance(value, str) and (value.startswith(".") or (base / value).exists())):
                    # a model may be a Hugging Face repo id "OWNER/NAME": resolved only if it exists here
                    options[k] = fix(value)
    acoustics = data.get("acoustics")
    if isinstance(acoustics, dict):
        for k in ("rir_dir", "noise_dir"):
            if k in acoustics:
                acoustics[k] = fix(acoustics[k])
    candidates = data.get("candidates")
    if isinstance(candidates, dict) and "asr_model" in candidates:
        candidates["asr_model"] = fix(candidates["asr_model"])
    return data


def _path_options(backend: Any) -> dict[str, str]:
    from jmoshi_augment.augment.speech.tts.registry import DEFAULT_BACKEND, backend_info

    try:
        return backend_info(backend if isinstance(backend, str) else DEFAULT_BACKEND).options.path_fields()
    except JmoshiError:  # an unknown backend: reported by validation, with its line
        return {}


def parse_recipe(text: str, path: str | Path = "<recipe>", overrides: dict[str, Any] | None = None) -> Recipe:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise JmoshiError(f"not valid YAML: {getattr(e, 'problem', e)}", path=path,
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise JmoshiError("a recipe must be a YAML mapping (corpus:, output:, ...)", path=path)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    data = _resolve_paths(data, Path(path).parent if str(path) != "<recipe>" else Path.cwd())
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        # every problem at once, one line each: a user fixes them in one round
        errors = [_validation_error(err, root, path) for err in e.errors()]
        raise (errors[0] if len(errors) == 1 else JmoshiErrors(errors)) from None


def _validation_error(err: Any, root: yaml.Node | None, path: str | Path) -> JmoshiError:
    loc = tuple(err["loc"])
    key = ".".join(str(k) for k in loc) or None
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif "input" in err and err["type"] not in ("value_error",):
        msg += f" (got {err['input']!r})"
    return JmoshiError(msg, path=path, line=_yaml_line(root, loc), key=key)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise JmoshiError("recipe file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise JmoshiError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    return parse_recipe(text, path, overrides)
