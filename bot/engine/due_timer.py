"""The engine's one timer: wake at the earliest due time, run one round, sleep until the next.

asyncio itself, not APScheduler. The truth of *when* is in our tables (``due_at``, decided by
``bot.domain.due``), so all a timer has to do is sleep until one instant and be woken early when a
transition makes something due sooner — one ``asyncio.Event`` waited with a timeout. APScheduler
would add a second clock and job bookkeeping (one job per deployment was what cost 2,000 polls an
interval), and its shutdown cancels a running job half-way; a plain task lets a round finish.

A round (``round``) takes what is due, runs it, stores the next due times and returns the earliest
one. Rounds never overlap. A failed round is logged and retried shortly; the timer also wakes at
least every ``idle_s`` so nothing missed by a wake is missed for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.engine.orchestrator import Timer
from bot.ports import Clock

log = logging.getLogger("shipthread.timer")

Round = Callable[[], Awaitable[datetime | None]]
"""One round of due work; returns when the next is due (None: nothing until an event)."""


class DueTimer(Timer):
    def __init__(self, round: Round, clock: Clock, *, idle_s: float = 30.0, retry_s: float = 1.0) -> None:
        self._round = round
        self._clock = clock
        self._idle_s = idle_s
        self._retry_s = retry_s
        self._woken = asyncio.Event()
        self._planned: datetime | None = None
        """When the timer sleeps until (None while a round runs, or when nothing is due)."""
        self._asked: datetime | None = None
        """The earliest wake asked for while a round ran (it may predate what the round returns)."""
        self._in_round = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the timer task (needs a running event loop); the first round runs at once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="due timer")

    def wake(self, at: datetime | None) -> None:
        if at is None:
            return
        if self._in_round:
            self._asked = at if self._asked is None else min(self._asked, at)
        elif self._planned is None or at < self._planned:
            self._planned = at
            self._woken.set()

    def shutdown(self) -> None:
        """Stop after the round running now (if any); never cuts a round off half-way."""
        self._stopping = True
        self._woken.set()

    async def stop(self, grace_s: float) -> None:
        """``shutdown`` and wait up to ``grace_s`` for the running round to finish."""
        self.shutdown()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._stopping:
            self._in_round, self._asked = True, None
            try:
                upcoming = await self._round()
            except Exception:
                log.exception("a round of due work failed; retrying in %.1fs", self._retry_s)
                upcoming = None
                self._asked = self._later(self._retry_s)
            finally:
                self._in_round = False
            self._planned = _earliest(upcoming, self._asked)
            await self._sleep()

    async def _sleep(self) -> None:
        """Until the planned instant, a wake for an earlier one, or ``idle_s`` at the most."""
        while not self._stopping:
            self._woken.clear()
            planned = self._planned
            delay = self._idle_s if planned is None else (planned - self._clock.now()).total_seconds()
            if delay <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), min(delay, self._idle_s))
                continue  # woken: sleep again until the (earlier) instant now planned
            return

    def _later(self, seconds: float) -> datetime:
        return self._clock.now() + timedelta(seconds=seconds)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
