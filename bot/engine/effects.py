"""Performing the state machine's effects through the ports.

Each effect is performed with its idempotency key, and every adapter finds its own earlier work by
that key (a Jenkins build parameter, an annotation on the Kubernetes object), so performing an
effect again after a crash finishes it instead of repeating it. What an effect learns (the build's
queue item, that a rollout started, that it could not start) is returned as an event: the
orchestrator handles it like every other one, so effects never call back into it.
"""

from __future__ import annotations

import logging
from typing import assert_never

from bot.domain import approvals
from bot.domain.audit import BOT
from bot.domain.deployment import Deployment, Strategy
from bot.domain.effects import (
    AbortBuild,
    Effect,
    LockForGuard,
    Notify,
    PromoteCanary,
    RequestApprovals,
    ScheduleApprovalExpiry,
    StartGuard,
    StartRollback,
    StartRollout,
    SwitchTraffic,
    TriggerBuild,
)
from bot.domain.events import (
    BuildFailed,
    BuildQueued,
    BuildSkipped,
    DeployRefused,
    Event,
    RollbackCompleted,
    RollbackFailed,
    RollbackRequested,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
    event_from_payload,
)
from bot.domain.locks import Lock, LockKind
from bot.domain.notifications import ApprovalNeeded, EnvLocked, PhaseChanged, RollbackStarted
from bot.domain.rollback import rollback_plan
from bot.domain.watch import GuardWatch
from bot.engine.context import Context, approvals_opened_at
from bot.errors import PermanentError
from bot.ports import BuildRef

log = logging.getLogger("shipthread.effects")


class Effects:
    """Performs one effect for one deployment and returns the event it produced (None: nothing to say)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def perform(self, dep: Deployment, effect: Effect) -> Event | None:
        match effect:
            case Notify():
                await self.ctx.chat.notify(PhaseChanged(dep, effect.event))  # retried by the outbox
                return None
            case RequestApprovals():
                await self._request_approvals(dep, effect)
                return None
            case ScheduleApprovalExpiry() | StartGuard():
                # Time-driven: the transition that asked for this stored when the deployment is next
                # due, and the tick then expires approvals or ticks the guard from stored timestamps,
                # so nothing is scheduled that a restart could lose.
                return None
            case TriggerBuild():
                return await self._trigger_build(dep, effect)
            case AbortBuild():
                await self._abort_build(dep, effect)
                return None
            case StartRollout():
                return await self._start_rollout(dep, effect)
            case PromoteCanary():
                return await self._promote(dep, effect)
            case SwitchTraffic():
                return await self._switch(dep, effect)
            case StartRollback():
                return await self._rollback(dep, effect)
            case LockForGuard():
                await self._guard_lock(dep, effect)
                return None
            case _:
                assert_never(effect)

    async def _request_approvals(self, dep: Deployment, effect: RequestApprovals) -> None:
        settings = self.ctx.environment(dep)
        if effect.stage >= len(settings.approvals):
            return
        stage = settings.approvals[effect.stage]
        groups = {s.group: await self.ctx.directory.members(s.group) for s in settings.approvals}
        members = groups[stage.group]
        votes = await self.ctx.store.votes_for(dep.id)
        progress = approvals.progress(settings.approvals, groups, dep.requester, votes)
        ttl = self.ctx.playbook(dep.service).approval_ttl(dep.env, self.ctx.policy.approval_ttl)
        await self.ctx.tell(
            ApprovalNeeded(
                dep,
                effect.stage,
                stage.group,
                progress.needed if progress.stage == effect.stage else stage.count,
                tuple(sorted(members - {dep.requester})),
                approvals.approval_deadline(await approvals_opened_at(self.ctx, dep), ttl),
            )
        )

    async def _trigger_build(self, dep: Deployment, effect: TriggerBuild) -> Event | None:
        pb = self.ctx.playbook(dep.service)
        job = pb.job_path(dep.version, dep.env)
        if job is None:
            return BuildSkipped()
        try:
            ref = await self.ctx.ci.trigger(job, pb.template_params(dep.version, dep.env), effect.key)
        except PermanentError as exc:
            return BuildFailed(reason=f"Jenkins refused the build: {exc}")
        if ref.queue_item is not None and dep.build_queue_item != ref.queue_item:
            return BuildQueued(queue_item=ref.queue_item)
        return None

    async def _abort_build(self, dep: Deployment, effect: AbortBuild) -> None:
        job = self.ctx.playbook(dep.service).job_path(dep.version, dep.env)
        if job is None or (effect.queue_item is None and effect.number is None):
            return
        try:
            await self.ctx.ci.abort(BuildRef(job, effect.queue_item, effect.number))
        except PermanentError as exc:
            # The deployment is already cancelled; a build we cannot stop is worth a log line, not a retry.
            log.warning("%s: could not abort build %s: %s", dep.id, effect.number or effect.queue_item, exc)

    async def _start_rollout(self, dep: Deployment, effect: StartRollout) -> Event:
        target = self.ctx.target_of(dep)
        image = self.ctx.image(dep)
        try:
            if dep.strategy is Strategy.CANARY:
                weights = self.ctx.canary_steps(dep)
                await self.ctx.cluster.canary_step(target, image, weights[effect.step], effect.key)
            elif dep.strategy is Strategy.BLUE_GREEN:
                colour = await self.ctx.cluster.deploy_color(target, image, effect.key)
                await self.ctx.store.complete_key(effect.key, {"color": colour}, self.ctx.clock.now())
            else:
                await self.ctx.cluster.set_image(target, image, effect.key)
        except PermanentError as exc:
            # Step 0: nothing live changed yet, so the deployment fails cleanly; later steps roll back.
            if effect.step == 0:
                return DeployRefused(reason=str(exc))
            return RolloutFailed(reason=str(exc))
        return RolloutStarted(step=effect.step)

    async def _promote(self, dep: Deployment, effect: PromoteCanary) -> Event:
        try:
            await self.ctx.cluster.promote_canary(self.ctx.target_of(dep), self.ctx.image(dep), effect.key)
        except PermanentError as exc:
            # The canary is live: a promotion that cannot happen must roll back, not hang.
            return RolloutFailed(reason=f"promotion failed: {exc}")
        return RolloutStarted(step=effect.step)

    async def _switch(self, dep: Deployment, effect: SwitchTraffic) -> Event:
        try:
            colour = await self._new_colour(dep)
            await self.ctx.cluster.switch_traffic(self.ctx.target_of(dep), colour, effect.key)
        except PermanentError as exc:
            return RolloutFailed(reason=f"switching traffic failed: {exc}")
        # Switching a Service's selector is immediate: the step is rolled out as soon as it is done.
        return RolloutCompleted(step=effect.step)

    async def _new_colour(self, dep: Deployment) -> str:
        record = await self.ctx.store.get_key(f"{dep.id}:rollout:0")
        colour = (record.result or {}).get("color") if record else None
        if not isinstance(colour, str):
            raise PermanentError(f"{dep.id}: the colour deployed in step 0 was not recorded")
        return colour

    async def _rollback(self, dep: Deployment, effect: StartRollback) -> Event | None:
        target = self.ctx.target_of(dep)
        by = await self._rollback_requester(dep)
        await self.ctx.tell(RollbackStarted(dep, effect.to_version, dep.reason or "rollback", by))
        plan = rollback_plan(dep, len(self.ctx.canary_steps(dep)))
        image = self.ctx.image(dep, effect.to_version) if effect.to_version and plan.undo_to_image else None
        try:
            if plan.abort_canary:
                await self.ctx.cluster.abort_canary(target, effect.key)
            if plan.undo:
                await self.ctx.cluster.undo(target, image, effect.key)
        except PermanentError as exc:
            return RollbackFailed(reason=f"rollback failed: {exc}")
        if plan.completes_at_once:
            # Scaling the canary to 0 or switching the Service back takes effect at once.
            restored = effect.to_version or dep.previous_version or "the previous version"
            return RollbackCompleted(version=restored)
        return None  # the rollback's rollout is polled until it is done

    async def _rollback_requester(self, dep: Deployment) -> str | None:
        """Who asked for this rollback (the user of its ``RollbackRequested``), None if the engine did.

        A deployment rolls back once, so a stored ``RollbackRequested`` is what started it.
        """
        for stored in reversed(await self.ctx.store.events_for(dep.id)):
            if stored.type == RollbackRequested.__name__:
                event = event_from_payload(stored.type, stored.payload)
                return event.user if isinstance(event, RollbackRequested) else None
        return None

    async def _guard_lock(self, dep: Deployment, effect: LockForGuard) -> None:
        now = self.ctx.clock.now()
        existing = [
            lk
            for lk in await self.ctx.store.active_locks(dep.env)
            if lk.kind is LockKind.GUARD and lk.deployment_id == dep.id
        ]
        lock = (
            existing[0]
            if existing
            else await self.ctx.store.add_lock(
                Lock(
                    None, dep.env, dep.service, LockKind.GUARD, effect.reason, BOT, now, deployment_id=dep.id
                )
            )
        )
        if not existing:
            channel = self.ctx.channel(dep)
            await self.ctx.tell(
                EnvLocked(
                    dep.env, dep.service, LockKind.GUARD.value, effect.reason, BOT, channel, dep.id, lock.id
                )
            )
        if effect.after_rollback and self.ctx.policy.rollback_guard:
            watches = [w for w in await self.ctx.store.active_watches() if w.deployment_id == dep.id]
            if not watches:
                restored = dep.version if dep.is_rollback else dep.previous_version
                await self.ctx.store.add_watch(
                    GuardWatch(None, dep.id, dep.service, dep.env, restored, lock.id, now)
                )
