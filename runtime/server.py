"""aiohttp server: the moshi websocket protocol on ``/api/chat`` and the bundled page on ``/``.

Each connection gets a session in the :class:`~jmoshi_augment.runtime.engine.Engine`. The handler
only moves bytes: Opus decode → ``session.push``; the engine thread calls back with each step's
output, which a per-connection sender task encodes and sends. Codec work runs in Opus worker
processes (:mod:`.session_io`, :mod:`.opus_worker`), so neither the batch nor the event loop waits
for Opus or the network.

Who may connect: by default only the page's own origin and clients that send no ``Origin`` (like
Kyutai's command-line client); any other web page open in the user's browser gets 403, so it cannot
drive the model or write recordings. ``allow_origins`` adds origins (``*``: any). With a token,
``?token=`` or ``Authorization: Bearer`` must match (an empty token means none).

Nobody can hold a slot: a session that sends no audio for ``idle_timeout_s`` is told so and closed,
websocket pings (``heartbeat_s``) find half-open clients, and a client arriving when every slot is
taken gets a 0x05 busy message and close code 1013 (try again later) instead of hanging.

Faults are contained per connection and the log stays readable: unknown kinds, empty messages and
text frames are skipped and counted (one log line per interval, not per message); a payload that
is not Ogg-Opus gets a 0x05 error and a close frame; an oversized message is closed with 1009 by
aiohttp. When the engine falls behind, the client gets a 0x04 ``input_dropped`` notice (at most
one per ``notice_interval_s``). On shutdown every client gets close code 1001 and every recording
is finished.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import MessageKind, ProtocolError
from jmoshi_augment.runtime.ratelog import RateLimitedLog
from jmoshi_augment.runtime.opus_worker import OpusWorkers
from jmoshi_augment.runtime.session_io import Recorder, SessionCodec

if TYPE_CHECKING:
    from jmoshi_augment.runtime.engine import Engine, Session

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
BUSY_CLOSE_CODE = 1013  # RFC 6455 "try again later"
BAD_DATA_CLOSE_CODE = 1003  # RFC 6455 "unsupported data"
SHUTDOWN_CLOSE_CODE = 1001  # RFC 6455 "going away"
IDLE_CLOSE_CODE = 4000  # application range: closed because no audio came for idle_timeout_s
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"  # loopback by default: exposing a model is an explicit choice
    port: int = 8998  # moshi.server's default port, so Kyutai's clients find it
    token: str | None = None  # if set, required as ?token=... or "Authorization: Bearer ..."; "" = none
    record_dir: Path | None = None  # if set, each session is saved there as a stereo wav (0 model, 1 user)
    max_message_bytes: int = 1 << 20  # one 80 ms Opus page is < 2 KB; bigger messages are refused
    static_dir: Path = WEB_DIR
    allow_origins: tuple[str, ...] = ()  # origins besides the page's own that may open /api/chat; "*" = any
    idle_timeout_s: float = 10.0  # no audio for this long: the session is closed and its slot freed
    heartbeat_s: float = 10.0  # websocket ping interval; no pong within half of it closes the socket
    close_timeout_s: float = 1.0  # how long a close waits for the client's close frame
    opus_workers: int = 2  # Opus worker processes (each ~1 core); 0 = encode/decode on the event loop
    notice_interval_s: float = 1.0  # at most one input_dropped notice per client per interval
    log_interval_s: float = 10.0  # at most one line per kind of client fault per interval

    def __post_init__(self) -> None:
        if self.token == "":
            object.__setattr__(self, "token", None)
        object.__setattr__(self, "allow_origins", tuple(o.rstrip("/").lower() for o in self.allow_origins))
        for name in ("idle_timeout_s", "heartbeat_s", "close_timeout_s", "notice_interval_s", "log_interval_s"):
            if getattr(self, name) <= 0:
                raise JmoshiError(f"{name} must be > 0, got {getattr(self, name)}", key=name)
        if self.opus_workers < 0:
            raise JmoshiError(f"opus_workers must be >= 0, got {self.opus_workers}", key="opus_workers")


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    session: "Session"
    outputs: asyncio.Queue
    name: str
    pending_dropped: int = 0
    last_notice: float = field(default=-1e9)


class ChatServer:
    def __init__(self, engine: "Engine", options: ServerOptions = ServerOptions()) -> None:
        self.engine = engine
        self.options = options
        self._counter = 0
        self._connections: set[web.WebSocketResponse] = set()
        self._workers: OpusWorkers | None = None
        interval = options.log_interval_s
        self.ignored_log = RateLimitedLog(logger, interval, "ignored %d messages that were not audio "
                                          "(text frames, empty messages, unknown or unused kinds)")
        self.refused_log = RateLimitedLog(logger, interval, "refused %d connections (origin, token or busy)")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/chat", self.handle_chat)
        app.router.add_get("/api/status", self.handle_status)
        app.router.add_get("/", self.handle_index)
        app.router.add_static("/static/", path=self.options.static_dir, name="static")
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def _on_startup(self, app: web.Application) -> None:
        if self.options.opus_workers:
            self._workers = OpusWorkers(self.options.opus_workers)
            await asyncio.get_running_loop().run_in_executor(None, self._workers.start)

    async def _on_shutdown(self, app: web.Application) -> None:
        """Close every websocket with 1001 so handlers finish (and recordings are renamed) now,
        instead of aiohttp waiting for them to end on their own."""
        await asyncio.gather(*(ws.close(code=SHUTDOWN_CLOSE_CODE, message=b"server shutting down")
                               for ws in list(self._connections)), return_exceptions=True)

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._workers is not None:
            self._workers.shutdown()
        self.ignored_log.flush()
        self.refused_log.flush()

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
            "idle_timeout_s": self.options.idle_timeout_s,
        })

    def _authorised(self, request: web.Request) -> bool:
        if self.options.token is None:
            return True
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        return hmac.compare_digest(given.encode(), self.options.token.encode())

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser page (Kyutai's CLI client, scripts)
            return True
        origin = origin.rstrip("/").lower()
        allowed = self.options.allow_origins
        if "*" in allowed or origin in allowed:
            return True
        own = f"{request.scheme}://{request.host}".lower()
        if origin != own:
            return False
        # The page's own origin. On a loopback server, also insist on a loopback host name: a page
        # on a rebound DNS name (evil.example → 127.0.0.1) is "same origin" with itself.
        if self.options.host in LOOPBACK:
            return (urlsplit(own).hostname or "") in LOOPBACK
        return True

    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_allowed(request):
            self.refused_log.add()
            raise web.HTTPForbidden(text=f"origin {request.headers.get('Origin')} may not open /api/chat "
                                         "(start the server with --allow-origin to permit it)")
        if not self._authorised(request):
            self.refused_log.add()
            raise web.HTTPUnauthorized(text="missing or wrong access token")
        opts = self.options
        ws = web.WebSocketResponse(max_msg_size=opts.max_message_bytes, heartbeat=opts.heartbeat_s,
                                   timeout=opts.close_timeout_s)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()
        session = self.engine.open_session(
            on_output=lambda out: loop.call_soon_threadsafe(outputs.put_nowait, out),
            on_close=lambda: loop.call_soon_threadsafe(outputs.put_nowait, None),
        )
        if session is None:
            self.refused_log.add()
            await ws.send_bytes(protocol.error(
                f"busy: all {self.engine.slots} conversation slots are in use, try again later"))
            await ws.close(code=BUSY_CLOSE_CODE, message=b"busy")
            return ws
        self._counter += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._counter:04d}-s{session.id}"
        logger.info("session %s from %s", name, request.remote)
        recorder = None
        try:
            if opts.record_dir is not None:
                recorder = Recorder(Path(opts.record_dir) / f"{name}.wav", self.engine.model.sample_rate)
            codec = SessionCodec(session.id, self.engine.model.sample_rate, self.engine.model.text_tokenizer,
                                 self._workers, recorder)
        except BaseException:  # e.g. an unwritable --record-dir: the slot must not stay taken
            session.close()
            raise
        conn = _Connection(ws, session, outputs, name)
        self._connections.add(ws)
        sender = asyncio.create_task(self._send_loop(conn, codec))
        try:
            await ws.send_bytes(protocol.handshake())
            await self._receive_loop(conn, codec)
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
            self._connections.discard(ws)
            frames = codec.close()
            if recorder is not None:
                logger.info("session %s: recorded %.1f s to %s", name,
                            frames * self.engine.frame_size / self.engine.model.sample_rate, recorder.path)
            logger.info("session %s: closed after %d steps", name, session.steps)
        return ws

    async def _receive_loop(self, conn: _Connection, codec: SessionCodec) -> None:
        ws, session, idle = conn.ws, conn.session, self.options.idle_timeout_s
        last_audio = time.monotonic()
        while True:
            remaining = last_audio + idle - time.monotonic()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                message = await ws.receive(timeout=remaining)
            except asyncio.TimeoutError:
                logger.info("session %s: no audio for %.0f s; closing it", conn.name, idle)
                await ws.send_bytes(protocol.error(f"idle: no audio for {idle:.0f} s, the session was closed"))
                await ws.close(code=IDLE_CLOSE_CODE, message=b"idle")
                return
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            if message.type == aiohttp.WSMsgType.ERROR:
                logger.info("session %s: websocket error: %s", conn.name, ws.exception())
                return
            if message.type != aiohttp.WSMsgType.BINARY:
                self.ignored_log.add()
                continue
            try:
                msg = protocol.Message.decode(message.data)
            except ProtocolError:
                self.ignored_log.add()
                continue
            if msg.kind != MessageKind.AUDIO:
                self.ignored_log.add()
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
                    self._notice_dropped(conn, dropped)

    def _notice_dropped(self, conn: _Connection, dropped: int) -> None:
        conn.pending_dropped += dropped
        now = time.monotonic()
        if now - conn.last_notice < self.options.notice_interval_s:
            return
        frames, conn.pending_dropped, conn.last_notice = conn.pending_dropped, 0, now
        seconds = frames * self.engine.frame_size / self.engine.model.sample_rate
        conn.outputs.put_nowait(protocol.metadata({
            "event": "input_dropped", "frames": frames,
            "message": f"the server is overloaded: {seconds:.2f} s of your audio was dropped",
        }))

    async def _send_loop(self, conn: _Connection, codec: SessionCodec) -> None:
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


async def serve(engine: "Engine", options: ServerOptions, *, on_ready: Callable[[int], None] | None = None) -> None:
    """Run until cancelled (Ctrl-C); then close every client with 1001 and finish recordings."""
    runner = web.AppRunner(ChatServer(engine, options).app(), access_log=None,
                           shutdown_timeout=options.close_timeout_s + 0.5)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    port = runner.addresses[0][1]
    logger.info("serving on http://%s:%d (%d slots)%s", options.host, port, engine.slots,
                "; token required" if options.token else "")
    if on_ready is not None:
        on_ready(port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
