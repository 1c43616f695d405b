"""``/rollback`` and the Roll back / Abort buttons: who may undo what, and how.

A rollback undoes the live deployment (deploying or verifying: the state machine rolls it back) or,
when nothing is live, the newest release that stuck, with a new ``/rollback`` deployment that puts
the version before it back. Who may: the requester of what is undone, an approver of the
environment or break-glass; a named version must have run there, and waits for manual locks and
freezes like a deployment (guard locks never stop a rollback: that is where they belong).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import approvals
from bot.domain.audit import BOT
from bot.domain.commands import Rollback
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import Cancelled, RollbackRequested
from bot.domain.locks import LockKind, lock_status
from bot.domain.message import Code, Mention, Message, join
from bot.domain.notifications import DeploymentOpened
from bot.domain.phases import Phase
from bot.domain.playbook import check_version
from bot.domain.transitions import CANCELLABLE, ROLLBACKABLE
from bot.engine.context import version_of_image
from bot.engine.handling import Handler, Outcome, request_target
from bot.errors import InvalidTransition, ShipthreadError, TransientError, UnknownEnvironment, UnknownService


@dataclass(frozen=True, slots=True)
class _Ask:
    """One rollback being decided: what was asked, where, by whom, from where, why, for which
    deployment (the one a Roll back or Abort button was drawn for; None for the command)."""

    cmd: Rollback
    env: str
    user: str
    channel: str | None
    reason: str
    deployment_id: str | None


class Rollbacks(Handler):
    """Rollbacks (mixed into ``bot.engine.orchestrator.Orchestrator``)."""

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
            return await self._refuse(
                user, channel, "rollback", request_target(cmd.service, cmd.env), str(exc)
            )
        # Plain words only: who asked is the event's ``user`` (and the audit's actor), never markup.
        reason = cmd.reason or "rollback requested"
        # Deciding and storing a new rollback happen under the slot's lock, so a second rollback
        # sees the first one (and is refused) instead of queuing a twin behind it.
        ask = _Ask(cmd, env, user, channel, reason, deployment_id)
        async with self.lock_for(f"service:{cmd.service}/{env}"):
            plan = await self._rollback_plan(ask)
        if isinstance(plan, Outcome):
            return plan
        if plan.phase in ROLLBACKABLE:
            return await self._undo_live(ask, plan)
        return await self._start_rollback(ask, plan)

    async def _undo_live(self, ask: _Ask, live: Deployment) -> Outcome:
        """Roll back the live deployment (the state machine does the undoing)."""
        user, channel, reason, to_version = ask.user, ask.channel, ask.reason, ask.cmd.to_version
        new = await self.try_handle(
            live.id, RollbackRequested(user=user, reason=reason, to_version=to_version)
        )
        if new is None:
            return await self._refuse(
                user, channel, "rollback", live.id, f"{live.id} can no longer be rolled back"
            )
        await self._audit(user, "rollback", channel, live.id, "accepted", reason=reason, to=to_version)
        return Outcome(True, Message.of("rolling back ", Code(live.id)), new)

    async def _start_rollback(self, ask: _Ask, dep: Deployment) -> Outcome:
        """Open and start a new (stored, requested) ``/rollback`` deployment."""
        ctx = self.ctx
        user, channel = ask.user, ask.channel
        await self._audit(user, "rollback", channel, dep.id, "accepted", reason=ask.reason, to=dep.version)
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
            True,
            Message.of(Code(dep.id), f": rolling {ask.cmd.service} in {ask.env} back to {dep.version}"),
            dep,
        )

    async def _rollback_plan(self, ask: _Ask) -> Outcome | Deployment:
        """A refusal, the live deployment to roll back, or a new (stored, requested) rollback."""
        cmd, env, user, channel = ask.cmd, ask.env, ask.user, ask.channel
        active = await self.ctx.store.active_deployments(cmd.service, env)
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
        live = [d for d in active if d.phase in ROLLBACKABLE]
        if live:
            return await self._live_plan(ask, live[0])
        # Begun (not merely queued) but nothing deployed yet: the way back is a cancel.
        busy = next((d for d in active if d.phase in CANCELLABLE and d.phase is not Phase.REQUESTED), None)
        if busy is not None:
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
        return await self._release_plan(ask)

    async def _live_plan(self, ask: _Ask, dep: Deployment) -> Outcome | Deployment:
        """Roll back ``dep``, the deployment live there, if the button was for it and the person may."""
        cmd, env, user, channel, deployment_id = ask.cmd, ask.env, ask.user, ask.channel, ask.deployment_id
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

    async def _release_plan(self, ask: _Ask) -> Outcome | Deployment:
        """Nothing is live: undo the newest release that stuck with a new ``/rollback`` deployment."""
        cmd, env, user, channel, deployment_id = ask.cmd, ask.env, ask.user, ask.channel, ask.deployment_id
        target = f"{cmd.service}/{env}"
        # The newest change that stuck: a release, or a /rollback that already undid the one before.
        newest = next(
            (
                d
                for d in await self.ctx.store.history(cmd.service, env, limit=50)
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
        problem = _unknown_version(cmd, env, last, undone)
        if problem is not None:
            return await self._refuse(user, channel, "rollback", target, problem)
        to_version = cmd.to_version or (last.previous_version if last else None)
        assert to_version is not None  # _unknown_version refused the other case
        refusal = await self._rollback_refusal(
            cmd, env, user, last.requester if last else None, last.previous_version if last else None
        )
        if refusal is not None:
            return await self._refuse(user, channel, "rollback", target, refusal)
        return await self._new_rollback(ask, to_version)

    async def _new_rollback(self, ask: _Ask, to_version: str) -> Outcome | Deployment:
        """Store a new ``/rollback`` deployment of ``to_version`` (requested: it begins when started)."""
        ctx = self.ctx
        cmd, env, user, channel = ask.cmd, ask.env, ask.user, ask.channel
        target = f"{cmd.service}/{env}"
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
            reason=ask.reason,
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


def _unknown_version(cmd: Rollback, env: str, last: Deployment | None, undone: Message) -> Message | None:
    """Why a rollback of the newest release (``last``) has no version to restore, or None if it has."""
    name_it = Code(f"/rollback {cmd.service} to <version> in {env}")
    if last is None and cmd.to_version is None:
        nothing = (
            Message.of(f"the last release of {cmd.service} in {env} is already undone", undone)
            if undone.parts
            else Message.of(f"no succeeded release of {cmd.service} in {env} to undo")
        )
        return Message.of(nothing, "; name a version: ", name_it)
    if (cmd.to_version or (last.previous_version if last else None)) is None:
        return Message.of(
            f"I do not know what ran before {last.version if last else 'it'}; name it: ", name_it
        )
    return None
