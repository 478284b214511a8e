"""The run folder's layout: the unit record round-trips through its typed form, records written
before a key was renamed are read (and their folder resumes), and a record this version cannot
read stops the run with one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jmoshi_augment.augment.run.layout import (RENAMED_EVENTS, RENAMED_KEYS, UnitRecord, UnitRecordError,
                                               read_unit_record, read_unit_records, unit_path)
from jmoshi_augment.augment.run.output_formats import FORMAT_NAMES, FORMATS, TOKEN_FORMATS
from jmoshi_augment.augment.run.pipeline import run_synth
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
FAST = {"tts.backend": "openjtalk", "workers": 1, "output.shard_size": 1}


def _old_style(record: dict) -> dict:
    """A record as the version before the renames wrote it (same key order, old names)."""
    old_of = {new: old for old, new in RENAMED_KEYS.items()}
    old_event = {new: old for old, new in RENAMED_EVENTS.items()}
    out = {old_of.get(k, k): v for k, v in record.items()}
    out["renderings"] = [{old_of.get(k, k): v for k, v in e.items()} for e in record["renderings"]]
    for e in out["renderings"]:
        e["planned"] = {old_event.get(k, k): v for k, v in e["planned"].items()}
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout") / "run"
    run_synth(load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 2, "output.dir": str(out)}), progress=False)
    return out


def test_a_written_record_round_trips_through_its_typed_form(run):
    for k in (0, 1):
        text = unit_path(run, k).read_text(encoding="utf-8")
        record = read_unit_record(unit_path(run, k))
        assert record.unit == k and record.renderings and record.renderings[0].stats is not None
        raw = json.loads(text)
        for e in raw["renderings"]:  # the planner may still count events under their old names
            e["planned"] = {RENAMED_EVENTS.get(k, k): v for k, v in e["planned"].items()}
        assert record.to_dict() == raw
        assert list(record.to_dict()) == list(raw) and list(record.to_dict()["renderings"][0]) == list(raw["renderings"][0])


def test_old_key_names_are_read_under_their_new_names(run):
    new = json.loads(unit_path(run, 0).read_text(encoding="utf-8"))
    new["renderings"][0]["planned"]["gaps_after_aizuchi"] = 2  # an event counter of the old planner
    old = _old_style(new)
    assert "source_chars" in old and "source" in old["renderings"][0] and "source_turns" not in old["renderings"][0]
    record = UnitRecord.from_dict(old)
    assert record.source_characters == new["source_characters"] > 0
    assert record.renderings[0].source_turns == new["renderings"][0]["source_turns"]
    assert record.renderings[0].planned["gaps_after_backchannel"] == 2
    assert "gaps_after_aizuchi" not in record.renderings[0].planned


def test_a_folder_written_with_old_key_names_resumes_and_reports(run, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 2, "output.dir": str(out)})
    run_synth(recipe, progress=False)
    unit_path(out, 0).write_text(json.dumps(_old_style(json.loads(unit_path(out, 0).read_text(encoding="utf-8")))),
                                 encoding="utf-8")
    unit_path(out, 1).unlink()  # and unit 1 still to do
    summary = run_synth(recipe, progress=False)
    assert summary.units_resumed == 1 and summary.units_done == 1
    first = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert summary.report["source_characters"] == first["source_characters"] > 0
    assert summary.report["renderings"] == 2
    for wav in sorted((run / "audio").glob("*.wav")):
        assert (out / "audio" / wav.name).read_bytes() == wav.read_bytes()


def test_a_record_this_version_cannot_read_stops_the_run_naming_it(run, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe(ROOT / "recipes/sample.yaml", {**FAST, "corpus.limit": 2, "output.dir": str(out)})
    run_synth(recipe, progress=False)
    broken = json.loads(unit_path(out, 0).read_text(encoding="utf-8"))
    del broken["dialogues"]
    unit_path(out, 0).write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(JmoshiError) as e:
        run_synth(recipe, progress=False)
    line = str(e.value)
    assert line == (f"{unit_path(out, 0)}: not a unit record this version can read (dialogues: missing); "
                    "delete it to redo unit 0")
    # a report or verifier lists it and goes on
    records = read_unit_records(out, strict=False)
    assert list(records.records) == [1] and len(records.unreadable) == 1
    with pytest.raises(UnitRecordError):
        read_unit_records(out)


def test_the_format_table_is_the_one_list_of_formats():
    from typing import get_args

    from jmoshi_augment.recipe import OutputFormat

    assert set(get_args(OutputFormat)) == set(FORMAT_NAMES) == set(FORMATS)
    assert TOKEN_FORMATS == {"tar", "jmoshi"}  # those with a per-unit writer
