"""The engine assembled: orchestrator, effects, ticks and timer, with recovery at start-up.

``Engine`` is what the Slack layer and the CLI talk to. ``start()`` first takes the engine lease (one
engine per database: a second one refuses to start and names the holder, ``bot.domain.lease``), then
recovers: it finishes the effects a crash interrupted, counts votes stored just before it, begins
queued requests whose slot is free, and starts the one timer (``bot.engine.due_timer``), which
carries on from the due times stored with every deployment and watch, and the lease's heartbeat.
``stop()`` lets the running round finish and gives the lease up.

An engine whose lease another engine took over (``LeaseLost``: it missed its heartbeats for a TTL)
must not act again: its timer stops, every command is refused with an answer that says why, and
``lease_lost`` / ``lease_problem`` tell ``/readyz`` to take it out of service.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.domain import lease as lease_rule
from bot.domain.commands import Deploy, Rollback
from bot.domain.locks import Lock
from bot.domain.message import Message
from bot.domain.phases import Phase
from bot.engine.context import Context
from bot.engine.due_round import DueRound
from bot.engine.due_timer import DueTimer
from bot.engine.effects import Effects
from bot.engine.orchestrator import IdSource, Orchestrator, Outcome, Timer, TransitionHook
from bot.engine.ticks import Ticks
from bot.errors import LeaseLost, ShipthreadError
from bot.ports import EngineLease

log = logging.getLogger("shipthread.engine")

RECOVERY_EFFECTS_AT_ONCE = 8
"""Deployments whose interrupted effects a restart finishes at once (the adapters bound their pools)."""


class Engine:
    def __init__(
        self,
        ctx: Context,
        *,
        timer: Timer | None = None,
        on_transition: TransitionHook | None = None,
        use_scheduler: bool = True,
        lease: EngineLease | None = None,
        new_id: IdSource | None = None,
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.scheduler: DueTimer | None = None
        if timer is None and use_scheduler:
            timer = self.scheduler = DueTimer(self._round, ctx.clock)
        self.effects = Effects(ctx)
        self.orchestrator = Orchestrator(
            ctx, perform=self.effects.perform, timer=timer, on_transition=on_transition, new_id=new_id
        )
        self.ticks = Ticks(ctx, self.orchestrator)
        self.rounds = DueRound(ctx, self.orchestrator, self.ticks)
        self._stopping = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._lease_problem: str | None = None

    async def start(self) -> None:
        """Take the lease (``LeaseHeld`` if another engine runs here), recover, start the timer."""
        # The cluster client's lazy imports (~0.8 s for kubernetes) happen here, in its thread pool,
        # not on the loop in the middle of recovery's first rollout poll.
        await self.ctx.cluster.preload()
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
        # The timer lets its running round finish (never cutting a tick off between two writes);
        # new rounds see _stopping and do nothing.
        if self.scheduler is not None:
            await self.scheduler.stop(grace_s)
        await self.rounds.drain(grace_s)  # the polls a round started run beside it
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
        """Resume every unfinished deployment from its stored progress; run no effect twice.

        Nothing to rebuild for the timer: each deployment and watch carries its due time, and the
        timer's first round takes whatever fell due while the engine was down.
        """
        await self._finish_interrupted_effects()
        active = await self.ctx.store.active_deployments()
        for dep in active:
            if dep.phase is Phase.AWAITING_APPROVAL:
                # A vote stored just before a crash, its event not: count it now, not at the expiry.
                try:
                    await self.orchestrator.settle_votes(dep.id)
                except ShipthreadError as exc:  # its poll says so again; recovery goes on
                    log.warning("%s: its votes could not be counted at start-up: %s", dep.id, exc)
        # A request stored just before a crash (or queued behind one that ended meanwhile) starts now.
        # Only a slot holding a request can have one to start (``start_next`` checks the rest under
        # the slot's lock), so a restart with many deployments under way reads no slot twice.
        slots = {(d.service, d.env) for d in active if d.phase is Phase.REQUESTED}
        for service, env in sorted(slots):
            await self.orchestrator.start_next(service, env)
        log.info("recovered %d unfinished deployment(s)", len(active))

    async def _finish_interrupted_effects(self) -> None:
        """The outbox's pending effects, each deployment's in order, several deployments at once:
        a crash with many deployments mid-step left one effect each, and each waits on Jenkins or
        the cluster, so doing them one after another made the restart as slow as all of them."""
        pending = await self.ctx.store.pending_effects()
        gate = asyncio.Semaphore(RECOVERY_EFFECTS_AT_ONCE)

        async def finish(deployment_id: str) -> None:
            async with gate:
                await self.orchestrator.run_effects(deployment_id)

        await asyncio.gather(*(finish(i) for i in dict.fromkeys(p.deployment_id for p in pending)))

    async def _round(self) -> datetime | None:
        """One round of due work for the timer (nothing once the engine stops or lost its lease)."""
        if self._stopping or self._lease_problem is not None:
            return None
        return await self.rounds()

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
        """One round of every poll and the guard, as if everything were due (tests drive time so).

        The timer's rounds (``bot.engine.due_round``) take only what is due; a tick asks each
        deployment and each guard window anyway, and each decides from its stored progress.
        """
        if self._lease_problem is not None:
            return  # another engine works this database now
        for dep in await self.ctx.store.active_deployments():
            await self.ticks.poll(dep.id)
        await self.ticks.guard_tick()
