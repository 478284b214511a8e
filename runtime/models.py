"""Load a J-Moshi-style model (Mimi + LM + SentencePiece) for the streaming runtime.

Files are found by :func:`jmoshi_augment.checkpoints.resolve_model` (a local folder in the J-Moshi
layout, or a Hugging Face repo id through the HF cache). This module owns what happens next: the LM
state dict is checked key by key against the ``LMModel`` the config describes *before* any weight is
materialised, so a mismatched file fails with a message naming the keys, not a torch traceback.

Old checkpoints are mapped explicitly:

- moshi<=0.2.2 packed attention weights (``self_attn.in_proj_weight``, ``out_proj.weight``): moshi
  0.2.13 splits them itself at load time; we split them here too so the check sees final names.
- nu-dialogue/moshi-finetune's raw trainer checkpoints (``MoshiForFinetuning``) expose linear weights
  for DeepSpeed Zero-3 as ``gating.linear_in_weight`` / ``self_attn.out_proj_weight``, and keep their
  architecture in ``moshi_lm_kwargs.json`` next to ``model.safetensors``.
- its ``--extend_modules_for_user_stream`` option trains the user's stream through 8 extra Depth
  Transformer steps (``dep_q=16``); the runtime only generates the model's own 8 codebooks, so the
  extras are stripped (what its ``tools/clean_moshi.py`` does), with a warning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jmoshi_augment.checkpoints import TRAINER_KWARGS_NAME, lm_kwargs
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece
    import torch
    from moshi.models.compression import MimiModel
    from moshi.models.lm import LMModel
    from moshi.models.loaders import CheckpointInfo

logger = logging.getLogger(__name__)

MODEL_AUDIO_CODEBOOKS = 8  # codebooks of the model's own stream that the runtime generates

_EXPOSED = [  # moshi-finetune's Zero-3 names → LMModel names
    (re.compile(r"^(.*\.gating(?:\.\d+)?)\.linear_in_weight$"), r"\1.linear_in.weight"),
    (re.compile(r"^(.*\.gating(?:\.\d+)?)\.linear_out_weight$"), r"\1.linear_out.weight"),
    (re.compile(r"^(depformer\.layers\.\d+\.self_attn)\.out_proj_weight$"), r"\1.out_proj.weight"),
]
_PACKED = re.compile(r"^(.*\.self_attn)\.(in_proj_weight|in_proj\.weight|out_proj\.weight)$")


@dataclass
class LoadedModel:
    """Everything the runtime needs, on one device."""

    mimi: "MimiModel"
    lm: "LMModel"
    text_tokenizer: "sentencepiece.SentencePieceProcessor"
    info: "CheckpointInfo"
    lm_gen_config: dict = field(default_factory=dict)  # the checkpoint's own sampling defaults

    @property
    def device(self) -> "torch.device":
        return self.lm.device

    @property
    def frame_size(self) -> int:
        return int(self.mimi.sample_rate / self.mimi.frame_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.mimi.sample_rate)


def normalise_state_dict(
    state: dict[str, "torch.Tensor"], lm_kwargs: dict[str, Any], *, path: str | Path = "model.safetensors"
) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Map old key names onto moshi 0.2.13's ``LMModel`` and strip user-stream extras.

    Returns the new state dict and the (possibly updated) LM kwargs. Pure: touches no file.
    """
    state = dict(state)
    for key in list(state):
        for pattern, repl in _EXPOSED:
            if pattern.match(key):
                state[pattern.sub(repl, key)] = state.pop(key)
                break

    lm_kwargs = dict(lm_kwargs)
    dep_q = int(lm_kwargs.get("dep_q", 8))
    n_linears = len({k.split(".")[1] for k in state if k.startswith("linears.")})
    if n_linears and n_linears != dep_q:
        if dep_q == 2 * MODEL_AUDIO_CODEBOOKS and n_linears == dep_q:
            pass  # config and file agree on a user-stream model: stripped below
        elif n_linears == 2 * dep_q and dep_q == MODEL_AUDIO_CODEBOOKS:
            lm_kwargs["dep_q"] = dep_q = n_linears  # file has extras the config does not mention
        else:
            raise JmoshiError(
                f"the file has {n_linears} Depth Transformer output heads (linears.*) but the config says "
                f"dep_q={dep_q}: the checkpoint does not match its config.json / {TRAINER_KWARGS_NAME}",
                path=path,
            )

    # Split packed per-step attention weights (what moshi's own load hook does) so every later
    # check sees the final names.
    for key in list(state):
        m = _PACKED.match(key)
        if not m:
            continue
        prefix, kind = m.groups()
        target = "in_projs" if kind.startswith("in_proj") else "out_projs"
        weight = state.pop(key)
        mult = dep_q if prefix.startswith("depformer.") and lm_kwargs.get("depformer_weights_per_step") else 1
        if weight.shape[0] % mult:
            raise JmoshiError(f"{key} has shape {list(weight.shape)}, not divisible into {mult} steps", path=path)
        for i, part in enumerate(weight.view(mult, -1, *weight.shape[1:])):
            state[f"{prefix}.{target}.{i}.weight"] = part

    if dep_q == 2 * MODEL_AUDIO_CODEBOOKS:
        logger.warning(
            "%s: dep_q=%d user-stream checkpoint (nu-dialogue/moshi-finetune --extend_modules_for_user_stream): "
            "stripping the %d extra Depth Transformer steps that model the user's audio",
            path, dep_q, dep_q - MODEL_AUDIO_CODEBOOKS,
        )
        state = _strip_user_stream(state, MODEL_AUDIO_CODEBOOKS)
        lm_kwargs["dep_q"] = MODEL_AUDIO_CODEBOOKS
        if lm_kwargs.get("depformer_context") == dep_q:
            lm_kwargs["depformer_context"] = MODEL_AUDIO_CODEBOOKS
    return state, lm_kwargs


def _strip_user_stream(state: dict[str, "torch.Tensor"], keep: int) -> dict[str, "torch.Tensor"]:
    limits = {  # module list → how many entries the model-only Depth Transformer has
        r"^depformer_in\.(\d+)\.": keep,
        r"^depformer_emb\.(\d+)\.": keep - 1,
        r"^linears\.(\d+)\.": keep,
        r"^depformer_norms\.(\d+)\.": keep,
        r"^depformer\.layers\.\d+\.gating\.(\d+)\.": keep,
        r"^depformer\.layers\.\d+\.self_attn\.(?:in|out)_projs\.(\d+)\.": keep,
    }
    out = {}
    for key, value in state.items():
        drop = False
        for pattern, limit in limits.items():
            m = re.match(pattern, key)
            if m and int(m.group(1)) >= limit:
                drop = True
                break
        if not drop:
            out[key] = value
    return out


def check_state_dict(state: dict[str, "torch.Tensor"], expected: dict[str, tuple[int, ...]], *, path: str | Path) -> None:
    """Raise a precise error when keys or shapes differ from the model the config describes."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {list(state[k].shape)} (expected {list(expected[k])})"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})"
        )
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches ({'; '.join(wrong[:3])}{'; ...' if len(wrong) > 3 else ''})")
    if problems:
        hint = ""
        if any(k.startswith(("text_emb.", "text_linear.")) for k in missing + [w.split()[0] for w in wrong]):
            hint = " (text_card must equal the SentencePiece vocabulary size)"
        raise JmoshiError(
            "LM weights do not match the architecture in the config (or stock Moshi 7B when there is no "
            f"config.json): {'; '.join(problems)}{hint}",
            path=path,
        )


def load_lm(info: "CheckpointInfo", *, device: str = "cpu", dtype: "torch.dtype | None" = None) -> "LMModel":
    """Build the LM from the checkpoint, mapping old layouts, with LoRA fused if given."""
    import torch
    from moshi.models.lm import LMModel
    from moshi.models.loaders import get_lora_moshi
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    dtype = dtype or torch.bfloat16
    path = Path(info.moshi_weights)
    kwargs = lm_kwargs(info)
    if "conditioners" in kwargs or kwargs.get("fuser"):
        raise JmoshiError("conditioned LMs (conditioners/fuser in config.json) are not supported by the chat runtime", path=path)
    lora = bool(kwargs.pop("lora", False)) or info.lora_weights is not None
    lora_rank = int(kwargs.pop("lora_rank", 128))
    lora_scaling = float(kwargs.pop("lora_scaling", 2.0))
    kwargs.pop("depformer_causal", None)
    if path.suffix not in (".safetensors", ".sft", ".sfts"):
        raise JmoshiError("LM weights must be a .safetensors file", path=path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise JmoshiError(f"cannot read LM weights: {e}", path=path) from None
    state, kwargs = normalise_state_dict(state, kwargs, path=path)
    try:
        with torch.device("meta"):
            model = LMModel(device="meta", dtype=dtype, **kwargs)
    except (TypeError, AssertionError) as e:
        raise JmoshiError(f"invalid LM config: {e}", path=path) from None
    check_state_dict(state, {k: tuple(v.shape) for k, v in model.state_dict().items()}, path=path)
    for key, value in state.items():
        if value.dtype.is_floating_point:
            state[key] = value.to(dtype)
    model.load_state_dict(state, assign=True)
    model = model.to(device)
    if lora:
        if info.lora_weights is None:
            raise JmoshiError("config.json says lora: true but no LoRA weights were given", path=path)
        try:
            model = get_lora_moshi(model, lora_weights=info.lora_weights, lora_rank=lora_rank,
                                   lora_scaling=lora_scaling, dtype=dtype, device=device, fuse_lora=True)
        except RuntimeError as e:
            raise JmoshiError(f"LoRA weights do not fit this LM: {e}", path=info.lora_weights) from None
    model.eval()
    return model


def load_model(
    spec: str | Path,
    *,
    device: str = "cpu",
    dtype: "torch.dtype | None" = None,
    lm: str | Path | None = None,
    mimi: str | Path | None = None,
    tokenizer: str | Path | None = None,
    lora: str | Path | None = None,
) -> LoadedModel:
    """A J-Moshi-style folder or HF repo id → Mimi, LM and tokenizer on ``device``."""
    import torch

    from jmoshi_augment.checkpoints import load_text_tokenizer, resolve_model

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise JmoshiError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    info = resolve_model(spec, lm=lm, mimi=mimi, tokenizer=tokenizer, lora=lora)
    text_tokenizer = load_text_tokenizer(info.tokenizer)
    model = load_lm(info, device=device, dtype=dtype)
    vocab = text_tokenizer.vocab_size()
    if vocab > model.text_card:
        raise JmoshiError(
            f"the text tokenizer has {vocab} pieces but the LM's text_card is {model.text_card}: "
            "they do not belong together",
            path=info.tokenizer,
        )
    from safetensors import SafetensorError

    try:
        mimi_model = info.get_mimi(device=device)
    except (RuntimeError, KeyError, OSError, SafetensorError) as e:
        raise JmoshiError(f"cannot load Mimi weights: {str(e).splitlines()[0]}", path=info.mimi_weights) from None
    if mimi_model.cardinality != model.card:
        raise JmoshiError(
            f"Mimi has {mimi_model.cardinality} codes per codebook but the LM's card is {model.card}",
            path=info.mimi_weights,
        )
    mimi_model.set_num_codebooks(model.n_q - model.dep_q)
    logger.info(
        "loaded %s: LM %.2f B parameters (%s, %s), Mimi %d codebooks, tokenizer %d pieces",
        spec, sum(p.numel() for p in model.parameters()) / 1e9, device, str(dtype).removeprefix("torch."),
        mimi_model.num_codebooks, vocab,
    )
    return LoadedModel(mimi=mimi_model, lm=model, text_tokenizer=text_tokenizer, info=info,
                       lm_gen_config=dict(info.lm_gen_config or {}))
