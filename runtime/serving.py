"""Run the chat server until told to stop, and stop the same way whatever the signal.

systemd, Docker and Kubernetes stop a service with SIGTERM, a terminal with SIGINT (Ctrl-C): both
end :func:`serve` through the same path, which closes every client with code 1001 and finishes
every recording, then stops the Opus workers. A second signal during that shutdown acts as usual
(the handlers are removed after the first). Child processes that could outlive a parent killed
outright (SIGKILL, an out-of-memory kill) watch their parent and exit with it (:mod:`.opus_worker`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from jmoshi_augment.runtime.server import ChatServer, ServerOptions

if TYPE_CHECKING:
    from jmoshi_augment.runtime.engine import Engine

logger = logging.getLogger("jmoshi_augment.runtime.server")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def serve(engine: "Engine", options: ServerOptions, *, on_ready: Callable[[int], None] | None = None,
                ssl_context: ssl.SSLContext | None = None, stop_on_signals: bool = False) -> str | None:
    """Serve until cancelled or, with ``stop_on_signals``, until SIGINT/SIGTERM (whose name is
    returned); then close every client with 1001 and finish recordings."""
    runner = web.AppRunner(ChatServer(engine, options).app(), access_log=None,
                           shutdown_timeout=options.close_timeout_s + 0.5)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    logger.info("serving on %s://%s:%d (%d slots%s)%s", scheme, options.host, port, engine.slots,
                f", queue of {options.queue}" if options.queue else "", "; token required" if options.token else "")
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        logger.info("%s: closing every session (a second signal stops at once)", sig.name)
        for s in STOP_SIGNALS:
            loop.remove_signal_handler(s)
        stopped.set()

    if stop_on_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
    if on_ready is not None:
        on_ready(port)
    try:
        await stopped.wait()
    finally:
        if stop_on_signals and not received:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        await runner.cleanup()
    return received[0] if received else None
