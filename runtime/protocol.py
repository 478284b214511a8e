"""The moshi websocket protocol on ``/api/chat``: one kind byte, then the payload.

The kinds are those of Kyutai's servers (Python ``moshi.server`` and the Rust ``moshi-server``), so
their clients work here: 0x00 handshake (server → client, once, when the session is ready), 0x01 one
chunk of a single continuous Ogg-Opus stream per direction, 0x02 UTF-8 text, 0x05 an error message
before the server closes. Unknown kinds are skipped by the server (and counted in its log).

Ours on top, ignored by clients that do not know them: 0x04 metadata carries JSON notices such as
``{"event": "input_dropped", "frames": 12, "seconds": 0.96, "message": ...}`` (the engine is behind
and dropped the oldest queued input), ``{"event": "queued", "place": 1, ...}`` (waiting for a slot,
before the handshake) and ``{"event": "sampling", ...}`` (the session's sampling after clamping);
an idle session gets a 0x05 ``idle: ...`` message and close code 4000.

Also here: turning SentencePiece pieces into display text without the spurious spaces that
``piece.replace("▁", " ")`` puts between Japanese words.
"""

from __future__ import annotations

import enum
import json
import unicodedata
from dataclasses import dataclass


class MessageKind(enum.IntEnum):
    HANDSHAKE = 0x00  # no payload (as moshi.server sends it)
    AUDIO = 0x01  # payload: Ogg pages (Opus, 24 kHz mono)
    TEXT = 0x02  # payload: UTF-8 text piece, already detokenised for display
    CONTROL = 0x03  # reserved by moshi (start/end-turn, pause, restart): ignored here
    METADATA = 0x04  # payload: UTF-8 JSON
    ERROR = 0x05  # payload: UTF-8 message; the server closes the socket after it
    PING = 0x06  # no payload


class ProtocolError(ValueError):
    """A malformed message (empty, or an unknown kind)."""


@dataclass(frozen=True)
class Message:
    kind: MessageKind
    payload: bytes = b""

    def encode(self) -> bytes:
        return bytes([self.kind]) + self.payload

    @staticmethod
    def decode(data: bytes) -> "Message":
        if not data:
            raise ProtocolError("empty message")
        try:
            kind = MessageKind(data[0])
        except ValueError:
            raise ProtocolError(f"unknown message kind 0x{data[0]:02x}") from None
        return Message(kind, bytes(data[1:]))


def handshake() -> bytes:
    return Message(MessageKind.HANDSHAKE).encode()


def text(piece: str) -> bytes:
    return Message(MessageKind.TEXT, piece.encode("utf-8")).encode()


def error(message: str) -> bytes:
    return Message(MessageKind.ERROR, message.encode("utf-8")).encode()


def metadata(payload: dict) -> bytes:
    return Message(MessageKind.METADATA, json.dumps(payload, ensure_ascii=False).encode("utf-8")).encode()


def audio(ogg: bytes) -> bytes:
    return Message(MessageKind.AUDIO, ogg).encode()


def _spaced_script(ch: str) -> bool:
    """Scripts written with spaces between words (Latin letters and digits, Hangul...)."""
    if ch.isascii():
        return ch.isalnum()
    name = unicodedata.name(ch, "")
    return name.startswith(("LATIN", "GREEK", "CYRILLIC", "HANGUL"))


class Detokenizer:
    """Turn the model's text tokens into display text, piece by piece.

    ``▁`` (a word start in SentencePiece) becomes a space only between two words of a spaced script
    (``hello▁world``); between Japanese words, or next to Japanese, it is dropped. Byte-fallback
    pieces (``<0xE3>``) are gathered until they form UTF-8; control pieces (``</s>``) are dropped.
    """

    def __init__(self, sp) -> None:  # sp: sentencepiece.SentencePieceProcessor
        self.sp = sp
        self._last = ""  # last character emitted
        self._bytes = b""

    def push(self, token: int) -> str:
        sp = self.sp
        if token < 0 or token >= sp.vocab_size() or sp.is_control(token) or sp.is_unknown(token):
            return ""
        piece = sp.id_to_piece(token)
        if sp.is_byte(token):
            self._bytes += bytes([int(piece[3:5], 16)])
            try:
                piece = self._bytes.decode("utf-8")
            except UnicodeDecodeError:
                if len(self._bytes) >= 4:
                    self._bytes = b""
                return ""
            self._bytes = b""
        return self._join(piece)

    def _join(self, piece: str) -> str:
        out = []
        pending_space = False
        for ch in piece:
            if ch == "▁":
                pending_space = True
                continue
            if pending_space and self._last and _spaced_script(self._last) and _spaced_script(ch):
                out.append(" ")
            pending_space = False
            out.append(ch)
            self._last = ch
        return "".join(out)
