"""Acoustic views in a run: written beside the clean renderings with their own ids, model channel
and words (so text streams) identical, every drawn parameter in the unit record, turn-taking from
the clean stems; the jmoshi parquet's two training directions; the ``acoustics`` command; bad
RIR/noise folders refused at ``recipe check``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jmoshi_augment.augment.acoustics.rerun import reaugment_run
from jmoshi_augment.augment.acoustics.views import acoustic_views
from jmoshi_augment.augment.formats.jmoshi_format import read_jmoshi_parquet
from jmoshi_augment.augment.formats.verify import verify_path
from jmoshi_augment.augment.formats.wav_format import read_alignments
from jmoshi_augment.augment.run.synthesize import DialogueResult
from jmoshi_augment.augment.run.units import finish_unit
from jmoshi_augment.augment.run.output_formats import _jmoshi_parquet
from jmoshi_augment.augment.tokens.text_tokens import place_text_tokens
from jmoshi_augment.augment.types import MAIN, OTHER, AlignedWord, RenderedDialogue, TokenizedDialogue
from jmoshi_augment.constants import FRAME_SIZE
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import Recipe
from jmoshi_augment.recipe_acoustics import AcousticsConfig
from test_acoustics import FAST_ROOM, voiced

ROOT = Path(__file__).resolve().parents[1]
CFG = AcousticsConfig.model_validate({"views": 2, "room": {**FAST_ROOM, "prob": 1.0}, "echo": {"prob": 1.0}, "noise": {"prob": 1.0}})


def dialogue(i: int, *, main: str = "A") -> RenderedDialogue:
    audio = np.stack([voiced(120.0 + 10 * i, 2.0, seed=i), voiced(220.0, 2.0, seed=100 + i)])
    words = (AlignedWord("こんにちは", 0.2, 0.6, MAIN), AlignedWord("はい", 0.7, 0.9, OTHER), AlignedWord("天気", 1.0, 1.4, MAIN))
    other = "B" if main == "A" else "A"
    return RenderedDialogue(id=f"d{i}-main{main}", dialogue_id=f"d{i}", corpus="c", audio=audio, words=words,
                            speaker_map={"main": main, "other": other}, speakers=("A", "B"))


def fake_tokens(r: RenderedDialogue, sp) -> TokenizedDialogue:
    """Text tokens as the token stage places them; 'codes' a deterministic function of each
    channel's samples (Mimi is tested elsewhere): same audio, same codes."""
    t = -(-r.audio.shape[1] // FRAME_SIZE)
    text = np.stack([place_text_tokens([(w.word, w.start, w.end) for w in r.channel_words(ch)], sp, t)[0] for ch in (MAIN, OTHER)])
    frames = np.pad(r.audio, ((0, 0), (0, t * FRAME_SIZE - r.audio.shape[1]))).reshape(2, t, FRAME_SIZE)
    codes = (np.abs(frames).sum(-1)[:, None, :] * 1e4 + np.arange(8)[None, :, None]).astype(np.int64) % 2048
    meta = {"id": r.id, "a_channel": r.a_channel, **({"acoustics_view_of": r.meta["acoustics"]["view_of"]} if "acoustics" in r.meta else {})}
    return TokenizedDialogue(r.id, codes.astype(np.int16), text, r.duration, meta)


def test_views_change_only_the_user_channel(sp):
    clean = [dialogue(0), dialogue(1)]
    views = acoustic_views(clean, CFG, seed=0)
    assert [v.id for v in views] == ["d0-mainA-ac0", "d0-mainA-ac1", "d1-mainA-ac0", "d1-mainA-ac1"]
    for v in views:
        r = clean[int(v.dialogue_id[1:])]
        assert np.array_equal(v.audio[MAIN], r.audio[MAIN]) and not np.allclose(v.audio[OTHER], r.audio[OTHER])
        assert v.words == r.words
        assert np.array_equal(fake_tokens(v, sp).text, fake_tokens(r, sp).text)  # text streams identical
        assert v.meta["acoustics"]["view_of"] == r.id and v.meta["acoustics"]["user_channel"] == OTHER
    assert not np.allclose(views[0].audio[OTHER], views[1].audio[OTHER])  # two views, two draws
    again = acoustic_views(clean, CFG, seed=0)
    assert all(a.audio.tobytes() == b.audio.tobytes() for a, b in zip(views, again))
    assert acoustic_views(clean, AcousticsConfig(), seed=0) == []  # views: 0, the stage is off


def test_babble_comes_from_the_other_dialogues_of_the_unit():
    cfg = AcousticsConfig.model_validate({"views": 1, "noise": {"prob": 1.0, "kinds": {"babble": 1.0}, "babble_talkers": [2, 2]}})
    views = acoustic_views([dialogue(0), dialogue(1), dialogue(2)], cfg, seed=0)
    for v in views:
        talkers = v.meta["acoustics"]["noise"]["talkers"]
        assert len(talkers) == 2 and not any(t.startswith(f"{v.dialogue_id}-") for t in talkers)


@pytest.mark.parametrize("main", ["A", "B"])
def test_jmoshi_rows_train_one_direction_with_a_clean_model_side(tmp_path, sp, main):
    """nu-dialogue's trainer makes an example per letter in --moshi_speakers from one row:
    main_speaker_streams = row[main] (text + 8 codebooks) + row[other][1:] (8 codebooks).
    A view row holds the clean model side in A, so --moshi_speakers A trains model=clean,
    user=augmented; B would make the model speak the augmented audio (hence its own folder)."""
    clean = dialogue(0, main=main)
    view = acoustic_views([clean], CFG, seed=0)[0]
    tc, tv = fake_tokens(clean, sp), fake_tokens(view, sp)
    _jmoshi_parquet(tmp_path, 0, [tc, tv])
    (row_clean,) = read_jmoshi_parquet(tmp_path / "jmoshi" / "parquet" / "unit-00000.parquet")
    (row_view,) = read_jmoshi_parquet(tmp_path / "jmoshi-acoustics" / "parquet" / "unit-00000.parquet")
    assert row_clean.dialogue_id == clean.id and row_view.dialogue_id == view.id

    def streams(row, speaker):  # the trainer's main_speaker_streams for one row and one letter
        other = {"A": "B", "B": "A"}[speaker]
        return np.concatenate([getattr(row, speaker), getattr(row, other)[1:]])

    a = streams(row_view, "A")
    assert np.array_equal(a[0], tc.text[MAIN])  # the model's text stream
    assert np.array_equal(a[1:9], tc.codes[MAIN])  # the model speaks the clean audio
    assert np.array_equal(a[9:], tv.codes[OTHER]) and not np.array_equal(a[9:], tc.codes[OTHER])  # hears the augmented user
    b = streams(row_view, "B")
    assert np.array_equal(b[1:9], tv.codes[OTHER])  # direction B would learn to speak the augmented audio
    # the clean row keeps the corpus's letters: A is the corpus's first speaker, whichever is main
    assert np.array_equal(row_clean.A[1:], tc.codes[clean.a_channel])
    # `shards verify` checks each folder's rows against the unit record: clean here, views there
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "unit-00000.json").write_text(json.dumps(
        {"unit": 0, "renderings": [{"id": clean.id}, {"id": view.id, "acoustics": view.meta["acoustics"]}]}))
    assert not [p for p in verify_path(tmp_path) if "lacks" in p.message or "does not list" in p.message]


def _finish(out: Path, results: list[DialogueResult]) -> dict:
    recipe = Recipe.model_validate({"corpus": {"name": "jsonl", "path": "builtin:sample"}, "seed": 0,
                                    "models": {"random_weights": True},
                                    "output": {"dir": str(out), "formats": ["wav", "jmoshi"]}}).model_copy(update={"acoustics": CFG})
    finish_unit(recipe, 0, [Dialogue(r.dialogue_id, "c", (Turn("A", "x"), Turn("B", "y"))) for res in results for r in res.renderings],
                results, None, None)
    return json.loads((out / "units" / "unit-00000.json").read_text())


def test_finish_unit_writes_views_with_records_and_clean_stats(tmp_path):
    results = [DialogueResult(f"d{i}", renderings=[dialogue(i)]) for i in range(2)]
    record = _finish(tmp_path / "run", results)
    ids = [e["id"] for e in record["renderings"]]
    assert ids == ["d0-mainA", "d1-mainA", "d0-mainA-ac0", "d0-mainA-ac1", "d1-mainA-ac0", "d1-mainA-ac1"]
    by_id = {e["id"]: e for e in record["renderings"]}
    for e in record["renderings"][2:]:
        clean = by_id[e["acoustics"]["view_of"]]
        assert e["stats"] == clean["stats"] and "acoustics" not in clean  # turn-taking from the clean stems
        assert {"voice", "room", "echo", "noise", "mic"} <= set(e["acoustics"])
        wav_v, _ = sf.read(tmp_path / "run" / "audio" / f"{e['id']}.wav", dtype="int16")
        wav_c, _ = sf.read(tmp_path / "run" / "audio" / f"{clean['id']}.wav", dtype="int16")
        assert np.array_equal(wav_v[:, 0], wav_c[:, 0]) and not np.array_equal(wav_v[:, 1], wav_c[:, 1])
        assert read_alignments(tmp_path / "run" / "audio" / f"{e['id']}.json") == read_alignments(tmp_path / "run" / "audio" / f"{clean['id']}.json")
        assert (tmp_path / "run" / "jmoshi-acoustics" / "audio" / f"{e['id']}.wav").exists()
    assert not list((tmp_path / "run" / "jmoshi" / "audio").glob("*-ac*.wav"))
    # same seed, byte-identical files
    _finish(tmp_path / "again", results)
    for p in (tmp_path / "run" / "audio").glob("*.wav"):
        assert p.read_bytes() == (tmp_path / "again" / "audio" / p.name).read_bytes()


def test_acoustics_command_re_augments_a_finished_run(tmp_path):
    run = tmp_path / "run"
    _finish(run, [DialogueResult(f"d{i}", renderings=[dialogue(i)]) for i in range(2)])
    (run / "recipe.json").write_text("{}")
    recipe = Recipe.model_validate({
        "corpus": {"name": "jsonl", "path": "builtin:sample"}, "seed": 5,
        "acoustics": {"views": 1, "room": {"bank_size": 2, "rt60": [0.15, 0.2], "length": [3, 4], "width": [3, 4]}},
        "output": {"dir": str(tmp_path / "unused"), "formats": ["wav"]}})
    s = reaugment_run(run, recipe, tmp_path / "views", progress=False)
    assert (s.views, s.units_done) == (2, 1)  # the run's own views are not augmented again
    names = sorted(p.name for p in (tmp_path / "views" / "audio").glob("*.wav"))
    assert names == ["d0-mainA-ac0.wav", "d1-mainA-ac0.wav"]
    v, _ = sf.read(tmp_path / "views" / "audio" / "d0-mainA-ac0.wav", dtype="int16")
    c, _ = sf.read(run / "audio" / "d0-mainA.wav", dtype="int16")
    assert np.array_equal(v[:, 0], c[:, 0])
    entry = json.loads((tmp_path / "views" / "units" / "unit-00000.json").read_text())["renderings"][0]
    assert entry["acoustics"]["view_of"] == "d0-mainA" and entry["stats"]
    assert len((tmp_path / "views" / "data.jsonl").read_text().splitlines()) == 2
    assert reaugment_run(run, recipe, tmp_path / "views", progress=False).units_resumed == 1


def test_bad_rir_and_noise_folders_are_one_line_each_at_recipe_check(tmp_path):
    def wav(path: Path, seconds: float, rate: int = 24000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)

    (tmp_path / "empty").mkdir()
    wav(tmp_path / "rate" / "n.wav", 2.0, rate=16000)
    wav(tmp_path / "short" / "n.wav", 0.5)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "n.wav").write_bytes(b"RIFF not really")
    wav(tmp_path / "shortrir" / "r.wav", 0.01)
    cases = [("noise_dir", "empty", "no .wav/.flac files"), ("noise_dir", "rate", "sample rate 16000 Hz, expected 24000 Hz"),
             ("noise_dir", "short", "0.500 s long, expected at least 1.0 s"), ("noise_dir", "broken", "not a readable audio file"),
             ("rir_dir", "shortrir", "expected at least 0.05 s"), ("rir_dir", "missing", "folder not found")]
    recipes = []
    for i, (key, folder, _) in enumerate(cases):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(f"corpus: {{name: jsonl, path: 'builtin:sample'}}\nacoustics: {{views: 1, {key}: {tmp_path / folder}}}\n"
                        f"output: {{dir: {tmp_path / 'out'}, formats: [wav]}}\n")
        recipes.append(path)
    res = subprocess.run([sys.executable, "-m", "jmoshi_augment.cli", "recipe", "check", *map(str, recipes)],
                         capture_output=True, text=True, cwd=ROOT, timeout=90)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(lines) == len(cases), res.stderr[-3000:]
    for line, (key, folder, want) in zip(lines, cases):
        assert line.startswith("error: ") and str(tmp_path / folder) in line and f"acoustics.{key}" in line and want in line, line
    assert not (tmp_path / "out").exists()  # nothing written
