"""Validation before work: everything a run needs, resolved and checked before anything is loaded,
written or paid for, with every problem reported at once (one line each).

Without it a run fails on its inputs one at a time, each after the slow part before it: the text
tokenizer, then (after Mimi has loaded) the corpus; an unknown TTS backend only inside the worker
processes. ``recipe check`` and the start of ``synth`` both call :func:`check_recipe`; only cheap
things happen here (file headers, the first dialogue of the corpus, the backend's factory
signature), never a model load.
"""

from __future__ import annotations

import inspect
import json
import os
import struct
from pathlib import Path
from typing import Any, Callable, Iterable

from jmoshi_augment.errors import JmoshiError, JmoshiErrors, first_line
from jmoshi_augment.recipe import Recipe

TOKEN_FORMATS = {"tar", "jmoshi"}
# Seconds to wait for the rewrite endpoint when asked to check it (``recipe check --endpoint``).
ENDPOINT_TIMEOUT = 5.0

Check = Callable[[Recipe], Iterable[JmoshiError]]


def check_recipe(recipe: Recipe, *, output: bool = True, endpoint: bool = False) -> list[JmoshiError]:
    """Every problem found in ``recipe``'s inputs. ``output``: also check ``output.dir`` against a
    run already there; ``endpoint``: also try the rewrite endpoint (network)."""
    checks: list[Check] = [_corpus, _tts, _voices, _models, _asr, _rewrite, _acoustics]
    if output:
        checks.append(_output)
    if endpoint:
        checks.append(_endpoint)
    problems: list[JmoshiError] = []
    for check in checks:
        try:
            problems.extend(check(recipe))
        except JmoshiError as e:
            problems.append(e)
        except Exception as e:  # a check that trips over the input is still one line about it
            problems.append(JmoshiError(f"could not check ({type(e).__name__}: {first_line(e)})",
                                        key=_SECTION.get(check.__name__)))
    return problems


_SECTION = {"_corpus": "corpus", "_tts": "tts", "_voices": "tts.voices", "_models": "models",
            "_asr": "candidates.asr_model", "_rewrite": "rewrite", "_endpoint": "rewrite.base_url",
            "_output": "output.dir", "_acoustics": "acoustics"}


def raise_problems(problems: list[JmoshiError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise JmoshiErrors(problems)


# ----------------------------------------------------------------------------------------- corpus


def _corpus(recipe: Recipe) -> Iterable[JmoshiError]:
    """The loader exists, the path exists, and the loader reads every dialogue the run will read
    (up to ``corpus.limit``): a bad line 40,000 must not end a run after hours of synthesis.
    Reading text is cheap next to synthesising it."""
    from jmoshi_augment.corpora import LoadReport, load_corpus

    c = recipe.corpus
    limit = None if c.filters.ids else c.limit
    n = 0
    for _ in load_corpus(c.name, c.path, report=LoadReport(), limit=limit):
        n += 1
    if n == 0:
        yield JmoshiError("the corpus holds no dialogue", path=c.path, key="corpus.path")


# -------------------------------------------------------------------------------------------- tts

# Options that name files or folders, per backend: checked here, loaded only by the backend.
_PATH_OPTIONS: dict[str, dict[str, str]] = {
    "moshi_ms": {"model": "model", "lm": "file", "mimi": "file", "tokenizer": "file", "prompts": "prompts"},
    "dsm": {"model": "model", "voices": "voices"},
}


def _tts(recipe: Recipe) -> Iterable[JmoshiError]:
    """The backend is registered, takes these options, and the files its options name exist."""
    import jmoshi_augment.augment.speech.tts  # noqa: F401  (registers the built-in backends)
    from jmoshi_augment.augment.speech.tts.base import _entry, _option_names

    name, options = recipe.tts.backend, recipe.tts.options
    factory, _ = _entry(name)  # an unknown name: the one problem of this section
    params = inspect.signature(factory).parameters
    accepted = {p.name for p in params.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key in options:
        if key not in accepted and not takes_any:
            yield JmoshiError(f"backend {name!r} has no option {key!r}; it takes: {_option_names(factory)}",
                              key=f"tts.options.{key}")
    for p in params.values():
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in options:
            yield JmoshiError(f"backend {name!r} needs this option", key=f"tts.options.{p.name}")
    for key, kind in _PATH_OPTIONS.get(name, {}).items():
        value = options.get(key)
        if value is None:
            continue
        yield from _path_option(kind, value, f"tts.options.{key}")
    if name == "moshi_ms" and isinstance(options.get("model"), str) and Path(options["model"]).expanduser().is_dir():
        yield from _jmoshi_folder(Path(options["model"]).expanduser(), options)


def _jmoshi_folder(folder: Path, options: dict[str, Any]) -> Iterable[JmoshiError]:
    """A J-Moshi-layout folder holds the LM, Mimi and tokenizer files (names from its config.json
    when it has one), unless an option points elsewhere."""
    from jmoshi_augment.checkpoints import LM_NAME, MIMI_NAME, TEXT_TOKENIZER_NAME

    names = {"lm": LM_NAME, "mimi": MIMI_NAME, "tokenizer": TEXT_TOKENIZER_NAME}
    config = folder / "config.json"
    if config.is_file():
        try:
            raw = json.loads(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            yield JmoshiError(f"not valid JSON: {first_line(e)}", path=config, key="tts.options.model")
            return
        if isinstance(raw, dict):
            names.update({k: raw.get(f"{n}_name", names[k]) for k, n in (("lm", "moshi"), ("mimi", "mimi"), ("tokenizer", "tokenizer"))})
    for key, file_name in names.items():
        if options.get(key) is None and not (folder / file_name).is_file():
            yield JmoshiError(f"model folder lacks {file_name} (or set tts.options.{key})", path=folder, key="tts.options.model")


def _path_option(kind: str, value: Any, key: str) -> Iterable[JmoshiError]:
    if kind == "model":
        yield from _model_spec(str(value), key)
    elif kind == "file":
        yield from _file_spec(str(value), key)
    elif kind in ("prompts", "voices"):
        values = value if isinstance(value, list) else [value]
        for v in values:
            yield from _prompt(Path(str(v)), key, voices=kind == "voices")


def _model_spec(spec: str, key: str) -> Iterable[JmoshiError]:
    """A local model folder must exist; ``OWNER/NAME`` not present locally is a hub repo id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return
    if path.exists():
        yield JmoshiError("expected a model folder (or a Hugging Face repo id OWNER/NAME), got a file", path=spec, key=key)
    elif spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        yield JmoshiError("model folder not found (nor a Hugging Face repo id OWNER/NAME)", path=spec, key=key)


def _file_spec(spec: str, key: str, what: str = "file") -> Iterable[JmoshiError]:
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
        yield from _safetensors(path, key)
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


def _safetensors(path: Path, key: str) -> Iterable[JmoshiError]:
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


# ----------------------------------------------------------------------------------------- voices


def _voices(recipe: Recipe) -> Iterable[JmoshiError]:
    """HTS voice files of the OpenJTalk backend parse (their duration model is what we read)."""
    from jmoshi_augment.augment.speech.tts.htsvoice import load_duration_model

    for i, voice in enumerate(recipe.tts.voices):
        if voice.htsvoice is None:
            continue
        try:
            load_duration_model(voice.htsvoice)
        except JmoshiError as e:
            yield JmoshiError(e.message, path=e.path, key=f"tts.voices.{i}.htsvoice")


# ----------------------------------------------------------------------------------------- models


def _models(recipe: Recipe) -> Iterable[JmoshiError]:
    """Mimi and the text tokenizer, when a token format is written: present and of the right kind."""
    m = recipe.models
    if not set(recipe.output.formats) & TOKEN_FORMATS:
        return
    if m.text_tokenizer is not None:
        before = []
        before.extend(_file_spec(m.text_tokenizer, "models.text_tokenizer", "text tokenizer"))
        yield from before
        if not before and not m.text_tokenizer.startswith("hf://"):
            import sentencepiece

            try:
                sentencepiece.SentencePieceProcessor(model_file=str(Path(m.text_tokenizer).expanduser()))
            except (OSError, RuntimeError) as e:
                yield JmoshiError(f"not a SentencePiece model: {first_line(e)}", path=m.text_tokenizer,
                                  key="models.text_tokenizer")
    if m.mimi is not None and not m.random_weights:
        before = list(_file_spec(m.mimi, "models.mimi", "Mimi weights"))
        yield from before
        if not before and not m.mimi.startswith("hf://"):
            yield from _safetensors(Path(m.mimi).expanduser(), "models.mimi")


def _asr(recipe: Recipe) -> Iterable[JmoshiError]:
    """The best-of-N ASR folder: faster-whisper (model.bin) or transformers (config.json)."""
    c = recipe.candidates
    if c.asr_model is None or c.n < 2 or not c.cer:
        return
    path = Path(c.asr_model).expanduser()
    if not path.is_dir():
        yield JmoshiError("ASR model directory not found", path=path, key="candidates.asr_model")
    elif not ((path / "model.bin").is_file() or (path / "config.json").is_file()):
        yield JmoshiError("not an ASR model directory: expected model.bin (faster-whisper) or config.json "
                          "(transformers)", path=path, key="candidates.asr_model")
    else:
        import importlib.util

        need = "faster_whisper" if (path / "model.bin").is_file() else "transformers"
        if importlib.util.find_spec(need) is None:
            yield JmoshiError(f"this ASR model needs {need.replace('_', '-')}: pip install {need.replace('_', '-')}",
                              path=path, key="candidates.asr_model")


# ---------------------------------------------------------------------------------------- rewrite


def _rewrite(recipe: Recipe) -> Iterable[JmoshiError]:
    r = recipe.rewrite
    if r.backend == "none":
        return
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        yield JmoshiError("rewrite.backend llm needs the openai client: pip install 'jmoshi-augment[llm]'",
                          key="rewrite.backend")
    if r.api_key_env and not os.environ.get(r.api_key_env):
        yield JmoshiError(f"environment variable {r.api_key_env} is not set", key="rewrite.api_key_env")
    if r.prompt_file is not None:
        path = Path(r.prompt_file)
        try:
            if not path.read_text(encoding="utf-8").strip():
                yield JmoshiError("prompt file is empty", path=path, key="rewrite.prompt_file")
        except FileNotFoundError:
            yield JmoshiError("prompt file not found", path=path, key="rewrite.prompt_file")
        except UnicodeDecodeError as e:
            yield JmoshiError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path, key="rewrite.prompt_file")
        except OSError as e:
            yield JmoshiError(f"cannot read: {e.strerror}", path=path, key="rewrite.prompt_file")


def _endpoint(recipe: Recipe) -> Iterable[JmoshiError]:
    """The rewrite server answers ``GET {base_url}/models`` (every OpenAI-compatible server has it)."""
    import urllib.error
    import urllib.request

    r = recipe.rewrite
    if r.backend == "none":
        return
    url = r.base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {os.environ[r.api_key_env]}"} if r.api_key_env and os.environ.get(r.api_key_env) else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=ENDPOINT_TIMEOUT) as resp:
            resp.read(1 << 16)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            yield JmoshiError(f"the server refuses the API key (HTTP {e.code})", path=url, key="rewrite.api_key_env")
        elif e.code != 404:  # some servers do not list models; reachable is what we check
            yield JmoshiError(f"the server answers HTTP {e.code}", path=url, key="rewrite.base_url")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        yield JmoshiError(f"cannot reach the LLM server ({first_line(reason)})", path=url, key="rewrite.base_url")


# ------------------------------------------------------------------------------------- acoustics


def _acoustics(recipe: Recipe) -> Iterable[JmoshiError]:
    """The user's RIR and noise folders: every file readable, 24 kHz, long enough."""
    from jmoshi_augment.augment.acoustics.folders import folder_problems

    for key in ("rir_dir", "noise_dir"):
        folder = getattr(recipe.acoustics, key)
        if folder is not None:
            yield from folder_problems(folder, key)


# ----------------------------------------------------------------------------------------- output


def _output(recipe: Recipe) -> Iterable[JmoshiError]:
    """An existing output folder must hold a run of the same recipe (or nothing)."""
    problem = output_identity_problem(Path(recipe.output.dir), recipe)
    if problem is not None:
        yield problem


def output_identity_problem(out_dir: Path, recipe: Recipe) -> JmoshiError | None:
    """Why ``recipe`` cannot write into ``out_dir`` (None: it can). Only reads: the identity
    (``recipe.json``) is written once every check has passed, so a run that fails its checks never
    claims the folder."""
    from jmoshi_augment.augment.run.units import output_defining

    if out_dir.exists() and not out_dir.is_dir():
        return JmoshiError("output.dir is a file, not a folder", path=out_dir, key="output.dir")
    saved = out_dir / "recipe.json"
    if not saved.exists():
        return None
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return JmoshiError(f"unreadable run identity ({first_line(e)}); delete this folder or choose another output.dir",
                           path=saved, key="output.dir")
    if output_defining(before) != output_defining(recipe.to_dict()):
        return JmoshiError("holds the output of a different recipe; choose another output.dir or delete this one",
                           path=out_dir, key="output.dir")
    return None
