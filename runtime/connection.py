"""One connected client's two loops: receive (Opus decode → ``session.push``, idle limit, bad input)
and send (each step's output → Opus → websocket), kept apart so a slow client never delays the
batch and a fast one never waits for the other direction. The server (:mod:`.server`) admits the
client and owns the session; these loops only move bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import MessageKind, ProtocolError

if TYPE_CHECKING:
    from jmoshi_augment.runtime.engine import Session
    from jmoshi_augment.runtime.ratelog import RateLimitedLog
    from jmoshi_augment.runtime.session_io import SessionCodec

logger = logging.getLogger("jmoshi_augment.runtime.server")

BAD_DATA_CLOSE_CODE = 1003  # RFC 6455 "unsupported data"
IDLE_CLOSE_CODE = 4000  # application range: closed because no audio came for idle_timeout_s
ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


@dataclass
class Connection:
    ws: web.WebSocketResponse
    session: "Session"
    outputs: asyncio.Queue
    name: str
    seconds_per_frame: float
    pending_dropped: int = 0
    last_notice: float = field(default=-1e9)


async def receive_loop(conn: Connection, codec: "SessionCodec", *, idle_timeout_s: float,
                       notice_interval_s: float, ignored_log: "RateLimitedLog",
                       first: "asyncio.Future | None" = None) -> None:
    """Until the client leaves, goes idle or sends bad audio. ``first``: a ``ws.receive()`` already
    in flight (started while the client waited in the queue)."""
    ws, session = conn.ws, conn.session
    last_audio = time.monotonic()
    while True:
        remaining = last_audio + idle_timeout_s - time.monotonic()
        try:
            if remaining <= 0:
                raise asyncio.TimeoutError
            if first is not None:
                message = await asyncio.wait_for(first, remaining)
                first = None
            else:
                message = await ws.receive(timeout=remaining)
        except asyncio.TimeoutError:
            logger.info("session %s: no audio for %.0f s; closing it", conn.name, idle_timeout_s)
            await ws.send_bytes(protocol.error(f"idle: no audio for {idle_timeout_s:.0f} s, the session was closed"))
            await ws.close(code=IDLE_CLOSE_CODE, message=b"idle")
            return
        if message.type == aiohttp.WSMsgType.ERROR:
            logger.info("session %s: websocket error: %s", conn.name, ws.exception())
        if message.type in ENDED:
            return
        if message.type != aiohttp.WSMsgType.BINARY:
            ignored_log.add()
            continue
        try:
            msg = protocol.Message.decode(message.data)
        except ProtocolError:
            ignored_log.add()
            continue
        if msg.kind != MessageKind.AUDIO:
            ignored_log.add()
            continue
        last_audio = time.monotonic()
        try:
            pcm = await codec.decode(msg.payload)
        except Exception as e:  # sphn raises ValueError on anything that is not Ogg-Opus
            logger.warning("session %s: bad audio payload (%s); closing", conn.name, e)
            await ws.send_bytes(protocol.error(f"bad audio: expected Ogg-Opus pages ({e})"))
            await ws.close(code=BAD_DATA_CLOSE_CODE, message=b"bad audio")
            return
        if pcm.size:
            dropped = session.push(pcm)
            if dropped:
                notice_dropped(conn, dropped, notice_interval_s)


def notice_dropped(conn: Connection, dropped: int, interval_s: float) -> None:
    """Tell the client (at most once per ``interval_s``) how much of its audio the engine dropped."""
    conn.pending_dropped += dropped
    now = time.monotonic()
    if now - conn.last_notice < interval_s:
        return
    frames, conn.pending_dropped, conn.last_notice = conn.pending_dropped, 0, now
    seconds = frames * conn.seconds_per_frame
    conn.outputs.put_nowait(protocol.metadata({
        "event": "input_dropped", "frames": frames, "seconds": round(seconds, 3),
        "message": f"the server is overloaded: {seconds:.2f} s of your audio was dropped",
    }))


async def send_loop(conn: Connection, codec: "SessionCodec") -> None:
    ws = conn.ws
    while True:
        item = await conn.outputs.get()
        if item is None:
            return
        try:
            if isinstance(item, bytes):
                messages = [item]
            else:  # record even after the client left, so the wav has every consumed frame
                messages = await codec.encode(item, send=not ws.closed)
            for data in messages:
                if not ws.closed:
                    await ws.send_bytes(data)
        except (ConnectionResetError, RuntimeError) as e:  # aiohttp: "Cannot write to closing transport"
            logger.debug("session %s: send failed (%s); the client is gone", conn.name, e)
