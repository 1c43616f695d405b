"""Rows to domain values and back: the converters every store module shares.

Plain functions of a row (an ORM instance or a Core ``Row``: both answer attribute access), so the
hot paths that read with SQLAlchemy Core (``bot.store.due_work``) and the ORM paths of the
repository build the same frozen values. The columns carry the values' field names, so one pair of
functions (``from_row``, ``values_of``) does the copying; each converter names only what differs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.phases import TERMINAL, Phase
from bot.domain.watch import GuardWatch, WatchStatus
from bot.ports import PendingEffect

V = TypeVar("V")

DEPLOYMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Deployment))
NON_TERMINAL = sorted(p.value for p in Phase if p not in TERMINAL)


def from_row(value_type: type[V], row: Any, /, **differing: Any) -> V:
    """A ``value_type`` (a dataclass) of ``row``'s like-named attributes, but for ``differing``."""
    fields = dataclasses.fields(value_type)  # type: ignore[arg-type]
    names = (f.name for f in fields if f.name not in differing)
    return value_type(**{name: getattr(row, name) for name in names}, **differing)


def values_of(value: Any, /, *, leave_out: tuple[str, ...] = (), **differing: Any) -> dict[str, Any]:
    """The column values of ``value`` (a dataclass): its fields, but for ``leave_out`` and ``differing``."""
    values = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name not in leave_out}
    values.update(differing)
    return values


def deployment_values(dep: Deployment) -> dict[str, Any]:
    return values_of(dep, phase=dep.phase.value, strategy=dep.strategy.value)


def to_deployment(row: Any) -> Deployment:
    return from_row(Deployment, row, phase=Phase(row.phase), strategy=Strategy(row.strategy))


def vote_values(vote: Vote) -> dict[str, Any]:
    """The vote's columns (the person is ``user_id`` there)."""
    return values_of(vote, leave_out=("user",), user_id=vote.user)


def to_vote(row: Any) -> Vote:
    return from_row(Vote, row, user=row.user_id)


def lock_values(lock: Lock) -> dict[str, Any]:
    """The lock's columns but its ``id``, which the store gives."""
    return values_of(lock, leave_out=("id",), kind=lock.kind.value)


def to_lock(row: Any) -> Lock:
    return from_row(Lock, row, kind=LockKind(row.kind))


def to_audit(row: Any) -> AuditEntry:
    return from_row(AuditEntry, row)


def to_effect(row: Any) -> PendingEffect:
    return from_row(PendingEffect, row)


def watch_values(watch: GuardWatch) -> dict[str, Any]:
    """The watch's columns but its ``id``, which the store gives."""
    return values_of(watch, leave_out=("id",), status=watch.status.value)


def to_watch(row: Any) -> GuardWatch:
    return from_row(GuardWatch, row, status=WatchStatus(row.status))
