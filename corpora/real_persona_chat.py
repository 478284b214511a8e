"""RealPersonaChat: Japanese text chats between real people, with each speaker's own persona and
personality, read from the repository's ``real_persona_chat/`` folder.

Source: https://github.com/nu-dialogue/real-persona-chat
Paper: S. Yamashita, K. Inoue, A. Guo, S. Mochizuki, T. Kawahara, R. Higashinaka, "RealPersonaChat:
A Realistic Persona Chat Corpus with Interlocutors' Own Personalities", PACLIC 37 (2023), pp. 852-861.
Licence: CC BY-SA 4.0 (attribution, share-alike; data derived from it inherits the licence).

``dialogues/NNNNN.json`` holds one dialogue each (13,583 files, numbering has gaps) and
``interlocutors.json`` the 233 speakers (persona sentences, personality scores, demographics).
Speakers keep their interlocutor ids (``AA``, ``AB``...). Quirks of the full release handled here:
two pairs of byte-identical dialogues under different numbers (10279 = 10577, 11052 = 11838;
the later one is skipped and counted), timestamps that are the string ``"NaT"`` (→ ``None``),
texts with line breaks (→ one space). Privacy masks (``<AB>さん``, ``＊＊``) are kept as published:
the script stage decides how a TTS should say them.
"""

# real_persona_chat/dialogues/00001.json (illustrative record, not corpus text)
# {"dialogue_id": 1, "interlocutors": ["AA", "AB"],
#  "utterances": [{"utterance_id": 0, "interlocutor_id": "AA", "text": "はじめまして！", "timestamp": "2022-08-06T14:51:18.360000"},
#                 {"utterance_id": 1, "interlocutor_id": "AB", "text": "<AA>さん、よろしくです", "timestamp": "NaT"}],
#  "evaluations": [{"interlocutor_id": "AA", "informativeness": 5, "comprehension": 5, "familiarity": 4,
#                   "interest": 5, "proactiveness": 4, "satisfaction": 5}, ...]}
# real_persona_chat/interlocutors.json
# {"AA": {"interlocutor_id": "AA", "persona": ["私は旅行が好きだ。", ...],
#         "personality": {"BigFive_Openness": 4.25, ...}, "demographic_information": {"gender": "Female", ...},
#         "text_chat_experience": {...}}, ...}

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from jmoshi_augment.corpora._common import read_json, require_list, require_speaker, require_text, type_name
from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import SkipCounts, register_corpus
from jmoshi_augment.errors import JmoshiError


_DUPLICATE = "duplicate dialogue (same utterances as an earlier file)"


@register_corpus(
    "realpersonachat",
    "RealPersonaChat: 13,583 chats between real people, their personas/personality in meta",
    "the real_persona_chat/ folder holding dialogues/ and interlocutors.json (or the repository root)",
)
def load(path: Path, skips: SkipCounts) -> Iterator[Dialogue]:
    root = corpus_root(path)
    interlocutors = _read_interlocutors(root / "interlocutors.json")
    first_with_content: dict[str, str] = {}
    # Listing the folder is cheap; each dialogue file is read only when its turn comes.
    for file in sorted((root / "dialogues").glob("*.json")):
        record = read_json(file)
        digest = _content_hash(record)
        if digest is not None and digest in first_with_content:
            skips.skip(_DUPLICATE, f"{file.name} = {first_with_content[digest]}")
            continue
        dialogue = _parse(record, file, interlocutors, skips)
        if dialogue is None:
            continue
        if digest is not None:
            first_with_content[digest] = file.name
        yield dialogue


def corpus_root(path: Path) -> Path:
    for root in (path, path / "real_persona_chat"):
        if (root / "dialogues").is_dir():
            return root
    raise JmoshiError(
        "no dialogues/ folder here or in real_persona_chat/ (expected the RealPersonaChat "
        "real_persona_chat/ folder with dialogues/ and interlocutors.json)",
        path=path,
    )


def _read_interlocutors(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise JmoshiError("missing interlocutors.json next to dialogues/ (the speakers' personas)", path=path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise JmoshiError(f"expected a JSON object keyed by interlocutor id, got {type_name(data)}", path=path)
    return data


def _parse(
    record: Any, path: Path, interlocutors: dict[str, dict[str, Any]], skips: SkipCounts
) -> Dialogue | None:
    if not isinstance(record, dict):
        raise JmoshiError(f"expected one dialogue as a JSON object, got {type_name(record)}", path=path)
    utterances = require_list(record, "utterances", path=path, keypath="")
    turns: list[Turn] = []
    timestamps: list[str | None] = []
    for i, utterance in enumerate(utterances):
        at = f"utterances[{i}]"
        speaker = require_speaker(utterance, "interlocutor_id", path=path, keypath=at)
        text = require_text(utterance, "text", path=path, keypath=at)
        if not text:
            skips.skip("empty text", f"{path.name} {at}")
            continue
        turns.append(Turn(speaker, text))
        timestamp = utterance.get("timestamp")
        timestamps.append(None if timestamp in (None, "NaT", "") else str(timestamp))
    if not turns:
        skips.skip("dialogue without any non-empty turn", path.name)
        return None
    listed = record.get("interlocutors")
    listed = [s for s in listed if isinstance(s, str)] if isinstance(listed, list) else []
    speakers = list(dict.fromkeys([*listed, *(t.speaker for t in turns)]))
    meta: dict[str, Any] = {
        "dialogue_id": record.get("dialogue_id"),
        # Same shape as jpersonachat's meta["persona"]: speaker label → persona sentences.
        "persona": {s: list(interlocutors[s].get("persona", [])) for s in speakers if s in interlocutors},
        "interlocutors": {
            s: {k: v for k, v in interlocutors[s].items() if k not in ("persona", "interlocutor_id")}
            for s in speakers
            if s in interlocutors
        },
        "evaluations": {
            e["interlocutor_id"]: {k: v for k, v in e.items() if k != "interlocutor_id"}
            for e in record.get("evaluations", [])
            if isinstance(e, dict) and "interlocutor_id" in e
        },
        "timestamps": timestamps,  # one per turn, end of typing; None where the corpus says "NaT"
    }
    return Dialogue(f"realpersonachat-{path.stem}", "realpersonachat", tuple(turns), meta)


def _content_hash(record: Any) -> str | None:
    """Hash of the raw utterances (speakers, texts and timestamps), so a re-numbered copy of a
    dialogue is caught before its rows are parsed (and its skips counted twice)."""
    if not isinstance(record, dict) or not isinstance(record.get("utterances"), list):
        return None  # _parse reports what is wrong with it
    canonical = json.dumps(record["utterances"], ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()
