"""nu-dialogue/moshi-finetune's format: wav + word list, parquet shards, their names, and the
same tokens as our tar shards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from jmoshi_augment.augment.formats.jmoshi_format import (
    META_KEY,
    finalize_parquet_names,
    jmoshi_row,
    read_jmoshi_parquet,
    write_jmoshi_dialogue,
    write_jmoshi_parquet,
)
from jmoshi_augment.augment.formats.shards import read_tar_shard, write_tar_shard
from jmoshi_augment.augment.tokens.text_tokens import place_text_tokens
from jmoshi_augment.augment.types import MAIN, OTHER, TokenizedDialogue
from jmoshi_augment.augment.formats.verify import verify_path
from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, MIMI_CARDINALITY, SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError

from token_helpers import rendered


def tokenized(rid: str, t: int = 15, a_channel: int = MAIN, n_q: int = 8, seed: int = 0) -> TokenizedDialogue:
    rng = np.random.default_rng(seed)
    text = rng.integers(0, 400, (2, t)).astype(np.int32)
    return TokenizedDialogue(
        id=rid, codes=rng.integers(0, MIMI_CARDINALITY, (2, n_q, t)).astype(np.int16), text=text, duration=t / FRAME_RATE,
        meta={"id": rid, "a_channel": a_channel, "n_q": n_q, "num_samples": t * FRAME_SIZE},
    )


def tokenize_without_mimi(r, sp, n_q: int = 8, seed: int = 0) -> TokenizedDialogue:
    """tokenize_dialogues' text half with made-up codes (Mimi is tested in test_tokenize)."""
    t = -(-r.audio.shape[1] // FRAME_SIZE)
    text = np.stack([place_text_tokens([(w.word, w.start, w.end) for w in r.channel_words(ch)], sp, t)[0] for ch in (MAIN, OTHER)])
    codes = np.random.default_rng(seed).integers(0, MIMI_CARDINALITY, (2, n_q, t)).astype(np.int16)
    meta = {"id": r.id, "a_channel": r.a_channel, "num_samples": r.audio.shape[1], "n_q": n_q}
    return TokenizedDialogue(r.id, codes, text, r.duration, meta)


# ----------------------------------------------------------------------------------- speakers


def test_speaker_a_is_the_corpus_first_speaker_whatever_channel_is_main():
    assert rendered(speaker_map={"main": "A", "other": "B"}).a_channel == MAIN
    assert rendered(speaker_map={"main": "B", "other": "A"}).a_channel == OTHER
    assert rendered(speaker_map={"main": "u2", "other": "u1"}, speakers=("u1", "u2")).a_channel == OTHER
    # the corpus order decides, not who speaks first in the audio
    assert rendered(words=[("はい", 0.2, 0.3, OTHER), ("ね", 0.4, 0.5, MAIN)]).a_channel == MAIN


# ------------------------------------------------------------------------------ wav + word list


def test_wav_puts_speaker_a_left_and_word_list_uses_a_b_labels(tmp_path):
    r = rendered("corp-3-mainB", speaker_map={"main": "B", "other": "A"},
                 words=[("こんにちは", 0.1, 0.5, OTHER), ("はい", 0.123456789, 0.2, MAIN)])
    wav = write_jmoshi_dialogue(tmp_path, r)
    assert wav == tmp_path / "audio" / "corp-3-mainB.wav"
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == SAMPLE_RATE and audio.shape == (r.audio.shape[1], 2)
    np.testing.assert_allclose(audio[:, 0], r.audio[OTHER], atol=1 / 32767)  # A = the other channel here
    np.testing.assert_allclose(audio[:, 1], r.audio[MAIN], atol=1 / 32767)
    words = json.loads((tmp_path / "text" / "corp-3-mainB.json").read_text(encoding="utf-8"))
    assert words == [
        {"speaker": "A", "word": "こんにちは", "start": 0.1, "end": 0.5},
        {"speaker": "B", "word": "はい", "start": 0.123456789, "end": 0.2},  # times unrounded
    ]
    assert list(tmp_path.rglob("*.tmp-*")) == []


def test_unsafe_ids_are_refused(tmp_path):
    with pytest.raises(JmoshiError, match="cannot be a file name"):
        write_jmoshi_dialogue(tmp_path, rendered("../escape"))


# -------------------------------------------------------------------------------------- parquet


def test_parquet_read_with_pandas_has_the_trainers_columns_nesting_and_values(tmp_path):
    items = [tokenized("d-1", 15, MAIN, seed=1), tokenized("d-2", 9, OTHER, seed=2)]
    path = write_jmoshi_parquet(tmp_path / "unit-00000.parquet", items)
    df = pd.read_parquet(path)
    assert list(df.columns) == ["dialogue_id", "A", "B"] and list(df.dialogue_id) == ["d-1", "d-2"]
    for (_, row), it in zip(df.iterrows(), items):
        a = it.meta["a_channel"]
        A, B = np.stack(row.A), np.stack(row.B)  # a list of 9 lists of T ints
        assert A.shape == (9, it.codes.shape[2]) and B.shape == A.shape
        np.testing.assert_array_equal(A[0], it.text[a])
        np.testing.assert_array_equal(A[1:], it.codes[a])
        np.testing.assert_array_equal(B[0], it.text[1 - a])
        np.testing.assert_array_equal(B[1:], it.codes[1 - a])
    # the schema prepare_dataset's own writer produces: pandas over .astype(np.int32).tolist()
    reference = tmp_path / "reference.parquet"
    pd.DataFrame([
        {"dialogue_id": it.id,
         "A": np.concatenate([it.text[a][None], it.codes[a]]).astype(np.int32).tolist(),
         "B": np.concatenate([it.text[1 - a][None], it.codes[1 - a]]).astype(np.int32).tolist()}
        for it in items for a in [it.meta["a_channel"]]
    ]).to_parquet(reference, index=False)
    ours, theirs = pq.read_schema(path), pq.read_schema(reference)
    assert ours.remove_metadata() == theirs.remove_metadata()
    assert str(ours.field("A").type) == "list<element: list<element: int64>>"
    assert ours.metadata[b"pandas"] == theirs.metadata[b"pandas"]
    assert json.loads(ours.metadata[META_KEY]) == {"unit": 0}
    assert pd.read_parquet(reference).equals(df)


def test_parquet_shards_are_byte_identical_for_identical_input(tmp_path):
    items = [tokenized("d-1", seed=1), tokenized("d-2", seed=2)]
    a = write_jmoshi_parquet(tmp_path / "a" / "unit-00003.parquet", items).read_bytes()
    b = write_jmoshi_parquet(tmp_path / "b" / "unit-00003.parquet", items).read_bytes()
    assert a == b


def test_parquet_round_trip_and_codebook_rules(tmp_path):
    it16 = tokenized("d-16", 6, n_q=16)
    path = write_jmoshi_parquet(tmp_path / "x.parquet", [it16])
    (row,) = read_jmoshi_parquet(path)
    np.testing.assert_array_equal(row.A[1:], it16.codes[0, :8])  # the first 8 of 16 codebooks
    with pytest.raises(JmoshiError, match="needs 8 Mimi codebooks, this dialogue has 4"):
        write_jmoshi_parquet(tmp_path / "y.parquet", [tokenized("d-4", 6, n_q=4)])
    no_a = tokenized("d-x")
    del no_a.meta["a_channel"]
    with pytest.raises(JmoshiError, match=r"no meta\['a_channel'\]"):
        jmoshi_row(no_a)
    assert not (tmp_path / "y.parquet").exists()


def test_same_dialogue_in_parquet_and_tar_holds_identical_tokens(tmp_path, sp):
    r = rendered("corp-9-mainB", seconds=2.0, speaker_map={"main": "B", "other": "A"},
                 words=[("こんにちは", 0.1, 0.6, OTHER), ("はい", 0.3, 0.5, MAIN), ("天気です", 1.0, 1.6, OTHER)])
    tok = tokenize_without_mimi(r, sp)
    (from_tar,) = read_tar_shard(write_tar_shard(tmp_path / "s.tar", [tok]))
    (row,) = read_jmoshi_parquet(write_jmoshi_parquet(tmp_path / "unit-00000.parquet", [tok]))
    a = from_tar.meta["a_channel"]
    assert a == OTHER
    np.testing.assert_array_equal(row.A, np.concatenate([from_tar.text[a][None], from_tar.codes[a]]))
    np.testing.assert_array_equal(row.B, np.concatenate([from_tar.text[1 - a][None], from_tar.codes[1 - a]]))
    # and the trainer's tokenizer, fed our word list, recomputes exactly the parquet's text rows
    write_jmoshi_dialogue(tmp_path, r)
    words = json.loads((tmp_path / "text" / "corp-9-mainB.json").read_text(encoding="utf-8"))
    for name, stream in (("A", row.A[0]), ("B", row.B[0])):
        mine = [(w["word"], w["start"], w["end"]) for w in words if w["speaker"] == name]
        np.testing.assert_array_equal(place_text_tokens(mine, sp, stream.shape[0])[0], stream)
    assert (row.A[0] != 3).sum() > 2 and (row.B[0] != 3).sum() > 1  # both speakers hold tokens


# ----------------------------------------------------------------------------------- shard names


def _ids(path) -> list[str]:
    return [r.dialogue_id for r in read_jmoshi_parquet(path)]


def test_finalize_names_shards_in_unit_order_and_renumbers_when_the_run_grows(tmp_path):
    folder = tmp_path / "parquet"
    for k in (2, 0, 1):
        write_jmoshi_parquet(folder / f"unit-{k:05d}.parquet", [tokenized(f"u{k}")])
    out = finalize_parquet_names(folder)
    assert [p.name for p in out] == ["train-001-of-003.parquet", "train-002-of-003.parquet", "train-003-of-003.parquet"]
    assert [_ids(p) for p in out] == [["u0"], ["u1"], ["u2"]]
    assert finalize_parquet_names(folder) == out  # idempotent

    # the run grows by one unit, and unit 1 is redone by a resumed run
    write_jmoshi_parquet(folder / "unit-00003.parquet", [tokenized("u3")])
    write_jmoshi_parquet(folder / "unit-00001.parquet", [tokenized("u1-redone")])
    out = finalize_parquet_names(folder)
    assert sorted(p.name for p in folder.iterdir()) == [f"train-00{i}-of-004.parquet" for i in range(1, 5)]
    assert [_ids(p) for p in out] == [["u0"], ["u1-redone"], ["u2"], ["u3"]]


def test_finalize_recovers_from_an_interrupted_rename(tmp_path):
    folder = tmp_path / "parquet"
    for k in range(3):
        write_jmoshi_parquet(folder / f"unit-{k:05d}.parquet", [tokenized(f"u{k}")])
    finalize_parquet_names(folder)
    (folder / "train-002-of-003.parquet").rename(folder / ".finalize-1.parquet")  # killed mid-way
    out = finalize_parquet_names(folder)
    assert [_ids(p) for p in out] == [["u0"], ["u1"], ["u2"]]
    (folder / "stray.parquet").write_bytes(b"")  # files of other names are left alone
    assert len(finalize_parquet_names(folder)) == 3 and (folder / "stray.parquet").exists()


def test_verify_on_a_jmoshi_folder(tmp_path, sp):
    out = tmp_path / "jmoshi"
    r = rendered("corp-1-mainA", seconds=1.5)
    write_jmoshi_dialogue(out, r)
    write_jmoshi_parquet(out / "parquet" / "unit-00000.parquet", [tokenize_without_mimi(r, sp)])
    finalize_parquet_names(out / "parquet")
    assert verify_path(out, sp=sp) == []

    # a word past the end of the audio, and a parquet row whose length disagrees with the wav
    words = json.loads((out / "text" / "corp-1-mainA.json").read_text(encoding="utf-8"))
    words[-1]["end"] = 9.0
    (out / "text" / "corp-1-mainA.json").write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    short = tokenize_without_mimi(r, sp)
    short.codes, short.text = short.codes[:, :, :10], short.text[:, :10]
    write_jmoshi_parquet(out / "parquet" / "unit-00000.parquet", [short])
    finalize_parquet_names(out / "parquet")
    messages = sorted(p.message for p in verify_path(out, sp=sp))
    assert messages == [
        "10 frames, but corp-1-mainA.wav gives 19",
        "word 2 ('天気'): [0.9, 9.0] outside the audio's [0, 1.500] s",
    ]


def test_finalize_names_follow_the_trainers_three_digit_pattern_past_999_shards(tmp_path):
    # names only: finalize reads the unit from a unit-K name, so empty files are enough
    folder = tmp_path / "parquet"
    folder.mkdir()
    for k in range(1000):
        (folder / f"unit-{k:05d}.parquet").write_bytes(b"")
    names = [p.name for p in finalize_parquet_names(folder)]
    assert names[0] == "train-001-of-1000.parquet"
    assert names[998:] == ["train-999-of-1000.parquet", "train-1000-of-1000.parquet"]
