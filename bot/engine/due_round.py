"""One round of due work: take what is due in one query, run it, store when each is due next.

What the timer (``bot.engine.due_timer``) runs at each wake. Deployments waiting on Jenkins or the
cluster are polled (a bounded number at once); deployments being verified and post-rollback watches
go to the guard together, so every window ticking at this instant shares one batch of Prometheus
queries. Nothing else is read: a deployment that only waits for its next guard tick is not due, so
it costs nothing until then.

Polls run beside the round: a poll whose result starts the next step (a rollout patched, a build
triggered) can take a second or more, and a round that waited for it would make every guard window
due meanwhile tick late. The round waits ``POLL_WAIT_S`` at most for them. A polled deployment's due
time is first pushed a poll interval on (so a crash mid-poll still finds it, and the next round
does not take it again), then stored for real when its poll ends. ``drain`` lets the polls under
way finish at shutdown.

Work that did not change (a poll that saw the build still running, a window still settling) gets
its next due time stored in one statement per table, guarded by what was read, so a transition
that stored its own due time meanwhile keeps it. The outbox's pending effects (those a failure left
behind) are retried here too, at most once per poll interval, as each deployment's poll once did.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable
from datetime import datetime

from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.engine import due_times
from bot.engine.context import Context
from bot.engine.orchestrator import Orchestrator
from bot.engine.ticks import Ticks
from bot.engine.turns import in_turns
from bot.ports import DeploymentDue, DueWork, WatchDue

log = logging.getLogger("shipthread.timer")

POLLS_AT_ONCE = 32
"""Polls of Jenkins or the cluster in flight at once (each adapter bounds its own pool too)."""

POLL_WAIT_S = 0.25
"""How long (wall time) a round waits for the polls it started before it returns; a poll still
running then (a slow Jenkins, a rollout being patched) ends beside the next rounds instead of
holding back guard ticks that fall due meanwhile."""


class DueRound:
    def __init__(
        self,
        ctx: Context,
        orchestrator: Orchestrator,
        ticks: Ticks,
        *,
        limit: int = 1000,
        poll_wait_s: float = POLL_WAIT_S,
    ) -> None:
        self.ctx = ctx
        self.orch = orchestrator
        self.ticks = ticks
        self._limit = limit
        self._poll_wait_s = poll_wait_s
        self._polls = asyncio.Semaphore(POLLS_AT_ONCE)
        self._polling: dict[str, asyncio.Task[None]] = {}
        """The polls under way, by deployment id (a deployment is polled once at a time)."""
        self._effects_retried_at: datetime | None = None

    async def __call__(self) -> datetime | None:
        now = self.ctx.clock.now()
        await self._retry_effects(now)
        work = await self.ctx.store.take_due(now, self._limit)
        verifying = tuple(d for d in work.deployments if d.phase is Phase.VERIFYING)
        polled = [d for d in work.deployments if d.phase is not Phase.VERIFYING]
        if polled:  # stored before any poll starts, so none of them can overwrite a poll's own
            later = now + due_times.poll_interval(self.ctx)
            # Its earliest is not read: each poll wakes the timer with its own due time when it ends.
            await self.ctx.store.reschedule(
                [DeploymentDue(d.id, d.version_no, later) for d in polled], [], earliest=False
            )
        started = [self._start_poll(dep) for dep in polled if dep.id not in self._polling]
        if verifying or work.watches:
            await self._safely(self.ticks.guard_tick(list(verifying), work.watches), "guard tick")
        if started:  # quick polls end within the round, as if it ran them; slow ones carry on beside it
            await asyncio.wait(started, timeout=self._poll_wait_s)
        return await self._reschedule(DueWork(verifying, work.watches), self.ctx.clock.now())

    def _start_poll(self, dep: Deployment) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._poll(dep), name=f"poll of {dep.id}")
        self._polling[dep.id] = task
        task.add_done_callback(functools.partial(self._polled, dep.id))
        return task

    async def drain(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the polls under way (their due times are stored either way)."""
        if self._polling:
            await asyncio.wait(set(self._polling.values()), timeout=grace_s)

    def _polled(self, deployment_id: str, _task: asyncio.Task[None]) -> None:
        self._polling.pop(deployment_id, None)

    async def _poll(self, dep: Deployment) -> None:
        """Poll one deployment, then store when it is next due (unless its poll moved it on)."""
        async with self._polls:
            await self._safely(self.ticks.poll(dep.id), f"poll of {dep.id}")
        now = self.ctx.clock.now()
        try:
            at = self._not_past(await due_times.deployment_due(self.ctx, dep, now, fresh=False), now)
            await self.ctx.store.reschedule([DeploymentDue(dep.id, dep.version_no, at)], [], earliest=False)
        except Exception:  # its provisional due time stands: it is polled again a poll interval on
            log.exception("storing the next due time of %s failed", dep.id)
            return
        self.orch.timer.wake(at)

    async def _safely(self, work: Awaitable[object], what: str) -> None:
        """One piece of a round: a failure is logged and retried at its next due time, never fatal."""
        try:
            await work
        except Exception:
            log.exception("%s failed", what)

    async def _retry_effects(self, now: datetime) -> None:
        last = self._effects_retried_at
        if last is not None and now - last < due_times.poll_interval(self.ctx):
            return
        self._effects_retried_at = now
        await self._safely(self.orch.run_effects(), "retrying pending effects")

    async def _reschedule(self, work: DueWork, now: datetime) -> datetime | None:
        """Store when each piece of work is next due (unless a transition already did)."""
        deployments = [
            DeploymentDue(
                d.id,
                d.version_no,
                self._not_past(await due_times.deployment_due(self.ctx, d, now, fresh=False), now),
            )
            async for d in in_turns(work.deployments)  # in turns: a loop over 1,000 held the loop
        ]
        watches = [
            WatchDue(
                w.id, w.windows, w.ticks, self._not_past(due_times.watch_due(self.ctx, w, fresh=False), now)
            )
            for w in work.watches
            if w.id is not None
        ]
        return await self.ctx.store.reschedule(deployments, watches)

    def _not_past(self, at: datetime | None, now: datetime) -> datetime | None:
        """A due time that is already past after its work ran means the work could not act (a
        refused event, a missing playbook): look again after a poll interval, not in a busy loop."""
        if at is not None and at <= now:
            return now + due_times.poll_interval(self.ctx)
        return at
