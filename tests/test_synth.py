"""End to end on the CPU with OpenJTalk: the sample corpus → stereo wav + alignments + manifest."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.augment.run.layout import unit_path
from jmoshi_augment.augment.analysis.onsets import sound_edge_peaks
from jmoshi_augment.augment.formats.wav_format import read_alignments
from jmoshi_augment.constants import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
N = 6
# These check the pipeline (outputs, alignments, determinism, resume), not a voice: they run the
# sample recipe with the fast backend; tests/test_tts_kokoro.py runs it with its own (kokoro).
FAST = {"tts.backend": "openjtalk"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "out"
    res = subprocess.run(
        [sys.executable, "-m", "jmoshi_augment.cli", "synth", str(ROOT / "recipes/sample.yaml"),
         "--limit", str(N), "--out", str(out), "--set", "output.shard_size=2", "--set", "tts.backend=openjtalk", "-j", "2", "-q"],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    return out


def _entries(out):
    return [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]


def test_outputs_exist_and_are_stereo_24k(run):
    entries = _entries(run)
    assert len(entries) == N
    report = json.loads((run / "report.json").read_text())
    assert report["renderings"] == N and report["dialogues"] == N and not report["rejected"]
    assert (run / "recipe.yaml").exists() and (run / "models.json").exists()
    assert sorted(p.name for p in (run / "units").iterdir()) == [f"unit-{k:05d}.json" for k in range(3)]
    for e in entries:
        info = sf.info(run / e["path"])
        assert info.channels == 2 and info.samplerate == SAMPLE_RATE and info.subtype == "PCM_16"
        assert abs(info.frames / SAMPLE_RATE - e["duration"]) < 0.01


def test_unit_records_carry_readings_and_characters_not_spoken(run):
    """Every spoken word is recorded with its katakana reading; characters not spoken are counted
    per unit and summed in the report, beside the number of source characters."""
    units = [json.loads(p.read_text()) for p in sorted((run / "units").iterdir())]
    report = json.loads((run / "report.json").read_text())
    assert report["source_characters"] == sum(u["source_characters"] for u in units) > 0
    assert "source" not in report["characters_not_spoken"]
    for reason, n in report["characters_not_spoken"].items():
        assert n == sum(u["not_spoken"].get(reason, 0) for u in units)
    for u in units:
        for e in u["renderings"]:
            for speaker, kind, text, words in e["script"]:
                assert "".join(s for s, _ in words) == text
                assert all(r and all("ァ" <= c <= "ヺ" or c == "ー" for c in r) for _, r in words)


def test_speech_where_alignments_say_and_silence_elsewhere(run):
    for e in _entries(run):
        audio, sr = sf.read(run / e["path"], dtype="float32")
        words = read_alignments((run / e["path"]).with_suffix(".json"))
        assert [w[1] for w in words] == sorted(w[1] for w in words)
        for ch in (0, 1):
            x = audio[:, ch]
            spoken = np.zeros(len(x), bool)
            for _, start, end, c in words:
                if c == ch:
                    spoken[int(start * sr): int(end * sr)] = True
            # 20 ms frames: energy inside aligned words vs far from any word on this channel
            frames = len(x) // 480
            rms = np.sqrt((x[: frames * 480].reshape(frames, 480) ** 2).mean(1))
            inside = spoken[: frames * 480].reshape(frames, 480).all(1)
            near = np.convolve(spoken[: frames * 480].reshape(frames, 480).any(1), np.ones(31), "same") > 0
            assert np.median(rms[inside]) > 0.02  # aligned words are loud
            assert rms[~near].max(initial=0) < 1e-3  # >300 ms away from any word: silence
            # most aligned frames carry sound (the rest: stop closures of っ, た, て, か)
            assert np.mean(rms[inside] > 0.003) > 0.75
        for word, start, end, ch in words:  # no word is silence labelled as speech
            assert np.abs(audio[int(start * sr): int(end * sr) + 1, ch]).max() > 0.02, word


def test_turn_taking_rates_match_the_recipe(run):
    recipe = load_recipe(ROOT / "recipes/sample.yaml")
    units = [json.loads(p.read_text()) for p in sorted((run / "units").iterdir())]
    planned = {}
    for u in units:
        for r in u["renderings"]:
            for k, v in r["planned"].items():
                planned[k] = planned.get(k, 0) + v
    changes = planned["speaker_changes"]
    overlapped = planned.get("overlaps", 0) + planned.get("interruptions", 0)
    assert abs(overlapped / changes - (recipe.timing.overlap_prob + recipe.timing.interruption_prob)) < 0.2
    report = json.loads((run / "report.json").read_text())
    tt = report["turn_taking"]
    # measured on the audio by the stats module, independent of the planner's own counts
    assert 0.15 < tt["overlapped_share"] < 0.55
    assert tt["within_overlaps_per_min"] > 2.0  # J-Moshi-ext's synthetic data: 0 per minute


def test_same_seed_gives_byte_identical_output_and_resume_redoes_only_missing_units(run, tmp_path):
    out = tmp_path / "again"
    recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 2, "output.shard_size": 1,
                                                        "output.dir": str(out), "workers": 1})
    run_synth(recipe, progress=False)
    for e in _entries(out):
        assert (out / e["path"]).read_bytes() == (run / e["path"]).read_bytes()
        json_path = (out / e["path"]).with_suffix(".json")
        assert json_path.read_bytes() == (run / e["path"]).with_suffix(".json").read_bytes()
    # simulate a run killed inside unit 1: its record and one file are gone, a temp file remains
    first = _entries(out)[1]
    unit_path(out, 1).unlink()
    (out / first["path"]).unlink()
    (out / "audio" / "junk.wav.tmp-999").write_bytes(b"half")
    summary = run_synth(recipe, progress=False)
    assert summary.units_resumed == 1 and summary.units_done == 1
    assert (out / first["path"]).read_bytes() == (run / first["path"]).read_bytes()


def test_resuming_with_a_different_recipe_is_refused(tmp_path):
    out = tmp_path / "o"
    recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 1, "output.dir": str(out), "workers": 1})
    run_synth(recipe, progress=False)
    other = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 1, "output.dir": str(out), "seed": 5, "workers": 1})
    with pytest.raises(JmoshiError, match="different recipe"):
        run_synth(other, progress=False)


def test_llm_rewrite_runs_before_the_script_and_is_reported(tmp_path):
    """The rewrite stage against a local fake OpenAI-compatible server, inside a real synth run."""
    from fake_openai import FakeOpenAI, Reply, dialogue_of

    def respond(body, n):
        doc = dialogue_of(body)
        turns = [{"speaker": t["speaker"], "text": ("ねえねえ、" if i == 0 else "") + t["text"]}
                 for i, t in enumerate(doc["turns"])]
        return Reply(json.dumps({"turns": turns}, ensure_ascii=False))

    with FakeOpenAI(respond) as server:
        recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, 
            "corpus.limit": 2, "output.dir": str(tmp_path / "o"), "workers": 1,
            "rewrite": {"backend": "llm", "model": "fake", "base_url": server.base_url, "concurrency": 2},
        })
        summary = run_synth(recipe, progress=False)
        assert len(server.requests) == 2
    rw = summary.report["rewrite"]
    assert rw["rewritten"] == 2 and rw["llm_calls"] == 2
    unit = json.loads(unit_path(tmp_path / "o", 0).read_text())
    for r in unit["renderings"]:
        assert r["source_turns"][0][1].startswith("ねえねえ、")  # the script was made from the rewrite
        assert r["script"][0][2].replace("えー、", "").startswith("ねえねえ")
    assert (tmp_path / "o" / "cache" / "rewrite").is_dir()


def test_a_larger_limit_extends_the_run_and_redoes_a_short_last_unit(tmp_path):
    out = tmp_path / "grow"
    base = {"output.dir": str(out), "output.shard_size": 2, "workers": 1}
    first = run_synth(load_recipe(ROOT / "recipes/sample.yaml", {**FAST, **base, "corpus.limit": 1}), progress=False)
    assert first.units_done == 1
    grown = run_synth(load_recipe(ROOT / "recipes/sample.yaml", {**FAST, **base, "corpus.limit": 3, "workers": 2}), progress=False)
    assert grown.units_resumed == 0 and grown.units_done == 2  # unit 0 held 1 of its 2 dialogues: redone
    assert grown.report["renderings"] == 3
    again = run_synth(load_recipe(ROOT / "recipes/sample.yaml", {**FAST, **base, "corpus.limit": 3}), progress=False)
    assert again.units_resumed == 2 and again.units_done == 0


def test_killed_token_run_resumes_to_identical_shards(tmp_path, sp_path):
    """tar + J-Moshi parquet with the local executor: a unit lost to a kill is redone and every
    shard ends byte-identical to an uninterrupted run (random-weight Mimi, tiny tokenizer)."""
    def run(name):
        recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, 
            "corpus.limit": 2, "output.shard_size": 1, "output.dir": str(tmp_path / name), "workers": 1,
            "output.formats": ["tar", "jmoshi"], "models.random_weights": True,
            "models.text_tokenizer": str(sp_path), "tokenize.device": "cpu",
        })
        return run_synth(recipe, progress=False)

    run("a")
    killed = tmp_path / "b"
    run("b")
    unit_path(killed, 1).unlink()
    (killed / "shards" / "shard-00001.tar").unlink()
    summary = run("b")
    assert summary.units_resumed == 1 and summary.units_done == 1
    for rel in ["shards/shard-00000.tar", "shards/shard-00001.tar"] + [
        str(p.relative_to(tmp_path / "a")) for p in sorted((tmp_path / "a" / "jmoshi").rglob("*.parquet"))
    ]:
        assert (killed / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes(), rel
    assert json.loads((killed / "report.json").read_text())["random_weights"] is True


def test_no_channel_steps_from_silence_to_sound(run):
    """Every placed piece fades in and out at a low point, so the first and last millisecond of
    each stretch of sound stay below -40 dBFS: no click at an onset or offset (issue 26)."""
    n = 0
    for e in _entries(run):
        audio, _ = sf.read(run / e["path"], dtype="float32")
        for ch in (0, 1):
            edges = sound_edge_peaks(audio[:, ch], SAMPLE_RATE)
            n += len(edges)
            assert edges.max(initial=0) < 10 ** (-40 / 20), (e["path"], ch, float(edges.max()))
    assert n > 50


def test_stats_and_report_say_what_precedes_pauses_and_gaps(run):
    """stats.md, stats.json and report.html set beside each pause and gap the word before it: the
    planned holds follow fillers, particles and commas, the speaker changes mostly a sentence end."""
    doc = json.loads((run / "stats" / "stats.json").read_text())
    cues = next(iter(doc["sets"].values()))["silence_cues"]
    assert cues["pauses"]["n"] > 0 and cues["gaps"]["n"] > 0
    assert cues["pauses"]["sentence end"] <= 0.5
    assert cues["gaps"]["sentence end"] + cues["gaps"]["backchannel"] > cues["pauses"]["sentence end"] + 0.3
    assert "What precedes the silence" in (run / "stats" / "stats.md").read_text()
    assert "What precedes the silence" in (run / "report.html").read_text()
