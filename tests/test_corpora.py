"""Corpus loaders: each over fixtures written in its corpus's exact raw format, a real RealPersonaChat
excerpt (tests/fixtures/realpersonachat_real), every kind of bad input with its message, --limit,
laziness, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jmoshi_augment.corpora import Dialogue, SkipCounts, Turn, list_corpora, load_corpus
from jmoshi_augment.corpora._common import clean_text
from jmoshi_augment.errors import JmoshiError
from fixtures.make_nttcs_fixtures import write_workbook

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
REAL_RPC = FIXTURES / "realpersonachat_real" / "real_persona_chat"  # CC BY-SA 4.0, see the note beside it
PERSONA_XLSX = FIXTURES / "jpersonachat" / "japanese_persona_chat.xlsx"
EMPATHETIC_XLSX = FIXTURES / "jempathetic" / "japanese_empathetic_dialogues.xlsx"


def load(name: str, path: Path | str, **kwargs) -> tuple[list[Dialogue], SkipCounts]:
    skips = SkipCounts()
    return list(load_corpus(name, path, skips=skips, **kwargs)), skips


def texts(d: Dialogue) -> list[tuple[str, str]]:
    return [(t.speaker, t.text) for t in d.turns]


# ------------------------------------------------------------------------------------- registry


def test_five_corpora_registered():
    assert sorted(c.name for c in list_corpora()) == ["jdaily", "jempathetic", "jpersonachat", "jsonl", "realpersonachat"]
    assert all(c.description and c.expected_input for c in list_corpora())


def test_unknown_corpus_lists_known_ones():
    with pytest.raises(JmoshiError, match="unknown corpus 'nope'; known corpora: jdaily, jempathetic"):
        load_corpus("nope", FIXTURES)


def test_clean_text_joins_lines_and_strips_ideographic_space():
    assert clean_text("　そうですね\n\n  いいですね\u3000") == "そうですね いいですね"
    assert clean_text("はい。\u3000次です。") == "はい。\u3000次です。"  # inner U+3000 kept as published
    assert clean_text("<AB>さん、＊＊でｶﾌｪ") == "<AB>さん、＊＊でｶﾌｪ"


# ---------------------------------------------------------------------------------- jpersonachat


def test_jpersonachat_fixture():
    dialogues, report = load("jpersonachat", PERSONA_XLSX)
    assert [d.id for d in dialogues] == ["jpersonachat-PP1", "jpersonachat-PP2", "jpersonachat-PP4"]
    pp1, pp2, pp4 = dialogues
    assert pp1.corpus == "jpersonachat"
    assert texts(pp1) == [
        ("A", "こんにちは。最近寒くなりましたね。"),
        ("B", "こんにちは。本当に寒いですね。"),  # leading U+3000 stripped
        ("A", "札幌はもう雪が降りました。 猫たちはずっとこたつにいます。"),  # line break → one space
        ("B", "かわいいですね！何匹飼っているんですか？"),
        ("A", "2"),  # a cell Excel stored as the number 2
    ]
    assert pp1.meta == {
        "persona_id": "PP1",
        "persona": {
            "A": ["私は札幌に住んでいます。", "私は猫を二匹飼っています。", "私は会社員です。"],
            "B": ["私は看護師です。", "私は料理が得意です。"],
        },
    }
    assert pp2.speakers == ["B", "A"]  # starts with B
    assert texts(pp2)[1] == ("A", "はじめまして。僕は夜型なので尊敬します。")
    assert len(pp2.turns) == 3
    assert pp2.meta["persona"]["B"] == ["私は犬を飼っています。", "私は朝型です。"]  # blank persona lines dropped
    assert pp4.meta == {"persona_id": "PP4"}  # no persona row for PP4: no persona, no error
    assert dict(report.skipped) == {"empty text": 1}
    assert report.examples["empty text"] == "japanese_persona_chat.xlsx row 8"


def test_jpersonachat_accepts_the_folder():
    dialogues, _ = load("jpersonachat", PERSONA_XLSX.parent)
    assert [d.id for d in dialogues] == ["jpersonachat-PP1", "jpersonachat-PP2", "jpersonachat-PP4"]


# ----------------------------------------------------------------------------------- jempathetic


def test_jempathetic_fixture():
    dialogues, report = load("jempathetic", EMPATHETIC_XLSX)
    assert [d.id for d in dialogues] == ["jempathetic-1_1", "jempathetic-1_2", "jempathetic-2_1", "jempathetic-3_1"]
    d11, d12, d21, d31 = dialogues
    assert texts(d11) == [
        ("A", "この前の引っ越し、友達が手伝ってくれたんだ。"),
        ("B", "いい友達ですね。大変だったでしょう。"),
        ("A", "荷物が多くて、一人じゃ無理だったよ。"),
        ("B", "お礼に何かごちそうしたらどうですか？"),
    ]
    assert d11.meta == {"situation_id": "1_1", "emotion": "感謝する", "situation": "引っ越しの日に友達が手伝いに来てくれた。"}
    assert texts(d12) == [
        ("A", "楽しみにしていたライブが中止になっちゃった。"),
        ("B", "それは残念ですね……。"),
        ("A", "半年前からチケットを取ってたのに。"),
    ]
    assert d12.meta["emotion"] == "がっかりする"
    assert texts(d21)[1] == ("B", "いいですね！ どこに行くんですか？")
    assert d21.meta["situation"] == "来月、初めて海外旅行に行く。 パスポートも取った。"
    assert d31.meta == {"situation_id": "3_1"}  # no 状況文 row: no emotion, no error
    assert dict(report.skipped) == {"empty text": 1}
    assert report.examples["empty text"] == "japanese_empathetic_dialogues.xlsx row 7"


# ---------------------------------------------------------------------------------------- jdaily


def test_jdaily_fixture():
    dialogues, report = load("jdaily", FIXTURES / "jdaily" / "data")
    assert [d.id for d in dialogues] == ["jdaily-1-0001", "jdaily-1-0002", "jdaily-1-0004", "jdaily-2-0001", "jdaily-2-0002"]
    by_id = {d.id: d for d in dialogues}
    first = by_id["jdaily-1-0001"]
    assert first.corpus == "jdaily"
    assert first.meta == {"topic_id": 1, "topic": "Dailylife", "dialogue_id": 1}
    assert texts(first)[0] == ("A", "おはようございます。今朝は冷えますね。")
    assert by_id["jdaily-1-0002"].speakers == ["B", "A"]  # starts with B
    assert texts(by_id["jdaily-1-0004"]) == [
        ("A", "このスマホ、ﾊﾞｯﾃﾘｰの減りが早くて困っています。"),  # half-width katakana kept
        ("B", "設定で画面の明るさを下げると、少し長持ちしますよ。"),
        ("A", "なるほど。 試してみます。"),
    ]
    school = by_id["jdaily-2-0001"]  # same dialogue_id 1 as topic 1: distinct key
    assert school.meta == {"topic_id": 2, "topic": "School", "dialogue_id": 1}
    assert texts(school) == [
        ("A", "明日の数学のテスト、範囲は１２ページから３０ページまでですよね？"),
        ("B", "はい。\u3000問題集の復習もしておいた方がいいと思います。"),
        ("B", "一緒に図書館で勉強しませんか？"),
    ]
    assert dict(report.skipped) == {"empty text": 1}
    assert report.examples["empty text"] == "topic2.json[0].utterances[2]"


def test_jdaily_accepts_repo_root_and_single_file():
    from_root, _ = load("jdaily", FIXTURES / "jdaily")
    one_file, _ = load("jdaily", FIXTURES / "jdaily" / "data" / "topic2.json")
    assert len(from_root) == 5
    assert [d.id for d in one_file] == ["jdaily-2-0001", "jdaily-2-0002"]


# ------------------------------------------------------------------------------- realpersonachat


def test_realpersonachat_fixture():
    dialogues, report = load("realpersonachat", FIXTURES / "realpersonachat" / "real_persona_chat")
    # 00003 does not exist (gap), 00005 is a byte-identical copy of 00002.
    assert [d.id for d in dialogues] == ["realpersonachat-00001", "realpersonachat-00002", "realpersonachat-00004"]
    d1, d2, d4 = dialogues
    assert d1.corpus == "realpersonachat"
    assert d1.speakers == ["AA", "AB"]
    assert texts(d1)[2] == ("AA", "<AB>さんは休日は何をしていますか？")  # privacy mask kept
    assert d1.meta["dialogue_id"] == 1
    assert d1.meta["timestamps"][2] is None  # "NaT"
    assert d1.meta["timestamps"][0] == "2022-08-06T14:51:18.360000"
    assert len(d1.meta["timestamps"]) == len(d1.turns)
    assert d1.meta["persona"] == {
        "AA": ["私は旅行が好きだ。", "私は事務の仕事をしている。"],
        "AB": ["私はパンを焼くのが趣味だ。", "私は猫を飼っている。"],
    }
    assert d1.meta["interlocutors"]["AB"]["demographic_information"]["region_of_residence"] == "Aichi"
    assert d1.meta["interlocutors"]["AA"]["personality"]["BigFive_Openness"] == 4.25
    assert "persona" not in d1.meta["interlocutors"]["AA"]
    assert d1.meta["evaluations"]["AA"]["familiarity"] == 4
    assert texts(d2) == [
        ("AC", "こんにちは！"),
        ("AA", "こんにちは よろしくお願いします"),  # line break → one space
        ("AC", "＊＊で働いています。駅前のｶﾌｪによく行きます"),
        ("AA", "いいですね、コーヒーお好きなんですか？"),  # the empty utterance before it skipped
    ]
    assert d2.speakers == ["AC", "AA"]
    assert list(d2.meta["persona"]) == ["AC", "AA"]
    assert d4.meta["timestamps"] == ["2022-08-08T13:20:00.000000", "2022-08-08T13:20:12.000000", None, "2022-08-08T13:20:40.000000"]
    assert dict(report.skipped) == {"empty text": 1, "duplicate dialogue (same utterances as an earlier file)": 1}
    assert report.examples["duplicate dialogue (same utterances as an earlier file)"] == "00005.json = 00002.json"


def test_realpersonachat_accepts_repo_root():
    dialogues, _ = load("realpersonachat", FIXTURES / "realpersonachat")
    assert len(dialogues) == 3


def test_realpersonachat_real_excerpt():
    dialogues, report = load("realpersonachat", REAL_RPC)
    assert [d.id for d in dialogues] == ["realpersonachat-00001", "realpersonachat-00002", "realpersonachat-00003"]
    assert report.num_skipped == 0
    for d in dialogues:
        assert len(d.turns) == 30
        assert sorted(d.speakers) == ["AA", "AB"]
        assert set(d.meta["persona"]) == {"AA", "AB"} and all(len(p) == 10 for p in d.meta["persona"].values())
        assert set(d.meta["evaluations"]) == {"AA", "AB"}
        assert all(t.text and "\n" not in t.text for t in d.turns)
    assert texts(dialogues[0])[0] == ("AA", "よろしくお願いいたします。")
    assert dialogues[1].speakers == ["AB", "AA"]
    assert any("<AB>さん" in t.text for t in dialogues[1].turns)


# ----------------------------------------------------------------------------------------- jsonl


def test_jsonl_fixture():
    dialogues, report = load("jsonl", FIXTURES / "jsonl" / "dialogues.jsonl")
    assert [d.id for d in dialogues] == ["custom-1", "custom-2", "3"]
    c1, c2, c3 = dialogues
    assert c1.corpus == "mydata" and c1.meta == {"topic": "work", "tags": ["schedule"]}
    assert texts(c1) == [("A", "明日の会議、10時からだよね？"), ("B", "うん、 第2会議室で。")]
    assert c2.corpus == "jsonl" and c2.meta == {}
    assert texts(c2) == [("司会", "それでは始めましょう。"), ("ゲスト", "よろしくお願いします。")]
    assert c3.speakers == ["B", "A"] and c3.meta == {}
    assert dict(report.skipped) == {"empty text": 3, "duplicate dialogue id": 1, "dialogue without any non-empty turn": 1}
    assert report.examples["duplicate dialogue id"] == "dialogue 4 read (custom-1)"


def test_the_registry_skips_repeated_ids_for_every_corpus(tmp_path, monkeypatch):
    """The check lives in load_corpus, not in each loader: a loader that yields one id twice (as
    two RealPersonaChat files once did) gets the later one skipped and counted."""
    from jmoshi_augment.corpora import registry
    from jmoshi_augment.corpora.registry import register_corpus

    list_corpora()  # the real loaders first, then a registry copy this test may add to
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_corpus("test-repeats", "a loader that repeats an id", "any path")
    def _repeats(path, skips):
        for k in ("x-1", "x-2", "x-1", "x-1"):
            yield Dialogue(k, "test", (Turn("A", "はい"), Turn("B", "うん")))

    dialogues, report = load("test-repeats", tmp_path)
    assert [d.id for d in dialogues] == ["x-1", "x-2"]
    assert dict(report.skipped) == {"duplicate dialogue id": 2}
    assert report.examples["duplicate dialogue id"] == "dialogue 3 read (x-1)"


def test_bundled_sample_is_varied_natural_dialogue():
    dialogues, report = load("jsonl", "builtin:sample")
    assert report.num_skipped == 0
    assert 18 <= len(dialogues) <= 25
    assert len({d.id for d in dialogues}) == len(dialogues)
    assert all(d.corpus == "sample" and 4 <= len(d.turns) <= 10 for d in dialogues)
    assert all(set(d.speakers) == {"A", "B"} for d in dialogues)
    assert any(d.speakers[0] == "B" for d in dialogues)
    assert len({d.meta["topic"] for d in dialogues}) >= 15
    all_text = [t.text for d in dialogues for t in d.turns]
    assert any(any(c.isdigit() for c in t) for t in all_text)
    assert any("月" in t and "日" in t and any(c.isdigit() for c in t) for t in all_text)  # a date
    assert any("時" in t and any(c.isdigit() for c in t) for t in all_text)  # a time
    assert any(any("A" <= c <= "Z" for c in t) for t in all_text)  # a Latin word
    assert any(any(ord(c) >= 0x1F300 for c in t) for t in all_text)  # an emoji
    assert sum(t.rstrip("！？。!?").endswith(("ね", "よね")) for t in all_text) >= 15  # backchannel points
    assert max(t.count("。") for t in all_text) >= 4  # one long turn of several sentences


# ------------------------------------------------------------------------------------ bad inputs


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    write_workbook(path, sheets)
    return path


PERSONA_HEADER = ["No", "ペルソナID", "A", "B"]
DIALOGUE_HEADER = ["No", "ペルソナID", "話者", "発話"]


def _raises(name: str, path: Path | str, match: str) -> JmoshiError:
    with pytest.raises(JmoshiError) as info:
        list(load_corpus(name, path))
    assert match in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def test_missing_path(tmp_path):
    err = _raises("jdaily", tmp_path / "nope", "does not exist (expected the repository's data/ folder")
    assert err.path == str(tmp_path / "nope")


def test_wrong_ntt_workbook_names_the_right_corpus():
    _raises("jpersonachat", EMPATHETIC_XLSX, "no sheet 'ペルソナリスト' (sheets: 状況文, 対話): not the Japanese PersonaChat "
            "workbook (NTT names it ペルソナ対話1-5000.xlsx); this looks like the Japanese EmpatheticDialogues workbook "
            "(japanese_empathetic_dialogues.xlsx): use corpus 'jempathetic'")
    _raises("jempathetic", PERSONA_XLSX, "use corpus 'jpersonachat'")
    _raises("jempathetic", PERSONA_XLSX.parent, "no workbook with sheets '対話' and '状況文' in this folder (1 .xlsx file(s) "
            "without them); expected the Japanese EmpatheticDialogues workbook (japanese_empathetic_dialogues.xlsx); "
            "the workbook here looks like the Japanese PersonaChat workbook")


@pytest.mark.parametrize("name, ours, ntt", [
    ("jpersonachat", PERSONA_XLSX, FIXTURES / "jpersonachat_ntt"),
    ("jempathetic", EMPATHETIC_XLSX, FIXTURES / "jempathetic_ntt"),
])
def test_ntt_workbooks_read_by_position_whatever_the_headers_and_file_name(name, ours, ntt):
    # The _ntt fixtures carry NTT's file name / another name and other header texts (状況文 none).
    expected, expected_report = load(name, ours)
    got, report = load(name, ntt)  # a folder: found by its sheets, not its name
    assert got == expected and len(got) >= 3
    assert report.skipped == expected_report.skipped


def test_xlsx_header_texts_are_only_hints(tmp_path):
    # Header `No | ID | ペルソナA | ペルソナB`, as the workbook had, and no header at all on 対話.
    path = _workbook(tmp_path / "ペルソナ対話1-5000.xlsx", {
        "ペルソナリスト": [["No", "ID", "ペルソナA", "ペルソナB"], [1, "PP1", "私は猫です。", "私は犬です。\n私は走ります。"]],
        "対話": [[1, "PP1", "A", "こんにちは"], [2, "PP1", "B", "どうも"]],
    })
    (dialogue,), _ = load("jpersonachat", tmp_path)
    assert texts(dialogue) == [("A", "こんにちは"), ("B", "どうも")]
    assert dialogue.meta["persona"] == {"A": ["私は猫です。"], "B": ["私は犬です。", "私は走ります。"]}
    # A header repeated mid-sheet (as when sheets were pasted together) is skipped, like NTT's script does.
    path = _workbook(tmp_path / "x" / "p.xlsx", {
        "ペルソナリスト": [PERSONA_HEADER],
        "対話": [DIALOGUE_HEADER, [1, "PP1", "A", "あ"], DIALOGUE_HEADER, [2, "PP2", "B", "い"]],
    })
    dialogues, report = load("jpersonachat", path)
    assert [d.id for d in dialogues] == ["jpersonachat-PP1", "jpersonachat-PP2"]
    assert report.skipped == {"repeated header row": 1}
    # a header whose No cell was left empty is still a header: the id column says so
    path = _workbook(tmp_path / "y" / "p.xlsx", {"ペルソナリスト": [PERSONA_HEADER],
                                                 "対話": [[None, "ID", "話者", "発話"], [1, "PP1", "A", "あ"]]})
    (dialogue,), _ = load("jpersonachat", path)
    assert dialogue.id == "jpersonachat-PP1"


def test_xlsx_folder_with_two_matching_workbooks_or_none(tmp_path):
    sheets = {"ペルソナリスト": [PERSONA_HEADER], "対話": [DIALOGUE_HEADER, [1, "PP1", "A", "あ"]]}
    _workbook(tmp_path / "a.xlsx", sheets)
    _workbook(tmp_path / "b.xlsx", sheets)
    (tmp_path / "~$a.xlsx").write_bytes(b"lock")  # Excel's lock file is not a candidate
    _raises("jpersonachat", tmp_path, "several workbooks have the sheets '対話' and 'ペルソナリスト' (a.xlsx, b.xlsx); "
            "pass the file itself")
    (tmp_path / "b.xlsx").unlink()
    (dialogue,), _ = load("jpersonachat", tmp_path)
    assert dialogue.id == "jpersonachat-PP1"
    (tmp_path / "nothing").mkdir()
    _raises("jpersonachat", tmp_path / "nothing", "in this folder (no .xlsx file); expected the Japanese PersonaChat workbook")


def test_xlsx_sheet_too_narrow_for_the_layout(tmp_path):
    path = _workbook(tmp_path / "p.xlsx", {"ペルソナリスト": [PERSONA_HEADER], "対話": [["ペルソナID", "話者", "発話"], ["PP1", "A", "あ"]]})
    err = _raises("jpersonachat", path, "p.xlsx:2: sheet '対話': 3 column(s), but this layout needs 4 "
                  "(No | dialogue id | speaker | utterance)")
    assert err.line == 2


def test_xlsx_non_string_speaker(tmp_path):
    rows = [DIALOGUE_HEADER, [1, "PP1", "A", "こんにちは"], [1, "PP1", 2, "どうも"]]
    path = _workbook(tmp_path / "p.xlsx", {"ペルソナリスト": [PERSONA_HEADER], "対話": rows})
    err = _raises("jpersonachat", path, "p.xlsx:3: column C (話者): sheet '対話': speaker must be 'A' or 'B', got 2")
    assert err.line == 3
    rows = [[1, "PP1", "A", "こんにちは"], [1, "PP1", None, "どうも"]]
    path = _workbook(tmp_path / "q.xlsx", {"ペルソナリスト": [PERSONA_HEADER], "対話": rows})
    _raises("jpersonachat", path, "q.xlsx:2: column C (speaker): sheet '対話': speaker must be 'A' or 'B', got None")


def test_xlsx_rows_of_a_dialogue_must_be_consecutive(tmp_path):
    rows = [DIALOGUE_HEADER, [1, "PP1", "A", "あ"], [2, "PP2", "A", "い"], [1, "PP1", "B", "う"]]
    path = _workbook(tmp_path / "p.xlsx", {"ペルソナリスト": [PERSONA_HEADER], "対話": rows})
    _raises("jpersonachat", path, "p.xlsx:4: column B (ペルソナID): sheet '対話': rows of dialogue 'PP1' are not consecutive")


def test_xlsx_missing_dialogue_id_and_situation_without_header(tmp_path):
    path = _workbook(tmp_path / "e.xlsx", {"状況文": [["1_1", "悲しい", "雨が降った。"]],
                                           "対話": [["ID", "話者", "発話"], ["1_1", "A", "雨だね。"], [None, "B", "うん。"]]})
    err = _raises("jempathetic", path, "e.xlsx:3: column A (ID): sheet '対話': missing dialogue id")
    assert err.key == "column A (ID)"


def test_not_an_xlsx(tmp_path):
    path = tmp_path / "japanese_persona_chat.xlsx"
    path.write_text("No,ペルソナID,話者,発話\n", encoding="utf-8")
    _raises("jpersonachat", path, "not a readable .xlsx workbook")


def test_jdaily_bad_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    topic = data / "topic1.json"
    good = [{"topic_id": 1, "topic_name": "Dailylife", "dialogue_id": 1, "dialogue_length": 2,
             "utterances": [{"turn_num": 1, "speaker": "A", "utterance": "こんにちは"},
                            {"turn_num": 2, "speaker": "B", "utterance": "どうも"}]}]

    topic.write_bytes("[{\"utterance\": \"こんにちは\"}]".encode("shift_jis"))
    err = _raises("jdaily", data, "topic1.json:1: not UTF-8 text (byte 0x82 at offset 16)")
    assert err.line == 1

    topic.write_text('[\n  {"topic_id": 1,\n  "topic_name": }\n]', encoding="utf-8")
    _raises("jdaily", data, "topic1.json:3: invalid JSON: Expecting value")

    bad = json.loads(json.dumps(good))
    del bad[0]["utterances"][1]["utterance"]
    topic.write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    _raises("jdaily", data, "topic1.json: [0].utterances[1].utterance: missing key 'utterance'")

    bad = json.loads(json.dumps(good))
    bad[0]["utterances"][0]["speaker"] = 1
    topic.write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    _raises("jdaily", data, "topic1.json: [0].utterances[0].speaker: speaker must be a non-empty string, got 1 (number)")

    # A RealPersonaChat dialogue file is not a Daily Dialogue topic file.
    topic.write_text(json.dumps({"dialogue_id": 1, "utterances": []}), encoding="utf-8")
    _raises("jdaily", data, "expected a JSON list of dialogues (Japanese Daily Dialogue topicN.json), got object")

    _raises("jdaily", tmp_path / "data" / ".." / "..", "no topic1.json … topic5.json here or in data/")


def test_realpersonachat_bad_inputs(tmp_path):
    # The Daily Dialogue folder is not RealPersonaChat.
    _raises("realpersonachat", FIXTURES / "jdaily", "no dialogues/ folder here or in real_persona_chat/")
    root = tmp_path / "real_persona_chat"
    (root / "dialogues").mkdir(parents=True)
    _raises("realpersonachat", root, "interlocutors.json: missing interlocutors.json next to dialogues/")
    (root / "interlocutors.json").write_text("{}", encoding="utf-8")
    record = {"dialogue_id": 1, "interlocutors": ["AA", "AB"],
              "utterances": [{"utterance_id": 0, "interlocutor_id": "AA", "text": 5, "timestamp": "NaT"}]}
    (root / "dialogues" / "00001.json").write_text(json.dumps(record), encoding="utf-8")
    _raises("realpersonachat", root, "00001.json: utterances[0].text: text must be a string, got 5 (number)")
    record["utterances"][0] = {"utterance_id": 0, "interlocutor_id": None, "text": "はい"}
    (root / "dialogues" / "00001.json").write_text(json.dumps(record), encoding="utf-8")
    _raises("realpersonachat", root, "utterances[0].interlocutor_id: speaker must be a non-empty string, got None (null)")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "x", "turns": [', "bad.jsonl:2: invalid JSON: Expecting value"),
        ('["not", "an", "object"]', "bad.jsonl:2: expected a JSON object per line, got list"),
        ('{"id": "x"}', "bad.jsonl:2: turns: missing key 'turns'"),
        ('{"turns": []}', "bad.jsonl:2: id: missing key 'id'"),
        ('{"id": "x", "turns": [{"speaker": null, "text": "はい"}]}', "bad.jsonl:2: turns[0].speaker: speaker must be a non-empty string, got None (null)"),
        ('{"id": "x", "turns": [{"speaker": "A"}]}', "bad.jsonl:2: turns[0].text: missing key 'text'"),
        ('{"id": "x", "turns": [{"speaker": "A", "text": ["は", "い"]}]}', "bad.jsonl:2: turns[0].text: text must be a string"),
        ('{"id": "x", "turns": [], "meta": [1]}', "bad.jsonl:2: meta: meta must be a JSON object, got list"),
        ('{"id": "x", "turns": {"speaker": "A"}}', "bad.jsonl:2: turns: expected a JSON list, got object"),
    ],
)
def test_jsonl_bad_lines(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "turns": [{"speaker": "A", "text": "はい"}]}\n' + line + "\n", encoding="utf-8")
    _raises("jsonl", path, message)


def test_jsonl_non_utf8_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = '{"id": "ok", "turns": [{"speaker": "A", "text": "はい"}]}\n'.encode()
    path.write_bytes(good + good.replace(b"ok", b"ok2") + '{"id": "x", "turns": [{"speaker": "A", "text": "いいえ"}]}\n'.encode("euc_jp"))
    err = _raises("jsonl", path, "bad.jsonl:3: not UTF-8 text (byte 0xa4 at byte 49 of the line)")
    assert err.line == 3


# ------------------------------------------------------------------------------- limit, laziness


@pytest.mark.parametrize(
    "name, path",
    [("jpersonachat", PERSONA_XLSX), ("jempathetic", EMPATHETIC_XLSX), ("jdaily", FIXTURES / "jdaily"),
     ("realpersonachat", FIXTURES / "realpersonachat"), ("jsonl", FIXTURES / "jsonl" / "dialogues.jsonl")],
)
def test_limit(name, path):
    everything, _ = load(name, path)
    limited, _ = load(name, path, limit=2)
    assert limited == everything[:2] and len(limited) == 2


def test_jsonl_is_lazy_on_a_big_file(tmp_path):
    # 5,000 dialogues (~0.8 MB) whose last line is broken: the first dialogue still arrives, so
    # the loader did not read the file through before yielding.
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(5_000):
            f.write(json.dumps({"id": f"d{i}", "turns": [{"speaker": "A", "text": "こんにちは。" * 10}]}, ensure_ascii=False) + "\n")
        f.write("{broken\n")
    dialogues = load_corpus("jsonl", path)
    assert next(dialogues).id == "d0"
    with pytest.raises(JmoshiError, match="big.jsonl:5001: invalid JSON"):
        list(dialogues)


def test_xlsx_is_lazy(tmp_path):
    rows = [DIALOGUE_HEADER] + [[i, f"PP{i}", "AB"[j % 2], f"発話{j}"] for i in range(1, 301) for j in range(4)]
    rows.append([301, "PP301", 7, "壊れた行"])
    path = _workbook(tmp_path / "p.xlsx", {"ペルソナリスト": [PERSONA_HEADER], "対話": rows})
    dialogues = load_corpus("jpersonachat", path)
    assert next(dialogues).id == "jpersonachat-PP1"
    with pytest.raises(JmoshiError, match="p.xlsx:1202"):
        list(dialogues)


def test_jdaily_and_realpersonachat_read_files_one_at_a_time(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "topic1.json").write_bytes((FIXTURES / "jdaily" / "data" / "topic1.json").read_bytes())
    (data / "topic2.json").write_text("[{", encoding="utf-8")
    dialogues = load_corpus("jdaily", data)
    assert next(dialogues).id == "jdaily-1-0001"
    with pytest.raises(JmoshiError, match="topic2.json:1: invalid JSON"):
        list(dialogues)

    root = tmp_path / "real_persona_chat"
    (root / "dialogues").mkdir(parents=True)
    source = FIXTURES / "realpersonachat" / "real_persona_chat"
    (root / "interlocutors.json").write_bytes((source / "interlocutors.json").read_bytes())
    (root / "dialogues" / "00001.json").write_bytes((source / "dialogues" / "00001.json").read_bytes())
    (root / "dialogues" / "00002.json").write_text("{", encoding="utf-8")
    dialogues = load_corpus("realpersonachat", root)
    assert next(dialogues).id == "realpersonachat-00001"
    with pytest.raises(JmoshiError, match="00002.json:1: invalid JSON"):
        list(dialogues)


# ------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jmoshi_augment.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_corpora_list():
    result = _cli("corpora", "list")
    assert result.returncode == 0, result.stderr
    for name in ("jpersonachat", "jempathetic", "jdaily", "realpersonachat", "jsonl"):
        assert name in result.stdout
    assert "ペルソナ対話1-5000.xlsx" in result.stdout


def test_cli_corpora_export_round_trips(tmp_path):
    out = tmp_path / "out.jsonl"
    result = _cli("corpora", "export", "realpersonachat", str(FIXTURES / "realpersonachat"), "-o", str(out), "--limit", "2")
    assert result.returncode == 0, result.stderr
    expected, _ = load("realpersonachat", FIXTURES / "realpersonachat", limit=2)
    n_turns = sum(len(d.turns) for d in expected)
    n_chars = sum(d.num_chars for d in expected)
    assert result.stdout.strip() == f"{out}: 2 dialogues, {n_turns} turns, {n_chars} characters"
    assert "skipped 1 × empty text (e.g. 00002.json utterances[3])" in result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [Dialogue.from_dict(json.loads(line)) for line in lines] == expected
    # The export is itself a corpus: the jsonl loader reads it back unchanged.
    assert load("jsonl", out)[0] == expected
    assert not list(tmp_path.glob("*.tmp-*"))


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    result = _cli("corpora", "export", "jdaily", str(tmp_path / "missing"), "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing'}: does not exist (expected the repository's data/ folder with topic1.json … "
        "topic5.json (or the repository root, or one topicN.json))"
    ]
    assert not (tmp_path / "o.jsonl").exists()

    result = _cli("corpora", "export", "jpersonachat", str(EMPATHETIC_XLSX), "-o", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "use corpus 'jempathetic'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_turn_and_dialogue_round_trip_through_dict():
    d = Dialogue("x-1", "x", (Turn("A", "はい"), Turn("B", "うん")), {"topic": "t"})
    assert Dialogue.from_dict(json.loads(json.dumps(d.to_dict(), ensure_ascii=False))) == d
