"""Small helpers the corpus loaders share: strict file reading and type checks that fail with the
file, line and key path a user needs to find the bad record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jmoshi_augment.errors import JmoshiError

# A line break inside one utterance is a display artefact of the chat window or spreadsheet cell;
# the turn is still one utterance. We keep the boundary as one space (the script stage decides
# whether it becomes a pause) rather than gluing two sentences together as NTT's own script does.
_LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")


def clean_text(text: str) -> str:
    """Join the lines of one utterance with a single space and strip surrounding whitespace
    (ASCII and ideographic U+3000). Everything else — full/half-width forms, privacy masks,
    inner U+3000 — stays as published; normalisation belongs to the script stage."""
    return _LINE_BREAKS.sub(" ", text).strip()


def decode_utf8(data: bytes, path: Path) -> str:
    """Decode strictly (a BOM is tolerated), naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise JmoshiError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); save the file as UTF-8",
            path=path,
            line=line,
        ) from None


def read_json(path: Path) -> Any:
    """Parse a whole JSON file, turning decoding and syntax errors into one-line JmoshiErrors."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise JmoshiError(f"cannot read: {e.strerror}", path=path) from None
    text = decode_utf8(data, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise JmoshiError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None


def require(obj: Any, key: str, *, path: Path, keypath: str, line: int | None = None) -> Any:
    """``obj[key]`` for a JSON object at ``keypath``, or a JmoshiError naming the missing key."""
    if not isinstance(obj, dict):
        raise JmoshiError(f"expected a JSON object, got {type_name(obj)}", path=path, line=line, key=keypath or None)
    if key not in obj:
        raise JmoshiError(f"missing key {key!r}", path=path, line=line, key=_join(keypath, key))
    return obj[key]


def require_list(obj: Any, key: str, *, path: Path, keypath: str, line: int | None = None) -> list:
    value = require(obj, key, path=path, keypath=keypath, line=line)
    if not isinstance(value, list):
        raise JmoshiError(f"expected a JSON list, got {type_name(value)}", path=path, line=line, key=_join(keypath, key))
    return value


def require_speaker(obj: Any, key: str, *, path: Path, keypath: str, line: int | None = None) -> str:
    """Speaker labels must be non-empty strings: a number or null means the wrong column/key."""
    value = require(obj, key, path=path, keypath=keypath, line=line)
    if not isinstance(value, str) or not value.strip():
        raise JmoshiError(
            f"speaker must be a non-empty string, got {value!r} ({type_name(value)})",
            path=path,
            line=line,
            key=_join(keypath, key),
        )
    return value.strip()


def require_text(obj: Any, key: str, *, path: Path, keypath: str, line: int | None = None) -> str:
    """An utterance text, cleaned: a string (possibly empty) or null (treated as empty); anything
    else is malformed input. The caller counts empty texts as skipped."""
    value = require(obj, key, path=path, keypath=keypath, line=line)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise JmoshiError(
            f"text must be a string, got {value!r} ({type_name(value)})", path=path, line=line, key=_join(keypath, key)
        )
    return clean_text(value)


def _join(keypath: str, key: str) -> str:
    return f"{keypath}.{key}" if keypath else key


def type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )
