import subprocess
import sys
from pathlib import Path

import pytest

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "corpus: {name: jsonl, path: 'builtin:sample'}\noutput: {dir: out}\n"


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert Path(recipe.output.dir).is_absolute()  # resolved against the recipe's folder


def test_defaults_and_path_resolution(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(MINIMAL + "models: {mimi: m.safetensors, text_tokenizer: 'hf://a/b/t.model'}\n")
    r = load_recipe(f)
    assert r.output.dir == str(tmp_path / "out")
    assert r.models.mimi == str(tmp_path / "m.safetensors") and r.models.text_tokenizer == "hf://a/b/t.model"
    assert r.corpus.path == "builtin:sample"
    assert r.timing.overlap_prob == 0.32 and len(r.tts.voices) == 2
    assert parse_recipe(r.to_yaml()) == r  # the saved resolved recipe reloads to the same run


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINIMAL + "timing:\n  overlap_prob: 0.3\n  overlap_probability: 0.2\n", "<recipe>:5: timing.overlap_probability: unknown key"),
        (MINIMAL + "timing:\n  overlap_prob: lots\n", "<recipe>:4: timing.overlap_prob: Input should be a valid number"),
        (MINIMAL + "timing:\n  overlap_prob: 1.5\n", "<recipe>:4: timing.overlap_prob: Input should be less than or equal to 1"),
        ("output: {dir: out}\n", "<recipe>: corpus: required key is missing"),
        (MINIMAL + "output: {dir: out, formats: [mp3]}\n", "output.formats.0: Input should be 'wav', 'tar' or 'jmoshi'"),
        (MINIMAL.replace("{dir: out}", "{dir: out, formats: [tar]}"), "need models.mimi and models.text_tokenizer"),
        (MINIMAL + "tts:\n  voices: [{name: only}]\n", "a dialogue needs at least two voices"),
        ("- just\n- a list\n", "a recipe must be a YAML mapping"),
        ("corpus: [unclosed\n", "<recipe>:2: not valid YAML"),
    ],
)
def test_bad_recipes_name_the_key_and_line(text, expected):
    with pytest.raises(JmoshiError) as e:
        parse_recipe(text)
    assert expected in str(e.value)


def test_every_schema_problem_is_reported_at_once():
    from jmoshi_augment.errors import JmoshiErrors

    with pytest.raises(JmoshiErrors) as e:
        parse_recipe(MINIMAL + "seed: abc\ntiming:\n  overlap_prob: 2\n  nope: 1\n")
    assert e.value.lines() == [
        "<recipe>:5: timing.overlap_prob: Input should be less than or equal to 1 (got 2)",
        "<recipe>:6: timing.nope: unknown key",
        "<recipe>:3: seed: Input should be a valid integer, unable to parse string as an integer (got 'abc')",
    ]


def test_overrides_apply_before_validation():
    r = parse_recipe(MINIMAL, overrides={"timing.overlap_prob": 0.4, "corpus.limit": 3})
    assert r.timing.overlap_prob == 0.4 and r.corpus.limit == 3
    with pytest.raises(JmoshiError, match="timing.nope: unknown key"):
        parse_recipe(MINIMAL, overrides={"timing.nope": 1})


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jmoshi_augment.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_recipe_check(tmp_path):
    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    assert len(recipes) >= 5
    ok = _cli("recipe", "check", "--schema-only", *map(str, recipes))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(": ok (") == len(recipes)
    # without --schema-only the files are looked at too: the sample's are all there
    assert _cli("recipe", "check", str(ROOT / "recipes" / "sample.yaml")).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "seed: abc\n")
    res = _cli("recipe", "check", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {bad}:3: seed: Input should be a valid integer, unable to parse string as an integer (got 'abc')"]
    assert "Traceback" not in res.stderr
    missing = _cli("recipe", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml: recipe file not found" in missing.stderr
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes("seed: 1 # caf\xe9\n".encode("latin-1"))
    res = _cli("recipe", "check", str(binary))
    assert res.returncode == 2 and "not UTF-8 text" in res.stderr


def test_a_folder_saved_before_typed_options_keeps_its_identity(tmp_path):
    """recipe.json once stored only the tts.options a recipe gave; compared with every default
    filled in, such a folder still resumes, and a real change is refused naming the key."""
    import json

    from jmoshi_augment.augment.run.preflight import output_identity_problem

    text = f"corpus: {{name: jsonl, path: builtin:sample}}\noutput: {{dir: {tmp_path}}}\ntts: {{backend: kokoro}}\n"
    recipe = parse_recipe(text)
    assert recipe.tts.options.threads == 1  # typed, with the backend's defaults
    old = recipe.to_dict()
    old["tts"]["options"] = {}  # as an earlier version wrote it
    (tmp_path / "recipe.json").write_text(json.dumps(old))
    assert output_identity_problem(tmp_path, recipe) is None
    changed = parse_recipe(text.replace("{backend: kokoro}", "{backend: kokoro, options: {margin: 0.1}}"))
    problem = output_identity_problem(tmp_path, changed)
    assert problem is not None and "(tts.options.margin differs)" in str(problem)


def test_backend_options_are_typed_shown_and_checked_with_their_line():
    from jmoshi_augment.errors import JmoshiErrors

    base = "corpus: {name: jsonl, path: builtin:sample}\noutput: {dir: o}\n"
    shown = parse_recipe(base + "tts: {backend: kokoro}\n").to_dict()["tts"]["options"]
    assert shown == {"margin": 0.04, "threads": 1, "device": "cpu", "model": None}
    with pytest.raises(JmoshiErrors) as e:
        parse_recipe(base + "tts:\n  backend: kokoro\n  options: {threads: x, devices: cuda}\n", "r.yaml")
    assert e.value.lines() == ["r.yaml:5: tts.options.threads: threads must be an integer >= 0, got 'x'",
                               "r.yaml:5: tts.options.devices: backend 'kokoro' has no option 'devices'; "
                               "it takes: margin, threads, device, model"]
