"""Environment locks: manual locks, freeze windows and guard locks.

A lock stops new deployments to an environment (or to one service in it). Manual locks are set by
people (``/deploy lock``), freeze windows come from config (cron + duration), and guard locks are set
by the QoS guard after a rollback and lifted by it when the restored version stays clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


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
