"""Whether a ``/deploy`` may start: the rules, as a pure function of facts the engine gathered.

A request is refused (with a message the requester can act on) when its environment cannot run the
strategy asked for, when an emergency is not allowed, when the environment is locked or frozen,
when a prerequisite ("staging first") is not met, or when the slot is busy and the policy refuses a
second request. Otherwise it is admitted, to start now or to queue behind the active deployment;
``first_event`` then says how it starts (approvals, or straight to the build). The engine reads
the store, the directory and the clock, calls ``admit``, and acts: the decision itself is here,
tested with plain values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain import approvals
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import ApprovalsRequired, ApprovalsSkipped, Event, RollbackRequested
from bot.domain.locks import LockStatus
from bot.domain.message import Code, Message, join
from bot.domain.playbook import Environment


class Concurrency(StrEnum):
    """What a second request for a service and environment that is busy gets."""

    QUEUE = "queue"
    """Accepted and held in ``requested`` until the active deployment ends."""
    REFUSE = "refuse"
    """Refused with the reason (which deployment holds it)."""


@dataclass(frozen=True, slots=True)
class DeployFacts:
    """Everything ``admit`` decides from, for one request of ``user``."""

    service: str
    env: str
    version: str
    strategy: Strategy
    """The strategy asked for, or the environment's."""
    settings: Environment
    """The playbook's environment (its canary and blue-green sections, its prerequisites)."""
    user: str
    emergency_reason: str | None
    """Set for ``--emergency``: skip approvals and freezes, if ``user`` may break glass."""
    break_glass: Collection[str]
    """The break-glass group's members (looked up only for an emergency; empty otherwise)."""
    locks: LockStatus
    """The locks and freezes on ``service`` in ``env`` now."""
    succeeded_at: Mapping[str, datetime | None]
    """For each prerequisite environment: when ``version`` last succeeded there (None: never)."""
    active: tuple[Deployment, ...]
    """The unfinished deployments of ``service`` in ``env``, oldest first."""
    concurrency: Concurrency
    now: datetime


@dataclass(frozen=True, slots=True)
class Refusal:
    """No: ``action`` is what the audit records (``deploy``, or ``emergency`` for break-glass)."""

    message: Message
    action: str = "deploy"


@dataclass(frozen=True, slots=True)
class Admitted:
    """Yes: start now, or wait behind ``queued_behind`` (which holds the slot)."""

    queued_behind: Deployment | None = None


def admit(facts: DeployFacts) -> Admitted | Refusal:
    """The answer to a ``/deploy``; the first rule that refuses gives the message."""
    return (
        _strategy_refusal(facts)
        or _emergency_refusal(facts)
        or _lock_refusal(facts)
        or _prerequisite_refusal(facts)
        or _busy_refusal(facts)
        or Admitted(facts.active[0] if facts.active else None)
    )


def first_event(dep: Deployment, needs_approvals: bool) -> Event:
    """The first event of a deployment that holds its slot: its approval policy, applied.

    A ``/rollback`` deployment rolls back at once; a break-glass one skips approvals (saying why);
    one whose environment has no approval stages goes straight to the build.
    """
    if dep.is_rollback:
        return RollbackRequested(user=dep.requester, reason=dep.reason or "rollback", to_version=dep.version)
    if dep.emergency_reason is not None:
        return ApprovalsSkipped(emergency_reason=dep.emergency_reason)
    if not needs_approvals:
        return ApprovalsSkipped()
    return ApprovalsRequired()


def _strategy_refusal(facts: DeployFacts) -> Refusal | None:
    if facts.strategy is Strategy.CANARY and facts.settings.canary is None:
        return Refusal(Message.of(f"{facts.env} has no canary steps in the playbook"))
    if facts.strategy is Strategy.BLUE_GREEN and facts.settings.blue_green is None:
        return Refusal(Message.of(f"{facts.env} has no blue_green section in the playbook"))
    return None


def _emergency_refusal(facts: DeployFacts) -> Refusal | None:
    if facts.emergency_reason is None:
        return None
    emergency = approvals.decide_emergency(facts.user, facts.emergency_reason, facts.break_glass)
    if emergency.allowed:
        return None
    return Refusal(Message.of(emergency.refusal or "refused"), action="emergency")


def _lock_refusal(facts: DeployFacts) -> Refusal | None:
    # Break glass skips freezes, never a lock someone set on purpose (or the guard's).
    status = facts.locks
    blockers = status.emergency_blockers if facts.emergency_reason is not None else status.reasons
    if not blockers:
        return None
    why = join("; ", (Message.of(f"{r.kind}: ", r.reason) for r in blockers))
    return Refusal(Message.of(f"{facts.env} is locked for {facts.service} (", why, ")"))


def _prerequisite_refusal(facts: DeployFacts) -> Refusal | None:
    for prerequisite in facts.settings.requires:
        at = facts.succeeded_at.get(prerequisite.succeeded_in)
        recent = at is not None and (prerequisite.within is None or at >= facts.now - prerequisite.within)
        if not recent:
            return Refusal(
                Message.of(
                    f"{facts.env} needs {facts.service} {facts.version} to have succeeded in "
                    f"{prerequisite.succeeded_in} first"
                )
            )
    return None


def _busy_refusal(facts: DeployFacts) -> Refusal | None:
    if not facts.active or facts.concurrency is not Concurrency.REFUSE:
        return None
    busy = facts.active[0]
    return Refusal(
        Message.of(
            f"{facts.service} is already being deployed to {facts.env}: ",
            Code(busy.id),
            f" ({busy.version}, {busy.phase})",
        )
    )
