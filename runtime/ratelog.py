"""Logging that a client cannot flood: one line per interval with a count, not one per event.

A client sending garbage, or an engine that falls behind, produces an event per 80 ms frame; a line
per event buried everything else in the log (1,442 of 1,652 lines in one run).
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """``add(n)`` counts events; the first event logs at once, later ones at most once per
    ``interval_s`` with the number seen since the last line. ``message`` has one ``%d`` (the count)."""

    def __init__(self, logger: logging.Logger, interval_s: float, message: str, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.message = message
        self.level = level
        self.total = 0
        self._pending = 0
        self._last: float | None = None
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.total += n
            self._pending += n
            now = time.monotonic()
            if self._last is not None and now - self._last < self.interval_s:
                return
            count, self._pending, self._last = self._pending, 0, now
        self.logger.log(self.level, self.message, count)

    def flush(self) -> None:
        """Log what was counted since the last line (at shutdown)."""
        with self._lock:
            count, self._pending = self._pending, 0
        if count:
            self.logger.log(self.level, self.message, count)
