"""Japanese Daily Dialogue (日本語日常対話コーパス), read from the repository's ``data/topicN.json``.

Source: https://github.com/jqk09a/japanese-daily-dialogue
Paper: 赤間怜奈, 磯部順子, 鈴木潤, 乾健太郎, 「日本語日常対話コーパスの構築」, 言語処理学会第29回年次大会
(NLP2023), pp. 108-113.
Licence: CC BY-NC-ND 4.0; research use only, not for services such as chatbots, no redistribution.

Five files (topics Dailylife, School, Travel, Health, Entertainment), each one JSON list; the
repository holds 5,256 dialogues / 41,737 utterances. ``dialogue_id`` restarts at 1 in every
topic file, so our ids combine both: ``jdaily-1-0679`` is topic 1, dialogue 679 (the numbering
J-Moshi-ext's rewritten examples use). Two dialogues start with speaker B; texts mix full- and
half-width characters and contain ideographic spaces (kept; see ``clean_text``).
"""

# data/topic1.json (illustrative record, not corpus text)
# [{"topic_id": 1, "topic_name": "Dailylife", "dialogue_id": 1, "dialogue_length": 2,
#   "utterances": [{"turn_num": 1, "speaker": "A", "utterance": "おはようございます。今朝は冷えますね。"},
#                  {"turn_num": 2, "speaker": "B", "utterance": "本当ですね。コートを出しました。"}]}, ...]

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from jmoshi_augment.corpora._common import (
    read_json,
    require,
    require_list,
    require_speaker,
    require_text,
    type_name,
)
from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import SkipCounts, register_corpus
from jmoshi_augment.errors import JmoshiError

_TOPIC_FILE = re.compile(r"^topic(\d+)\.json$")


@register_corpus(
    "jdaily",
    "Japanese Daily Dialogue: 5,256 written chats on 5 topics, topic in meta",
    "the repository's data/ folder with topic1.json … topic5.json (or the repository root, or one topicN.json)",
)
def load(path: Path, skips: SkipCounts) -> Iterator[Dialogue]:
    for topic_file in topic_files(path):
        # One topic file (~1.4 MB) is parsed at a time; the next is opened only when needed.
        records = read_json(topic_file)
        if not isinstance(records, list):
            raise JmoshiError(
                "expected a JSON list of dialogues (Japanese Daily Dialogue topicN.json), "
                f"got {type_name(records)}",
                path=topic_file,
            )
        for index, record in enumerate(records):
            dialogue = _parse(record, index, topic_file, skips)
            if dialogue is not None:
                yield dialogue


def topic_files(path: Path) -> list[Path]:
    """``topicN.json`` files in topic order, from a file, the ``data`` folder or the repo root."""
    if path.is_file():
        return [path]
    for folder in (path, path / "data"):
        found = [p for p in folder.glob("topic*.json") if _TOPIC_FILE.match(p.name)] if folder.is_dir() else []
        if found:
            return sorted(found, key=lambda p: int(_TOPIC_FILE.match(p.name).group(1)))
    raise JmoshiError(
        "no topic1.json … topic5.json here or in data/ (expected the Japanese Daily Dialogue data/ folder)", path=path
    )


def _parse(record: Any, index: int, path: Path, skips: SkipCounts) -> Dialogue | None:
    at = f"[{index}]"
    topic_id = _int_field(record, "topic_id", path, at)
    dialogue_id = _int_field(record, "dialogue_id", path, at)
    topic_name = require(record, "topic_name", path=path, keypath=at)
    utterances = require_list(record, "utterances", path=path, keypath=at)
    key = f"{topic_id}-{dialogue_id:04d}"
    turns: list[Turn] = []
    for i, utterance in enumerate(utterances):
        u_at = f"{at}.utterances[{i}]"
        speaker = require_speaker(utterance, "speaker", path=path, keypath=u_at)
        text = require_text(utterance, "utterance", path=path, keypath=u_at)
        if not text:
            skips.skip("empty text", f"{path.name}{u_at}")
            continue
        turns.append(Turn(speaker, text))
    if not turns:
        skips.skip("dialogue without any non-empty turn", f"{path.name}{at} (jdaily-{key})")
        return None
    meta = {"topic_id": topic_id, "topic": topic_name, "dialogue_id": dialogue_id}
    return Dialogue(f"jdaily-{key}", "jdaily", tuple(turns), meta)


def _int_field(record: Any, key: str, path: Path, at: str) -> int:
    value = require(record, key, path=path, keypath=at)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JmoshiError(f"{key} must be an integer, got {value!r}", path=path, key=f"{at}.{key}")
    return value
