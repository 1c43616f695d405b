"""``/deploy``: gather the facts, let ``bot.domain.admission`` decide, and open the deployment.

The decision (strategy sections, break-glass, locks and freezes, prerequisites, a busy slot) is a
pure function; what is left here is reading the store, the directory and the cluster, and acting on
the answer: a refusal said and audited, or a new deployment stored, its thread opened, and either
begun or queued behind the deployment that holds its service and environment.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from bot.domain import admission
from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import lock_status
from bot.domain.message import Code, Message
from bot.domain.notifications import DeploymentOpened
from bot.domain.phases import Phase
from bot.domain.playbook import Environment, check_version
from bot.engine.context import version_of_image
from bot.engine.handling import Handler, Outcome, request_target
from bot.errors import ShipthreadError, UnknownEnvironment, UnknownService


class Admission(Handler):
    """The ``/deploy`` command (mixed into ``bot.engine.orchestrator.Orchestrator``)."""

    async def request(self, cmd: Deploy, user: str, channel: str | None) -> Outcome:
        """``/deploy service version [to env]``: policy checks, then a new deployment and its thread."""
        ctx = self.ctx
        try:
            pb = ctx.playbook(cmd.service)
            env = cmd.env or pb.default_environment
            settings = pb.environment(env)
            check_version(cmd.version)
        except (UnknownService, UnknownEnvironment, ValueError) as exc:
            return await self._refuse(user, channel, "deploy", request_target(cmd.service, cmd.env), str(exc))
        strategy = cmd.strategy or settings.strategy
        target_name = f"{cmd.service}/{env}"
        glass = await self._break_glass_members() if cmd.emergency_reason is not None else frozenset()
        # Deciding and storing happen under the slot's lock, so two requests never both see it free.
        async with self.lock_for(f"service:{cmd.service}/{env}"):
            facts = await self._facts(cmd, env, settings, strategy, user, glass)
            answer = admission.admit(facts)
            if isinstance(answer, admission.Refusal):
                return await self._refuse(user, channel, answer.action, target_name, answer.message)
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
                created_at=facts.now,
                updated_at=facts.now,
                emergency_reason=cmd.emergency_reason,
                previous_version=version_of_image(pb, env, live.image),
            )
            dep = await self._store_new(
                dep, "DeploymentRequested", {"user": user, "channel": channel, "live_image": live.image}
            )
        return await self._opened(dep, answer.queued_behind, user, channel)

    async def _facts(
        self,
        cmd: Deploy,
        env: str,
        settings: Environment,
        strategy: Strategy,
        user: str,
        glass: Collection[str],
    ) -> admission.DeployFacts:
        """What ``admission.admit`` decides from, read now (under the slot's lock)."""
        store = self.ctx.store
        now = self.ctx.clock.now()
        succeeded_at: dict[str, datetime | None] = {}
        for prerequisite in settings.requires:
            earlier = await store.succeeded(cmd.service, prerequisite.succeeded_in, cmd.version)
            succeeded_at[prerequisite.succeeded_in] = earlier.updated_at if earlier is not None else None
        return admission.DeployFacts(
            service=cmd.service,
            env=env,
            version=cmd.version,
            strategy=strategy,
            settings=settings,
            user=user,
            emergency_reason=cmd.emergency_reason,
            break_glass=glass,
            locks=lock_status(cmd.service, env, now, await store.active_locks(env), self.ctx.policy.freezes),
            succeeded_at=succeeded_at,
            active=tuple(await store.active_deployments(cmd.service, env)),
            concurrency=self.ctx.policy.concurrency,
            now=now,
        )

    async def _opened(
        self, dep: Deployment, queued_behind: Deployment | None, user: str, channel: str | None
    ) -> Outcome:
        """A stored request: audit it, open its thread, and begin it unless it waits its turn."""
        ctx = self.ctx
        queued = queued_behind is not None
        await self._audit(
            user, "deploy", channel, dep.id, "accepted", version=dep.version, env=dep.env, queued=queued
        )
        if dep.emergency_reason is not None:
            await self._audit(user, "emergency", channel, dep.id, "accepted", reason=dep.emergency_reason)
        await ctx.tell(DeploymentOpened(dep, ctx.channel(dep) or channel or ""))
        if queued_behind is not None:
            queued_message = Message.of(
                Code(dep.id), " queued behind ", Code(queued_behind.id), ": it starts when that one ends"
            )
            return Outcome(True, queued_message, dep)
        dep = await self._begin(dep)
        return Outcome(
            True, Message.of(Code(dep.id), f": deploying {dep.service} {dep.version} to {dep.env}"), dep
        )
