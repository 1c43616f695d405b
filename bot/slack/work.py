"""Work the Slack layer does after ``ack()``: kept track of, drained on shutdown, done once.

Bolt answers Slack as soon as a listener calls ``ack()``; what follows (the engine call, the final
answer) runs in a task. Bolt keeps no reference to such tasks, so ``Background`` does: a task
nobody references can be garbage-collected half-way, and SIGTERM must be able to wait for them.

``Once`` is the exactly-once gate. Slack retries deliveries (``X-Slack-Retry-Num``), Socket Mode
redelivers envelopes and people double-click; each delivery is named by a key built from what
Slack sends (see ``bot.slack.keys``) and claimed in the database before the engine is called, so
only the first claimer — on whichever replica, before or after a restart — acts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, copy_context
from datetime import datetime
from typing import Any

from bot.ports import Store

log = logging.getLogger("shipthread.slack")

deployment_context: ContextVar[str | None] = ContextVar("deployment_id", default=None)
"""The deployment a background task works on, for log lines that do not name it themselves."""


class Background:
    """The tasks started after an ack; ``drain`` waits for them (bounded) when the process stops.

    Acks go first: work starts once no new request has come for ``quiet_s`` (at most ``max_defer_s``
    late), and at most ``concurrency`` pieces run at once. A burst of commands then does not fill the
    event loop (and the GIL, with the cluster client's threads) with engine work while later requests
    of the same burst still wait for their ack: the 3 s that matter are the ack's, not the work's.
    """

    def __init__(self, concurrency: int = 8, quiet_s: float = 0.02, max_defer_s: float = 0.5) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._quiet_s = quiet_s
        self._max_defer_s = max_defer_s
        self._last_arrival = 0.0
        self.accepting = True
        """False once shutdown began: the HTTP layer then refuses new requests (Slack retries them)."""

    def spawn(
        self,
        work: Coroutine[Any, Any, None],
        name: str,
        deployment_id: str | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Run ``work`` after the burst; ``urgent`` work (a modal to open on a 3 s trigger) at once."""
        self._last_arrival = time.monotonic()
        context = copy_context()
        context.run(deployment_context.set, deployment_id)
        guarded = self._urgent(work, name) if urgent else self._guarded(work, name)
        task = asyncio.get_running_loop().create_task(guarded, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            deadline = time.monotonic() + self._max_defer_s
            # Polling, not an Event: "nothing arrived for a while" is the absence of a signal.
            while time.monotonic() < deadline and time.monotonic() - self._last_arrival < self._quiet_s:  # noqa: ASYNC110
                await asyncio.sleep(self._quiet_s)
            async with self._slots:
                await work
        except Exception:
            log.exception("%s failed", name)
        finally:
            work.close()  # never started (cancelled while waiting for a slot): no "never awaited" warning

    @staticmethod
    async def _urgent(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%s failed", name)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout_s: float) -> int:
        """Stop accepting, wait up to ``timeout_s`` for running work; returns how many were cut off."""
        self.accepting = False
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        return len(pending)


class Once:
    """Claims delivery keys in the store: True for the first delivery of a key, False for repeats."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    async def claim(self, key: str) -> bool:
        return await self._store.claim_key(key, self._now())

    async def done(self, key: str, result: dict[str, Any]) -> None:
        await self._store.complete_key(key, result, self._now())
