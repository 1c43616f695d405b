"""The post-rollback watch: the QoS guard keeps looking after a rollback, behind a guard lock.

After any rollback the environment is locked and the guard watches the restored version for a
window. A clean window lifts the lock by itself; a failing one keeps the lock, says why, and starts
another window, so the lock goes as soon as the service is stable again (and never before).
The window's counters live here because the rollback deployment itself is terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bot.domain.measurements import TickOutcome


class WatchStatus(StrEnum):
    WATCHING = "watching"
    """A window is running; the guard lock holds."""
    CLEARED = "cleared"
    """A clean window passed; the guard lock was lifted."""
    STOPPED = "stopped"
    """A person lifted the lock (``/deploy unlock``): the watch ends without a verdict."""


@dataclass(frozen=True, slots=True)
class GuardWatch:
    """One post-rollback watch over ``service`` in ``env`` running ``version``."""

    id: int | None
    deployment_id: str
    """The deployment that rolled back (its playbook environment names the guard)."""
    service: str
    env: str
    version: str | None
    lock_id: int | None
    started_at: datetime
    """Start of the current window (reset when a window ends still failing)."""
    status: WatchStatus = WatchStatus.WATCHING
    windows: int = 1
    ticks: int = 0
    failed: int = 0
    inconclusive: int = 0
    last_reason: str | None = None

    def ticked(self, outcome: TickOutcome) -> GuardWatch:
        return replace(
            self,
            ticks=self.ticks + 1,
            failed=self.failed + (outcome is TickOutcome.FAIL),
            inconclusive=self.inconclusive + (outcome is TickOutcome.INCONCLUSIVE),
        )

    def next_window(self, at: datetime, reason: str) -> GuardWatch:
        return replace(
            self,
            started_at=at,
            windows=self.windows + 1,
            ticks=0,
            failed=0,
            inconclusive=0,
            last_reason=reason,
        )
