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
taken gets a 0x05 busy message and close code 1013 (try again later) instead of hanging, or, with
``queue`` > 0, waits in a bounded queue (:mod:`.admission`) told its place by 0x04 notices.

Each session may sample with its own temperatures and top-k, asked for in the query string with
the names Kyutai's web client sends and clamped into ``sampling_bounds``.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.admission import SlotQueue
from jmoshi_augment.runtime.connection import (
    BAD_DATA_CLOSE_CODE,
    ENDED,
    IDLE_CLOSE_CODE,
    Connection,
    receive_loop,
    send_loop,
)
from jmoshi_augment.runtime.opus_worker import OpusWorkers
from jmoshi_augment.runtime.ratelog import RateLimitedLog
from jmoshi_augment.runtime.sampling import SamplingBounds, SamplingOptions
from jmoshi_augment.runtime.session_io import Recorder, SessionCodec

if TYPE_CHECKING:
    from jmoshi_augment.runtime.engine import Engine, Session

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
BUSY_CLOSE_CODE = 1013  # RFC 6455 "try again later"
SHUTDOWN_CLOSE_CODE = 1001  # RFC 6455 "going away"
__all__ = ["BAD_DATA_CLOSE_CODE", "BUSY_CLOSE_CODE", "IDLE_CLOSE_CODE", "SHUTDOWN_CLOSE_CODE", "ChatServer", "ServerOptions"]
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
    queue: int = 0  # clients that may wait for a slot beyond the slots (0: busy at once, as before)
    queue_wait_s: float = 120.0  # a queued client waits at most this long, then hears busy
    sampling_bounds: SamplingBounds = SamplingBounds()  # what a page may ask for per session

    def __post_init__(self) -> None:
        if self.token == "":
            object.__setattr__(self, "token", None)
        object.__setattr__(self, "allow_origins", tuple(o.rstrip("/").lower() for o in self.allow_origins))
        for name in ("idle_timeout_s", "heartbeat_s", "close_timeout_s", "notice_interval_s", "log_interval_s",
                     "queue_wait_s"):
            if getattr(self, name) <= 0:
                raise JmoshiError(f"{name} must be > 0, got {getattr(self, name)}", key=name)
        for name in ("opus_workers", "queue"):
            if getattr(self, name) < 0:
                raise JmoshiError(f"{name} must be >= 0, got {getattr(self, name)}", key=name)


class ChatServer:
    def __init__(self, engine: "Engine", options: ServerOptions = ServerOptions()) -> None:
        self.engine = engine
        self.options = options
        self._counter = 0
        self._connections: set[web.WebSocketResponse] = set()
        self._workers: OpusWorkers | None = None
        self._queue: SlotQueue = SlotQueue(options.queue, options.queue_wait_s)
        if options.sampling_bounds.top_k[1] > engine.max_top_k:
            raise JmoshiError(f"sampling bounds allow top-k {options.sampling_bounds.top_k[1]} but the engine was "
                              f"built for at most {engine.max_top_k} (Engine(max_top_k=...))", key="sampling_bounds")
        interval = options.log_interval_s
        self.ignored_log = RateLimitedLog(logger, interval, "ignored %d messages that were not audio "
                                          "(text frames, empty messages, unknown or unused kinds)")
        self.refused_log = RateLimitedLog(logger, interval, "refused %d connections (origin, token or busy)")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/chat", self.handle_chat)
        app.router.add_get("/api/status", self.handle_status)
        app.router.add_get("/", self.handle_index)
        app.router.add_get("/favicon.ico", self.handle_favicon)
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

    async def handle_favicon(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.options.static_dir / "favicon.svg", headers={"Content-Type": "image/svg+xml"})

    async def handle_status(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            raise web.HTTPUnauthorized(text="missing or wrong access token")
        return web.json_response({
            "slots": self.engine.slots,
            "active": self.engine.active_sessions,
            "sample_rate": self.engine.model.sample_rate,
            "token_required": self.options.token is not None,
            "idle_timeout_s": self.options.idle_timeout_s,
            "queue": self.options.queue,
            "waiting": self._queue.waiting,
            "queue_wait_s": self.options.queue_wait_s,
            "sampling": {k: v for k, v in asdict(self.engine.sampling).items() if k != "seed"},
            "sampling_bounds": {"temp": list(self.options.sampling_bounds.temp),
                                "top_k": list(self.options.sampling_bounds.top_k)},
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
        sampling, notes = opts.sampling_bounds.apply(self.engine.sampling, request.query)
        ws = web.WebSocketResponse(max_msg_size=opts.max_message_bytes, heartbeat=opts.heartbeat_s,
                                   timeout=opts.close_timeout_s)
        await ws.prepare(request)
        self._connections.add(ws)  # from now on, a shutdown closes it with 1001 (waiting or not)
        try:
            await self._converse(request, ws, sampling, notes)
        finally:
            self._connections.discard(ws)
        return ws

    async def _converse(self, request: web.Request, ws: web.WebSocketResponse, sampling: SamplingOptions,
                        notes: list[str]) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()

        def try_open() -> "Session | None":
            return self.engine.open_session(
                on_output=lambda out: loop.call_soon_threadsafe(outputs.put_nowait, out),
                on_close=lambda: loop.call_soon_threadsafe(outputs.put_nowait, None),
                sampling=sampling,
            )

        session = None if self._queue.waiting else try_open()  # nobody jumps the queue
        first = None
        if session is None and self._queue.has_room():
            session, first, left = await self._wait_in_queue(ws, try_open)
            if left:
                return
        if session is None:
            self.refused_log.add()
            if opts.queue:
                why = (f"no slot freed within {opts.queue_wait_s:.0f} s" if self._queue.has_room()
                       else f"{self._slots_in_use()} and {self._queue.waiting} clients are already waiting")
            else:
                why = self._slots_in_use()
            await ws.send_bytes(protocol.error(f"busy: {why}, try again later"))
            await ws.close(code=BUSY_CLOSE_CODE, message=b"busy")
            return
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
            self._queue.slot_freed()
            raise
        conn = Connection(ws, session, outputs, name, self.engine.frame_size / self.engine.model.sample_rate)
        sender = asyncio.create_task(send_loop(conn, codec))
        try:
            await ws.send_bytes(protocol.handshake())
            if any(k in request.query for k in SamplingBounds.QUERY):
                await ws.send_bytes(protocol.metadata({
                    "event": "sampling", "sampling": {k: v for k, v in asdict(sampling).items() if k != "seed"},
                    "notes": notes, "message": ("sampling adjusted: " + "; ".join(notes)) if notes else "",
                }))
            await receive_loop(conn, codec, idle_timeout_s=opts.idle_timeout_s,
                               notice_interval_s=opts.notice_interval_s, ignored_log=self.ignored_log, first=first)
        except (ConnectionResetError, asyncio.CancelledError) as e:
            logger.info("session %s: connection lost (%s)", name, type(e).__name__)
        finally:
            session.close()
            self._queue.slot_freed()
            outputs.put_nowait(None)
            try:
                await asyncio.wait_for(sender, timeout=5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                sender.cancel()
            if not ws.closed:
                await ws.close()
            frames = codec.close()
            if recorder is not None:
                logger.info("session %s: recorded %.1f s to %s", name,
                            frames * self.engine.frame_size / self.engine.model.sample_rate, recorder.path)
            logger.info("session %s: closed after %d steps", name, session.steps)

    def _slots_in_use(self) -> str:
        n = self.engine.slots
        return "the only conversation slot is in use" if n == 1 else f"all {n} conversation slots are in use"

    async def _wait_in_queue(self, ws: web.WebSocketResponse, try_open) -> tuple["Session | None", "asyncio.Future | None", bool]:
        """Wait for a slot while reading the socket (pongs, a client leaving; audio sent meanwhile
        is dropped: the model has not heard anything yet). Returns (session or None on timeout,
        the receive still in flight, whether the client left)."""
        slots = self.engine.slots

        async def on_place(place: int, waiting: int) -> None:
            if ws.closed:
                return
            try:
                await ws.send_bytes(protocol.metadata({
                    "event": "queued", "place": place, "waiting": waiting, "slots": slots,
                    "max_wait_s": self.options.queue_wait_s,
                    "message": f"{self._slots_in_use()}: you are number {place} in the queue",
                }))
            except (ConnectionResetError, RuntimeError):  # gone: the receive side will see it
                pass

        waiter = asyncio.ensure_future(self._queue.wait(try_open, on_place))
        receive = asyncio.ensure_future(ws.receive())
        try:
            while not waiter.done():
                await asyncio.wait({waiter, receive}, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    break
                if receive.result().type in ENDED:
                    return None, None, True
                receive = asyncio.ensure_future(ws.receive())
        finally:
            if not waiter.done():
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
            elif waiter.exception() is None and waiter.result() is not None and receive.done() \
                    and receive.result().type in ENDED:
                waiter.result().close()  # admitted just as it left
                self._queue.slot_freed()
                return None, None, True
        return waiter.result(), receive, False  # on a timeout, ws.close() ends the pending receive
