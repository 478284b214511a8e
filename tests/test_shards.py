"""Tar token shards: round trip, byte-identical rewrites, crash safety, verify and the CLI."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from jmoshi_augment.augment.formats import shards
from jmoshi_augment.augment.formats.shards import read_tar_shard, shard_key, write_tar_shard
from jmoshi_augment.augment.types import TokenizedDialogue
from jmoshi_augment.augment.formats.verify import verify_files, verify_path
from jmoshi_augment.cli import app
from jmoshi_augment.constants import FRAME_SIZE, MIMI_CARDINALITY, SAMPLE_RATE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError


def item(rid: str, t: int = 20, n_q: int = 8, seed: int = 0, sp=None) -> TokenizedDialogue:
    rng = np.random.default_rng(seed)
    text = np.full((2, t), TEXT_IDS.pad, np.int32)
    if sp is not None:
        text[0, 2], text[0, 3] = TEXT_IDS.end_of_padding, sp.piece_to_id("天気")
        text[1, 5], text[1, 6] = TEXT_IDS.end_of_padding, sp.piece_to_id("こんにちは")
    return TokenizedDialogue(
        id=rid,
        codes=rng.integers(0, MIMI_CARDINALITY, (2, n_q, t)).astype(np.int16),
        text=text,
        duration=t * FRAME_SIZE / SAMPLE_RATE,
        meta={"id": rid, "dialogue_id": rid.split("-main")[0], "corpus": "corp", "speaker_map": {"main": "A", "other": "B"},
              "a_channel": 0, "n_q": n_q, "num_samples": t * FRAME_SIZE, "dropped_tokens": 0},
    )


def test_round_trip_keeps_arrays_dtypes_and_meta(tmp_path):
    items = [item("b-mainA", 20, seed=1), item("a-mainB", 7, n_q=16, seed=2)]
    path = write_tar_shard(tmp_path / "shard-00000.tar", items)
    back = {d.id: d for d in read_tar_shard(path)}
    assert sorted(back) == ["a-mainB", "b-mainA"]
    for orig in items:
        got = back[orig.id]
        assert got.codes.dtype == np.int16 and got.text.dtype == np.int32
        np.testing.assert_array_equal(got.codes, orig.codes)
        np.testing.assert_array_equal(got.text, orig.text)
        assert got.duration == orig.duration and got.meta == {**orig.meta, "duration": orig.duration}


def test_members_follow_webdataset_layout_sorted_with_fixed_headers(tmp_path):
    path = write_tar_shard(tmp_path / "s.tar", [item("b-1"), item("a-1")])
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == ["a-1.codes.npy", "a-1.json", "a-1.text.npy", "b-1.codes.npy", "b-1.json", "b-1.text.npy"]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}


def test_identical_input_gives_byte_identical_shards(tmp_path):
    items = [item("x-1", seed=3), item("y-2", seed=4)]
    a = write_tar_shard(tmp_path / "a.tar", items).read_bytes()
    b = write_tar_shard(tmp_path / "b.tar", items[::-1]).read_bytes()
    assert a == b
    changed = [item("x-1", seed=3), item("y-2", seed=5)]
    assert write_tar_shard(tmp_path / "c.tar", changed).read_bytes() != a


def test_a_crash_while_writing_leaves_no_shard_and_no_temp_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_addfile = tarfile.TarFile.addfile

    def failing_addfile(self, info, fileobj=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # killed half-way through the shard
        return real_addfile(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", failing_addfile)
    with pytest.raises(KeyboardInterrupt):
        write_tar_shard(tmp_path / "s.tar", [item("a-1"), item("b-1")])
    assert list(tmp_path.iterdir()) == []


def test_bad_items_are_refused_with_a_clear_message(tmp_path):
    bad = item("a-1")
    bad.text = bad.text[:, :5]
    with pytest.raises(JmoshiError, match=r"a-1: text must be \[2, T=20\], got shape \(2, 5\)"):
        write_tar_shard(tmp_path / "s.tar", [bad])
    with pytest.raises(JmoshiError, match="two dialogues share the shard key 'x_1'"):
        write_tar_shard(tmp_path / "s.tar", [item("x.1"), item("x/1")])
    assert not (tmp_path / "s.tar").exists()


def test_keys_have_no_dots_or_slashes():
    assert shard_key("jdaily-1.0679/mainA x") == "jdaily-1_0679_mainA_x"


def test_reading_broken_shards_names_the_problem(tmp_path):
    path = write_tar_shard(tmp_path / "s.tar", [item("a-1"), item("b-1")])
    data = path.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(JmoshiError, match="cut.tar"):
        list(read_tar_shard(tmp_path / "cut.tar"))
    # a shard missing one member of a dialogue
    with tarfile.open(path) as src, tarfile.open(tmp_path / "partial.tar", "w") as dst:
        for info in src.getmembers():
            if info.name != "b-1.text.npy":
                dst.addfile(info, src.extractfile(info))
    with pytest.raises(JmoshiError, match=r"b-1: dialogue lacks member\(s\) b-1.text.npy"):
        list(read_tar_shard(tmp_path / "partial.tar"))


def test_verify_accepts_good_shards_and_reports_each_problem(tmp_path):
    good = write_tar_shard(tmp_path / "good.tar", [item("a-1"), item("b-1")])
    report = verify_files(good, vocab_size=400)
    assert report.problems == [] and report.files == 1 and report.dialogues == 2

    wrong_len, big_text, big_code = item("c-1"), item("d-1"), item("e-1")
    wrong_len.meta["num_samples"] = 30 * FRAME_SIZE  # audio of 30 frames, streams of 20
    big_text.text[1, 4] = 999
    big_code.codes[0, 2, 3], big_code.codes[1, 0, 0] = MIMI_CARDINALITY, 0
    bad = write_tar_shard(tmp_path / "bad.tar", [wrong_len, big_text, big_code])
    problems = {p.item: p.message for p in verify_path(bad, vocab_size=400)}
    assert problems == {
        "c-1": "20 frames, but 1.600 s of audio gives 30",
        "d-1": "text ids span [3, 999], outside [0, 400)",
        "e-1": f"code ids span [0, {MIMI_CARDINALITY}], outside [0, {MIMI_CARDINALITY})",
    }


def test_verify_with_the_tokenizer_flags_byte_fallback_pieces(tmp_path, sp):
    it = item("a-1", sp=sp)
    it.text[1, 9] = sp.piece_to_id("<0xE9>")
    problems = verify_path(write_tar_shard(tmp_path / "s.tar", [it]), sp=sp)
    assert [p.message for p in problems] == ["text holds 1 byte-fallback piece(s)"]


def test_cli_inspect_prints_frames_without_word_marks_and_decodes(tmp_path, sp, sp_path):
    shard = write_tar_shard(tmp_path / "s.tar", [item("a-1", 12, sp=sp), item("b-1", 12, seed=1, sp=sp)])
    runner = CliRunner()
    res = runner.invoke(app, ["shards", "inspect", str(shard), "--key", "b-1", "--tokenizer", str(sp_path)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("b-1: 0.96 s, 12 frames, n_q=8")
    assert lines[1] == "main (A): 天気" and lines[2] == "other (B): こんにちは"
    frames = [line.split() for line in lines[5:]]
    assert frames == [["2", "0.16", "|", "·"], ["3", "0.24", "天気", "·"], ["5", "0.40", "·", "|"], ["6", "0.48", "·", "こんにちは"]]
    assert "▁" not in res.output

    wav = tmp_path / "decoded.wav"
    res = runner.invoke(app, ["shards", "inspect", str(shard), "--decode", str(wav), "--random-mimi"])
    assert res.exit_code == 0, res.output
    audio, rate = sf.read(wav)
    assert rate == SAMPLE_RATE and audio.shape == (12 * FRAME_SIZE, 2)


def test_cli_inspect_errors(tmp_path):
    shard = write_tar_shard(tmp_path / "s.tar", [item("a-1")])
    runner = CliRunner()
    res = runner.invoke(app, ["shards", "inspect", str(shard), "--decode", str(tmp_path / "x.wav")])
    assert isinstance(res.exception, JmoshiError) and "exactly one of --mimi PATH or --random-mimi" in str(res.exception)
    res = runner.invoke(app, ["shards", "inspect", str(shard), "--key", "zz"])
    assert "no dialogue 'zz' in this shard (it holds a-1)" in str(res.exception)
    res = runner.invoke(app, ["shards", "inspect", str(shard), "--decode", str(tmp_path / "x.wav"), "--mimi", str(tmp_path / "none.safetensors")])
    assert "Mimi weights not found" in str(res.exception)


def test_cli_verify_exit_codes(tmp_path):
    runner = CliRunner()
    write_tar_shard(tmp_path / "ok" / "s.tar", [item("a-1")])
    res = runner.invoke(app, ["shards", "verify", str(tmp_path / "ok"), "--vocab-size", "400"])
    assert res.exit_code == 0, res.output
    bad = item("b-1")
    bad.text[0, 0] = 500
    write_tar_shard(tmp_path / "bad" / "s.tar", [bad])
    res = runner.invoke(app, ["shards", "verify", str(tmp_path / "bad"), "--vocab-size", "400"])
    assert res.exit_code == 1
    assert "s.tar [b-1]: text ids span [3, 500], outside [0, 400)" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["shards", "verify", str(tmp_path / "empty")])
    assert "nothing to verify" in str(res.exception)


def test_meta_json_is_utf8_with_sorted_keys(tmp_path):
    it = item("a-1")
    it.meta["speaker_map"] = {"main": "話者A", "other": "話者B"}
    path = write_tar_shard(tmp_path / "s.tar", [it])
    with tarfile.open(path) as tar:
        raw = tar.extractfile("a-1.json").read().decode("utf-8")
    assert "話者A" in raw and list(json.loads(raw)) == sorted(json.loads(raw))
    assert np.load(io.BytesIO(shards.encode_item(it)["codes.npy"])).dtype == np.int16


# ------------------------------------------------------------------ verify against the unit records


def _run_with_units(tmp_path, units: dict[int, list[str]]):
    """A synth output folder as the pipeline leaves it: unit records + one tar shard per unit."""
    run = tmp_path / "run"
    (run / "units").mkdir(parents=True)
    for k, ids in units.items():
        record = {"unit": k, "dialogues": ids, "renderings": [{"id": i} for i in ids]}
        (run / "units" / f"unit-{k:05d}.json").write_text(json.dumps(record), encoding="utf-8")
        write_tar_shard(run / "shards" / f"shard-{k:05d}.tar", [item(i, seed=n) for n, i in enumerate(ids)])
    return run


def test_verify_a_run_folder_checks_every_shard_against_its_unit_record(tmp_path):
    run = _run_with_units(tmp_path, {0: ["a-1", "b-1", "c-1", "d-1"], 1: ["e-1"]})
    report = verify_files(run, vocab_size=400)
    assert report.problems == [] and report.dialogues == 5

    # cut exactly at a member boundary: the tar still reads, two dialogues shorter
    shard = run / "shards" / "shard-00000.tar"
    with tarfile.open(shard) as tar:
        cut = next(m.offset for m in tar.getmembers() if m.name.startswith("c-1"))
    shard.write_bytes(shard.read_bytes()[:cut])
    assert len(list(read_tar_shard(shard))) == 2  # what fooled the old verify
    problems = [str(p) for p in verify_path(run, vocab_size=400)]
    assert problems == [
        f"{shard}: no end-of-archive marker: the file was cut short (interrupted copy or download?)",
        f"{shard}: lacks 2 of the 4 dialogues units/unit-00000.json lists (cut short or stale?): c-1, d-1",
    ]
    # the shard file alone also finds its unit record
    assert [p.path for p in verify_path(shard, vocab_size=400)] == [str(shard), str(shard)]


def test_verify_names_foreign_members_missing_shards_and_stale_shards(tmp_path):
    run = _run_with_units(tmp_path, {0: ["a-1"], 1: ["b-1"]})
    write_tar_shard(run / "shards" / "shard-00000.tar", [item("a-1"), item("z-1")])
    (run / "shards" / "shard-00001.tar").unlink()
    write_tar_shard(run / "shards" / "shard-00007.tar", [item("q-1")])
    problems = [str(p) for p in verify_path(run, vocab_size=400)]
    assert problems == [
        f"{run / 'shards' / 'shard-00000.tar'}: holds 1 dialogue(s) that units/unit-00000.json does not list: z-1",
        f"{run / 'shards' / 'shard-00007.tar'}: belongs to unit 7, but units/unit-00007.json does not exist "
        "(a shard from another run, or a unit not finished)",
        f"{run / 'shards'}: units/unit-00001.json lists 1 dialogue(s), but there is no tar shard for unit 1",
    ]


def test_verify_reports_a_bad_wav_under_the_wav_and_bad_words_under_the_json(tmp_path):
    folder = tmp_path / "wav"
    folder.mkdir()
    sf.write(str(folder / "d.wav"), np.zeros(2400, np.float32), 24000)  # mono
    (folder / "d.json").write_text(json.dumps({"alignments": [["はい", [0.0, 0.05], "SPEAKER_MAIN"]]}), encoding="utf-8")
    sf.write(str(folder / "e.wav"), np.zeros((2400, 2), np.float32), 24000)
    (folder / "e.json").write_text(json.dumps({"alignments": [["はい", [0.0, 9.0], "SPEAKER_MAIN"]]}), encoding="utf-8")
    problems = {(p.path, p.message.split(":")[0]) for p in verify_path(folder)}
    assert problems == {
        (str(folder / "d.wav"), "1 channel(s), expected stereo"),
        (str(folder / "e.json"), "word 0 ('はい')"),
    }
