"""The one dialogue type every corpus loader produces and every later stage consumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, TextIO


@dataclass(frozen=True)
class Turn:
    """One utterance as the corpus wrote it. ``speaker`` is the corpus's own label ("A", "B", an
    interlocutor id, ...); ``text`` is unnormalised written text."""

    speaker: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"speaker": self.speaker, "text": self.text}


@dataclass(frozen=True)
class Dialogue:
    """A text dialogue. ``id`` carries the corpus prefix (``jpersonachat-PP12``) so ids stay unique
    when corpora are mixed; ``meta`` holds corpus-specific extras (persona, emotion, situation,
    topic, interlocutor attributes) that later stages may use but never require."""

    id: str
    corpus: str
    turns: tuple[Turn, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        """Speakers in order of first appearance."""
        seen: dict[str, None] = {}
        for turn in self.turns:
            seen.setdefault(turn.speaker, None)
        return list(seen)

    @property
    def num_chars(self) -> int:
        return sum(len(t.text) for t in self.turns)

    def with_turns(self, turns: Iterable[Turn]) -> "Dialogue":
        return replace(self, turns=tuple(turns))

    def with_meta(self, **meta: Any) -> "Dialogue":
        return replace(self, meta={**self.meta, **meta})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "corpus": self.corpus,
            "turns": [t.to_dict() for t in self.turns],
            "meta": self.meta,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Dialogue":
        return Dialogue(
            id=data["id"],
            corpus=data.get("corpus", "jsonl"),
            turns=tuple(Turn(t["speaker"], t["text"]) for t in data["turns"]),
            meta=dict(data.get("meta") or {}),
        )


def write_jsonl(dialogues: Iterable[Dialogue], out: TextIO) -> Iterator[Dialogue]:
    """Write dialogues one per line, yielding each after it is written (so callers can count)."""
    for d in dialogues:
        out.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
        yield d
