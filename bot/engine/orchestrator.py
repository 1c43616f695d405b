"""The orchestrator: every command, click and poll result becomes an event on one deployment.

``handle`` is the one way a deployment changes: load it, ask the pure state machine what the event
means, store the new deployment, the event and the effects to perform in one transaction, then
perform the effects. Effects are kept in the store's outbox until done, so a crash between storing
and acting loses nothing (``recover`` finishes them) and, because every effect is keyed and every
adapter finds its own earlier work by that key, nothing runs twice.

The commands people type (deploy, approve, reject, cancel, rollback, promote, lock, unlock) check
policy first and answer with an ``Outcome``: a clear message either way, and no change when refused.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain import approvals, buttons, ids
from bot.domain.audit import AuditEntry
from bot.domain.commands import Deploy, Rollback
from bot.domain.deployment import Deployment, Strategy
from bot.domain.effects import Effect, effect_from_payload, effect_to_payload
from bot.domain.events import (
    ApprovalRecorded,
    ApprovalsComplete,
    ApprovalsRequired,
    ApprovalsSkipped,
    Cancelled,
    Event,
    GuardPassed,
    Promoted,
    Rejected,
    RollbackRequested,
    event_from_payload,
    event_to_payload,
    event_type_name,
)
from bot.domain.locks import Lock, LockKind, lock_status
from bot.domain.message import Code, Mention, Message, join
from bot.domain.notifications import ApprovalGiven, DeploymentOpened, EnvLocked, EnvUnlocked, Refused
from bot.domain.phases import Phase
from bot.domain.playbook import UnknownEnvironment, check_version
from bot.domain.transitions import InvalidTransition, apply
from bot.domain.watch import WatchStatus
from bot.engine.context import Context, UnknownService, version_of_image
from bot.engine.policy import Concurrency
from bot.errors import ShipthreadError, TransientError
from bot.ports import DuplicateDeployment, PendingEffect

log = logging.getLogger("shipthread.engine")

BOT = "shipthread"
"""The actor of what the bot does by itself (guard rollbacks, guard locks)."""

_ROLLBACKABLE = buttons.ROLLBACKABLE
_CANCELLABLE = buttons.CANCELLABLE


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a person's command: what happened, in words they can act on.

    ``message`` is structured (the Slack layer renders it, ``str()`` gives the CLI and logs' form).
    """

    ok: bool
    message: Message
    deployment: Deployment | None = None


class Timer:
    """What the orchestrator asks of the scheduler; the default does nothing (tests drive ticks)."""

    def follow(self, deployment_id: str) -> None:
        """Poll this deployment until it is finished."""

    def forget(self, deployment_id: str) -> None:
        """Stop polling it."""


IdSource = Callable[[], str]
"""Where new deployment ids come from (the default draws ``bot.domain.ids`` ids; tests inject)."""

_ID_ATTEMPTS = 5
"""Ids drawn for one new deployment before a taken id is an error (one retry is already unheard of)."""

TransitionHook = Callable[[str, Deployment, Event], None]
"""Called with ``"before"`` just before a transition is stored and ``"after"`` right after it,
before its effects run. The crash tests hook in here to kill the process at every transition."""


class Orchestrator:
    def __init__(
        self,
        ctx: Context,
        *,
        timer: Timer | None = None,
        on_transition: TransitionHook | None = None,
        new_id: IdSource | None = None,
    ) -> None:
        self.ctx = ctx
        self._id_source = new_id
        self.timer = timer or Timer()
        self._on_transition = on_transition
        # Weak: a lock lives while someone holds or waits for it, so finished deployments cost nothing.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._running: set[str] = set()
        self.perform: Callable[[Deployment, Effect], Awaitable[None]] | None = None
        """Set by the engine: performs one effect (``bot.engine.effects.Effects.perform``)."""

    # -- the one way a deployment changes -----------------------------------------------------------

    def lock_for(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def handle(self, deployment_id: str, event: Event, completes: str | None = None) -> Deployment:
        """Apply ``event`` to the stored deployment, store the result with its effects, run them.

        ``completes`` is the key of the effect whose result ``event`` is: it is marked done in the
        same transaction, so a restart never performs it again after its result was stored.
        Raises ``InvalidTransition`` (nothing changed) when the deployment's phase refuses it.
        """
        ctx = self.ctx
        async with self.lock_for(deployment_id):
            dep = await self._load(deployment_id)
            now = ctx.clock.now()
            decision = apply(dep, event, now)
            pending = [_pending(effect, now) for effect in decision.effects]
            if self._on_transition is not None:
                self._on_transition("before", decision.deployment, event)
            await ctx.store.save_transition(
                decision.deployment,
                dep.version_no,
                event_type_name(event),
                event_to_payload(event),
                now,
                pending,
                (completes,) if completes else (),
            )
            new = decision.deployment
            log.info("%s %s: %s -> %s", new.id, event_type_name(event), dep.phase, new.phase)
            if self._on_transition is not None:
                self._on_transition("after", new, event)
        if new.phase.terminal:
            self.timer.forget(new.id)
        else:
            self.timer.follow(new.id)
        await self.run_effects(new.id)
        if new.phase.terminal:
            await self.start_next(new.service, new.env)
        return new

    async def try_handle(
        self, deployment_id: str, event: Event, completes: str | None = None
    ) -> Deployment | None:
        """``handle``, treating a refused (stale) event as nothing to do: ticks and late callbacks."""
        try:
            return await self.handle(deployment_id, event, completes)
        except InvalidTransition as exc:
            log.info("ignored stale event: %s", exc)
            return None

    async def run_effects(self, deployment_id: str | None = None) -> None:
        """Perform the outbox's pending effects (of one deployment, or all), oldest first, once each."""
        for item in await self.ctx.store.pending_effects(deployment_id):
            if item.key in self._running:
                continue
            self._running.add(item.key)
            try:
                dep = await self._load(item.deployment_id)
                effect = effect_from_payload(item.effect_type, item.payload)
                assert self.perform is not None, "the engine wires perform"
                await self._perform(dep, effect)
                await self.ctx.store.effect_done(item.key, self.ctx.clock.now())
            except TransientError as exc:
                log.warning("effect %s will be retried: %s", item.key, exc)
                await self._effect_failed(item.key, str(exc))
            except Exception as exc:
                # A bug or an unexpected answer: keep the effect pending (a tick retries it) and say so.
                log.exception("effect %s failed", item.key)
                await self._effect_failed(item.key, f"{type(exc).__name__}: {exc}")
            finally:
                self._running.discard(item.key)

    async def _perform(self, dep: Deployment, effect: Effect) -> None:
        assert self.perform is not None
        await self.perform(dep, effect)

    async def _effect_failed(self, key: str, error: str) -> None:
        await self.ctx.store.effect_failed(key, error[:2000], self.ctx.clock.now())

    async def _load(self, deployment_id: str) -> Deployment:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            raise UnknownDeployment(f"no deployment {deployment_id!r}")
        return dep

    # -- /deploy ------------------------------------------------------------------------------------

    async def request(self, cmd: Deploy, user: str, channel: str | None) -> Outcome:
        """``/deploy service version [to env]``: policy checks, then a new deployment and its thread."""
        ctx = self.ctx
        now = ctx.clock.now()
        try:
            pb = ctx.playbook(cmd.service)
            env = cmd.env or pb.default_environment
            settings = pb.environment(env)
            check_version(cmd.version)
        except (UnknownService, UnknownEnvironment, ValueError) as exc:
            return await self._refuse(user, channel, "deploy", _target(cmd.service, cmd.env), str(exc))
        strategy = cmd.strategy or settings.strategy
        if strategy is Strategy.CANARY and settings.canary is None:
            return await self._refuse(
                user, channel, "deploy", f"{cmd.service}/{env}", f"{env} has no canary steps in the playbook"
            )
        if strategy is Strategy.BLUE_GREEN and settings.blue_green is None:
            return await self._refuse(
                user,
                channel,
                "deploy",
                f"{cmd.service}/{env}",
                f"{env} has no blue_green section in the playbook",
            )
        target_name = f"{cmd.service}/{env}"
        if cmd.emergency_reason is not None:
            members = await self._break_glass_members()
            emergency = approvals.decide_emergency(user, cmd.emergency_reason, members)
            if not emergency.allowed:
                return await self._refuse(
                    user, channel, "emergency", target_name, emergency.refusal or "refused"
                )
        async with self.lock_for(f"service:{cmd.service}/{env}"):
            status = lock_status(cmd.service, env, now, await ctx.store.active_locks(env), ctx.policy.freezes)
            blockers = status.emergency_blockers if cmd.emergency_reason is not None else status.reasons
            if blockers:
                why = join("; ", (Message.of(f"{r.kind}: ", r.reason) for r in blockers))
                return await self._refuse(
                    user,
                    channel,
                    "deploy",
                    target_name,
                    Message.of(f"{env} is locked for {cmd.service} (", why, ")"),
                )
            for prerequisite in settings.requires:
                if not await self._succeeded_in(
                    cmd.service, prerequisite.succeeded_in, cmd.version, now, prerequisite.within
                ):
                    return await self._refuse(
                        user,
                        channel,
                        "deploy",
                        target_name,
                        f"{env} needs {cmd.service} {cmd.version} to have succeeded in "
                        f"{prerequisite.succeeded_in} first",
                    )
            active = await ctx.store.active_deployments(cmd.service, env)
            if active and ctx.policy.concurrency is Concurrency.REFUSE:
                busy = active[0]
                return await self._refuse(
                    user,
                    channel,
                    "deploy",
                    target_name,
                    Message.of(
                        f"{cmd.service} is already being deployed to {env}: ",
                        Code(busy.id),
                        f" ({busy.version}, {busy.phase})",
                    ),
                )
            try:
                live = await ctx.cluster.live(ctx.target(cmd.service, env, strategy))
            except ShipthreadError as exc:
                return await self._refuse(
                    user, channel, "deploy", target_name, f"cannot read what runs in {env} now: {exc}"
                )
            dep = Deployment(
                id=self._new_id(),
                service=cmd.service,
                env=env,
                version=cmd.version,
                strategy=strategy,
                requester=user,
                phase=Phase.REQUESTED,
                created_at=now,
                updated_at=now,
                emergency_reason=cmd.emergency_reason,
                previous_version=version_of_image(pb, env, live.image),
            )
            dep = await self._store_new(
                dep, "DeploymentRequested", {"user": user, "channel": channel, "live_image": live.image}
            )
        queued = bool(active)
        await self._audit(
            user, "deploy", channel, dep.id, "accepted", version=cmd.version, env=env, queued=queued
        )
        if cmd.emergency_reason is not None:
            await self._audit(user, "emergency", channel, dep.id, "accepted", reason=cmd.emergency_reason)
        await ctx.tell(DeploymentOpened(dep, ctx.channel(dep) or channel or ""))
        if queued:
            queued_behind = Message.of(
                Code(dep.id), " queued behind ", Code(active[0].id), ": it starts when that one ends"
            )
            return Outcome(True, queued_behind, dep)
        dep = await self._begin(dep)
        return Outcome(
            True, Message.of(Code(dep.id), f": deploying {dep.service} {dep.version} to {dep.env}"), dep
        )

    async def _begin(self, dep: Deployment) -> Deployment:
        """The first event of a deployment that holds its service and environment."""
        event: Event
        if dep.is_rollback:
            event = RollbackRequested(
                user=dep.requester, reason=dep.reason or "rollback", to_version=dep.version
            )
        elif dep.emergency_reason is not None:
            event = ApprovalsSkipped(emergency_reason=dep.emergency_reason)
        elif not self.ctx.environment(dep).approvals:
            event = ApprovalsSkipped()
        else:
            event = ApprovalsRequired()
        return await self.handle(dep.id, event)

    async def start_next(self, service: str, env: str) -> None:
        """A deployment ended: start the oldest queued request for the same service and environment."""
        async with self.lock_for(f"service:{service}/{env}"):
            active = await self.ctx.store.active_deployments(service, env)
            if any(d.phase is not Phase.REQUESTED for d in active):
                return
            queued = sorted((d for d in active if d.phase is Phase.REQUESTED), key=lambda d: d.created_at)
        if queued:
            try:
                await self._begin(queued[0])
            except TransientError as exc:
                # Another replica took the slot first (the store's one-active rule): stay queued.
                log.info("%s stays queued: %s", queued[0].id, exc)

    async def _succeeded_in(
        self, service: str, env: str, version: str, now: datetime, within: timedelta | None
    ) -> bool:
        """Did ``version`` succeed in ``env`` (within ``within`` of now, when given)?"""
        dep = await self.ctx.store.succeeded(service, env, version)
        return dep is not None and (within is None or dep.updated_at >= now - within)

    # -- approvals ----------------------------------------------------------------------------------

    async def vote(
        self,
        deployment_id: str,
        user: str,
        approve: bool,
        reason: str | None = None,
        channel: str | None = None,
        stage: int | None = None,
    ) -> Outcome:
        """An Approve or Reject click (Reject needs a reason).

        ``stage`` (0-based) is the approval stage the button was drawn for: refused at any other,
        so an old stage-1 button never votes in stage 2.
        """
        action = "approve" if approve else "reject"
        if not approve and not (reason and reason.strip()):
            return await self._refuse(user, channel, action, deployment_id, "a rejection needs a reason")
        async with self.lock_for(f"votes:{deployment_id}"):
            dep = await self.ctx.store.get_deployment(deployment_id)
            if dep is None:
                return await self._refuse(
                    user, channel, action, deployment_id, f"no deployment {deployment_id}"
                )
            if dep.phase is not Phase.AWAITING_APPROVAL:
                return await self._refuse(
                    user,
                    channel,
                    action,
                    dep.id,
                    f"{dep.id} is not waiting for approvals (it is {dep.phase})",
                )
            stages = self.ctx.environment(dep).approvals
            members = await self._members(s.group for s in stages)
            votes = await self.ctx.store.votes_for(dep.id)
            check = approvals.check_vote(
                stages,
                members,
                dep.requester,
                votes,
                user,
                dep.approval_stage if stage is None else stage,
                approve=approve,
            )
            if not check.allowed:
                return await self._refuse(user, channel, action, dep.id, check.reason or "not allowed")
            vote = approvals.Vote(dep.id, dep.approval_stage, user, approve, self.ctx.clock.now(), reason)
            if not await self.ctx.store.add_vote(vote):
                await self.settle_votes(dep.id)
                return Outcome(True, Message.of("your vote was already recorded"), dep)
        await self._audit(user, action, channel, dep.id, "accepted", stage=dep.approval_stage, reason=reason)
        await self.ctx.tell(ApprovalGiven(dep, user, dep.approval_stage, approve, reason))
        new = await self.settle_votes(dep.id)
        return Outcome(True, Message.of("approved " if approve else "rejected ", Code(dep.id)), new or dep)

    async def settle_votes(self, deployment_id: str) -> Deployment | None:
        """Bring an awaiting deployment up to date with its stored votes.

        The vote is stored before its event; if the process dies in between, the next poll (or a
        repeated click) finishes the job from the votes alone, so no approval is ever lost.
        """
        async with self.lock_for(f"settle:{deployment_id}"):
            dep = await self.ctx.store.get_deployment(deployment_id)
            while dep is not None and dep.phase is Phase.AWAITING_APPROVAL:
                stages = self.ctx.environment(dep).approvals
                members = await self._members(s.group for s in stages)
                votes = await self.ctx.store.votes_for(dep.id)
                progress = approvals.progress(stages, members, dep.requester, votes)
                last = votes[-1].user if votes else dep.requester
                event: Event
                if progress.rejected_by is not None:
                    event = Rejected(user=progress.rejected_by.user, reason=progress.rejected_by.reason or "")
                elif progress.done:
                    event = ApprovalsComplete(user=last)
                elif progress.stage > dep.approval_stage:
                    event = ApprovalRecorded(user=last, stage=dep.approval_stage, stage_complete=True)
                else:
                    return dep
                new = await self.try_handle(dep.id, event)
                if new is None:
                    return await self.ctx.store.get_deployment(deployment_id)
                dep = new
            return dep

    # -- cancel, rollback, promote ------------------------------------------------------------------

    async def cancel(
        self, deployment_id: str, user: str, reason: str | None = None, channel: str | None = None
    ) -> Outcome:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            return await self._refuse(
                user, channel, "cancel", deployment_id, f"no deployment {deployment_id}"
            )
        if user != dep.requester and user not in await self._break_glass_members():
            return await self._refuse(
                user,
                channel,
                "cancel",
                dep.id,
                Message.of("only the requester (", Mention(dep.requester), ") or break-glass may cancel"),
            )
        if dep.phase not in _CANCELLABLE:
            hint = " — use /rollback to undo it" if dep.phase in _ROLLBACKABLE else ""
            return await self._refuse(user, channel, "cancel", dep.id, f"{dep.id} is {dep.phase}{hint}")
        new = await self.try_handle(dep.id, Cancelled(user=user, reason=reason))
        if new is None:
            return await self._refuse(user, channel, "cancel", dep.id, f"{dep.id} can no longer be cancelled")
        await self._audit(user, "cancel", channel, dep.id, "accepted", reason=reason)
        return Outcome(True, Message.of("cancelled ", Code(dep.id)), new)

    async def rollback(
        self, cmd: Rollback, user: str, channel: str | None, deployment_id: str | None = None
    ) -> Outcome:
        """``/rollback service [to version] [in env]``: undo the live deployment or the last release.

        Who: the requester of what is undone, an approver of the environment or break-glass
        (``approvals.may_roll_back``). A named version must have succeeded there (or be what ran
        before the deployment being undone) unless break-glass, and waits for manual locks and
        freezes like a deployment; guard locks do not stop a rollback, that is where they belong.
        ``deployment_id`` is the deployment a Roll back or Abort button was drawn for: refused
        unless it is still what a rollback here would undo.
        """
        ctx = self.ctx
        try:
            pb = ctx.playbook(cmd.service)
            env = cmd.env or pb.default_environment
            pb.environment(env)
            if cmd.to_version is not None:
                check_version(cmd.to_version)
        except (UnknownService, UnknownEnvironment, ValueError) as exc:
            return await self._refuse(user, channel, "rollback", _target(cmd.service, cmd.env), str(exc))
        # Plain words only: who asked is the event's ``user`` (and the audit's actor), never markup.
        reason = cmd.reason or "rollback requested"
        # Deciding and storing a new rollback happen under the slot's lock, so a second rollback
        # sees the first one (and is refused) instead of queuing a twin behind it.
        async with self.lock_for(f"service:{cmd.service}/{env}"):
            plan = await self._rollback_plan(cmd, env, user, channel, reason, deployment_id)
        if isinstance(plan, Outcome):
            return plan
        if plan.phase in _ROLLBACKABLE:
            new = await self.try_handle(
                plan.id, RollbackRequested(user=user, reason=reason, to_version=cmd.to_version)
            )
            if new is None:
                return await self._refuse(
                    user, channel, "rollback", plan.id, f"{plan.id} can no longer be rolled back"
                )
            await self._audit(
                user, "rollback", channel, plan.id, "accepted", reason=reason, to=cmd.to_version
            )
            return Outcome(True, Message.of("rolling back ", Code(plan.id)), new)
        dep = plan
        await self._audit(user, "rollback", channel, dep.id, "accepted", reason=reason, to=dep.version)
        await ctx.tell(DeploymentOpened(dep, ctx.channel(dep) or channel or ""))
        try:
            dep = await self._begin(dep)
        except (TransientError, InvalidTransition) as exc:
            stored = await ctx.store.get_deployment(dep.id)
            if stored is None or stored.phase is Phase.REQUESTED:
                # Never leave it queued: it would start by itself later, long after anyone asked.
                await self.try_handle(dep.id, Cancelled(user=BOT, reason=f"could not start: {exc}"))
                return await self._refuse(
                    user, channel, "rollback", dep.id, f"{dep.id} could not start ({exc}); nothing changed"
                )
            dep = stored  # started meanwhile by the slot's queue: it runs, once
        return Outcome(
            True, Message.of(Code(dep.id), f": rolling {cmd.service} in {env} back to {dep.version}"), dep
        )

    async def _rollback_plan(
        self,
        cmd: Rollback,
        env: str,
        user: str,
        channel: str | None,
        reason: str,
        deployment_id: str | None,
    ) -> Outcome | Deployment:
        """A refusal, the live deployment to roll back, or a new (stored, requested) rollback."""
        ctx = self.ctx
        target = f"{cmd.service}/{env}"
        active = await ctx.store.active_deployments(cmd.service, env)
        rolling = next(
            (
                d
                for d in active
                if d.phase is Phase.ROLLING_BACK or (d.is_rollback and d.phase is Phase.REQUESTED)
            ),
            None,
        )
        if rolling is not None:
            return await self._refuse(
                user,
                channel,
                "rollback",
                rolling.id,
                Message.of(f"{cmd.service} in {env} is already rolling back: ", Code(rolling.id)),
            )
        live = [d for d in active if d.phase in _ROLLBACKABLE]
        if live:
            dep = live[0]
            if deployment_id is not None and dep.id != deployment_id:
                return await self._refuse(
                    user,
                    channel,
                    "rollback",
                    deployment_id,
                    Message.of(
                        Code(deployment_id),
                        f" is not what runs in {env} now; ",
                        Code(dep.id),
                        " is: roll it back from its own thread",
                    ),
                )
            refusal = await self._rollback_refusal(cmd, env, user, dep.requester, dep.previous_version)
            if refusal is not None:
                return await self._refuse(user, channel, "rollback", dep.id, refusal)
            return dep
        if any(d.phase in (Phase.BUILDING, Phase.AWAITING_APPROVAL) for d in active):
            busy = next(d for d in active if d.phase in (Phase.BUILDING, Phase.AWAITING_APPROVAL))
            return await self._refuse(
                user,
                channel,
                "rollback",
                busy.id,
                Message.of(
                    Code(busy.id),
                    f" has deployed nothing yet ({busy.phase}): use ",
                    Code(f"/deploy cancel {busy.id}"),
                ),
            )
        # The newest change that stuck: a release, or a /rollback that already undid the one before.
        newest = next(
            (
                d
                for d in await ctx.store.history(cmd.service, env, limit=50)
                if d.phase is Phase.SUCCEEDED or (d.is_rollback and d.phase is Phase.ROLLED_BACK)
            ),
            None,
        )
        last = newest if newest is not None and not newest.is_rollback else None
        undone = (
            Message.of(": it was rolled back by ", Code(newest.id), f" (to {newest.version})")
            if newest is not None and newest.is_rollback
            else Message.of()
        )
        if deployment_id is not None and (last is None or last.id != deployment_id):
            return await self._refuse(
                user,
                channel,
                "rollback",
                deployment_id,
                Message.of(Code(deployment_id), f" is no longer the release live in {env}", undone),
            )
        if last is None and cmd.to_version is None:
            nothing = (
                Message.of(f"the last release of {cmd.service} in {env} is already undone", undone)
                if undone.parts
                else Message.of(f"no succeeded release of {cmd.service} in {env} to undo")
            )
            return await self._refuse(
                user,
                channel,
                "rollback",
                target,
                Message.of(
                    nothing, "; name a version: ", Code(f"/rollback {cmd.service} to <version> in {env}")
                ),
            )
        to_version = cmd.to_version or (last.previous_version if last else None)
        if to_version is None:
            return await self._refuse(
                user,
                channel,
                "rollback",
                target,
                Message.of(
                    f"I do not know what ran before {last.version if last else 'it'}; name it: ",
                    Code(f"/rollback {cmd.service} to <version> in {env}"),
                ),
            )
        refusal = await self._rollback_refusal(
            cmd, env, user, last.requester if last else None, last.previous_version if last else None
        )
        if refusal is not None:
            return await self._refuse(user, channel, "rollback", target, refusal)
        now = ctx.clock.now()
        try:
            current = await ctx.cluster.live(ctx.target(cmd.service, env, Strategy.ROLLING))
        except ShipthreadError as exc:
            return await self._refuse(user, channel, "rollback", target, f"cannot read {env}: {exc}")
        dep = Deployment(
            id=self._new_id(),
            service=cmd.service,
            env=env,
            version=to_version,
            strategy=Strategy.ROLLING,
            requester=user,
            phase=Phase.REQUESTED,
            created_at=now,
            updated_at=now,
            is_rollback=True,
            previous_version=version_of_image(ctx.playbook(cmd.service), env, current.image),
            reason=reason,
        )
        return await self._store_new(dep, "RollbackRequestedByCommand", {"user": user, "channel": channel})

    async def _rollback_refusal(
        self, cmd: Rollback, env: str, user: str, requester: str | None, ran_before: str | None
    ) -> Message | None:
        """Why ``user`` may not roll back here (None when they may).

        ``requester`` asked for what is undone; ``ran_before`` is what ran before it (a version
        that was live there, so naming it needs no proof).
        """
        ctx = self.ctx
        stages = ctx.playbook(cmd.service).environment(env).approvals
        members = await self._members(s.group for s in stages)
        glass = await self._break_glass_members()
        if not approvals.may_roll_back(user, requester, stages, members, glass):
            who = Message.of("the requester (", Mention(requester), "), ") if requester else Message.of()
            return Message.of(
                "only ", who, f"an approver of {env} or break-glass may roll back {cmd.service} there"
            )
        version = cmd.to_version
        if version is None:
            return None
        breaks_glass = approvals.may_break_glass(user, glass)
        ran_here = version == ran_before or await ctx.store.succeeded(cmd.service, env, version) is not None
        if not ran_here and not breaks_glass:
            return Message.of(
                f"{cmd.service} {version} never succeeded in {env}: a rollback puts back a version that "
                "ran there (deploy a new one with ",
                Code(f"/deploy {cmd.service} {version}"),
                ", or ask break-glass)",
            )
        status = lock_status(
            cmd.service, env, ctx.clock.now(), await ctx.store.active_locks(env), ctx.policy.freezes
        )
        blockers = [
            r
            for r in status.reasons
            if r.kind is LockKind.MANUAL or (r.kind is LockKind.FREEZE and not breaks_glass)
        ]
        if blockers:
            why = join("; ", (Message.of(f"{r.kind}: ", r.reason) for r in blockers))
            return Message.of(
                f"{env} is locked for {cmd.service} (",
                why,
                f"): a rollback to {version} waits like a deployment",
            )
        return None

    async def promote(
        self, deployment_id: str, user: str, channel: str | None = None, step: int | None = None
    ) -> Outcome:
        """A person's judgment on a held deployment: go on (next step, or finish).

        ``step`` is the step the person looked at (a Promote button carries it): refused once the
        deployment is at another one, so two people clicking one Promote promote it once, and
        nobody promotes a step they have not seen. Concurrent promotes of one deployment queue.
        """
        async with self.lock_for(f"promote:{deployment_id}"):
            return await self._promote(deployment_id, user, channel, step)

    async def _promote(self, deployment_id: str, user: str, channel: str | None, step: int | None) -> Outcome:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            return await self._refuse(
                user, channel, "promote", deployment_id, f"no deployment {deployment_id}"
            )
        if dep.phase is not Phase.VERIFYING:
            return await self._refuse(
                user, channel, "promote", dep.id, f"{dep.id} is {dep.phase}, not verifying"
            )
        stages = self.ctx.environment(dep).approvals
        allowed = await self._members(s.group for s in stages)
        deciders = set().union(*allowed.values()) if allowed else set()
        deciders |= await self._break_glass_members()
        if stages and (user not in deciders or user == dep.requester):
            return await self._refuse(
                user,
                channel,
                "promote",
                dep.id,
                "only an approver of this environment (not the requester) may promote",
            )
        if step is not None and step != dep.step:
            return await self._refuse(
                user,
                channel,
                "promote",
                dep.id,
                f"{dep.id} has moved on from the step that button was for: judge the step it is at now",
            )
        event = self.next_step_event(dep, user)
        new = await self.try_handle(dep.id, event)
        if new is None:
            return await self._refuse(user, channel, "promote", dep.id, f"{dep.id} cannot be promoted now")
        await self._audit(user, "promote", channel, dep.id, "accepted")
        return Outcome(True, Message.of("promoted ", Code(dep.id)), new)

    def next_step_event(self, dep: Deployment, user: str | None = None) -> Event:
        """What a clean window (or a person's promote) means for the step the deployment is at."""
        if dep.strategy is Strategy.CANARY:
            steps = len(self.ctx.canary_steps(dep))
            if dep.step < steps:
                return Promoted(user=user, final=dep.step + 1 == steps)
        elif dep.strategy is Strategy.BLUE_GREEN and dep.step == 0:
            return Promoted(user=user)
        return GuardPassed(user=user)

    # -- locks ----------------------------------------------------------------------------------------

    async def lock(
        self, env: str, service: str | None, reason: str, user: str, channel: str | None = None
    ) -> Outcome:
        target = f"{env}/{service}" if service else env
        now = self.ctx.clock.now()
        existing = [
            lk
            for lk in await self.ctx.store.active_locks(env)
            if lk.kind is LockKind.MANUAL and lk.service == service
        ]
        if existing:
            return await self._refuse(
                user,
                channel,
                "lock",
                target,
                Message.of(
                    f"{target} is already locked by ", Mention(existing[0].author), ": ", existing[0].reason
                ),
            )
        lock = await self.ctx.store.add_lock(Lock(None, env, service, LockKind.MANUAL, reason, user, now))
        await self._audit(user, "lock", channel, target, "accepted", reason=reason, lock_id=lock.id)
        await self.ctx.tell(
            EnvLocked(env, service, LockKind.MANUAL.value, reason, user, channel, lock_id=lock.id)
        )
        return Outcome(True, Message.of(f"locked {target}: ", reason))

    async def unlock(self, env: str, service: str | None, user: str, channel: str | None = None) -> Outcome:
        """Lift the manual and guard locks on ``env`` (or on one service there); freezes are config.

        All or nothing: refused, lifting none, unless ``user`` may lift every one of them.
        """
        target = f"{env}/{service}" if service else env
        lifted = [
            lk
            for lk in await self.ctx.store.active_locks(env)
            if lk.kind is not LockKind.FREEZE and lk.service == service
        ]
        if not lifted:
            return await self._refuse(user, channel, "unlock", target, f"{target} has no lock to lift")
        for lock in lifted:
            if not await self.may_unlock(user, lock):
                return await self._refuse(user, channel, "unlock", target, _unlock_refusal(lock))
        for lock in lifted:
            await self._lift(lock, user, channel)
        await self._audit(user, "unlock", channel, target, "accepted", locks=[lk.id for lk in lifted])
        return Outcome(True, Message.of(f"unlocked {target}"))

    async def unlock_lock(self, lock_id: int, user: str, channel: str | None = None) -> Outcome:
        """Lift one lock, by id (an Unlock button in a thread or on App Home): only that one."""
        lock = await self.ctx.store.get_lock(lock_id)
        if lock is None or lock.released_at is not None:
            return await self._refuse(user, channel, "unlock", str(lock_id), "that lock was already lifted")
        target = f"{lock.env}/{lock.service}" if lock.service else lock.env
        if not await self.may_unlock(user, lock):
            return await self._refuse(user, channel, "unlock", target, _unlock_refusal(lock))
        await self._lift(lock, user, channel)
        await self._audit(user, "unlock", channel, target, "accepted", locks=[lock.id])
        return Outcome(True, Message.of(f"unlocked {target} ({lock.kind} lock)"))

    async def may_unlock(self, user: str, lock: Lock) -> bool:
        """``approvals.may_unlock`` for ``lock``, with the groups and people it needs looked up.

        The approval stages are those of the lock's environment in every playbook it covers (one
        service, or all of them for an environment-wide lock).
        """
        stages = [
            stage
            for book in self.ctx.playbooks.values()
            if lock.service in (None, book.service)
            for name, settings in book.environments.items()
            if name == lock.env
            for stage in settings.approvals
        ]
        members = await self._members(s.group for s in stages)
        involved = await self._involved(lock) if lock.kind is LockKind.GUARD else frozenset()
        return approvals.may_unlock(user, lock, stages, members, await self._break_glass_members(), involved)

    async def _involved(self, lock: Lock) -> frozenset[str]:
        """The people behind a guard lock's deployment: its requester and who asked for its rollback."""
        if lock.deployment_id is None:
            return frozenset()
        dep = await self.ctx.store.get_deployment(lock.deployment_id)
        if dep is None:
            return frozenset()
        people = {dep.requester}
        for stored in await self.ctx.store.events_for(dep.id):
            if stored.type == RollbackRequested.__name__:
                event = event_from_payload(stored.type, stored.payload)
                if isinstance(event, RollbackRequested) and event.user:
                    people.add(event.user)
        return frozenset(people)

    async def _lift(self, lock: Lock, user: str, channel: str | None) -> None:
        assert lock.id is not None
        await self.ctx.store.release_lock(lock.id, user, self.ctx.clock.now())
        if lock.kind is LockKind.GUARD:
            for watch in await self.ctx.store.active_watches():
                if watch.lock_id == lock.id:
                    await self.ctx.store.save_watch(replace(watch, status=WatchStatus.STOPPED))
        # No reason: a person lifted it, and ``by`` says who (the renderer words it).
        unlocked = EnvUnlocked(
            lock.env, lock.service, lock.kind.value, None, user, channel, lock.deployment_id, lock.id
        )
        await self.ctx.tell(unlocked)

    # -- small helpers --------------------------------------------------------------------------------

    async def _members(self, groups: Iterable[str]) -> dict[str, frozenset[str]]:
        return {g: await self.ctx.directory.members(g) for g in dict.fromkeys(groups)}

    async def _break_glass_members(self) -> frozenset[str]:
        group = self.ctx.policy.break_glass_group
        return await self.ctx.directory.members(group) if group else frozenset()

    async def _refuse(
        self, user: str, channel: str | None, action: str, target: str, message: Message | str
    ) -> Outcome:
        """Say no, record that we did, change nothing else. A bare ``str`` is plain text."""
        said = message if isinstance(message, Message) else Message.of(message)
        await self._audit(user, action, channel, target, f"refused: {said}")
        await self.ctx.tell(Refused(user, channel or "", said, action, target))
        return Outcome(False, said)

    async def _audit(
        self, actor: str, action: str, channel: str | None, target: str | None, outcome: str, **detail: object
    ) -> None:
        entry = AuditEntry(
            at=self.ctx.clock.now(),
            actor=actor,
            action=action,
            channel=channel,
            target=target,
            outcome=outcome,
            detail={k: v for k, v in detail.items() if v is not None},
        )
        await self.ctx.store.record_audit(entry)

    def _new_id(self) -> str:
        # Short enough to type in /deploy cancel, wide enough for millions (odds in bot.domain.ids).
        if self._id_source is not None:
            return self._id_source()
        return ids.deployment_id(self.ctx.policy.id_prefix, secrets.randbits(ids.ID_BITS))

    async def _store_new(self, dep: Deployment, event_type: str, payload: dict[str, object]) -> Deployment:
        """Store a new deployment; a taken id is a retry with a fresh one, not the requester's problem."""
        for attempt in range(1, _ID_ATTEMPTS + 1):
            try:
                await self.ctx.store.create_deployment(dep, event_type, payload)
                return dep
            except DuplicateDeployment:
                if attempt == _ID_ATTEMPTS:
                    raise
                log.warning("deployment id %s is taken (attempt %d): drawing another", dep.id, attempt)
                dep = replace(dep, id=self._new_id())
        raise AssertionError("unreachable")  # pragma: no cover


class UnknownDeployment(ShipthreadError):
    """An event or effect for a deployment the store does not have."""


def _unlock_refusal(lock: Lock) -> str:
    """Who may lift ``lock`` (``approvals.may_unlock`` in words), for the person who may not."""
    if lock.kind is LockKind.GUARD:
        return (
            f"only an approver of {lock.env}, the people behind the rolled-back deployment or break-glass "
            "may lift this guard lock"
        )
    return f"only the lock's author, an approver of {lock.env} or break-glass may lift this {lock.kind} lock"


def _target(service: str, env: str | None) -> str:
    """The audit target of a request: ``service/env``, or the service alone before env is known."""
    return f"{service}/{env}" if env else service


def _pending(effect: Effect, now: datetime) -> PendingEffect:
    effect_type, payload = effect_to_payload(effect)
    return PendingEffect(effect.key, effect.deployment_id, effect_type, payload, now)
