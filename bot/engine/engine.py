"""The engine assembled: orchestrator, effects, ticks and timer, with recovery at start-up.

``Engine`` is what the Slack layer and the CLI talk to. ``start()`` first takes the engine lease (one
engine per database: a second one refuses to start and names the holder, ``bot.domain.lease``), then
rebuilds everything time-driven from the store: it finishes the effects a crash interrupted, resumes
polling every unfinished deployment, begins queued requests whose slot is free, and starts the guard
timer and the lease's heartbeat. ``stop()`` gives the lease up.

An engine whose lease another engine took over (``LeaseLost``: it missed its heartbeats for a TTL)
must not act again: its timer stops, every command is refused with an answer that says why, and
``lease_lost`` / ``lease_problem`` tell ``/readyz`` to take it out of service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.domain import lease as lease_rule
from bot.domain.commands import Deploy, Rollback
from bot.domain.locks import Lock
from bot.domain.message import Message
from bot.domain.phases import Phase
from bot.engine.context import Context
from bot.engine.effects import Effects
from bot.engine.orchestrator import IdSource, Orchestrator, Outcome, Timer, TransitionHook
from bot.engine.scheduler import Scheduler
from bot.engine.ticks import Ticks
from bot.ports import EngineLease, LeaseLost

log = logging.getLogger("shipthread.engine")


class Engine:
    def __init__(
        self,
        ctx: Context,
        *,
        timer: Timer | None = None,
        on_transition: TransitionHook | None = None,
        guard_resolution_s: float = 0.25,
        use_scheduler: bool = True,
        lease: EngineLease | None = None,
        new_id: IdSource | None = None,
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.scheduler: Scheduler | None = None
        if timer is None and use_scheduler:
            timer = self.scheduler = Scheduler(
                self._poll,
                self._guard_tick,
                poll_interval_s=ctx.policy.poll_interval_s,
                guard_resolution_s=guard_resolution_s,
            )
        self.orchestrator = Orchestrator(ctx, timer=timer, on_transition=on_transition, new_id=new_id)
        self.effects = Effects(ctx, self.orchestrator)
        self.orchestrator.perform = self.effects.perform
        self.ticks = Ticks(ctx, self.orchestrator)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._lease_problem: str | None = None

    async def start(self) -> None:
        """Take the lease (``LeaseHeld`` if another engine runs here), recover, start the timer."""
        if self.lease is not None:
            await self.lease.acquire()
            try:
                await self.recover()
            except BaseException:
                await self.lease.release()
                raise
            self._heartbeat = asyncio.create_task(self._renew_lease(), name="lease heartbeat")
        else:
            await self.recover()
        if self.scheduler is not None:
            self.scheduler.start()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop the timer and let the ticks already running finish (so none dies half-way)."""
        self._stopping = True
        # Let running ticks finish first: APScheduler's shutdown cancels the jobs still running,
        # which would cut a tick off between two writes. New turns see _stopping and return at once.
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace_s)
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
            assert self.lease is not None
            await self.lease.release()

    @property
    def lease_lost(self) -> bool:
        """Has another engine taken this one's lease? Then it refuses every command and is not ready."""
        return self._lease_problem is not None

    @property
    def lease_problem(self) -> str | None:
        """Why this engine stopped working (naming the engine that holds the lease now), or None."""
        return self._lease_problem

    async def renew_lease(self) -> bool:
        """One heartbeat (the heartbeat task beats every ``RENEW_EVERY``); False once the lease is lost.

        A lease lost to another engine stops this one for good: the timer stops and commands are
        refused, since only one engine may act on a database.
        """
        if self._lease_problem is not None:
            return False
        if self.lease is None:
            return True
        try:
            await self.lease.renew()
        except LeaseLost as exc:
            log.critical("%s; this engine stops its timer and refuses every command", exc)
            self._lease_problem = str(exc)
            self._stopping = True
            if self.scheduler is not None:
                self.scheduler.shutdown()
            return False
        except Exception:
            # The database may be back by the next beat; the TTL allows for missing two.
            log.exception("lease heartbeat failed")
        return True

    async def _renew_lease(self) -> None:
        while not self._stopping:
            await asyncio.sleep(lease_rule.RENEW_EVERY.total_seconds())
            if not await self.renew_lease():
                return

    def _refusal(self) -> Outcome | None:
        """The answer to any command once the lease is lost (None while this engine holds it)."""
        if self._lease_problem is None:
            return None
        return Outcome(
            False,
            Message.of(
                "this Shipthread engine no longer holds the database's engine lease, so it takes no "
                "commands (",
                self._lease_problem,
                "). Ask again in a moment: the engine that holds it now answers, or restart this one.",
            ),
        )

    async def recover(self) -> None:
        """Resume every unfinished deployment from its stored progress; run no effect twice."""
        await self.orchestrator.run_effects()
        active = await self.ctx.store.active_deployments()
        for dep in active:
            if dep.phase is not Phase.REQUESTED:
                self.orchestrator.timer.follow(dep.id)
        # A request stored just before a crash (or queued behind one that ended meanwhile) starts now.
        slots = {(d.service, d.env) for d in active}
        for service, env in sorted(slots):
            await self.orchestrator.start_next(service, env)
        log.info("recovered %d unfinished deployment(s)", len(active))

    async def _poll(self, deployment_id: str) -> None:
        await self._track(self.ticks.poll(deployment_id), f"poll of {deployment_id}")

    async def _guard_tick(self) -> None:
        await self._track(self.ticks.guard_tick(), "guard tick")

    async def _track(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run a timer job, known to ``stop`` while it runs; a failure is logged, never fatal."""
        if self._stopping:
            work.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await work
        except Exception:
            log.exception("%s failed", what)
        finally:
            if task is not None:
                self._inflight.discard(task)

    # -- what people do (the Slack layer calls these) ----------------------------------------------

    async def deploy(self, cmd: Deploy, user: str, channel: str | None = None) -> Outcome:
        return self._refusal() or await self.orchestrator.request(cmd, user, channel)

    async def approve(
        self, deployment_id: str, user: str, channel: str | None = None, stage: int | None = None
    ) -> Outcome:
        """``stage``: the approval stage the button was drawn for (refused at another one)."""
        return self._refusal() or await self.orchestrator.vote(
            deployment_id, user, True, None, channel, stage
        )

    async def reject(self, deployment_id: str, user: str, reason: str, channel: str | None = None) -> Outcome:
        return self._refusal() or await self.orchestrator.vote(deployment_id, user, False, reason, channel)

    async def cancel(
        self, deployment_id: str, user: str, reason: str | None = None, channel: str | None = None
    ) -> Outcome:
        return self._refusal() or await self.orchestrator.cancel(deployment_id, user, reason, channel)

    async def rollback(
        self, cmd: Rollback, user: str, channel: str | None = None, deployment_id: str | None = None
    ) -> Outcome:
        """``deployment_id``: the deployment a Roll back / Abort button was drawn for."""
        return self._refusal() or await self.orchestrator.rollback(cmd, user, channel, deployment_id)

    async def promote(
        self, deployment_id: str, user: str, channel: str | None = None, step: int | None = None
    ) -> Outcome:
        """``step``: the step the Promote button was drawn for (refused once it moved on)."""
        return self._refusal() or await self.orchestrator.promote(deployment_id, user, channel, step)

    async def lock(
        self, env: str, service: str | None, reason: str, user: str, channel: str | None = None
    ) -> Outcome:
        return self._refusal() or await self.orchestrator.lock(env, service, reason, user, channel)

    async def unlock(self, env: str, service: str | None, user: str, channel: str | None = None) -> Outcome:
        return self._refusal() or await self.orchestrator.unlock(env, service, user, channel)

    async def unlock_lock(self, lock_id: int, user: str, channel: str | None = None) -> Outcome:
        """Lift one lock by its id (the Unlock buttons): only that one, if ``user`` may."""
        return self._refusal() or await self.orchestrator.unlock_lock(lock_id, user, channel)

    async def may_unlock(self, user: str, lock: Lock) -> bool:
        """May ``user`` lift ``lock``? The rule ``unlock`` enforces; App Home asks it to draw buttons."""
        return await self.orchestrator.may_unlock(user, lock)

    # -- for tests and the sandbox: drive time by hand -------------------------------------------

    async def tick(self) -> None:
        """One round of every poll and the guard (what the timer does over one interval)."""
        if self._lease_problem is not None:
            return  # another engine works this database now
        for dep in await self.ctx.store.active_deployments():
            await self.ticks.poll(dep.id)
        await self.ticks.guard_tick()
