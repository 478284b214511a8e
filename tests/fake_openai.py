"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the rewrite tests and
``bench/rewrite_overhead.py``. It runs aiohttp on its own thread (the code under test runs its own
event loop) and records every request, the number of requests in flight and their maximum."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from aiohttp import web


@dataclass
class Reply:
    """What the fake server answers to one request."""

    content: Optional[str] = None  # assistant message (status 200)
    status: int = 200
    delay: float = 0.0  # seconds before answering
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


# (request body, how many earlier requests carried the same dialogue) → Reply
Responder = Callable[[dict[str, Any], int], Reply]


def dialogue_of(body: dict[str, Any]) -> dict[str, Any]:
    """The input document the rewrite stage sends as the first user message."""
    return json.loads(body["messages"][1]["content"])


class FakeOpenAI:
    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self.inflight = 0
        self.max_inflight = 0
        self._seen: Counter = Counter()
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Optional[web.AppRunner] = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def calls_for(self, first_text: str) -> list[dict[str, Any]]:
        return [b for b in self.requests if dialogue_of(b)["turns"][0]["text"] == first_text]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        key = body["messages"][1]["content"]
        n = self._seen[key]
        self._seen[key] += 1
        reply = self.respond(body, n)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.inflight -= 1
        if reply.status != 200:
            error = {"error": {"message": f"fake error {reply.status}", "type": "fake", "code": None}}
            return web.json_response(error, status=reply.status, headers=reply.headers)
        prompt_chars = sum(len(m["content"]) for m in body["messages"])
        completion = reply.content or ""
        return web.json_response(
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                    }
                ],
                # deterministic "tokens": one per two characters
                "usage": {
                    "prompt_tokens": prompt_chars // 2,
                    "completion_tokens": len(completion) // 2,
                    "total_tokens": prompt_chars // 2 + len(completion) // 2,
                },
            },
            headers=reply.headers,
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
