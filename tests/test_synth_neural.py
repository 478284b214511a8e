"""synth with a dialogue-level neural backend (J-Moshi's multi-stream TTS method) on a tiny
randomly initialised Moshi-architecture checkpoint: the pipeline skips planner and mixer and
writes what the model produced."""

import json

import pytest
import soundfile as sf

from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.constants import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import parse_recipe
from ms_helpers import make_ms_model_dir, write_prompt

DIALOGUES = [
    {"id": "n-1", "turns": [{"speaker": "A", "text": "こんにちは"}, {"speaker": "B", "text": "はい"}]},
    {"id": "n-2", "turns": [{"speaker": "A", "text": "元気"}, {"speaker": "B", "text": "うん元気"}]},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("neural")
    model = make_ms_model_dir(root / "model")
    write_prompt(model / "pair.wav")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DIALOGUES), encoding="utf-8")
    return root, model, corpus


def _recipe(root, model, corpus, out, extra=""):
    return parse_recipe(
        f"corpus: {{name: jsonl, path: {corpus}}}\n"
        f"output: {{dir: {root / out}, formats: [wav], shard_size: 2}}\n"
        f"tts:\n  backend: moshi_ms\n  options: {{model: {model}, prompts: [{model / 'pair.wav'}], device: cpu,"
        f" pad_bonus: 3.0, max_frames: 60, tail_frames: 4, batch_size: 2}}\n"
        "workers: 1\n" + extra
    )


def test_synth_with_the_multistream_backend(setup):
    root, model, corpus = setup
    summary = run_synth(_recipe(root, model, corpus, "o1"), progress=False)
    out = summary.out_dir
    entries = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert len(entries) == 2 and not summary.report["rejected"]
    for e in entries:
        info = sf.info(out / e["path"])
        assert info.channels == 2 and info.samplerate == SAMPLE_RATE
        words = json.loads((out / e["path"]).with_suffix(".json").read_text())["alignments"]
        assert {w[2] for w in words} <= {"SPEAKER_MAIN", "SPEAKER_OTHER"}
        assert all(0 <= w[1][0] <= e["duration"] for w in words)
    unit = json.loads((out / "units" / "unit-00000.json").read_text())
    assert all(r["planned"] == {} for r in unit["renderings"])  # the model, not the planner, set the timing


def test_best_of_n_runs_through_the_pipeline(setup):
    root, model, corpus = setup
    summary = run_synth(_recipe(root, model, corpus, "o2", "candidates: {n: 2}\n"), progress=False)
    assert summary.report["renderings"] == 2
    # provenance: every candidate's seed, scores and fate, in the unit record, report.json and report.html
    unit = json.loads((root / "o2" / "units" / "unit-00000.json").read_text())
    for entry in unit["renderings"]:
        sel = entry["candidates"]
        assert len(sel["candidates"]) == 2 and sum(c["winner"] for c in sel["candidates"]) == 1
        assert sel["candidates"][sel["winner"]]["winner"]
        loser = sel["candidates"][1 - sel["winner"]]
        assert isinstance(loser["seed"], int) and "turn_taking" in loser["scores"]
        assert loser.get("lost") or loser.get("failed")
    report = json.loads((root / "o2" / "report.json").read_text())["best_of_n"]
    assert report["dialogues"] == 2 and report["candidates"] == 4
    assert report["per_dialogue"][unit["renderings"][0]["id"]] == unit["renderings"][0]["candidates"]
    html = (root / "o2" / "report.html").read_text()
    assert "best of N: candidates rendered" in html
    detail = (root / "o2" / "report_data" / "detail-00000.js").read_text()  # each dialogue's panel
    assert '"candidates": {"winner"' in detail or '"candidates":{"winner"' in detail


def test_best_of_n_needs_a_neural_backend():
    with pytest.raises(JmoshiError, match="candidates.n > 1 needs a neural dialogue-level backend"):
        parse_recipe("corpus: {name: jsonl, path: x.jsonl}\noutput: {dir: o}\ncandidates: {n: 3}\n")


def test_models_json_records_the_checkpoint_hashes(setup):
    root, model, corpus = setup
    out = root / "o1"
    if not (out / "models.json").exists():
        run_synth(_recipe(root, model, corpus, "o1"), progress=False)
    files = json.loads((out / "models.json").read_text())["tts_files"]
    assert files[str(model)]["model.safetensors"].startswith("sha256:")
    assert files[str(model / "pair.wav")].startswith("sha256:")
