"""The messages sent to the LLM for the spoken-style rewrite: the system prompt (bundled
``prompts/rewrite_ja.txt`` with its one-shot example, or the recipe's own file), the dialogue as a
JSON document, and after a rejected answer that answer plus the reason. The prompt hash covers
everything here, so changing any of it misses the answer cache instead of reusing stale answers."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional

from jmoshi_augment.augment.text.rewrite.validate import RETRY_HINTS, Verdict, persona_sentences
from jmoshi_augment.corpora import Dialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import RewriteConfig

# Bump when the user/retry message layout below changes: it is part of the prompt hash, so old
# cache entries stop matching.
MESSAGE_FORMAT = "rewrite-messages-v1"


def load_system_prompt(cfg: RewriteConfig) -> str:
    """The recipe's ``prompt_file`` or the bundled ``prompts/rewrite_ja.txt``."""
    if cfg.prompt_file is None:
        return (files("jmoshi_augment.augment.text.rewrite") / "prompts" / "rewrite_ja.txt").read_text(encoding="utf-8")
    path = Path(cfg.prompt_file)
    if not path.is_file():
        raise JmoshiError("prompt file not found", path=path, key="rewrite.prompt_file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise JmoshiError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path, key="rewrite.prompt_file") from None
    if not text.strip():
        raise JmoshiError("prompt file is empty", path=path, key="rewrite.prompt_file")
    return text


def prompt_hash(system_prompt: str, cfg: RewriteConfig) -> str:
    """Everything that shapes the request apart from the dialogue and the model."""
    parts = [MESSAGE_FORMAT, cfg.response_format, system_prompt]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def input_document(d: Dialogue) -> str:
    """The user message: the dialogue (and its persona, whose facts must survive) as JSON."""
    doc: dict[str, Any] = {"speakers": d.speakers}
    persona = d.meta.get("persona")
    if persona_sentences(d.meta):
        doc["persona"] = persona
    doc["turns"] = [t.to_dict() for t in d.turns]
    return json.dumps(doc, ensure_ascii=False)


def retry_message(verdict: Verdict) -> str:
    assert verdict.reason is not None
    return (
        f"前回の出力は不合格でした（{verdict.reason}）。{RETRY_HINTS[verdict.reason]}\n"
        f"詳細: {verdict.detail}\n"
        "入力の対話をもう一度書き換え、JSON オブジェクトだけを出力してください。"
    )


def build_messages(system_prompt: str, d: Dialogue, rejected: Optional[tuple[str, Verdict]] = None) -> list[dict[str, str]]:
    """System prompt, the dialogue, and after a rejection the rejected answer plus the reason."""
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": input_document(d)}]
    if rejected is not None:
        content, verdict = rejected
        messages += [{"role": "assistant", "content": content}, {"role": "user", "content": retry_message(verdict)}]
    return messages


def response_format(cfg: RewriteConfig, d: Dialogue) -> Optional[dict[str, Any]]:
    if cfg.response_format == "none":
        return None
    if cfg.response_format == "json_object":
        return {"type": "json_object"}
    turn = {
        "type": "object",
        "properties": {"speaker": {"type": "string", "enum": d.speakers}, "text": {"type": "string"}},
        "required": ["speaker", "text"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"turns": {"type": "array", "items": turn}},
        "required": ["turns"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "spoken_dialogue", "strict": True, "schema": schema}}
