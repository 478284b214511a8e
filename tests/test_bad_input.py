"""Bad input, as a new user meets it: malformed files for every loader, broken recipes, unknown
backends and options, corrupt prompts and voices, bad model folders, a folder of another run.

Every case runs the real CLI in a subprocess with a bounded timeout (a hang fails the test) and must
end with exit code 2, exactly one ``error:`` line on stderr, no traceback, and nothing half-written:
the output folder is not created (or left as it was)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from fixtures.make_nttcs_fixtures import write_workbook

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "recipes" / "sample.yaml"
TIMEOUT = 90  # s per CLI call: far above a normal start, far below "hangs forever"


def cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "NO_TORCH_COMPILE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "jmoshi_augment.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=TIMEOUT, env=full_env)


def assert_one_line(res: subprocess.CompletedProcess, expected: str) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-2000:]
    assert expected in lines[0], lines[0]
    return lines[0]


def recipe(tmp_path: Path, body: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def base(tmp_path: Path, corpus: str = "corpus: {name: jsonl, path: 'builtin:sample'}", formats: str = "wav") -> str:
    return f"{corpus}\noutput: {{dir: {tmp_path / 'out'}, formats: [{formats}]}}\n"


# ------------------------------------------------------------------------------------ loaders


def _jsonl_bad_line(tmp: Path) -> tuple[str, str, str]:
    p = tmp / "d.jsonl"
    p.write_text('{"id": "a", "turns": [{"speaker": "A", "text": "はい"}]}\n{"id": "b", "turns": [\n', encoding="utf-8")
    return "jsonl", str(p), "d.jsonl:2: invalid JSON"


def _jsonl_null_speaker(tmp: Path) -> tuple[str, str, str]:
    p = tmp / "d.jsonl"
    p.write_text('{"id": "a", "turns": [{"speaker": null, "text": "はい"}]}\n', encoding="utf-8")
    return "jsonl", str(p), "speaker must be a non-empty string"


def _jdaily_not_utf8(tmp: Path) -> tuple[str, str, str]:
    (tmp / "data").mkdir()
    (tmp / "data" / "topic1.json").write_bytes('[{"utterances": "こんにちは"}]'.encode("shift_jis"))
    return "jdaily", str(tmp / "data"), "not UTF-8 text"


def _realpersonachat_missing_key(tmp: Path) -> tuple[str, str, str]:
    root = tmp / "real_persona_chat"
    (root / "dialogues").mkdir(parents=True)
    (root / "interlocutors.json").write_text("{}", encoding="utf-8")
    (root / "dialogues" / "00001.json").write_text('{"dialogue_id": 1, "interlocutors": ["AA", "BB"]}', encoding="utf-8")
    return "realpersonachat", str(root), "missing key 'utterances'"


def _xlsx_not_a_workbook(tmp: Path) -> tuple[str, str, str]:
    p = tmp / "ペルソナ対話1-5000.xlsx"
    p.write_text("No,ID,話者,発話\n", encoding="utf-8")
    return "jpersonachat", str(p), "not a readable .xlsx workbook"


def _xlsx_other_corpus(tmp: Path) -> tuple[str, str, str]:
    return "jpersonachat", str(FIXTURES / "jempathetic" / "japanese_empathetic_dialogues.xlsx"), "use corpus 'jempathetic'"


def _xlsx_narrow_sheet(tmp: Path) -> tuple[str, str, str]:
    p = tmp / "p.xlsx"
    write_workbook(p, {"ペルソナリスト": [["No", "ID", "A", "B"]], "対話": [["ID", "話者", "発話"], ["PP1", "A", "あ"]]})
    return "jpersonachat", str(p), "3 column(s), but this layout needs 4"


LOADER_CASES: dict[str, Callable[[Path], tuple[str, str, str]]] = {
    "jsonl-bad-line": _jsonl_bad_line,
    "jsonl-null-speaker": _jsonl_null_speaker,
    "jdaily-not-utf8": _jdaily_not_utf8,
    "realpersonachat-missing-key": _realpersonachat_missing_key,
    "xlsx-not-a-workbook": _xlsx_not_a_workbook,
    "xlsx-other-corpus": _xlsx_other_corpus,
    "xlsx-narrow-sheet": _xlsx_narrow_sheet,
}


@pytest.mark.parametrize("case", LOADER_CASES)
def test_malformed_corpus_files(case, tmp_path):
    name, path, expected = LOADER_CASES[case](tmp_path)
    out = tmp_path / "out.jsonl"
    assert_one_line(cli("corpora", "export", name, path, "-o", str(out)), expected)
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))


def assert_one_line_per_recipe(res: subprocess.CompletedProcess, recipes: list[Path], expected: list[str]) -> None:
    """``recipe check`` over many recipes, each with one problem: one line per recipe, in order."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(lines) == len(recipes), res.stderr[-3000:]
    for line, r, want in zip(lines, recipes, expected):
        assert line.startswith("error: ") and want in line, (r, line)


def test_malformed_corpus_files_in_recipes_are_refused_before_any_work(tmp_path):
    # one `recipe check` over a recipe per loader case (one CLI start instead of seven)
    recipes, expected = [], []
    for i, make in enumerate(LOADER_CASES.values()):
        folder = tmp_path / str(i)
        folder.mkdir()
        name, path, want = make(folder)
        recipes.append(recipe(folder, base(folder, f"corpus: {{name: {name}, path: '{path}'}}")))
        expected.append(want)
    assert_one_line_per_recipe(cli("recipe", "check", *map(str, recipes)), recipes, expected)


# ------------------------------------------------------------------------------ recipes, backends


def _write_fake_jmoshi_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "tokenizer-e351c8d8-checkpoint125.safetensors", "tokenizer_spm_32k_3.model"):
        (folder / name).write_bytes(b"")
    return folder


def _stereo_prompt(path: Path) -> Path:
    sf.write(str(path), np.zeros((2400, 2), np.float32), 24000)
    return path


RECIPE_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "yaml-syntax": (lambda t: base(t) + "timing: [unclosed\n", "not valid YAML"),
    "unknown-key": (lambda t: base(t) + "timing: {overlap_probability: 0.3}\n", "timing.overlap_probability: unknown key"),
    "unknown-corpus": (lambda t: base(t, "corpus: {name: nosuch, path: x}"), "unknown corpus 'nosuch'"),
    "missing-corpus": (lambda t: base(t, f"corpus: {{name: jsonl, path: {t / 'nope.jsonl'}}}"), "nope.jsonl: does not exist"),
    "unknown-backend": (lambda t: base(t) + "tts: {backend: nosuch}\n", "unknown TTS backend 'nosuch'; known: "),
    "unknown-option": (lambda t: base(t) + "tts: {options: {nosuch: 1}}\n", "tts.options.nosuch: backend 'openjtalk' has no option 'nosuch'"),
    "corrupt-htsvoice": (
        lambda t: base(t) + f"tts:\n  voices: [{{name: a, htsvoice: {_text(t / 'v.htsvoice', 'not a voice')}}}, {{name: b}}]\n",
        "tts.voices.0.htsvoice: not an HTS voice"),
    "missing-model-folder": (
        lambda t: base(t) + f"tts: {{backend: moshi_ms, options: {{model: {t / 'nomodel'}}}}}\n", "model folder not found"),
    "model-folder-without-lm": (
        lambda t: base(t) + f"tts: {{backend: moshi_ms, options: {{model: {_lm_less(t / 'm')}}}}}\n",
        "model folder lacks model.safetensors"),
    "corrupt-prompt": (
        lambda t: base(t) + f"tts: {{backend: moshi_ms, options: {{model: {_write_fake_jmoshi_folder(t / 'm')}, "
                            f"prompts: [{_text(t / 'pair.wav', 'RIFF garbage')}]}}}}\n",
        "tts.options.prompts: not a readable audio file"),
    "mono-prompt": (
        lambda t: base(t) + f"tts: {{backend: moshi_ms, options: {{model: {_write_fake_jmoshi_folder(t / 'm')}, "
                            f"prompts: [{_mono(t / 'pair.wav')}]}}}}\n",
        "an audio prompt is stereo"),
    "asr-folder-empty": (
        lambda t: base(t) + f"tts: {{backend: moshi_ms, options: {{model: {_write_fake_jmoshi_folder(t / 'm')}}}}}\n"
                            f"candidates: {{n: 2, asr_model: {_dir(t / 'asr')}}}\n",
        "candidates.asr_model: not an ASR model directory"),
    "tokenizer-not-sentencepiece": (
        lambda t: base(t, formats="tar")
        + f"models: {{random_weights: true, text_tokenizer: {_text(t / 'sp.model', 'not a model')}}}\n",
        "models.text_tokenizer: not a SentencePiece model"),
    "mimi-not-safetensors": (
        lambda t: base(t, formats="tar")
        + f"models: {{mimi: {_text(t / 'mimi.safetensors', 'xx')}, text_tokenizer: {t / 'missing.model'}}}\n",
        None),  # two problems: both reported, one line each (checked below)
    "prompt-file-latin1": (
        lambda t: base(t) + f"rewrite: {{backend: llm, model: m, prompt_file: {_latin1(t / 'p.txt')}}}\n",
        "rewrite.prompt_file: not UTF-8 text"),
}


def _text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _latin1(path: Path) -> Path:
    path.write_bytes("caf\xe9".encode("latin-1"))
    return path


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mono(path: Path) -> Path:
    sf.write(str(path), np.zeros(2400, np.float32), 24000)
    return path


def _lm_less(folder: Path) -> Path:
    _write_fake_jmoshi_folder(folder)
    (folder / "model.safetensors").unlink()
    return folder


def test_broken_recipes_unknown_backends_bad_models(tmp_path):
    # every case is its own recipe in its own folder, all checked by one `recipe check`
    recipes, expected = [], []
    for case, (make, want) in RECIPE_CASES.items():
        if want is None:
            continue
        folder = tmp_path / case
        folder.mkdir()
        recipes.append(recipe(folder, make(folder)))
        expected.append(want)
    assert_one_line_per_recipe(cli("recipe", "check", *map(str, recipes)), recipes, expected)
    assert not any((r.parent / "out").exists() for r in recipes)


def test_several_problems_are_reported_together_one_line_each(tmp_path):
    make, _ = RECIPE_CASES["mimi-not-safetensors"]
    r = recipe(tmp_path, make(tmp_path).replace("'builtin:sample'", str(tmp_path / "nope.jsonl")))
    res = cli("recipe", "check", str(r))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), res.stderr
    assert "nope.jsonl: does not exist" in lines[0]
    assert "models.text_tokenizer: text tokenizer not found" in lines[1]
    assert "models.mimi: not a safetensors file" in lines[2]


# -------------------------------------------------------------------------------------- synth


def test_synth_with_an_unknown_backend_stops_at_once(tmp_path):
    out = tmp_path / "out"
    res = cli("synth", str(SAMPLE), "--out", str(out), "--limit", "1", "-q", "-j", "2", "--set", "tts.backend=nosuch")
    assert_one_line(res, "tts.backend: unknown TTS backend 'nosuch'")
    assert not out.exists()  # no identity, no folder: the corrected command may use it


def test_a_failure_inside_a_worker_stops_the_run_with_one_line(tmp_path):
    # margin=5 passes the signature check; the backend refuses it when the workers build it
    out = tmp_path / "out"
    res = cli("synth", str(SAMPLE), "--out", str(out), "--limit", "2", "-q", "-j", "2", "--set", "tts.options.margin=5")
    assert_one_line(res, "tts.options.margin: margin must be within 0..1 s, got 5")
    assert not list(out.glob("units/*.json"))
    assert not (out / "recipe.json").exists()  # not claimed: the corrected command may use the folder


def test_hub_failure_is_one_line_and_fast(tmp_path):
    # an endpoint that refuses connections: huggingface_hub would retry for ~23 s and log each try
    r = recipe(tmp_path, base(tmp_path, formats="tar")
               + "models: {mimi: 'hf://o/r/mimi.safetensors', text_tokenizer: 'hf://o/r/t.model'}\n")
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    res = cli("synth", str(r), "-q", "--limit", "1", env=env)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 2, res.stderr  # both files named, nothing else
    assert all("not in the local Hugging Face cache and the hub cannot be reached" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_a_failed_run_does_not_claim_its_folder_and_the_corrected_command_runs(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "corpus.jsonl"
    args = ["synth", str(SAMPLE), "--out", str(out), "--limit", "1", "-q", "-j", "1", "--corpus-path", str(missing),
            "--set", "tts.backend=openjtalk"]
    assert_one_line(cli(*args), "corpus.jsonl: does not exist")
    assert not (out / "recipe.json").exists()
    missing.write_bytes((ROOT / "jmoshi_augment" / "data" / "sample.jsonl").read_bytes())
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((out / "report.json").read_text())["renderings"] == 1


def test_a_folder_of_another_recipe_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps({"seed": 99}), encoding="utf-8")
    before = sorted(p.name for p in out.iterdir())
    assert_one_line(cli("synth", str(SAMPLE), "--out", str(out), "--limit", "1", "-q"), "holds the output of a different recipe")
    assert sorted(p.name for p in out.iterdir()) == before


def test_recipe_check_asks_the_rewrite_endpoint_only_when_told(tmp_path):
    pytest.importorskip("openai")  # without the llm extra the check says to install it first
    r = recipe(tmp_path, base(tmp_path) + "rewrite: {backend: llm, model: m, base_url: 'http://127.0.0.1:9/v1'}\n")
    assert cli("recipe", "check", str(r)).returncode == 0  # no network unless asked
    assert_one_line(cli("recipe", "check", "--endpoint", str(r)),
                    "http://127.0.0.1:9/v1/models: rewrite.base_url: cannot reach the LLM server")


def test_an_unreachable_hub_serves_a_cached_model_repo_and_fails_fast_otherwise(tmp_path):
    # huggingface_hub's cache layout: models--OWNER--NAME/{refs/main, snapshots/REV/...}
    repo = tmp_path / "hf" / "hub" / "models--o--cached"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for name in ("model.safetensors", "tokenizer-e351c8d8-checkpoint125.safetensors", "tokenizer_spm_32k_3.model"):
        (snap / name).write_bytes(b"")
    code = ("from jmoshi_augment.checkpoints import resolve_model\n"
            "print(resolve_model('o/cached').moshi_weights)\n"
            "resolve_model('o/missing')\n")
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert res.stdout.strip() == str(snap / "model.safetensors"), res.stderr[-2000:]
    assert "JmoshiError: hf://o/missing: not in the local Hugging Face cache" in res.stderr
    assert "Retrying" not in res.stderr and "thrown while requesting" not in res.stderr
