"""Work the Slack layer does after ``ack()``: kept track of, drained on shutdown, done once.

Bolt answers Slack as soon as a listener calls ``ack()``; what follows (the engine call, the final
answer) runs in a task. Bolt keeps no reference to such tasks, so ``Background`` does: a task
nobody references can be garbage-collected half-way, and SIGTERM must be able to wait for them.

``Once`` is the exactly-once gate. Slack retries deliveries (``X-Slack-Retry-Num``), Socket Mode
redelivers envelopes and people double-click; each delivery is named by a key built from what
Slack sends (see ``bot.slack.keys``) and claimed in the database before the engine is called, so
only the first claimer — on whichever replica, before or after a restart — acts. A claim is a
promise to act, not a verdict: it is given back when the work fails or is refused without
changing anything (the same click may act once the group or the lock is fixed), and a claim left
behind by a process that died is taken over after ``TAKEOVER_AFTER``. A repeat of a completed
delivery gets the answer the first one got (one still running gets none: its answer is coming).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from bot.errors import ShipthreadError, TransientError
from bot.ports import Store
from bot.slack import answers, limits
from bot.slack.answers import Answer

log = logging.getLogger("shipthread.slack")

deployment_context: ContextVar[str | None] = ContextVar("deployment_id", default=None)
"""The deployment a background task works on, for log lines that do not name it themselves."""

TAKEOVER_AFTER: Final = timedelta(seconds=30)
"""A claim this old and never completed belongs to a process that died (the work takes seconds)."""


@dataclass(frozen=True, slots=True)
class _Queued:
    work: Coroutine[Any, Any, None]
    name: str
    context: Context
    deadline: float
    """When it starts even if requests keep coming (monotonic)."""


class Background:
    """The tasks started after an ack; ``drain`` waits for them (bounded) when the process stops.

    Acks go first, by design: queued work starts only when no Slack request is being answered
    (``answering``) and none has come for ``quiet_s``. So that a steady stream of requests never
    starves it, work that has waited ``max_defer_s`` starts anyway, one piece at a time while acks
    are still pending; once the requests are answered, up to ``concurrency`` pieces run at once. A
    burst of commands then does not fill the event loop (and the GIL, with the client libraries'
    threads) with engine work while later requests of the same burst wait for their ack: the 3 s
    that matter are the ack's, not the work's.

    The waiting costs nothing per request: queued work sits in one queue, ``concurrency`` workers
    take from it, and one timer (moved on by each request) opens the gate once the burst is over —
    not a sleeping loop per request, which is what 200 requests of a burst would otherwise run
    while their acks wait.
    """

    def __init__(self, concurrency: int = 8, quiet_s: float = 0.02, max_defer_s: float = 0.25) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._concurrency = concurrency
        self._workers: set[asyncio.Task[None]] = set()
        self._taking = 0
        """Workers still taking from the queue (counted as they stop, not when their task is reaped)."""
        self._queue: deque[_Queued] = deque()
        self._quiet = asyncio.Event()
        """Set when no request is being answered and none came for ``quiet_s``: work may start."""
        self._quiet.set()
        self._timer: asyncio.TimerHandle | None = None
        self._answering = 0
        """Slack requests received and not answered yet."""
        self._overdue = 0
        """Pieces running because they waited ``max_defer_s`` while requests were still answered."""
        self._busy = 0
        """Queued plus running deferred pieces."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._quiet_s = quiet_s
        self._max_defer_s = max_defer_s
        self.accepting = True
        """False once shutdown began: the HTTP layer then refuses new requests (Slack retries them)."""

    # -- the requests being answered ----------------------------------------------------------------

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one Slack request, up to its ack: work waits while any is open."""
        self._answering += 1
        self._quiet.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering == 0:
                self._settle(asyncio.get_running_loop())

    @property
    def answering_now(self) -> int:
        """Slack requests received and not answered yet."""
        return self._answering

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        """The last open request was answered: the gate opens ``quiet_s`` later, if none comes."""
        if self._timer is not None:
            self._timer.cancel()
        self._quiet.clear()
        self._timer = loop.call_later(self._quiet_s, self._open)

    def _open(self) -> None:
        self._timer = None
        if self._answering == 0:
            self._quiet.set()

    # -- the work -----------------------------------------------------------------------------------

    def spawn(
        self,
        work: Coroutine[Any, Any, None],
        name: str,
        deployment_id: str | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Run ``work`` after the burst; ``urgent`` work (a modal to open on a 3 s trigger) at once."""
        context = copy_context()
        context.run(deployment_context.set, deployment_id)
        loop = asyncio.get_running_loop()
        if urgent:
            self._track(loop.create_task(self._run(work, name), name=name, context=context))
            return
        self._queue.append(_Queued(work, name, context, time.monotonic() + self._max_defer_s))
        self._busy += 1
        self._idle.clear()
        if self._answering == 0 and self._quiet.is_set():
            # Work that no request brought (or spawned after the ack): still let a burst that may be
            # arriving go first for ``quiet_s``.
            self._settle(loop)
        while self._taking < min(self._concurrency, len(self._queue)):
            self._taking += 1
            worker = loop.create_task(self._worker(), name="slack background worker")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _gate(self) -> bool:
        """Wait until this worker may start the queue's next piece; True when it starts it overdue.

        Returns with no await after its last look at the queue (``_worker`` relies on it).
        """
        while self._queue and not self._quiet.is_set():
            due = self._queue[0].deadline - time.monotonic()
            if due <= 0 and self._overdue == 0:
                return True  # waited long enough: one piece at a time until the acks are done
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), max(due, self._quiet_s))
        return False

    async def _worker(self) -> None:
        try:
            while True:
                overdue = await self._gate()
                if not self._queue:
                    return  # no await between this test and ``_taking`` going down: spawn sees it
                item = self._queue.popleft()
                self._overdue += overdue
                try:
                    task = asyncio.get_running_loop().create_task(
                        self._run(item.work, item.name), name=item.name, context=item.context
                    )
                    self._track(task)
                    await asyncio.shield(task)  # drain cancels the task itself, not through the worker
                finally:
                    self._overdue -= overdue
                    self._done_one()
        finally:
            self._taking -= 1

    def _done_one(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    @staticmethod
    async def _run(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%s failed", name)
        finally:
            work.close()  # cancelled before it started: no "never awaited" warning

    @property
    def running(self) -> int:
        """Pieces of work started or waiting to start."""
        return len(self._queue) + len(self._tasks)

    async def drain(self, timeout_s: float) -> int:
        """Stop accepting, wait up to ``timeout_s`` for running work; returns how many were cut off."""
        self.accepting = False
        self._quiet.set()  # no request is coming any more: what is queued starts now
        if not self.running:
            return 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_done(), timeout_s)
        cut = self.running
        for worker in set(self._workers):
            worker.cancel()
        for task in set(self._tasks):
            task.cancel()
        while self._queue:
            self._queue.popleft().work.close()  # never started: no "never awaited" warning
            self._done_one()
        return cut

    async def _all_done(self) -> None:
        await self._idle.wait()
        while self._tasks:
            await asyncio.wait(set(self._tasks))


@dataclass(frozen=True, slots=True)
class Ran:
    answer: Answer | None
    repeat: bool
    """True when another delivery of the same key ran (or runs) the work; ``answer`` says so."""


class Once:
    """Runs the work of a delivery key once: claimed, then completed, or given back on no effect."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    async def claim(self, key: str) -> bool:
        """True for the first claimer, or for one taking over a claim abandoned ``TAKEOVER_AFTER`` ago."""
        at = self._now()
        return await self._store.claim_key(key, at, takeover_before=at - TAKEOVER_AFTER)

    async def done(self, key: str, result: dict[str, Any]) -> None:
        await self._store.complete_key(key, result, self._now())

    async def release(self, key: str) -> None:
        try:
            await self._store.release_key(key)
        except Exception as exc:  # the claim goes stale and is taken over: no worse than a crash
            log.warning("could not give back the delivery key %s: %s", key, exc)

    async def run(self, key: str | None, decide: Callable[[], Awaitable[Answer | None]]) -> Ran:
        """``decide`` once per ``key`` (every time when ``key`` is None: nothing to tell deliveries apart).

        The key is completed only when the answer says something changed (``Answer.acted``); a
        refusal (None: the engine told the person itself), a stale button or a failure gives it back.
        """
        if key is not None and not await self.claim(key):
            return Ran(await self._earlier(key), repeat=True)
        try:
            answer = await decide()
        except ShipthreadError as exc:
            # Nothing was decided (a lookup failed before the engine changed anything): say so.
            if key is not None:
                await self.release(key)
            log.warning("could not handle a Slack request: %s", exc)
            return Ran(answers.not_now(str(exc), transient=isinstance(exc, TransientError)), repeat=False)
        except BaseException:
            if key is not None:
                await self.release(key)
            raise
        if key is not None:
            if answer is not None and answer.acted:
                await self.done(key, {"text": limits.clip_mrkdwn(answer.text, 1000)})
            else:
                await self.release(key)
        return Ran(answer, repeat=False)

    async def _earlier(self, key: str) -> Answer | None:
        """The answer for a repeat: the first delivery's; None while that one still runs (a double
        click), since its own answer is on the way and one click should get one answer."""
        record = await self._store.get_key(key)
        if record is None or record.result is None:
            return None
        return answers.duplicate(str(record.result.get("text") or "") or None)
