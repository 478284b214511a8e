"""Optional stage Dialogue → Dialogue: rewrite written dialogues into casual spoken Japanese with an
LLM, the way J-Moshi-ext prepared its synthetic data (「引っ越しをしたそうですね。」 →
「引っ越ししたんですよね？」), but validated (``rewrite_validate``) and cached.

Any OpenAI-compatible chat-completions server works (vLLM, llama.cpp, Ollama, a hosted API) through
the ``openai`` client (extra ``jmoshi-augment[llm]``). Each dialogue gets up to ``1 + max_retries``
answers; a rejected answer is sent back with the reason. If none passes, or the server keeps
failing (429, 5xx, timeouts after ``http_retries``), the original dialogue is kept and the reason
counted in :class:`RewriteCounts`. Fatal setup errors (unreachable server, bad key, unknown model)
raise :class:`JmoshiError` instead: rewriting nothing silently would waste a whole synth run.

Every answer is stored in an on-disk cache (:mod:`.rewrite_cache`: one JSON file per dialogue,
written atomically after each answer) keyed by dialogue id, input hash, prompt hash and model. A
rerun re-validates the cached answers under the current bounds and only asks for what is still
missing, so a rerun or a crashed run pays for nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from jmoshi_augment.augment.text.rewrite.cache import CACHE_VERSION, Answer, AnswerCache, default_cache_dir
from jmoshi_augment.augment.text.rewrite.prompt import (
    build_messages,
    load_system_prompt,
    prompt_hash,
    response_format,
)
from jmoshi_augment.augment.text.rewrite.validate import Verdict, validate_rewrite
from jmoshi_augment.corpora import Dialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import RewriteConfig

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "AnswerCache",
    "RewriteCounts",
    "default_cache_dir",
    "iter_rewrite",
    "rewrite_dialogues",
]


@dataclass
class RewriteCounts:
    """What the rewrite stage did in this run. ``failures`` counts the final reason of each dialogue
    kept as it was; ``rejections`` counts every rejected answer (cached ones re-validated too)."""

    rewritten: int = 0
    kept: int = 0
    passthrough: int = 0  # backend none, or nothing to rewrite
    failures: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    http_retries: Counter = field(default_factory=Counter)  # by kind: http_429, http_5xx, timeout
    llm_calls: int = 0  # answers paid for in this run
    cached_answers: int = 0  # answers read back from the cache
    cache_hits: int = 0  # dialogues settled without any call
    prompt_tokens: int = 0
    completion_tokens: int = 0
    examples: dict[str, str] = field(default_factory=dict)  # reason → "dialogue id: detail"

    @property
    def total(self) -> int:
        return self.rewritten + self.kept + self.passthrough

    def note(self, reason: str, dialogue_id: str, detail: str) -> None:
        self.examples.setdefault(reason, f"{dialogue_id}: {detail}")

    def lines(self) -> list[str]:
        out = [
            f"rewrite: {self.rewritten} rewritten, {self.kept} kept original, {self.passthrough} passed through; "
            f"{self.llm_calls} calls ({self.cached_answers} answers and {self.cache_hits} dialogues from cache), "
            f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion"
        ]
        out += [f"kept original {n} × {r} (e.g. {self.examples.get(r, '?')})" for r, n in self.failures.most_common()]
        out += [f"rejected answer {n} × {r}" for r, n in self.rejections.most_common()]
        out += [f"retried request {n} × {k}" for k, n in self.http_retries.most_common()]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "rewritten": self.rewritten,
            "kept": self.kept,
            "passthrough": self.passthrough,
            "failures": dict(self.failures),
            "rejections": dict(self.rejections),
            "http_retries": dict(self.http_retries),
            "llm_calls": self.llm_calls,
            "cached_answers": self.cached_answers,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "examples": dict(self.examples),
        }


# ---------------------------------------------------------------------------------------- client
class _CallFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise JmoshiError(
            "rewrite.backend llm needs the openai client: pip install 'jmoshi-augment[llm]' (or pip install openai)",
            key="rewrite.backend",
        ) from None
    return openai


def _api_key(cfg: RewriteConfig) -> str:
    if cfg.api_key_env is None:
        return "EMPTY"  # local servers (vLLM, llama.cpp, Ollama) ignore it unless started with a key
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise JmoshiError(f"environment variable {cfg.api_key_env} is not set", key="rewrite.api_key_env")
    return key


def _retry_after(response: Any) -> Optional[float]:
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None


class _Rewriter:
    """Per-run state shared by the dialogue tasks on one event loop."""

    def __init__(self, cfg: RewriteConfig, cache_dir: Path, counts: RewriteCounts) -> None:
        assert cfg.model is not None
        self.cfg = cfg
        self.model: str = cfg.model
        self.counts = counts
        self.openai = _import_openai()
        self.api_key = _api_key(cfg)
        self.system = load_system_prompt(cfg)
        self.prompt_sha = prompt_hash(self.system, cfg)
        self.cache = AnswerCache(cache_dir)
        self.client: Any = None
        self.slots: Optional[asyncio.Semaphore] = None
        self.fatal: Optional[JmoshiError] = None
        # one task per cache key at a time: a duplicated dialogue waits, then reads the answers
        self.locks: dict[str, asyncio.Lock] = {}
        self.lock_users: Counter = Counter()

    async def open(self) -> None:
        # Our own backoff (below) counts retries for the run report, so the client's is off.
        self.client = self.openai.AsyncOpenAI(
            base_url=self.cfg.base_url, api_key=self.api_key, max_retries=0, timeout=self.cfg.timeout
        )
        self.slots = asyncio.Semaphore(self.cfg.concurrency)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    def _delay(self, attempt: int, server_hint: Optional[float]) -> float:
        if server_hint is not None:
            return min(server_hint, self.cfg.backoff_max)
        # jitter keeps the slots that hit a 429 together from retrying together
        return random.uniform(0.5, 1.0) * min(self.cfg.backoff_base * 2**attempt, self.cfg.backoff_max)

    async def _complete(self, d: Dialogue, messages: list[dict[str, str]]) -> Answer:
        oa, cfg = self.openai, self.cfg
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.max_tokens is not None:
            kwargs["max_tokens"] = cfg.max_tokens
        fmt = response_format(cfg, d)
        if fmt is not None:
            kwargs["response_format"] = fmt
        kind, detail = "", ""
        for attempt in range(cfg.http_retries + 1):
            if self.fatal is not None:
                raise self.fatal
            hint = None
            try:
                assert self.slots is not None
                async with self.slots:
                    resp = await self.client.chat.completions.create(**kwargs)
                choice = resp.choices[0] if resp.choices else None
                usage = resp.usage
                return Answer(
                    content=choice.message.content if choice else None,
                    finish_reason=choice.finish_reason if choice else None,
                    prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                    completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                )
            except oa.APITimeoutError:
                kind, detail = "timeout", f"no answer within {cfg.timeout} s"
            except oa.APIConnectionError as e:
                self.fatal = JmoshiError(f"cannot reach the LLM server at {cfg.base_url} ({e})", key="rewrite.base_url")
                raise self.fatal from None
            except (oa.AuthenticationError, oa.PermissionDeniedError) as e:
                self.fatal = JmoshiError(f"the LLM server refused the API key: {e.message}", key="rewrite.api_key_env")
                raise self.fatal from None
            except oa.NotFoundError as e:
                self.fatal = JmoshiError(f"model {self.model!r} or its endpoint not found at {cfg.base_url}: {e.message}", key="rewrite.model")
                raise self.fatal from None
            except oa.APIStatusError as e:
                status = e.status_code
                if status == 429:
                    kind = "http_429"
                elif status >= 500 or status in (408, 409):
                    kind = "http_5xx" if status >= 500 else f"http_{status}"
                else:  # e.g. 400: prompt too long for this model, or response_format unsupported
                    raise _CallFailed(f"http_{status}", str(e.message)[:200]) from None
                detail, hint = f"HTTP {status} after {cfg.http_retries} retries", _retry_after(e.response)
            if attempt < cfg.http_retries:
                self.counts.http_retries[kind] += 1
                delay = self._delay(attempt, hint)
                logger.debug("%s: %s, retrying in %.2f s", d.id, kind, delay)
                await asyncio.sleep(delay)
        raise _CallFailed(kind, detail)

    async def rewrite(self, d: Dialogue) -> Dialogue:
        counts = self.counts
        if not d.turns:
            counts.passthrough += 1
            return d
        key = AnswerCache.key(d, self.prompt_sha, self.model)
        lock = self.locks.setdefault(key, asyncio.Lock())
        self.lock_users[key] += 1
        try:
            async with lock:
                return await self._rewrite(d, key)
        finally:
            self.lock_users[key] -= 1
            if not self.lock_users[key]:
                del self.locks[key], self.lock_users[key]

    async def _rewrite(self, d: Dialogue, key: str) -> Dialogue:
        counts = self.counts
        answers = self.cache.load(key)
        called = False
        rejected: Optional[tuple[str, Verdict]] = None
        verdict: Optional[Verdict] = None
        for k in range(self.cfg.max_retries + 1):
            if k < len(answers):
                answer = answers[k]
                counts.cached_answers += 1
            else:
                try:
                    answer = await self._complete(d, build_messages(self.system, d, rejected))
                except _CallFailed as e:
                    return self._keep(d, e.reason, e.detail)
                called = True
                answers.append(answer)
                # off the event loop: the atomic write fsyncs (~10 ms), other requests go on
                await asyncio.to_thread(self.cache.store, key, d, self.model, self.prompt_sha, list(answers))
                counts.llm_calls += 1
                counts.prompt_tokens += answer.prompt_tokens
                counts.completion_tokens += answer.completion_tokens
            verdict = validate_rewrite(d, answer.content, self.cfg, answer.finish_reason)
            if verdict.ok:
                if not called:
                    counts.cache_hits += 1
                return self._accept(d, verdict, k + 1)
            counts.rejections[verdict.reason] += 1
            logger.debug("%s: answer %d rejected: %s: %s", d.id, k + 1, verdict.reason, verdict.detail)
            rejected = (answer.content or "", verdict)
        if not called:
            counts.cache_hits += 1
        assert verdict is not None and verdict.reason is not None
        return self._keep(d, verdict.reason, verdict.detail)

    def _stamp(self, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "prompt_sha256": self.prompt_sha, **extra}

    def _accept(self, d: Dialogue, verdict: Verdict, attempts: int) -> Dialogue:
        self.counts.rewritten += 1
        assert verdict.turns is not None
        stamp = self._stamp(status="rewritten", attempts=attempts, original_turns=[t.to_dict() for t in d.turns])
        return d.with_turns(verdict.turns).with_meta(rewrite=stamp)

    def _keep(self, d: Dialogue, reason: str, detail: str) -> Dialogue:
        self.counts.kept += 1
        self.counts.failures[reason] += 1
        self.counts.note(reason, d.id, detail)
        logger.info("%s: kept the original (%s: %s)", d.id, reason, detail)
        return d.with_meta(rewrite=self._stamp(status="kept", reason=reason, detail=detail))


# ------------------------------------------------------------------------------------------- API
_PROGRESS_EVERY_S = 30.0


def iter_rewrite(
    dialogues: Iterable[Dialogue], cfg: RewriteConfig, cache_dir: Path, counts: Optional[RewriteCounts] = None
) -> Iterator[Dialogue]:
    """Lazily rewrite ``dialogues``, yielding them in input order.

    Up to ``cfg.concurrency`` requests run at once on a private event loop that advances while the
    caller waits for the next dialogue; input is read at most ``4 × concurrency`` dialogues ahead.
    Call it from synchronous code (not from inside a running event loop). Closing the iterator early
    cancels the requests in flight; their answers already received stay cached.
    """
    counts = counts if counts is not None else RewriteCounts()
    if cfg.backend == "none":
        for d in dialogues:
            counts.passthrough += 1
            yield d
        return
    rewriter = _Rewriter(cfg, Path(cache_dir), counts)
    loop = asyncio.new_event_loop()
    pending: deque[asyncio.Task[Dialogue]] = deque()
    window = max(4 * cfg.concurrency, 16)
    source = iter(dialogues)
    exhausted = False
    started = last_log = time.monotonic()
    try:
        loop.run_until_complete(rewriter.open())
        while True:
            while not exhausted and len(pending) < window:
                d = next(source, None)
                if d is None:
                    exhausted = True
                else:
                    pending.append(loop.create_task(rewriter.rewrite(d)))
            if not pending:
                break
            yield loop.run_until_complete(pending.popleft())
            if time.monotonic() - last_log > _PROGRESS_EVERY_S:
                last_log = time.monotonic()
                rate = counts.total / (last_log - started)
                logger.info("rewrite: %d done (%d rewritten, %d kept), %.2f dialogues/s", counts.total, counts.rewritten, counts.kept, rate)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(rewriter.close())
        loop.close()


def rewrite_dialogues(
    dialogues: Iterable[Dialogue], cfg: RewriteConfig, cache_dir: Path
) -> tuple[list[Dialogue], RewriteCounts]:
    """Rewrite every dialogue (see :func:`iter_rewrite`); returns them in input order with the
    stage's counts. A rewritten dialogue carries ``meta["rewrite"]`` = {status: "rewritten", model,
    prompt_sha256, attempts, original_turns}; a kept one {status: "kept", reason, detail, ...}."""
    counts = RewriteCounts()
    out = list(iter_rewrite(dialogues, cfg, cache_dir, counts))
    return out, counts

