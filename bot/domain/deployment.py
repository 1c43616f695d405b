"""The deployment value: one request to put one version of one service into one environment.

A ``Deployment`` is frozen and changed only by copying (``dataclasses.replace``), so a decision of
the state machine can be compared, stored and replayed. Progress (canary step, guard ticks, the
build being followed) lives here too, so a restart resumes from the stored value alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bot.domain.phases import Phase


class Strategy(StrEnum):
    """How the new version replaces the old one on Kubernetes."""

    ROLLING = "rolling"
    """Set the image on the Deployment and let Kubernetes roll it."""
    RECREATE = "recreate"
    """Like rolling, for Deployments whose own strategy is Recreate."""
    CANARY = "canary"
    """A ``<name>-canary`` Deployment takes growing shares; promotion updates the main one."""
    BLUE_GREEN = "blue-green"
    """Two colours; the Service's selector switches once the new colour is ready."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment and its progress. ``version_no`` is the optimistic-concurrency counter."""

    id: str
    """Short, human-typable id (``/deploy cancel <id>``), unique in the store."""
    service: str
    env: str
    version: str
    strategy: Strategy
    requester: str
    """Slack user id of the person who asked."""
    phase: Phase
    created_at: datetime
    updated_at: datetime
    version_no: int = 0
    emergency_reason: str | None = None
    """Set when the break-glass path skipped approvals and freezes; always audited."""
    is_rollback: bool = False
    """True for a deployment created by ``/rollback`` (it deploys ``version`` = the older one)."""
    previous_version: str | None = None
    """What was live before this deployment started: what a rollback restores."""
    approval_stage: int = 0
    """Index of the approval stage now being collected."""
    build_attempt: int = 1
    build_queue_item: int | None = None
    build_number: int | None = None
    step: int = 0
    """Canary step index (0-based) or blue-green stage (0 = new colour rolling, 1 = switched)."""
    change_started_at: datetime | None = None
    """When the current step's change began (entering DEPLOYING for it, before the cluster call):
    what ``baseline: before`` and a promoted canary's baseline are evaluated at, so they see only
    the version the change replaces. None for rows stored before it was kept."""
    guard_started_at: datetime | None = None
    guard_ticks: int = 0
    guard_failed_ticks: int = 0
    guard_inconclusive_ticks: int = 0
    paused: bool = False
    """The guard was inconclusive, or breached with ``on_breach: lock``: waiting for a person."""
    reason: str | None = None
    """Why it ended as it did (failure, rejection, rollback), for people to read."""

    def with_phase(self, phase: Phase, at: datetime) -> Deployment:
        """A copy in ``phase``, stamped ``at``, with the concurrency counter bumped."""
        return replace(self, phase=phase, updated_at=at, version_no=self.version_no + 1)
