"""Who gets a slot: beyond ``--slots`` a client either hears "busy" at once (``queue=0``, the
default) or waits in a first-come-first-served queue with its place shown, bounded in length and
in wait (``--queue``, ``--queue-wait``), as Kyutai's hosted client waits for a free worker.

The server calls :meth:`SlotQueue.slot_freed` whenever a session ends; waiters also re-check once a
second, so a slot freed by some other path (the engine stopping a session) is never missed.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")
RECHECK_S = 1.0  # a waiter looks again this often even without a slot_freed call


class SlotQueue(Generic[T]):
    def __init__(self, max_waiting: int, max_wait_s: float) -> None:
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._tickets: list[object] = []
        self._changed: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        return len(self._tickets)

    def has_room(self) -> bool:
        return len(self._tickets) < self.max_waiting

    def slot_freed(self) -> None:
        """Wake every waiter: the first tries for the slot, the others see their new place."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait(self, try_open: Callable[[], T | None],
                   on_place: Callable[[int, int], Awaitable[None]]) -> T | None:
        """Wait at the back of the queue until ``try_open`` gives a session at the front; ``None``
        after ``max_wait_s``. ``on_place(place, waiting)`` is awaited whenever the place changes
        (1 = next). Cancelling leaves the queue."""
        ticket = object()
        self._tickets.append(ticket)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        shown = None
        try:
            while True:
                place = self._tickets.index(ticket) + 1
                if place == 1:
                    session = try_open()
                    if session is not None:
                        return session
                if place != shown:
                    shown = place
                    await on_place(place, len(self._tickets))
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                if self._changed is None:
                    self._changed = asyncio.Event()
                try:
                    await asyncio.wait_for(self._changed.wait(), min(RECHECK_S, remaining))
                except asyncio.TimeoutError:
                    pass
        finally:
            self._tickets.remove(ticket)
            self.slot_freed()  # the others move up
