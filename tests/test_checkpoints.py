"""Model files: clear errors before any work, from local paths and from the HF hub (offline here)."""

import pytest

from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.checkpoints import resolve_file, resolve_model
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import parse_recipe


def test_missing_local_mimi_names_the_file_and_its_source(tmp_path):
    with pytest.raises(JmoshiError) as e:
        resolve_file(tmp_path / "tokenizer-e351c8d8-checkpoint125.safetensors", "Mimi weights")
    assert "tokenizer-e351c8d8-checkpoint125.safetensors: Mimi weights not found" in str(e.value)
    assert "nu-dialogue/j-moshi-ext" in str(e.value)


def test_hub_file_not_in_the_cache_while_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(JmoshiError) as e:
        resolve_file("hf://nu-dialogue/j-moshi-ext/tokenizer_spm_32k_3.model", "text tokenizer")
    assert str(e.value).startswith("hf://nu-dialogue/j-moshi-ext/tokenizer_spm_32k_3.model: text tokenizer: not in the local")
    with pytest.raises(JmoshiError, match="expected hf://OWNER/REPO/FILE"):
        resolve_file("hf://just-a-repo", "Mimi weights")


def test_model_spec_that_is_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(JmoshiError, match="expected a model folder or a Hugging Face repo id"):
        resolve_model(str(tmp_path / "missing" / "model"))
    (tmp_path / "m").mkdir()
    with pytest.raises(JmoshiError, match="LM weights not found"):
        resolve_model(tmp_path / "m")


def test_synth_fails_before_any_work_when_a_model_file_is_missing(tmp_path):
    recipe = parse_recipe(
        "corpus: {name: jsonl, path: 'builtin:sample', limit: 1}\n"
        f"output: {{dir: {tmp_path / 'out'}, formats: [wav, tar]}}\n"
        f"models: {{mimi: {tmp_path / 'nope.safetensors'}, text_tokenizer: {tmp_path / 'nope.model'}}}\n"
    )
    with pytest.raises(JmoshiError, match="not found"):
        run_synth(recipe, progress=False)
    assert not (tmp_path / "out" / "audio").exists() and not (tmp_path / "out" / "units").exists()


def test_repo_id_not_in_the_cache_while_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(JmoshiError) as e:
        resolve_model("nu-dialogue/j-moshi-ext")
    assert str(e.value).startswith("hf://nu-dialogue/j-moshi-ext: not in the local Hugging Face cache")
