"""What every command of the engine shares besides changing a deployment: ``CommandSteps``.

A command people type ends in an ``Outcome``; on its way it may refuse (an ephemeral answer, and
an audit row saying so), audit what it did, look up approver or break-glass groups and store a
new deployment under a fresh id. Those steps are the same for ``/deploy``, a vote, a rollback and a
lock, so they live here, below ``bot.engine.handling.Handler`` (which adds the one way a deployment
changes) and the command mixins composed in ``bot.engine.orchestrator``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bot.domain import ids
from bot.domain.audit import AuditEntry
from bot.domain.deployment import Deployment
from bot.domain.message import Message
from bot.domain.notifications import Refused
from bot.engine.context import Context
from bot.errors import DuplicateDeployment

__all__ = ["CommandSteps", "IdSource", "Outcome", "request_target"]

log = logging.getLogger("shipthread.engine")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a person's command: what happened, in words they can act on.

    ``message`` is structured (the Slack layer renders it, ``str()`` gives the CLI and logs' form).
    """

    ok: bool
    message: Message
    deployment: Deployment | None = None


IdSource = Callable[[], str]
"""Where new deployment ids come from (the default draws ``bot.domain.ids`` ids; tests inject)."""

_ID_ATTEMPTS = 5
"""Ids drawn for one new deployment before a taken id is an error (one retry is already unheard of)."""


def request_target(service: str, env: str | None) -> str:
    """The audit target of a request: ``service/env``, or the service alone before env is known."""
    return f"{service}/{env}" if env else service


class CommandSteps:
    """The shared steps; the subclass sets ``ctx`` and ``_id_source``."""

    ctx: Context
    _id_source: IdSource | None

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
