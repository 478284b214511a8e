"""LLM spoken-style rewrite: validation verdicts (pure), then the whole stage against a scripted
OpenAI-compatible server on 127.0.0.1 (good rewrites, malformed JSON, a Korean clause, an invented
speaker, slow answers, 429s and 5xx), its retries, fallbacks, cache and report. No network beyond
loopback. Only the tests that take the ``openai_extra`` fixture need the ``openai`` extra."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI, Reply, dialogue_of  # noqa: E402

from jmoshi_augment.augment.text.rewrite.llm import AnswerCache, iter_rewrite, rewrite_dialogues  # noqa: E402
from jmoshi_augment.augment.text.rewrite.prompt import build_messages, load_system_prompt, prompt_hash  # noqa: E402
from jmoshi_augment.augment.text.rewrite.validate import validate_rewrite  # noqa: E402
from jmoshi_augment.corpora import Dialogue, Turn  # noqa: E402
from jmoshi_augment.errors import JmoshiError  # noqa: E402
from jmoshi_augment.recipe import RewriteConfig, parse_recipe  # noqa: E402

BASE_TURNS = (
    ("A", "引っ越しをしたそうですね。"),
    ("B", "はい。つい先週末に引っ越しました。駅から近くて、とても便利な場所です。"),
    ("A", "それは良かったですね。新しい部屋はどうですか？"),
    ("B", "少し狭いですが、日当たりが良くて気に入っています。"),
)
GOOD = (
    ("A", "引っ越ししたんですよね？"),
    ("B", "あ、はい！つい先週末に引っ越したばかりなんです。"),
    ("A", "へー。"),
    ("B", "駅から近くて、すごく便利な場所なんですよ。"),
    ("A", "それは良かったですね。新しい部屋はどうですか？"),
    ("B", "えっと、ちょっと狭いんですけど、日当たりが良くて気に入ってます。"),
)


def dialogue(first: str | None = None, id: str = "d-1", meta: dict[str, Any] | None = None, turns=BASE_TURNS) -> Dialogue:
    ts = [Turn(s, t) for s, t in turns]
    if first is not None:
        ts[0] = Turn(ts[0].speaker, first)
    return Dialogue(id, "test", tuple(ts), dict(meta or {}))


def answer(turns) -> str:
    return json.dumps({"turns": [{"speaker": s, "text": t} for s, t in turns]}, ensure_ascii=False)


CFG = RewriteConfig(backend="llm", model="fake-model")


def verdict(turns_or_text, original: Dialogue | None = None, finish_reason: str = "stop", **cfg: Any):
    content = turns_or_text if isinstance(turns_or_text, str) else answer(turns_or_text)
    return validate_rewrite(original or dialogue(), content, CFG.model_copy(update=cfg), finish_reason)


def replace_turn(turns, i: int, speaker: str | None = None, text: str | None = None):
    s, t = turns[i]
    return turns[:i] + ((speaker or s, t if text is None else text),) + turns[i + 1:]


# ------------------------------------------------------------------------------ validation (pure)
def test_good_rewrite_is_accepted_with_its_turns():
    v = verdict(GOOD)
    assert v.ok, v
    assert [t.text for t in v.turns] == [t for _, t in GOOD]
    # a ```json fence around the object changes nothing spoken
    assert verdict("```json\n" + answer(GOOD) + "\n```").ok


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name, path", [
    ("jdaily", "jdaily"), ("jpersonachat", "jpersonachat"), ("jempathetic", "jempathetic"),
    ("realpersonachat", "realpersonachat"), ("jsonl", "jsonl/dialogues.jsonl"),
])
def test_corpus_text_itself_passes(name, path):
    """No false rejections on real corpus text: every fixture dialogue, returned unchanged (masks,
    repeated greetings, personas, half-width characters included), is accepted."""
    from jmoshi_augment.corpora import load_corpus

    dialogues = list(load_corpus(name, FIXTURES / path))
    assert dialogues
    for d in dialogues:
        v = validate_rewrite(d, answer([(t.speaker, t.text) for t in d.turns]), CFG)
        assert v.ok, (d.id, v)


def test_the_jmoshi_ext_demo_rewrite_passes():
    # Japanese Daily Dialogue 1-0679 and J-Moshi-ext's demo text for it (docs/method.md)
    original = dialogue(turns=(("A", "引っ越しをしたそうですね。"), ("B", "はい。つい先週末に引っ越しました。")))
    demo = (("A", "引っ越ししたんですよね？"), ("B", "あ、はい！先週の週末に引っ越したばかりなんです。"))
    assert verdict(demo, original).ok


@pytest.mark.parametrize(
    "content, finish, reason",
    [
        ('{"turns": [{"speaker": "A", "text": "引っ越し', "stop", "malformed_json"),
        ('{"turns": [{"speaker": "A", "text": "引っ越し', "length", "truncated"),
        ("", "stop", "refused"),
        ('{"dialogue": []}', "stop", "schema"),
        ('{"turns": [{"speaker": "A", "text": ""}]}', "stop", "schema"),
        ('{"turns": [{"speaker": "A", "utterance": "はい"}]}', "stop", "schema"),
    ],
)
def test_structure_failures(content, finish, reason):
    v = verdict(content, finish_reason=finish)
    assert not v.ok and v.reason == reason, v


@pytest.mark.parametrize(
    "turns, reason, detail",
    [
        # the J-Moshi-ext artifact: a Korean clause inside a Japanese turn
        (replace_turn(GOOD, 1, text="うん、운동도 하고 있겠지만、先週末に引っ越したばかりなんです。"), "foreign_script", "Hangul"),
        (replace_turn(GOOD, 3, text="駅から近くて、очень便利な場所なんですよ。"), "foreign_script", "Cyrillic"),
        (replace_turn(GOOD, 3, text="駅から近くて、这个很便利な場所なんですよ。"), "foreign_script", "Chinese"),
        (replace_turn(GOOD, 3, text="駅から近くて、it is really a very convenient place なんですよ。"), "latin_run", "convenient"),
        (replace_turn(GOOD, 3, text="駅から近くて（笑）、便利な場所なんですよ。"), "markup", "bracketed note"),
        (replace_turn(GOOD, 3, text="B: 駅から近くて、便利な場所なんですよ。"), "markup", "speaker label"),
        (replace_turn(GOOD, 3, text='駅から近くて、<break time="0.5s"/>便利な場所なんですよ。'), "markup", "tag"),
        (replace_turn(GOOD, 3, text="駅から近くて、便利な場所なんですよ😀"), "markup", "emoji"),
        (replace_turn(GOOD, 3, text="駅から近くて、**すごく**便利なんですよ。"), "markup", "markdown emphasis"),
        (replace_turn(GOOD, 3, text="駅から近くて、＊＊すごく便利なんですよ。"), "privacy_mask", "not in the original"),
        (replace_turn(GOOD, 2, speaker="C"), "unknown_speaker", "['C']"),
        (tuple((("A", t) for _, t in GOOD)), "missing_speaker", "['B']"),
        ((("B", "あ、はい！"),) + GOOD, "order", "starts with B"),
        (replace_turn(GOOD, 1, speaker="A"), "order", "said by A"),
        ((GOOD[0], GOOD[5], GOOD[2], GOOD[3], GOOD[4], GOOD[1]), "order", "moved before"),
        ((("A", "引っ越し？"), ("B", "うん。")), "dropped_turn", "original turn 2"),
        (GOOD + tuple((("A", "ほんとうにそうなんですね、すごくいいところに住んでいらっしゃるんですね。"),) * 4), "length_ratio", "ratio"),
    ],
)
def test_content_failures(turns, reason, detail):
    v = verdict(turns)
    assert not v.ok and v.reason == reason, v
    assert detail in v.detail, v.detail


def test_too_short_but_complete_rewrite_is_a_length_failure():
    original = dialogue(turns=(("A", "引っ越しをしたそうですね。"), ("B", "はい。つい先週末に引っ越しました。")))
    v = verdict((("A", "引っ越し？"), ("B", "はい、先週末に。")), original)
    assert not v.ok and v.reason == "length_ratio", v


def test_scripts_and_latin_already_in_the_original_are_allowed():
    original = dialogue(turns=replace_turn(BASE_TURNS, 3, text="Stranger Things and Other Storiesというドラマが好きです。"))
    rewrite = replace_turn(GOOD, 5, text="えっと、Stranger Things and Other Storiesってドラマが好きなんです。")
    assert verdict(rewrite, original).ok
    # short Latin names pass without being in the original
    assert verdict(replace_turn(GOOD, 3, text="駅から近くて、YouTubeも見放題なんですよ。")).ok


@pytest.mark.parametrize(
    "text, script",
    [
        ("Ναι, βέβαια, είναι πολύ βολικό.", "Greek"),
        ("Vâng, chỗ đó rất tiện lợi.", "Latin with diacritics"),  # Vietnamese
        ("是的，那个地方很方便。", "Chinese"),  # simplified: 个 is not a Japanese character
        ("我很喜歡這個地方。", "Chinese"),  # traditional, all in JIS: kanji without any kana
        ("ใช่ครับ สะดวกมาก", "Thai"),
        ("Да, очень удобно.", "Cyrillic"),
        ("예, 아주 편리해요.", "Hangul"),
    ],
)
def test_japanese_script_is_an_allow_list(text, script):
    v = verdict(replace_turn(GOOD, 3, text=text))
    assert not v.ok and v.reason == "foreign_script", v
    assert v.detail.startswith(f"{script} in turn 4 (B)") or f"{script} (kanji" in v.detail, v.detail


@pytest.mark.parametrize("text", ["Yes, sure, okay.", "Sounds good to me!", "Right, it's nice."])
def test_english_in_short_runs_is_not_japanese(text):
    v = verdict(replace_turn(GOOD, 2, text=text))
    assert not v.ok and v.reason == "latin_run" and "letters are Latin" in v.detail, v


@pytest.mark.parametrize(
    "text",
    ["へー、SNSで見たことあります。", "OK!", "PCで見ました。", "へー、YouTubeで見たんですか。", "１０時に、ＪＲで。", "えっと…♪ ※たぶん、１０％くらい？"],
)
def test_acronyms_digits_and_japanese_symbols_pass(text):
    v = verdict(replace_turn(GOOD, 2, text=text))
    assert v.ok, v


@pytest.mark.parametrize(
    "turns, detail",
    [
        # the whole second B turn (both of its rewritten parts) is gone: A A A B remains
        ((GOOD[0], GOOD[2], GOOD[4], GOOD[5]), "original turn 2 (B: はい。つい先週末に引っ越しました。駅から近くて…) has no counterpart"),
        # A's question is gone; B answers the backchannel instead
        (GOOD[:4] + GOOD[5:], "original turn 3 (A: それは良かったですね。新しい部屋はどうですか？) is missing"),
        # A's question merged into B's answer turn: B says it, so A's turn has nothing left
        (GOOD[:4] + (("B", GOOD[4][1] + GOOD[5][1]),), "original turn 3 (A: それは良かったですね。"),
    ],
)
def test_dropped_and_merged_turns(turns, detail):
    v = verdict(turns)
    assert not v.ok and v.reason in ("dropped_turn", "order"), v
    assert detail in v.detail or "said by B" in v.detail, v.detail


def test_turn_rule_splits_backchannels_and_same_speaker_merges_pass():
    # split into two B turns with an inserted A backchannel: GOOD itself
    assert verdict(GOOD).ok
    # consecutive original turns of one speaker may become one turn
    original = dialogue(turns=(("A", "引っ越しをしたそうですね。"), ("A", "新しい部屋はどうですか？"), ("B", "少し狭いですが、日当たりが良くて気に入っています。")))
    merged = (("A", "引っ越ししたんですよね？新しい部屋はどうですか？"), ("B", "ちょっと狭いんですけど、日当たりが良くて気に入ってます。"))
    assert verdict(merged, original).ok
    # a short original turn (はい。) may be reworded freely, but its speaker must still answer in place
    original = dialogue(turns=(("A", "引っ越しをしたそうですね。"), ("B", "はい。"), ("A", "新しい部屋はどうですか？"), ("B", "気に入っています。")))
    assert verdict((("A", "引っ越ししたんですよね？"), ("B", "うん！"), ("A", "新しい部屋はどう？"), ("B", "気に入ってます。")), original).ok
    v = verdict((("A", "引っ越ししたんですよね？"), ("A", "新しい部屋はどう？"), ("B", "気に入ってます。")), original)
    assert not v.ok and v.reason == "dropped_turn" and "original turn 2 (B: はい。)" in v.detail, v


@pytest.mark.parametrize(
    "text, ok, detail",
    [
        ("それは良かったですね。山田さんの新しい部屋はどうですか？", False, "'山田' is not in the original"),
        ("それは良かったですね。大阪の新しい部屋はどうですか？", False, "'大阪'"),
        ("それは良かったですね。新しい部屋はどうですか？", True, ""),
    ],
)
def test_invented_proper_nouns(text, ok, detail):
    v = verdict(replace_turn(GOOD, 4, text=text))
    assert v.ok == ok, v
    if not ok:
        assert v.reason == "invented_name" and detail in v.detail, v


def test_names_from_the_original_or_persona_pass():
    original = dialogue(turns=replace_turn(BASE_TURNS, 2, text="それは良かったですね。大阪の部屋はどうですか？"),
                        meta={"persona": {"A": ["私は田中です。"], "B": []}})
    assert verdict(replace_turn(GOOD, 4, text="田中です。大阪の新しい部屋はどうですか？"), original).ok


MASKED = replace_turn(BASE_TURNS, 2, text="<XX>さんは、新しい部屋はどうですか？")


@pytest.mark.parametrize(
    "text, ok",
    [
        ("<XX>さんは、新しい部屋はどうですか？", True),  # kept verbatim
        ("新しい部屋はどうですか？", True),  # talked around
        ("エックスエックスさんは、新しい部屋はどう？", False),  # read out
        ("XXさんは、新しい部屋はどうですか？", False),  # read out without brackets
        ("<XX>さんは、<XX>さんの新しい部屋はどうですか？", False),  # multiplied
        ("<YY>さんは、新しい部屋はどうですか？", False),  # invented
        ("田中太郎さんは、新しい部屋はどうですか？", False),  # replaced by an invented full name
        ("さくらさんは、新しい部屋はどうですか？", False),  # replaced by a given name
        ("お客さんは、新しい部屋はどうですか？", True),  # not a name
    ],
)
def test_privacy_masks(text, ok):
    v = verdict(replace_turn(GOOD, 4, text=text), dialogue(turns=MASKED))
    assert v.ok == ok, v
    if not ok:
        assert v.reason == "privacy_mask"


PERSONA = {"A": ["私は猫を二匹飼っている。", "趣味は登山です。"], "B": ["私は看護師です。"]}
PERSONA_TURNS = (("A", "猫を二匹飼っているので、旅行にはなかなか行けません。"), ("B", "そうなんですね。私は看護師なので休みが不規則です。"))


@pytest.mark.parametrize(
    "turns, ok, dropped",
    [
        ((("A", "ネコを二匹飼ってるから、旅行ってなかなか行けないんです。"), ("B", "そうなんだ。私、看護師だから休みがバラバラで。")), True, ""),
        ((("A", "ペットがいるから、旅行ってなかなか行けないんですよね。"), ("B", "そうなんだ。私、看護師だから休みがバラバラで。")), False, "猫"),
        ((("A", "猫を二匹飼ってるから、旅行ってなかなか行けないんです。"), ("B", "そうなんだ。私、仕事の休みがバラバラで困ってて。")), False, "看護師"),
    ],
)
def test_persona_facts_kept(turns, ok, dropped):
    original = dialogue(turns=PERSONA_TURNS, meta={"persona": PERSONA})
    v = verdict(turns, original)
    assert v.ok == ok, v
    if not ok:
        assert v.reason == "persona_fact" and dropped in v.detail


# ----------------------------------------------------------------------------- scripted server
SUBS = (("ですね。", "ですよね？"), ("しました。", "したんです。"), ("ています。", "てるんです。"), ("とても", "すごく"), ("少し", "ちょっと"))


def spoken(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """A deterministic stand-in for a good LLM rewrite: colloquial endings, a filler, one inserted
    backchannel turn."""
    out = []
    for i, t in enumerate(doc["turns"]):
        text = t["text"]
        for a, b in SUBS:
            text = text.replace(a, b)
        out.append((t["speaker"], ("えっと、" + text) if i == 1 else text))
        if i == 1:
            other = next(s for s in doc["speakers"] if s != t["speaker"])
            out.append((other, "へー。"))
    return out


def korean(doc):
    turns = spoken(doc)
    return replace_turn(tuple(turns), 1, text="うん、운동도 하고 있겠지만、" + turns[1][1])


def invented(doc):
    return spoken(doc) + [("C", "私も引っ越したいです。")]


def respond(body: dict[str, Any], n: int) -> Reply:
    doc = dialogue_of(body)
    case = doc["turns"][0]["text"].split("|")[0]
    if case == "malformed":
        return Reply('{"turns": [{"speaker": "A", "text": "引っ越し') if n == 0 else Reply(answer(spoken(doc)))
    if case == "korean":
        return Reply(answer(korean(doc)))
    if case == "invented":
        return Reply(answer(invented(doc)))
    if case == "ratelimited2":
        return Reply(status=429, headers={"retry-after-ms": "5"}) if n < 2 else Reply(answer(spoken(doc)))
    if case == "ratelimited":
        return Reply(status=429, headers={"retry-after-ms": "1"})
    if case == "error503":
        return Reply(status=503) if n == 0 else Reply(answer(spoken(doc)))
    if case == "slow":
        return Reply(answer(spoken(doc)), delay=1.0)
    if case.startswith("wait"):
        return Reply(answer(spoken(doc)), delay=0.15)
    if case == "unauthorized":
        return Reply(status=401)
    if case == "nomodel":
        return Reply(status=404)
    return Reply(answer(spoken(doc)))


def case(name: str, i: int = 0) -> Dialogue:
    return dialogue(first=f"{name}|引っ越しをしたそうですね。", id=f"{name}-{i}")


@pytest.fixture()
def openai_extra():
    """Only the tests that run the stage's client need the ``openai`` extra; the validator, prompt,
    cache and recipe tests above and below run without it."""
    return pytest.importorskip("openai")


@pytest.fixture()
def server(openai_extra):
    with FakeOpenAI(respond) as s:
        yield s


def llm_cfg(server: FakeOpenAI, **kw: Any) -> RewriteConfig:
    base = dict(backend="llm", model="fake-model", base_url=server.base_url, max_retries=2, http_retries=3,
                backoff_base=0.01, concurrency=4, timeout=5.0)
    return RewriteConfig(**{**base, **kw})


MIXED = ["good", "malformed", "korean", "invented", "ratelimited2", "error503"]


def test_stage_verdicts_retries_fallbacks_and_report(server, tmp_path):
    cfg = llm_cfg(server)
    inputs = [case(c) for c in MIXED]
    out, report = rewrite_dialogues(inputs, cfg, tmp_path / "cache")

    assert [d.id for d in out] == [d.id for d in inputs]
    status = {d.id.split("-")[0]: d.meta["rewrite"]["status"] for d in out}
    assert status == {"good": "rewritten", "malformed": "rewritten", "korean": "kept", "invented": "kept",
                      "ratelimited2": "rewritten", "error503": "rewritten"}
    assert report.rewritten == 4 and report.kept == 2
    assert report.failures == {"foreign_script": 1, "unknown_speaker": 1}
    assert report.rejections == {"malformed_json": 1, "foreign_script": 3, "unknown_speaker": 3}
    assert report.http_retries == {"http_429": 2, "http_5xx": 1}
    # paid answers: good 1, malformed 2, korean 3, invented 3, ratelimited2 1, error503 1
    assert report.llm_calls == 11 and report.cache_hits == 0
    assert len(server.requests) == 11 + 3  # plus two 429s and one 503
    # token counts are the server's usage fields summed over the answered requests
    answered = [(b, respond(b, n)) for d in inputs for n, b in enumerate(server.calls_for(d.turns[0].text))]
    answered = [(b, r) for b, r in answered if r.status == 200]
    assert len(answered) == 11
    assert report.prompt_tokens == sum(sum(len(m["content"]) for m in b["messages"]) // 2 for b, _ in answered)
    assert report.completion_tokens == sum(len(r.content) // 2 for _, r in answered)

    good, kept = out[0], out[2]
    assert [t.speaker for t in good.turns] == ["A", "B", "A", "A", "B"]
    assert good.turns[0].text == "good|引っ越しをしたそうですよね？"
    stamp = good.meta["rewrite"]
    assert stamp["model"] == "fake-model" and stamp["attempts"] == 1
    assert stamp["prompt_sha256"] == prompt_hash(load_system_prompt(cfg), cfg)
    assert stamp["original_turns"] == [t.to_dict() for t in inputs[0].turns]
    assert kept.turns == inputs[2].turns and kept.meta["rewrite"]["reason"] == "foreign_script"
    assert "Hangul" in kept.meta["rewrite"]["detail"]

    # the retry carries the rejected answer and the reason
    retry = server.calls_for(inputs[1].turns[0].text)[1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "malformed_json" in retry[3]["content"] and "JSON" in retry[3]["content"]
    korean_retry = server.calls_for(inputs[2].turns[0].text)[2]["messages"][3]["content"]
    assert "foreign_script" in korean_retry and "Hangul" in korean_retry
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert any("kept original 1 × foreign_script" in line for line in report.lines())


def test_rerun_is_served_from_the_cache(server, tmp_path):
    cfg = llm_cfg(server)
    inputs = [case(c) for c in MIXED]
    first, _ = rewrite_dialogues(inputs, cfg, tmp_path / "cache")
    n_requests = len(server.requests)

    again, report = rewrite_dialogues(inputs, cfg, tmp_path / "cache")
    assert len(server.requests) == n_requests  # nothing paid twice
    assert again == first
    assert report.llm_calls == 0 and report.cache_hits == len(MIXED)
    assert report.rewritten == 4 and report.failures == {"foreign_script": 1, "unknown_speaker": 1}
    assert report.cached_answers == 11 and report.prompt_tokens == 0
    assert not list((tmp_path / "cache").rglob("*.tmp-*"))  # atomic writes leave no temp files

    # another model is another cache key
    rewrite_dialogues(inputs[:1], llm_cfg(server, model="other-model"), tmp_path / "cache")
    assert len(server.requests) == n_requests + 1


def test_a_rerun_with_more_retries_only_pays_for_the_missing_answers(server, tmp_path):
    d = case("malformed")
    out, report = rewrite_dialogues([d], llm_cfg(server, max_retries=0), tmp_path / "cache")
    assert out[0].meta["rewrite"]["status"] == "kept" and report.failures == {"malformed_json": 1}

    out, report = rewrite_dialogues([d], llm_cfg(server, max_retries=2), tmp_path / "cache")
    assert out[0].meta["rewrite"]["status"] == "rewritten" and out[0].meta["rewrite"]["attempts"] == 2
    assert report.cached_answers == 1 and report.llm_calls == 1
    assert len(server.calls_for(d.turns[0].text)) == 2


def test_timeouts_and_persistent_429_keep_the_original(server, tmp_path):
    cfg = llm_cfg(server, timeout=0.2, http_retries=1)
    out, report = rewrite_dialogues([case("slow"), case("ratelimited")], cfg, tmp_path / "cache")
    assert [d.turns for d in out] == [case("slow").turns, case("ratelimited").turns]
    assert report.failures == {"timeout": 1, "http_429": 1} and report.kept == 2
    assert report.http_retries == {"timeout": 1, "http_429": 1}
    assert len(server.calls_for(case("slow").turns[0].text)) == 2
    assert report.llm_calls == 0
    # failed requests are not cached: a later run asks again
    assert not list((tmp_path / "cache").rglob("*.json"))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_bounded(server, tmp_path, concurrency):
    inputs = [case(f"wait{i}", i) for i in range(7)]
    out, report = rewrite_dialogues(inputs, llm_cfg(server, concurrency=concurrency), tmp_path / "cache")
    assert report.rewritten == 7 and [d.id for d in out] == [d.id for d in inputs]
    assert server.max_inflight == concurrency


def test_duplicate_dialogues_in_one_run_are_paid_once(server, tmp_path):
    out, report = rewrite_dialogues([case("good"), case("good"), case("good")], llm_cfg(server, concurrency=3), tmp_path / "c")
    assert len(server.requests) == 1 and report.llm_calls == 1 and report.cache_hits == 2
    assert out[0] == out[1] == out[2] and report.rewritten == 3


def test_closing_the_iterator_early_cancels_cleanly(server, tmp_path):
    inputs = [case(f"wait{i}", i) for i in range(12)]
    it = iter_rewrite(inputs, llm_cfg(server, concurrency=2), tmp_path / "cache")
    first = next(it)
    assert first.id == "wait0-0"
    it.close()
    assert len(server.requests) < 12


def test_json_schema_mode_constrains_speakers(server, tmp_path):
    rewrite_dialogues([case("good")], llm_cfg(server, response_format="json_schema"), tmp_path / "c")
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    items = fmt["json_schema"]["schema"]["properties"]["turns"]["items"]
    assert items["properties"]["speaker"]["enum"] == ["A", "B"]


def test_prompt_file_overrides_the_default_and_the_cache_key(server, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("話し言葉に直して JSON で返してください。", encoding="utf-8")
    cfg = llm_cfg(server, prompt_file=str(prompt))
    rewrite_dialogues([case("good")], cfg, tmp_path / "c")
    assert server.requests[-1]["messages"][0]["content"] == prompt.read_text(encoding="utf-8")
    rewrite_dialogues([case("good")], llm_cfg(server), tmp_path / "c")
    assert len(server.requests) == 2  # another prompt, another cache entry
    assert "えっと" in server.requests[-1]["messages"][0]["content"]  # the bundled one-shot example

    with pytest.raises(JmoshiError, match="prompt file not found"):
        rewrite_dialogues([case("good")], llm_cfg(server, prompt_file=str(tmp_path / "nope.txt")), tmp_path / "c")


def test_persona_goes_into_the_request(server, tmp_path):
    d = dialogue(first="good|猫を二匹飼っています。", meta={"persona": PERSONA})
    out, report = rewrite_dialogues([d], llm_cfg(server), tmp_path / "c")
    assert report.rewritten == 1
    assert dialogue_of(server.requests[0])["persona"] == PERSONA


def test_backend_none_passes_dialogues_through(tmp_path):
    inputs = [dialogue(id=f"d{i}") for i in range(3)]
    out, report = rewrite_dialogues(inputs, RewriteConfig(), tmp_path / "c")
    assert out == inputs and report.passthrough == 3 and report.llm_calls == 0
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("name, key, message", [
    ("unauthorized", "rewrite.api_key_env", "refused the API key"),
    ("nomodel", "rewrite.model", "'fake-model' or its endpoint not found"),
])
def test_fatal_server_answers_raise(server, tmp_path, name, key, message):
    with pytest.raises(JmoshiError, match=message) as e:
        rewrite_dialogues([case(name)], llm_cfg(server), tmp_path / "c")
    assert e.value.key == key


def test_unreachable_server_raises(openai_extra, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = RewriteConfig(backend="llm", model="m", base_url=f"http://127.0.0.1:{port}/v1", http_retries=0)
    with pytest.raises(JmoshiError, match="cannot reach the LLM server") as e:
        rewrite_dialogues([dialogue()], cfg, tmp_path / "c")
    assert e.value.key == "rewrite.base_url"


def test_a_missing_api_key_raises(openai_extra, tmp_path, monkeypatch):
    monkeypatch.delenv("JMOSHI_TEST_KEY", raising=False)
    cfg = RewriteConfig(backend="llm", model="m", api_key_env="JMOSHI_TEST_KEY")
    with pytest.raises(JmoshiError, match="JMOSHI_TEST_KEY is not set"):
        rewrite_dialogues([dialogue()], cfg, tmp_path / "c")


def test_a_missing_openai_client_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(JmoshiError, match=r"pip install 'jmoshi-augment\[llm\]'"):
        rewrite_dialogues([dialogue()], RewriteConfig(backend="llm", model="m"), tmp_path / "c")


def test_recipe_section():
    base = "corpus: {name: jsonl, path: x.jsonl}\noutput: {dir: out}\n"
    assert parse_recipe(base).rewrite.backend == "none"
    with pytest.raises(JmoshiError, match="rewrite.model is required"):
        parse_recipe(base + "rewrite: {backend: llm}")
    with pytest.raises(JmoshiError, match="min_length_ratio must be below"):
        parse_recipe(base + "rewrite: {backend: llm, model: m, min_length_ratio: 3}")
    with pytest.raises(JmoshiError, match="unknown key") as e:
        parse_recipe(base + "rewrite: {backend: llm, model: m, temprature: 0.3}")
    assert e.value.key == "rewrite.temprature"
    r = parse_recipe(base + "rewrite: {backend: llm, model: qwen, base_url: 'http://127.0.0.1:8000/v1', concurrency: 32}")
    assert r.rewrite.model == "qwen" and r.rewrite.concurrency == 32


def test_cache_key_depends_on_text_prompt_and_model():
    d = dialogue()
    k = AnswerCache.key(d, "p1", "m1")
    assert k == AnswerCache.key(dialogue(), "p1", "m1")
    assert len({k, AnswerCache.key(d, "p2", "m1"), AnswerCache.key(d, "p1", "m2"),
                AnswerCache.key(dialogue(first="違う文。"), "p1", "m1"), AnswerCache.key(dialogue(id="x"), "p1", "m1")}) == 5


def test_messages_hold_the_dialogue_as_json():
    msgs = build_messages("SYS", dialogue())
    assert msgs[0] == {"role": "system", "content": "SYS"}
    doc = json.loads(msgs[1]["content"])
    assert doc["speakers"] == ["A", "B"] and doc["turns"][1]["text"] == BASE_TURNS[1][1]
    assert "persona" not in doc


def _issue19_respond(body: dict[str, Any], n: int) -> Reply:
    """The answers issue 19 saw accepted and voiced, now refused; ``fixed`` gets it right on retry."""
    doc = dialogue_of(body)
    case = doc["turns"][0]["text"].split("|")[0]
    turns = spoken(doc)
    if case == "dropped" or (case == "fixed" and n == 0):
        turns = [t for t in turns if "日当たり" not in t[1]]  # B's last turn is gone
    elif case == "named":
        turns = [(s, t.replace("<XX>さん", "田中太郎さん")) for s, t in turns]
    elif case == "english":
        turns = [(s, "Yes, sure, okay.") if i == 2 else (s, t) for i, (s, t) in enumerate(turns)]
    return Reply(answer(turns))


def test_stage_refuses_what_issue_19_saw_voiced(openai_extra, tmp_path):
    masked = tuple((s, "<XX>さんは、" + t) if i == 2 else (s, t) for i, (s, t) in enumerate(BASE_TURNS))
    inputs = [dialogue(first=f"{c}|引っ越しをしたそうですね。", id=f"{c}-0", turns=masked if c == "named" else BASE_TURNS)
              for c in ("dropped", "named", "english", "fixed")]
    with FakeOpenAI(_issue19_respond) as server:
        out, report = rewrite_dialogues(inputs, llm_cfg(server, max_retries=1), tmp_path / "cache")
    meta = {d.id.split("-")[0]: d.meta["rewrite"] for d in out}
    assert {k: (m["status"], m.get("reason")) for k, m in meta.items()} == {
        "dropped": ("kept", "dropped_turn"), "named": ("kept", "privacy_mask"),
        "english": ("kept", "latin_run"), "fixed": ("rewritten", None)}
    assert "original turn 4 (B: 少し狭いですが" in meta["dropped"]["detail"]
    assert "replaced by the name '田中'" in meta["named"]["detail"]
    assert [d.turns for d in out[:3]] == [d.turns for d in inputs[:3]]  # the originals are what gets voiced
    assert report.failures == {"dropped_turn": 1, "privacy_mask": 1, "latin_run": 1}


def test_the_prompts_own_example_passes_the_validator():
    text = load_system_prompt(RewriteConfig())
    example_in = json.loads(text.split("入力:\n", 1)[1].split("\n出力:", 1)[0])
    example_out = text.split("出力:\n", 1)[1].strip()
    original = Dialogue("example", "prompt", tuple(Turn(t["speaker"], t["text"]) for t in example_in["turns"]), {})
    v = validate_rewrite(original, example_out, CFG)
    assert v.ok, v
