"""What the engine tells people: typed notifications, one per thing that happened.

The engine hands these to the Chat port; the Slack notifier renders them into the deployment's
thread (parent card updated in place, a reply per stage). Keeping them as data means the engine's
tests read exactly what a person would have been told, and rendering stays a pure function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.deployment import Deployment
from bot.domain.events import Event
from bot.domain.measurements import TickOutcome


@dataclass(frozen=True, slots=True)
class DeploymentOpened:
    """A deployment was accepted: open its thread."""

    deployment: Deployment
    channel: str


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    """``event`` happened to the deployment (now in ``deployment.phase``): update the card, reply."""

    deployment: Deployment
    event: Event


@dataclass(frozen=True, slots=True)
class ApprovalNeeded:
    """Stage ``stage`` waits for ``needed`` more approvals from ``group``."""

    deployment: Deployment
    stage: int
    group: str
    needed: int
    approvers: tuple[str, ...]
    """Who may approve (Slack user ids), for the mention; the requester is left out."""
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApprovalGiven:
    deployment: Deployment
    user: str
    stage: int
    approve: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BuildProgress:
    deployment: Deployment
    state: str
    url: str | None
    progress: float | None
    console_tail: str | None = None
    """The last lines of the console on failure (plain text: escape before posting)."""


@dataclass(frozen=True, slots=True)
class RolloutProgress:
    deployment: Deployment
    step: int
    weight: int | None
    message: str
    ready: int
    desired: int


@dataclass(frozen=True, slots=True)
class GuardTick:
    """One tick of the QoS guard: the outcome and each check's line."""

    deployment: Deployment
    outcome: TickOutcome
    checks: tuple[str, ...]
    tick: int
    expected_ticks: int
    post_rollback: bool = False


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The guard's window ended or breached: ``verdict`` is pass, fail or inconclusive."""

    deployment: Deployment
    verdict: str
    reason: str
    post_rollback: bool = False


@dataclass(frozen=True, slots=True)
class RollbackStarted:
    deployment: Deployment
    to_version: str | None
    reason: str
    by: str | None
    """Slack user id, or None when the guard rolled back by itself."""


@dataclass(frozen=True, slots=True)
class EnvLocked:
    env: str
    service: str | None
    kind: str
    reason: str
    by: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class EnvUnlocked:
    env: str
    service: str | None
    kind: str
    reason: str
    by: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A request was refused (lock, prerequisite, concurrency, policy): tell the asker why."""

    user: str
    channel: str
    message: str


Notification = (
    DeploymentOpened
    | PhaseChanged
    | ApprovalNeeded
    | ApprovalGiven
    | BuildProgress
    | RolloutProgress
    | GuardTick
    | GuardVerdict
    | RollbackStarted
    | EnvLocked
    | EnvUnlocked
    | Refused
)
