"""Loading J-Moshi-style checkpoints: the real folder path, old key layouts, precise mismatches."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

from jmoshi_augment.constants import FRAME_SIZE
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime.models import load_lm, load_model, normalise_state_dict
from runtime_helpers import TINY_LM, tiny_model, tiny_model_dir


def _info(folder, weights):
    from moshi.models.loaders import CheckpointInfo

    config = json.loads((folder / "config.json").read_text())
    return CheckpointInfo(moshi_weights=weights, mimi_weights=folder / "x", tokenizer=folder / "y", lm_config=config)


def _old_layout(state: dict, dep_q: int) -> dict:
    """What moshi<=0.2.2 saved: attention projections packed over the Depth Transformer's steps."""
    out, packed = {}, {}
    for k, v in state.items():
        if ".self_attn.in_projs." in k or ".self_attn.out_projs." in k:
            prefix, rest = k.split(".self_attn.")
            kind, i, _ = rest.split(".")
            packed.setdefault((prefix, kind), {})[int(i)] = v
        else:
            out[k] = v
    for (prefix, kind), parts in packed.items():
        name = "in_proj_weight" if kind == "in_projs" else "out_proj.weight"
        out[f"{prefix}.self_attn.{name}"] = torch.cat([parts[i] for i in sorted(parts)])
    return out


def test_loads_the_j_moshi_folder_layout():
    model = tiny_model()
    assert model.lm.dep_q == 8 and model.lm.text_card == model.text_tokenizer.vocab_size()
    assert model.mimi.num_codebooks == 8 and model.frame_size == FRAME_SIZE
    reference = load_file(str(tiny_model_dir() / "model.safetensors"))
    torch.testing.assert_close(model.lm.state_dict()["linears.3.weight"], reference["linears.3.weight"])


def test_old_packed_layout_loads_to_the_same_weights(tmp_path):
    folder = tiny_model_dir()
    state = load_file(str(folder / "model.safetensors"))
    save_file(_old_layout(state, 8), str(tmp_path / "old.safetensors"))
    lm = load_lm(_info(folder, tmp_path / "old.safetensors"), dtype=torch.float32)
    for k, v in lm.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=k)


def test_user_stream_trainer_checkpoint_is_stripped(tmp_path, caplog):
    """nu-dialogue/moshi-finetune with --extend_modules_for_user_stream: dep_q=16, Zero-3 names,
    architecture in moshi_lm_kwargs.json instead of config.json."""
    folder = tiny_model_dir()
    state = load_file(str(folder / "model.safetensors"))
    ext = dict(state)
    for k, v in state.items():  # the 8 user-stream steps: copies shifted by 8 (7 for embeddings)
        for prefix, shift in (("linears.", 8), ("depformer_in.", 8), ("depformer_emb.", 8)):
            if k.startswith(prefix):
                i = int(k.split(".")[1])
                ext[f"{prefix}{i + shift}.{'.'.join(k.split('.')[2:])}"] = v + 1.0
        if k.startswith("depformer.") and (".in_projs." in k or ".out_projs." in k or ".gating." in k):
            parts = k.split(".")
            idx = parts.index("in_projs" if "in_projs" in parts else "out_projs" if "out_projs" in parts else "gating")
            parts[idx + 1] = str(int(parts[idx + 1]) + 8)
            ext[".".join(parts)] = v + 1.0
    ext["depformer_emb.7.weight"] = state["depformer_emb.0.weight"].clone()
    ext = _old_layout(ext, 16)
    for k in list(ext):  # Zero-3 "exposed" names
        if ".gating." in k and k.endswith((".linear_in.weight", ".linear_out.weight")):
            ext[k.replace("r_in.weight", "r_in_weight").replace("r_out.weight", "r_out_weight")] = ext.pop(k)
        elif k.startswith("depformer.") and k.endswith("self_attn.out_proj.weight"):
            ext[k.replace("out_proj.weight", "out_proj_weight")] = ext.pop(k)
    trainer = tmp_path / "trainer"
    trainer.mkdir()
    save_file(ext, str(trainer / "model.safetensors"))
    kwargs = dict(json.loads((folder / "config.json").read_text()), dep_q=16, depformer_context=16)
    (trainer / "moshi_lm_kwargs.json").write_text(json.dumps(kwargs))
    from moshi.models.loaders import CheckpointInfo

    info = CheckpointInfo(moshi_weights=trainer / "model.safetensors", mimi_weights=trainer / "x", tokenizer=trainer / "y")
    with caplog.at_level(logging.WARNING):
        lm = load_lm(info, dtype=torch.float32)
    assert "stripping the 8 extra Depth Transformer steps" in caplog.text
    assert lm.dep_q == 8
    for k, v in lm.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=k)


def test_inconsistent_head_count_is_rejected():
    state = {f"linears.{i}.weight": torch.zeros(1) for i in range(12)}
    with pytest.raises(JmoshiError, match=r"12 Depth Transformer output heads .* dep_q=8"):
        normalise_state_dict(state, dict(TINY_LM), path="m.safetensors")


def test_mismatched_file_fails_with_the_keys_named(tmp_path):
    folder = tiny_model_dir()
    state = load_file(str(folder / "model.safetensors"))
    state["text_emb.weight"] = torch.zeros(999, 32)
    del state["out_norm.alpha"]
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(JmoshiError) as e:
        load_lm(_info(folder, tmp_path / "bad.safetensors"))
    msg = str(e.value)
    assert "bad.safetensors" in msg and "1 missing keys (out_norm.alpha)" in msg
    assert "text_emb.weight [999, 32]" in msg and "text_card must equal the SentencePiece vocabulary size" in msg


def test_missing_files_and_garbage_weights(tmp_path):
    with pytest.raises(JmoshiError, match="LM weights not found"):
        load_model(tmp_path)
    bad = tmp_path / "m"
    bad.mkdir()
    for name in ("model.safetensors", "tokenizer-e351c8d8-checkpoint125.safetensors"):
        (bad / name).write_bytes(b"not safetensors")
    (bad / "tokenizer_spm_32k_3.model").write_bytes((tiny_model_dir() / "tokenizer_spm_32k_3.model").read_bytes())
    (bad / "config.json").write_text((tiny_model_dir() / "config.json").read_text())
    with pytest.raises(JmoshiError, match="cannot read LM weights"):
        load_model(bad)
    with pytest.raises(JmoshiError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        load_model(bad, device="cuda")
