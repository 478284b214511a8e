"""aiohttp server: the moshi websocket protocol on ``/api/chat`` and the bundled page on ``/``.

Each connection gets a slot in the :class:`~jmoshi_augment.runtime.engine.Engine`. The handler only
moves bytes: Opus decode → ``session.push``; the engine thread calls back with each step's output,
which a per-connection sender task encodes and sends. A slow or vanished client therefore never
stalls the batch, and the batch never waits for the network.

Faults are contained per connection: an unknown kind or an empty message is logged and skipped (as
Kyutai's server does), a text frame is logged and skipped, a payload that is not Ogg-Opus gets a
0x05 error and a close frame (Kyutai's server drops the TCP connection without one), an oversized
message is closed with 1009 by aiohttp, and a client arriving when every slot is taken gets a 0x05
busy message and close code 1013 (try again later) instead of hanging.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import Detokenizer, MessageKind, ProtocolError

if TYPE_CHECKING:
    from jmoshi_augment.runtime.engine import Engine, StepOutput

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
BUSY_CLOSE_CODE = 1013  # RFC 6455 "try again later"
BAD_DATA_CLOSE_CODE = 1003  # RFC 6455 "unsupported data"


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"  # loopback by default: exposing a model is an explicit choice
    port: int = 8998  # moshi.server's default port, so Kyutai's clients find it
    token: str | None = None  # if set, required as ?token=... or "Authorization: Bearer ..."
    record_dir: Path | None = None  # if set, each session is saved there as a stereo wav (0 model, 1 user)
    max_message_bytes: int = 1 << 20  # one 80 ms Opus page is < 2 KB; bigger messages are refused
    static_dir: Path = WEB_DIR


class _Recorder:
    """Streams a session to ``<name>.wav.tmp-PID`` and renames it when the session ends."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        import soundfile

        from jmoshi_augment.io import atomic_output

        self.path = path
        self._ctx = atomic_output(path, "wb")
        self._file = self._ctx.__enter__()
        self._wav = soundfile.SoundFile(self._file, mode="w", samplerate=sample_rate, channels=2,
                                        format="WAV", subtype="PCM_16")
        self.frames = 0

    def write(self, out: "StepOutput") -> None:
        import numpy as np

        self._wav.write(np.stack([out.pcm, out.user_pcm], axis=1))
        self.frames += 1

    def close(self) -> None:
        self._wav.close()
        self._ctx.__exit__(None, None, None)


class ChatServer:
    def __init__(self, engine: "Engine", options: ServerOptions = ServerOptions()) -> None:
        self.engine = engine
        self.options = options
        self._counter = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/chat", self.handle_chat)
        app.router.add_get("/api/status", self.handle_status)
        app.router.add_get("/", self.handle_index)
        app.router.add_static("/static/", path=self.options.static_dir, name="static")
        return app

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.options.static_dir / "index.html")

    async def handle_status(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            raise web.HTTPUnauthorized(text="missing or wrong access token")
        return web.json_response({
            "slots": self.engine.slots,
            "active": self.engine.active_sessions,
            "sample_rate": self.engine.model.sample_rate,
            "token_required": self.options.token is not None,
        })

    def _authorised(self, request: web.Request) -> bool:
        if self.options.token is None:
            return True
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        return hmac.compare_digest(given.encode(), self.options.token.encode())

    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            logger.warning("refused %s: missing or wrong access token", request.remote)
            raise web.HTTPUnauthorized(text="missing or wrong access token")
        ws = web.WebSocketResponse(max_msg_size=self.options.max_message_bytes)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()
        session = self.engine.open_session(
            on_output=lambda out: loop.call_soon_threadsafe(outputs.put_nowait, out),
            on_close=lambda: loop.call_soon_threadsafe(outputs.put_nowait, None),
        )
        if session is None:
            logger.warning("refused %s: all %d slots busy", request.remote, self.engine.slots)
            await ws.send_bytes(protocol.error(
                f"busy: all {self.engine.slots} conversation slots are in use, try again later"))
            await ws.close(code=BUSY_CLOSE_CODE, message=b"busy")
            return ws
        self._counter += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._counter:04d}-slot{session.slot}"
        logger.info("session %s from %s", name, request.remote)
        recorder = None
        if self.options.record_dir is not None:
            recorder = _Recorder(Path(self.options.record_dir) / f"{name}.wav", self.engine.model.sample_rate)
        sender = asyncio.create_task(self._send_loop(ws, outputs, recorder))
        try:
            await ws.send_bytes(protocol.handshake())
            await self._receive_loop(ws, session)
        except (ConnectionResetError, asyncio.CancelledError) as e:
            logger.info("session %s: connection lost (%s)", name, type(e).__name__)
        finally:
            session.close()
            outputs.put_nowait(None)
            try:
                await asyncio.wait_for(sender, timeout=5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                sender.cancel()
            if not ws.closed:
                await ws.close()
            if recorder is not None:
                recorder.close()
                logger.info("session %s: recorded %.1f s to %s", name,
                            recorder.frames * self.engine.frame_size / self.engine.model.sample_rate, recorder.path)
            logger.info("session %s: closed after %d steps", name, session.steps)
        return ws

    async def _receive_loop(self, ws: web.WebSocketResponse, session) -> None:
        import sphn

        reader = sphn.OpusStreamReader(self.engine.model.sample_rate)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.ERROR:
                logger.warning("slot %d: websocket error: %s", session.slot, ws.exception())
                break
            if message.type != aiohttp.WSMsgType.BINARY:
                logger.warning("slot %d: ignored a %s frame (the protocol is binary)", session.slot, message.type.name)
                continue
            try:
                msg = protocol.Message.decode(message.data)
            except ProtocolError as e:
                logger.warning("slot %d: ignored message: %s", session.slot, e)
                continue
            if msg.kind != MessageKind.AUDIO:
                logger.debug("slot %d: ignored message kind %s", session.slot, msg.kind.name)
                continue
            try:
                pcm = reader.append_bytes(msg.payload)
            except Exception as e:  # sphn raises ValueError on anything that is not Ogg-Opus
                logger.warning("slot %d: bad audio payload (%s); closing", session.slot, e)
                await ws.send_bytes(protocol.error(f"bad audio: expected Ogg-Opus pages ({e})"))
                await ws.close(code=BAD_DATA_CLOSE_CODE, message=b"bad audio")
                break
            if pcm.size:
                session.push(pcm)

    async def _send_loop(self, ws: web.WebSocketResponse, outputs: asyncio.Queue, recorder: _Recorder | None) -> None:
        import sphn

        writer = sphn.OpusStreamWriter(self.engine.model.sample_rate)
        detok = Detokenizer(self.engine.model.text_tokenizer)
        while True:
            out = await outputs.get()
            if out is None:
                return
            if recorder is not None:
                recorder.write(out)
            if ws.closed:
                continue
            try:
                ogg = writer.append_pcm(out.pcm)
                if ogg:
                    await ws.send_bytes(protocol.audio(ogg))
                piece = detok.push(out.text_id)
                if piece:
                    await ws.send_bytes(protocol.text(piece))
            except (ConnectionResetError, RuntimeError) as e:  # aiohttp: "Cannot write to closing transport"
                logger.info("send failed (%s); the client is gone", e)


async def serve(engine: "Engine", options: ServerOptions) -> None:
    """Run until cancelled (Ctrl-C)."""
    runner = web.AppRunner(ChatServer(engine, options).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    logger.info("serving on http://%s:%d (%d slots)%s", options.host, options.port, engine.slots,
                "; token required" if options.token else "")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
