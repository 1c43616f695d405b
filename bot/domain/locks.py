"""Environment locks: manual locks, freeze windows and guard locks.

A lock stops new deployments to an environment (or to one service in it). Manual locks are set by
people (``/deploy lock``), freeze windows come from config (cron + duration), and guard locks are set
by the QoS guard after a rollback and lifted by it when the restored version stays clean.

``lock_status`` is the one question everyone asks ("may I deploy this service here now, and if not,
why?"): the Slack layer before accepting ``/deploy``, the orchestrator before starting a rollout,
App Home when it lists locks. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.cron import last_start_at_or_before, parse_cron


class LockKind(StrEnum):
    """Who set a lock, which decides who may lift it."""

    MANUAL = "manual"
    """Set by a person with ``/deploy lock``; lifted with ``/deploy unlock``."""
    FREEZE = "freeze"
    """A freeze window from config; lifts itself when the window ends."""
    GUARD = "guard"
    """Set by the QoS guard after a rollback; lifted by it after a clean window (or by a person)."""


@dataclass(frozen=True, slots=True)
class Lock:
    """A stored lock (manual or guard). Freeze windows are computed, not stored."""

    id: int | None
    env: str
    service: str | None
    """None locks every service of the environment."""
    kind: LockKind
    reason: str
    author: str
    """Slack user id, or ``shipthread`` for guard locks."""
    created_at: datetime
    deployment_id: str | None = None
    """For guard locks: the rollback deployment whose restored version is being watched."""
    released_at: datetime | None = None
    released_by: str | None = None


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """A recurring freeze: starts at each ``cron`` match (UTC) and lasts ``duration``."""

    name: str
    cron: str
    """Five fields: minute hour day-of-month month day-of-week (0 or 7 = Sunday)."""
    duration: timedelta
    envs: tuple[str, ...] = ()
    """Environments it applies to; empty means all."""
    reason: str = ""


FREEZE_AUTHOR = "config"
"""The author shown for freeze windows, which come from the bot's config rather than a person."""


@dataclass(frozen=True, slots=True)
class LockReason:
    """One reason a service/environment is locked."""

    kind: LockKind
    reason: str
    author: str
    """Slack user id, ``shipthread`` (guard) or ``config`` (freeze)."""
    since: datetime
    until: datetime | None
    """When it lifts by itself (freeze windows); None when a person or the guard must lift it."""
    lock_id: int | None = None
    """The stored lock's id (None for freeze windows)."""
    service: str | None = None
    """The one service it locks, or None for the whole environment."""
    name: str | None = None
    """The freeze window's name (None for stored locks)."""


@dataclass(frozen=True, slots=True)
class LockStatus:
    """Whether a service/environment is locked at a moment, and every reason why."""

    locked: bool
    reasons: tuple[LockReason, ...] = ()

    @property
    def emergency_blockers(self) -> tuple[LockReason, ...]:
        """Reasons that still hold for a break-glass deployment (which skips freezes only)."""
        return tuple(r for r in self.reasons if r.kind is not LockKind.FREEZE)


UNLOCKED = LockStatus(locked=False)


def _in_scope(lock: Lock, service: str, env: str) -> bool:
    return lock.env == env and (lock.service is None or lock.service == service)


def lock_applies(lock: Lock, service: str, env: str) -> bool:
    """Does this stored lock stop ``service`` in ``env``? (Not released, same env, same or all services.)"""
    return lock.released_at is None and _in_scope(lock, service, env)


def _freeze_reason(freeze: FreezeWindow, env: str, now: datetime) -> LockReason | None:
    if freeze.envs and env not in freeze.envs:
        return None
    if freeze.duration <= timedelta(0):
        return None
    start = last_start_at_or_before(parse_cron(freeze.cron), now, freeze.duration)
    if start is None or not start <= now < start + freeze.duration:
        return None
    return LockReason(
        kind=LockKind.FREEZE,
        reason=freeze.reason or f"freeze window {freeze.name}",
        author=FREEZE_AUTHOR,
        since=start,
        until=start + freeze.duration,
        name=freeze.name,
    )


def lock_status(
    service: str,
    env: str,
    now: datetime,
    locks: Iterable[Lock],
    freezes: Iterable[FreezeWindow],
) -> LockStatus:
    """Is ``service`` locked in ``env`` at ``now``, and why? Reasons are ordered by ``since``.

    A stored lock applies unless it was released at or before ``now``; its ``created_at`` is not
    used to ignore it, so clock skew can never let a deployment slip past a lock just taken.
    A freeze applies when one of its cron starts ``s`` has ``s <= now < s + duration``.
    An invalid freeze cron raises ``CronError`` (config validation should have caught it).
    """
    reasons: list[LockReason] = []
    for lock in locks:
        released = lock.released_at is not None and lock.released_at <= now
        if released or not _in_scope(lock, service, env):
            continue
        reasons.append(
            LockReason(
                kind=lock.kind,
                reason=lock.reason,
                author=lock.author,
                since=lock.created_at,
                until=None,
                lock_id=lock.id,
                service=lock.service,
            )
        )
    for freeze in freezes:
        found = _freeze_reason(freeze, env, now)
        if found is not None:
            reasons.append(found)
    if not reasons:
        return UNLOCKED
    reasons.sort(key=lambda r: (r.since, r.kind.value, r.lock_id or 0, r.name or ""))
    return LockStatus(locked=True, reasons=tuple(reasons))
