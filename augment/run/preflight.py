"""Validation before work: everything a run needs, resolved and checked before anything is loaded,
written or paid for, with every problem reported at once (one line each).

Without it a run fails on its inputs one at a time, each after the slow part before it: the text
tokenizer, then (after Mimi has loaded) the corpus; an unknown TTS backend only inside the worker
processes. ``recipe check`` and the start of ``synth`` both call :func:`check_recipe`; only cheap
things happen here (file headers, the first dialogue of the corpus, the backend's factory
signature), never a model load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from jmoshi_augment.errors import JmoshiError, JmoshiErrors, first_line
from jmoshi_augment.file_checks import file_spec, safetensors_header
from jmoshi_augment.recipe import Recipe

# Seconds to wait for the rewrite endpoint when asked to check it (``recipe check --endpoint``).
ENDPOINT_TIMEOUT = 5.0

Check = Callable[[Recipe], Iterable[JmoshiError]]


def check_recipe(recipe: Recipe, *, output: bool = True, endpoint: bool = False) -> list[JmoshiError]:
    """Every problem found in ``recipe``'s inputs. ``output``: also check ``output.dir`` against a
    run already there; ``endpoint``: also try the rewrite endpoint (network)."""
    checks: list[Check] = [_corpus, _tts, _models, _asr, _rewrite, _acoustics]
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


_SECTION = {"_corpus": "corpus", "_tts": "tts", "_models": "models",
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
    from jmoshi_augment.corpora import SkipCounts, load_corpus

    c = recipe.corpus
    limit = None if c.filters.ids else c.limit
    n = 0
    for _ in load_corpus(c.name, c.path, skips=SkipCounts(), limit=limit):
        n += 1
    if n == 0:
        yield JmoshiError("the corpus holds no dialogue", path=c.path, key="corpus.path")


# -------------------------------------------------------------------------------------------- tts

def _tts(recipe: Recipe) -> Iterable[JmoshiError]:
    """The files the backend's options and the voices name exist and read; the backend's own
    options model knows which those are (the recipe already validated names and values)."""
    yield from recipe.tts.options.check_files(recipe.tts.voices)


# ----------------------------------------------------------------------------------------- models


def _models(recipe: Recipe) -> Iterable[JmoshiError]:
    """Mimi and the text tokenizer, when a token format is written: present and of the right kind."""
    m = recipe.models
    from jmoshi_augment.augment.run.output_formats import token_formats

    if not token_formats(recipe.output.formats):
        return
    if m.text_tokenizer is not None:
        before = []
        before.extend(file_spec(m.text_tokenizer, "models.text_tokenizer", "text tokenizer"))
        yield from before
        if not before and not m.text_tokenizer.startswith("hf://"):
            import sentencepiece

            try:
                sentencepiece.SentencePieceProcessor(model_file=str(Path(m.text_tokenizer).expanduser()))
            except (OSError, RuntimeError) as e:
                yield JmoshiError(f"not a SentencePiece model: {first_line(e)}", path=m.text_tokenizer,
                                  key="models.text_tokenizer")
    if m.mimi is not None and not m.random_weights:
        before = list(file_spec(m.mimi, "models.mimi", "Mimi weights"))
        yield from before
        if not before and not m.mimi.startswith("hf://"):
            yield from safetensors_header(Path(m.mimi).expanduser(), "models.mimi")


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
    before, now = output_defining(before), output_defining(recipe.to_dict())
    if before != now:
        return JmoshiError(f"holds the output of a different recipe ({first_difference(before, now)} differs); "
                           "choose another output.dir or delete this one", path=out_dir, key="output.dir")
    return None


def first_difference(a: object, b: object, at: str = "") -> str:
    """The dotted key of the first place two recipe dicts differ (the recipe itself if types differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{at}.{key}" if at else str(key))
    return at or "the recipe"
