"""Polling the outside world for one deployment: approvals, its build, its rollout, its rollback.

Jenkins and the cluster tell nobody when a build or a rollout moves on, so a deployment waiting on
them is due every poll interval (``bot.domain.due``); each poll reads what they say now and turns
it into the deployment's next event. Everything is decided from the stored deployment, so a poll
after a restart continues where the last one stopped. ``Notices`` keeps the thread from hearing
the same progress twice (polls and guard ticks share it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.domain import approvals
from bot.domain.deployment import Deployment, Strategy
from bot.domain.effects import PromoteCanary, StartRollback, StartRollout, SwitchTraffic, TriggerBuild
from bot.domain.events import (
    ApprovalExpired,
    BuildFailed,
    BuildStarted,
    BuildSucceeded,
    RollbackCompleted,
    RollbackFailed,
    RolloutCompleted,
    RolloutFailed,
)
from bot.domain.notifications import BuildProgress, Notification, RolloutProgress
from bot.domain.phases import Phase
from bot.engine.context import Context, approvals_opened_at
from bot.engine.orchestrator import Orchestrator
from bot.errors import ShipthreadError
from bot.ports import BuildRef, BuildState, PendingEffect, RolloutPhase

log = logging.getLogger("shipthread.ticks")

SAID_MEMORY = 4096
"""How many (deployment, notice kind) pairs ``Notices`` remembers to avoid repeating itself."""

STEP_EFFECTS = frozenset(
    t.__name__ for t in (TriggerBuild, StartRollout, PromoteCanary, SwitchTraffic, StartRollback)
)
"""Effects whose result the next step waits for. A pending notice (a Slack outage) never stalls a
deployment: only a pending change to Jenkins or the cluster does."""


def _step_pending(pending: Iterable[PendingEffect]) -> bool:
    return any(p.effect_type in STEP_EFFECTS for p in pending)


class Notices:
    """Tells the chat, but only what a person would notice changed."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._last_said: dict[str, object] = {}

    async def say(self, dep: Deployment, note: Notification, bucket: object = None) -> None:
        """Tell the chat, but only when something a person would notice changed."""
        key = f"{dep.id}:{type(note).__name__}"
        marker = (dep.phase, dep.step, bucket if bucket is not None else repr(note))
        if self._last_said.get(key) == marker:
            return
        self._last_said[key] = marker
        while len(self._last_said) > SAID_MEMORY:  # forget the oldest; a repeat notice is harmless
            del self._last_said[next(iter(self._last_said))]
        await self.ctx.tell(note)


class Polls:
    """One deployment's poll: what Jenkins or the cluster says now, as its next event."""

    def __init__(self, ctx: Context, orchestrator: Orchestrator, notices: Notices) -> None:
        self.ctx = ctx
        self.orch = orchestrator
        self._notices = notices

    async def poll(self, deployment_id: str) -> None:
        """Move one deployment on from what the outside world says now."""
        # The deployment and whether its outbox owes anything, in one read: when it owes nothing
        # (the usual poll), that read is current and the outbox is not read at all.
        dep, owing = await self.ctx.store.deployment_owing(deployment_id)
        if owing and await self.orch.run_effects(deployment_id, current=dep):
            # Effects ran: they may have moved it on, failed (still pending) or queued more.
            dep = await self.ctx.store.get_deployment(deployment_id)
            if (
                dep is not None
                and not dep.phase.terminal
                and _step_pending(await self.ctx.store.pending_effects(deployment_id))
            ):
                return  # a CI or cluster change is still being retried: its result decides what comes next
        if dep is None or dep.phase.terminal:
            return
        try:
            if dep.phase is Phase.AWAITING_APPROVAL:
                settled = await self.orch.settle_votes(dep.id)
                if settled is not None and settled.phase is Phase.AWAITING_APPROVAL:
                    await self._expire(settled)
            elif dep.phase is Phase.BUILDING:
                await self._poll_build(dep)
            elif dep.phase is Phase.DEPLOYING:
                await self._poll_rollout(dep)
            elif dep.phase is Phase.ROLLING_BACK:
                await self._poll_rollback(dep)
        except ShipthreadError as exc:
            log.warning("%s: poll failed, next tick retries: %s", dep.id, exc)

    async def _expire(self, dep: Deployment) -> None:
        ttl = self.ctx.playbook(dep.service).approval_ttl(dep.env, self.ctx.policy.approval_ttl)
        if approvals.is_expired(await approvals_opened_at(self.ctx, dep), ttl, self.ctx.clock.now()):
            await self.orch.try_handle(dep.id, ApprovalExpired())

    async def _poll_build(self, dep: Deployment) -> None:
        pb = self.ctx.playbook(dep.service)
        job = pb.job_path(dep.version, dep.env)
        if job is None or dep.build_queue_item is None:
            return
        status = await self.ctx.ci.status(BuildRef(job, dep.build_queue_item, dep.build_number))
        number = status.ref.number
        if number is not None and number != dep.build_number:
            # ``current``: the row this poll read, decided on without reading it again.
            dep = await self.orch.try_handle(dep.id, BuildStarted(number=number), current=dep) or dep
        if status.state is BuildState.SUCCEEDED:
            await self._notices.say(
                dep, BuildProgress(dep, status.state.value, status.url, 1.0, None, number, status.result)
            )
            await self.orch.try_handle(dep.id, BuildSucceeded(number=number), current=dep)
        elif status.state.finished:
            tail = await self._console_tail(status.ref) if number is not None else None
            what = f"build #{number}" if number is not None else "the queued build"
            await self._notices.say(
                dep, BuildProgress(dep, status.state.value, status.url, None, tail, number, status.result)
            )
            await self.orch.try_handle(
                dep.id, BuildFailed(reason=f"{what} {status.result or status.state.value}")
            )
        else:
            limit = pb.jenkins.build_timeout.total_seconds() if pb.jenkins else None
            if limit is not None and status.elapsed_s > limit:
                await self.ctx.ci.abort(status.ref)
                await self.orch.try_handle(
                    dep.id,
                    BuildFailed(reason=f"build #{number} ran longer than {int(limit)}s and was aborted"),
                )
                return
            progress = status.progress
            bucket = (status.state.value, None if progress is None else int(progress * 10))
            note = BuildProgress(dep, status.state.value, status.url, progress, None, number)
            await self._notices.say(dep, note, bucket)

    async def _console_tail(self, ref: BuildRef) -> str | None:
        try:
            return await self.ctx.ci.console_tail(ref)
        except ShipthreadError as exc:
            return f"(console unavailable: {exc})"

    async def _poll_rollout(self, dep: Deployment) -> None:
        status = await self.ctx.cluster.rollout(self.ctx.target_of(dep))
        weights = self.ctx.canary_steps(dep)
        weight = weights[dep.step] if dep.strategy is Strategy.CANARY and dep.step < len(weights) else None
        if status.phase is RolloutPhase.DONE:
            await self.orch.try_handle(dep.id, RolloutCompleted(step=dep.step), current=dep)
        elif status.phase is RolloutPhase.FAILED:
            await self.orch.try_handle(dep.id, RolloutFailed(reason=status.message or "the rollout failed"))
        else:
            note = RolloutProgress(dep, dep.step, weight, status.message, status.ready, status.desired)
            await self._notices.say(dep, note, (dep.step, status.ready, status.desired))

    async def _poll_rollback(self, dep: Deployment) -> None:
        status = await self.ctx.cluster.rollout(self.ctx.target_of(dep))
        restored = dep.version if dep.is_rollback else dep.previous_version
        if status.phase is RolloutPhase.DONE:
            await self.orch.try_handle(dep.id, RollbackCompleted(version=restored or "the previous revision"))
        elif status.phase is RolloutPhase.FAILED:
            await self.orch.try_handle(
                dep.id, RollbackFailed(reason=f"the rollback's rollout failed: {status.message}")
            )
