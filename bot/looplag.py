"""How late the event loop runs its callbacks: the proof that nothing blocks it.

Every ack, every guard tick and every Slack post of the process share one event loop; one callback
that runs 800 ms (a heavy import, a sync client called on the loop, a big collection) delays all of
them by that much. ``LoopLag`` schedules a callback every ``interval_s`` and measures how late it
runs — the time the loop was busy with something else — so such a stall shows on ``/metrics``
(``shipthread_event_loop_lag_seconds``, a histogram, and the largest lag seen) instead of in a
user's "the bot did not answer". The cost is one timer callback per interval.

On a shared machine a lag is also the process waiting for a core. So each lag comes with the CPU
time the loop's thread used while it lasted (``time.thread_time``): a callback cannot hold the loop
for longer than the CPU it burns (unless it sleeps or blocks on I/O, which no code on the loop
may), so ``min(lag, cpu)`` bounds what the process's own callbacks held it for
(``shipthread_event_loop_lag_cpu_seconds``), whatever else runs on the machine.

A leaf: it knows asyncio and a callback to report to, nothing else of ours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

LagObserver = Callable[[float, float], None]
"""Told each measured lag and the part of it the loop's thread was on the CPU, in seconds."""


class LoopLag:
    """A periodic callback on the running loop that measures how late it runs."""

    def __init__(self, observe: LagObserver | None = None, interval_s: float = 0.02) -> None:
        self._observe = observe
        self._interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._cpu = 0.0
        self.max_s = 0.0
        """The largest lag measured since ``start``."""
        self.max_cpu_s = 0.0
        """The largest CPU-bound part of a lag since ``start`` (what the process's callbacks held)."""
        self.samples = 0

    def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self._interval_s
        self._cpu = time.thread_time()
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        # The loop's clock can run this a hair early (its resolution): that is no lag.
        lag = max(0.0, self._loop.time() - self._due)
        held = min(lag, max(0.0, time.thread_time() - self._cpu))
        self.samples += 1
        self.max_s = max(self.max_s, lag)
        self.max_cpu_s = max(self.max_cpu_s, held)
        if self._observe is not None:
            self._observe(lag, held)
        self._schedule()
