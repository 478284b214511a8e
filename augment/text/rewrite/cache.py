"""On-disk cache of the rewrite stage's LLM answers: one JSON file per dialogue, written atomically
after each answer, so a rerun or a crashed run pays for no answer twice (see :mod:`.rewrite`)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from jmoshi_augment.augment.text.rewrite.prompt import input_document
from jmoshi_augment.corpora import Dialogue
from jmoshi_augment.io import atomic_write_text
from jmoshi_augment.recipe import RewriteConfig

logger = logging.getLogger(__name__)

__all__ = ["CACHE_VERSION", "Answer", "AnswerCache", "default_cache_dir"]

CACHE_VERSION = 1


@dataclass
class Answer:
    """One answer of the model as the cache stores it (``content`` None when it sent none)."""

    content: Optional[str]
    finish_reason: Optional[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AnswerCache:
    """One JSON file per (dialogue id, input hash, prompt hash, model) holding every answer the
    model gave for it, in order. Written atomically, so a crash never leaves half a file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(d: Dialogue, prompt_sha: str, model: str) -> str:
        text_sha = hashlib.sha256(input_document(d).encode()).hexdigest()
        return hashlib.sha256(json.dumps([d.id, text_sha, prompt_sha, model]).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def load(self, key: str) -> list[Answer]:
        path = self.path(key)
        if not path.is_file():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION:
                return []
            return [Answer(**a) for a in data["answers"]]
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("%s: unreadable cache entry ignored (%s)", path, e)
            return []

    def store(self, key: str, d: Dialogue, model: str, prompt_sha: str, answers: list[Answer]) -> None:
        data = {
            "version": CACHE_VERSION,
            "dialogue_id": d.id,
            "model": model,
            "prompt_sha256": prompt_sha,
            "answers": [a.__dict__ for a in answers],
        }
        atomic_write_text(self.path(key), json.dumps(data, ensure_ascii=False))


def default_cache_dir(cfg: RewriteConfig, output_dir: str | Path) -> Path:
    """``rewrite.cache_dir`` when set (share one cache across recipes), else inside the output."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(output_dir) / "cache" / "rewrite"
