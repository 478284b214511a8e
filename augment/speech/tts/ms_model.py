"""Loading a J-Moshi multi-stream TTS checkpoint, and the bank of voice-pair audio prompts.

Split out of :mod:`.moshi_ms` (which re-exports every public name here): the checkpoint checks
(``dep_q = n_q``, one Depth-Transformer head per codebook, no conditioners or LoRA) run before
any weights are read, so a dialogue model is refused before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from jmoshi_augment.augment.types import FRAME_RATE, SAMPLE_RATE, Seconds
from jmoshi_augment.constants import FRAME_SIZE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece
    import torch
    from moshi.models.compression import MimiModel
    from moshi.models.lm import LMModel

PROMPT_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".npy")


# ----------------------------------------------------------------------------------- model files


@dataclass
class MultiStreamModel:
    lm: "LMModel"
    mimi: "MimiModel"
    sp: "sentencepiece.SentencePieceProcessor"
    files: dict[str, str] = field(default_factory=dict)  # what was loaded, for models.json

    @property
    def codebooks_per_speaker(self) -> int:
        return self.lm.dep_q // 2


def check_multistream(kwargs: dict[str, Any], weights: Path) -> None:
    """Fail before any work when the checkpoint cannot voice two speakers."""
    from safetensors import safe_open

    n_q, dep_q = int(kwargs.get("n_q", 8)), int(kwargs.get("dep_q", 8))
    if dep_q != n_q or n_q % 2:
        raise JmoshiError(
            f"multi-stream TTS needs a Depth Transformer that generates both speakers' codebooks "
            f"(dep_q = n_q, e.g. 16 = 2 x 8); this checkpoint has n_q={n_q}, dep_q={dep_q} "
            "(a dialogue model, not a multi-stream TTS)", path=weights)
    if weights.suffix not in (".safetensors", ".sft", ".sfts"):
        raise JmoshiError("LM weights must be a .safetensors file", path=weights)
    try:
        with safe_open(str(weights), framework="pt") as f:
            heads = {k.split(".")[1] for k in f.keys() if k.startswith("linears.")}
    except Exception as e:  # safetensors raises several unrelated types for a bad header
        raise JmoshiError(f"cannot read LM weights: {e}", path=weights) from None
    if len(heads) != dep_q:
        raise JmoshiError(f"the file has {len(heads)} Depth Transformer output heads (linears.*) but a "
                          f"multi-stream TTS with dep_q={dep_q} needs {dep_q}", path=weights)


def load_multistream_model(spec: str | Path, *, device: str = "cpu", dtype: "torch.dtype | None" = None,
                           lm: str | Path | None = None, mimi: str | Path | None = None,
                           tokenizer: str | Path | None = None) -> MultiStreamModel:
    """A J-Moshi-layout folder or HF repo id → LM (checked for dep_q = n_q), Mimi, SentencePiece."""
    import torch
    from moshi.models.lm import LMModel
    from moshi.models.loaders import get_mimi
    from safetensors.torch import load_file

    from jmoshi_augment.checkpoints import lm_kwargs, load_text_tokenizer, resolve_model

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise JmoshiError(f"device {device!r} requested but CUDA is not available")
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    info = resolve_model(spec, lm=lm, mimi=mimi, tokenizer=tokenizer)
    weights = Path(info.moshi_weights)
    kwargs = lm_kwargs(info, default_dep_q=16)  # J-Moshi MS-TTS: the stock 7B + the user stream's heads
    check_multistream(kwargs, weights)
    extra = [k for k in ("conditioners", "fuser", "lora") if kwargs.get(k)]
    if extra:
        raise JmoshiError(f"config.json has {extra}: conditioned or LoRA LMs are not J-Moshi MS-TTS checkpoints "
                          "(use the dsm backend for Kyutai TTS models)", path=weights)
    for key in ("lora", "lora_rank", "lora_scaling", "depformer_causal", "conditioners", "fuser"):
        kwargs.pop(key, None)
    sp = load_text_tokenizer(info.tokenizer)
    with torch.device("meta"):
        try:
            model = LMModel(device="meta", dtype=dtype, **kwargs)
        except (TypeError, AssertionError) as e:
            raise JmoshiError(f"invalid LM config: {e}", path=weights) from None
    state = {k: (v.to(dtype) if v.dtype.is_floating_point else v) for k, v in load_file(str(weights)).items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise JmoshiError("LM weights do not match the config: " + " ".join(str(e).split())[:400], path=weights) from None
    model = model.to(device).eval()
    if sp.vocab_size() > model.text_card:
        raise JmoshiError(f"the tokenizer has {sp.vocab_size()} pieces but the LM's text_card is {model.text_card}",
                          path=info.tokenizer)
    codec = get_mimi(filename=info.mimi_weights, mimi_config=info.mimi_config, device=device,
                     num_codebooks=model.dep_q // 2)
    if codec.cardinality != model.card:
        raise JmoshiError(f"Mimi has {codec.cardinality} codes per codebook but the LM's card is {model.card}",
                          path=info.mimi_weights)
    files = {"lm": str(weights), "mimi": str(info.mimi_weights), "tokenizer": str(info.tokenizer)}
    return MultiStreamModel(model, codec, sp, files)


# ------------------------------------------------------------------------------------ prompt bank


class PromptBank:
    """Voice pairs by name (file stem): stereo wavs (Mimi-encoded on first use) or token ``.npy``."""

    def __init__(self, paths: Sequence[str | Path], *, max_seconds: Seconds = 10.0, text: str = "pad") -> None:
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                files.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in PROMPT_EXTS))
            elif p.is_file():
                files.append(p)
            else:
                raise JmoshiError("audio prompt not found", path=p, key="tts.options.prompts")
        self.files = {f.stem: f for f in files}
        if len(self.files) != len(files):
            raise JmoshiError("two audio prompts share a file name (prompts are named by stem)", key="tts.options.prompts")
        self.max_frames = int(max_seconds * FRAME_RATE)
        self.text = text
        self._cache: dict[str, np.ndarray] = {}

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def tokens(self, name: str | None, model: MultiStreamModel) -> np.ndarray:
        """int64 ``[1 + dep_q, T]`` for voice pair ``name`` (``None`` with an empty bank: no prompt)."""
        K = model.lm.num_codebooks
        if name is None:
            return np.zeros((K, 0), dtype=np.int64)
        if name not in self.files:
            raise JmoshiError(f"unknown voice pair {name!r}; the prompt bank has: {', '.join(self.names) or 'nothing'}",
                              key="tts.options.prompts")
        if name not in self._cache:
            self._cache[name] = self._load(self.files[name], model)
        return self._cache[name]

    def _load(self, path: Path, model: MultiStreamModel) -> np.ndarray:
        import torch

        K = model.lm.num_codebooks
        if path.suffix.lower() == ".npy":
            arr = np.load(path)
            if arr.ndim != 2 or arr.shape[0] != K or not np.issubdtype(arr.dtype, np.integer):
                raise JmoshiError(f"a token prompt must be an integer array [{K}, T], got {arr.dtype} {list(arr.shape)}", path=path)
            return arr[:, -self.max_frames:].astype(np.int64)
        import sphn

        try:
            wav, _ = sphn.read(str(path), sample_rate=SAMPLE_RATE)
        except Exception as e:  # sphn raises plain exceptions for unreadable files
            raise JmoshiError(f"cannot read audio prompt: {e}", path=path) from None
        if wav.ndim != 2 or wav.shape[0] != 2:
            raise JmoshiError(f"an audio prompt must be stereo (channel 0 = main voice, 1 = other), got "
                              f"{wav.shape[0] if wav.ndim == 2 else 1} channel(s)", path=path)
        hop = FRAME_SIZE
        wav = wav[:, -self.max_frames * hop:]
        wav = wav[:, : wav.shape[1] // hop * hop]
        if wav.shape[1] == 0:
            raise JmoshiError("audio prompt is shorter than one 80 ms frame", path=path)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(model.lm.device)[:, None]
            codes = model.mimi.encode(x).cpu().numpy()  # [2, 8, T]
        text = np.full((1, codes.shape[-1]), TEXT_IDS.pad if self.text == "pad" else -1, dtype=np.int64)
        return np.concatenate([text, codes[0], codes[1]], axis=0).astype(np.int64)
