"""Generic JSONL dialogues: one dialogue per line, the format ``corpora export`` writes.

Use it for your own data, for dialogues exported (and perhaps edited or rewritten) from any other
corpus, and for the sample bundled with the package (pass ``builtin:sample``). Ids are kept as
given, so an exported-and-reloaded corpus keeps its prefixed ids (``jdaily-1-0679``).
"""

# {"id": "sample-001", "corpus": "sample",
#  "turns": [{"speaker": "A", "text": "週末どこか行った？"}, {"speaker": "B", "text": "うん、鎌倉に行ってきたよ。"}],
#  "meta": {"topic": "travel"}}

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from jmoshi_augment.corpora._common import require, require_list, require_speaker, require_text, type_name
from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import SkipCounts, register_corpus
from jmoshi_augment.errors import JmoshiError


_BOM = b"\xef\xbb\xbf"


@register_corpus(
    "jsonl",
    "Generic JSONL, one dialogue per line (your own data, `corpora export` output, builtin:sample)",
    'a .jsonl file, one {"id", "corpus", "turns": [{"speaker", "text"}], "meta"} per line; '
    "builtin:sample = the bundled sample",
)
def load(path: Path, skips: SkipCounts) -> Iterator[Dialogue]:
    if path.is_dir():
        raise JmoshiError("is a folder; expected a .jsonl file with one dialogue per line", path=path)
    with open(path, "rb") as f:
        # Line by line in binary, so the first dialogue arrives before the file is read through and
        # a bad byte or bad record is reported with its own line number.
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]  # editors on Windows add one
            text = _decode_line(raw, path, lineno)
            if not text.strip():
                continue  # blank lines carry no dialogue
            dialogue = parse_line(text, path=path, line=lineno, skips=skips)
            if dialogue is None:
                continue
            yield dialogue


def _decode_line(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JmoshiError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line); "
            "save the file as UTF-8",
            path=path,
            line=lineno,
        ) from None


def parse_line(text: str, *, path: Path, line: int, skips: SkipCounts) -> Dialogue | None:
    """One JSONL record → Dialogue, or None when it has no non-empty turn (counted in ``skips``)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise JmoshiError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=line) from None
    if not isinstance(record, dict):
        raise JmoshiError(f"expected a JSON object per line, got {type_name(record)}", path=path, line=line)
    where = f"{path.name}:{line}"
    dialogue_id = require(record, "id", path=path, keypath="", line=line)
    if isinstance(dialogue_id, bool) or not isinstance(dialogue_id, (str, int)) or str(dialogue_id).strip() == "":
        raise JmoshiError(f"id must be a non-empty string, got {dialogue_id!r}", path=path, line=line, key="id")
    dialogue_id = str(dialogue_id).strip()
    corpus = record.get("corpus", "jsonl")
    if not isinstance(corpus, str) or not corpus:
        raise JmoshiError(f"corpus must be a non-empty string, got {corpus!r}", path=path, line=line, key="corpus")
    meta = record.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise JmoshiError(f"meta must be a JSON object, got {type_name(meta)}", path=path, line=line, key="meta")
    raw_turns = require_list(record, "turns", path=path, keypath="", line=line)
    turns: list[Turn] = []
    for i, raw_turn in enumerate(raw_turns):
        keypath = f"turns[{i}]"
        speaker = require_speaker(raw_turn, "speaker", path=path, keypath=keypath, line=line)
        utterance = require_text(raw_turn, "text", path=path, keypath=keypath, line=line)
        if not utterance:
            skips.skip("empty text", f"{where} {keypath}")
            continue
        turns.append(Turn(speaker, utterance))
    if not turns:
        skips.skip("dialogue without any non-empty turn", f"{where} ({dialogue_id})")
        return None
    return Dialogue(id=dialogue_id, corpus=corpus, turns=tuple(turns), meta=meta)
