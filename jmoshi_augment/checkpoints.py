"""Find model files: local paths first, or a Hugging Face repo through ``huggingface_hub``.

A spec is either a local path, ``hf://OWNER/REPO/FILE`` for one file, or (for a whole model) a
local folder in the J-Moshi layout or a repo id such as ``nu-dialogue/j-moshi-ext``. Hub files are
downloaded once into the HF cache, exactly as ``python -m moshi.server --hf-repo`` does;
``HF_HUB_OFFLINE=1`` restricts that to the cache. Every failure names the file and where it
comes from, before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from jmoshi_augment.errors import JmoshiError, first_line

if TYPE_CHECKING:  # heavy imports stay lazy
    import sentencepiece
    from moshi.models.compression import MimiModel
    from moshi.models.loaders import CheckpointInfo

logger = logging.getLogger(__name__)

# File names in the J-Moshi / J-Moshi-ext (and Kyutai Moshi) repositories.
LM_NAME = "model.safetensors"
MIMI_NAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
TEXT_TOKENIZER_NAME = "tokenizer_spm_32k_3.model"
TRAINER_KWARGS_NAME = "moshi_lm_kwargs.json"  # nu-dialogue/moshi-finetune's architecture file
WHERE_FROM = {
    LM_NAME: "the LM weights of nu-dialogue/j-moshi-ext (or your fine-tuned model)",
    MIMI_NAME: "the Mimi codec weights in nu-dialogue/j-moshi-ext or kyutai/moshiko-pytorch-bf16",
    TEXT_TOKENIZER_NAME: "rinna's SentencePiece model shipped in nu-dialogue/j-moshi-ext",
}


# Seconds to wait for a TCP connection to the hub before treating it as unreachable. Without this
# check, huggingface_hub retries a failing HEAD request five times with backoff (~23 s) and logs
# two warnings per try before we can say anything.
HUB_CONNECT_TIMEOUT = 3.0


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT) -> bool:
    """Whether the Hugging Face endpoint (``HF_ENDPOINT``) accepts a TCP connection; False when
    ``HF_HUB_OFFLINE`` is set."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextmanager
def quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's own warnings and retry messages: our one-line error says it all."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _hub_download(repo: str, filename: str, what: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        with quiet_hub():
            # Offline (or unreachable): the cache only, at once, instead of retries.
            return Path(hf_hub_download(repo, filename, local_files_only=not hub_reachable()))
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: test it first
        raise JmoshiError(
            f"{what}: not in the local Hugging Face cache and the hub cannot be reached "
            "(HF_HUB_OFFLINE=1 or no network); download it once with network access, or pass a local path",
            path=f"hf://{repo}/{filename}",
        ) from None
    except EntryNotFoundError:
        raise JmoshiError(f"{what}: the repo has no file {filename!r}", path=f"hf://{repo}/{filename}") from None
    except RepositoryNotFoundError:
        raise JmoshiError(f"{what}: no such Hugging Face repo (or it is gated)", path=f"hf://{repo}") from None
    except OSError as e:  # network errors surface as OSError subclasses
        raise JmoshiError(f"{what}: download failed: {first_line(e)}", path=f"hf://{repo}/{filename}") from None


def resolve_file(spec: str | Path, what: str) -> Path:
    """A local file path or ``hf://OWNER/REPO/FILE`` → an existing local file."""
    text = str(spec)
    if text.startswith("hf://"):
        parts = text[len("hf://"):].split("/")
        if len(parts) < 3:
            raise JmoshiError(f"{what}: expected hf://OWNER/REPO/FILE", path=text)
        return _hub_download("/".join(parts[:2]), "/".join(parts[2:]), what)
    path = Path(text).expanduser()
    if not path.is_file():
        hint = WHERE_FROM.get(path.name, "")
        raise JmoshiError(f"{what} not found" + (f" (it is {hint})" if hint else ""), path=path)
    return path


def resolve_model(
    spec: str | Path,
    *,
    lm: str | Path | None = None,
    mimi: str | Path | None = None,
    tokenizer: str | Path | None = None,
    lora: str | Path | None = None,
) -> "CheckpointInfo":
    """A J-Moshi-style model folder or HF repo id → moshi's ``CheckpointInfo``.

    ``config.json`` is optional (J-Moshi's repos have none: the stock Moshi 7B architecture);
    explicit ``lm``/``mimi``/``tokenizer``/``lora`` paths override the folder's files.
    """
    from moshi.models.loaders import CheckpointInfo

    folder = Path(str(spec)).expanduser()
    if folder.is_dir():
        def pick(override: Any, name: str, what: str) -> Path:
            return resolve_file(override if override is not None else folder / name, what)

        config_path = folder / "config.json"
        raw_config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else None
        lm_config = dict(raw_config) if raw_config else None
        names = {"moshi_name": LM_NAME, "mimi_name": MIMI_NAME, "tokenizer_name": TEXT_TOKENIZER_NAME}
        extra: dict[str, Any] = {}
        if lm_config is not None:
            for key in names:
                names[key] = lm_config.pop(key, names[key])
            for key in ("lm_gen_config", "tts_config", "stt_config", "model_id"):
                extra[key] = lm_config.pop(key, {})
            lm_config.pop("model_type", None)
            lm_config.pop("lora_name", None)
            lm_config.pop("mimi_config_name", None)
        return CheckpointInfo(
            moshi_weights=pick(lm, names["moshi_name"], "LM weights"),
            mimi_weights=pick(mimi, names["mimi_name"], "Mimi weights"),
            tokenizer=pick(tokenizer, names["tokenizer_name"], "text tokenizer"),
            lm_config=lm_config,
            raw_config=raw_config,
            lora_weights=resolve_file(lora, "LoRA weights") if lora is not None else None,
            **extra,
        )
    text = str(spec)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise JmoshiError("model not found: expected a model folder or a Hugging Face repo id (OWNER/NAME)", path=text)
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError

    if not hub_reachable():
        # Offline: the repo's cached snapshot is a model folder in the same layout. Asking the hub
        # instead would cost ~23 s of retries per file before the same answer.
        from huggingface_hub import snapshot_download

        try:
            with quiet_hub():
                folder = snapshot_download(text, local_files_only=True)
        except LocalEntryNotFoundError:
            raise _uncached_repo(text) from None
        return resolve_model(folder, lm=lm, mimi=mimi, tokenizer=tokenizer, lora=lora)
    try:
        with quiet_hub():
            return CheckpointInfo.from_hf_repo(
                text,
                moshi_weights=None if lm is None else str(resolve_file(lm, "LM weights")),
                mimi_weights=None if mimi is None else str(resolve_file(mimi, "Mimi weights")),
                tokenizer=None if tokenizer is None else str(resolve_file(tokenizer, "text tokenizer")),
                lora_weights=None if lora is None else str(resolve_file(lora, "LoRA weights")),
            )
    except LocalEntryNotFoundError:
        raise _uncached_repo(text) from None
    except (HfHubHTTPError, OSError) as e:
        raise JmoshiError(f"could not fetch the model: {first_line(e)}", path=f"hf://{text}") from None


def _uncached_repo(repo: str) -> JmoshiError:
    return JmoshiError("not in the local Hugging Face cache and the hub cannot be reached (HF_HUB_OFFLINE=1 or no "
                       "network); download it once with network access, or pass a local model folder",
                       path=f"hf://{repo}")


def load_mimi(spec: str | Path | None, *, device: str = "cpu", num_codebooks: int = 8, random_weights: bool = False) -> "MimiModel":
    """Mimi from a weights file; ``random_weights=True`` (tests only) builds an untrained one."""
    from moshi.models.loaders import get_mimi

    if random_weights:
        logger.warning("using a RANDOMLY INITIALISED Mimi: the codes are meaningless (tests only)")
        return get_mimi(filename=None, device=device, num_codebooks=num_codebooks)
    if spec is None:
        raise JmoshiError(f"no Mimi weights given (models.mimi: the file {MIMI_NAME}, {WHERE_FROM[MIMI_NAME]})")
    return get_mimi(filename=resolve_file(spec, "Mimi weights"), device=device, num_codebooks=num_codebooks)


def load_text_tokenizer(spec: str | Path) -> "sentencepiece.SentencePieceProcessor":
    import sentencepiece

    path = resolve_file(spec, "text tokenizer")
    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as e:
        raise JmoshiError(f"not a SentencePiece model: {e}", path=path) from None


def lm_kwargs(info: "CheckpointInfo", *, default_dep_q: int | None = None) -> dict[str, Any]:
    """The LM architecture of a checkpoint: its ``config.json``, else nu-dialogue/moshi-finetune's
    ``moshi_lm_kwargs.json`` beside the weights, else the stock Moshi 7B (with ``default_dep_q``
    Depth-Transformer heads when given: a J-Moshi multi-stream TTS has 16, one per codebook of
    both speakers)."""
    from moshi.models import loaders

    if info.lm_config is not None:
        return dict(info.lm_config)
    trainer = Path(info.moshi_weights).with_name(TRAINER_KWARGS_NAME)
    if trainer.is_file():
        logger.info("using the architecture in %s", trainer)
        try:
            return dict(json.loads(trainer.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise JmoshiError(f"not valid JSON: {e}", path=trainer) from None
    kwargs = dict(loaders._lm_kwargs)
    if default_dep_q is not None:
        kwargs["dep_q"] = default_dep_q
    return kwargs


def resolve_device(spec: str, *, key: str | None = None) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else is checked, and a
    CUDA device asked for on a machine without one fails here, naming ``key``."""
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise JmoshiError(f"device {spec!r} requested but no CUDA GPU is visible", key=key)
    try:
        torch.device(spec)
    except RuntimeError:
        raise JmoshiError(f"unknown device {spec!r} (auto, cpu or cuda[:N])", key=key) from None
    return spec


def file_digest(path: str | Path, *, full_limit: int = 1 << 30) -> str:
    """sha256 of a model file, recorded next to the data it made. Files over ``full_limit`` bytes
    (the 15 GB LM) are identified by size plus the hash of their first and last 64 MiB."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= full_limit:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return "sha256:" + h.hexdigest()
        h.update(str(size).encode())
        h.update(f.read(64 << 20))
        f.seek(size - (64 << 20))
        h.update(f.read(64 << 20))
        return "sha256-partial:" + h.hexdigest()
