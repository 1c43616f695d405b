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
from bot.domain.guard import CheckVerdict
from bot.domain.measurements import TickOutcome
from bot.domain.message import Message


@dataclass(frozen=True, slots=True)
class DeploymentOpened:
    """A deployment was accepted: open its thread."""

    deployment: Deployment
    channel: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One guard check at one tick, with what a reader needs to judge it: thresholds and query."""

    verdict: CheckVerdict
    min: float | None = None
    max: float | None = None
    query: str | None = None
    """The PromQL as run (placeholders filled), for a link to Prometheus' graph page."""


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
    number: int | None = None
    """The Jenkins build number, once the build left the queue."""
    result: str | None = None
    """Jenkins' own word when finished (SUCCESS, FAILURE, UNSTABLE, ABORTED)."""


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
    results: tuple[CheckResult, ...] = ()
    """Each check's verdict with its thresholds and query (``checks`` are their lines)."""
    step: int | None = None
    """The canary step or blue-green stage watched (None after a rollback)."""
    window_started_at: datetime | None = None
    """When this window started: with ``step``, what names the window (one reply per window)."""


@dataclass(frozen=True, slots=True)
class GuardSettling:
    """A guard window opened with checks that must settle first: told once, when it opens.

    Until its first check settles a window has no tick, so without this the thread would say
    nothing about the guard for as long as the longest range selector.
    """

    deployment: Deployment
    checks: tuple[str, ...]
    """Each settling check's line (``5xx ratio settling for 1m: its 1m window still sees 1.1.0``)."""
    judges_at: datetime
    """When the first check judges (the window's first tick is due one interval later)."""
    expected_ticks: int
    post_rollback: bool = False
    step: int | None = None
    """The canary step or blue-green stage watched (None after a rollback)."""
    window_started_at: datetime | None = None
    """The window's start, as on its ticks: what names the window's reply."""


SKIPPED = "skipped"
"""``GuardVerdict.verdict`` of a step no guard watches: it moves on unjudged, which is not a pass."""


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The guard's window ended or breached: ``verdict`` is pass, fail or inconclusive (or ``SKIPPED``)."""

    deployment: Deployment
    verdict: str
    reason: str
    post_rollback: bool = False
    step: int | None = None
    """The canary step or blue-green stage the window watched (None after a rollback)."""
    window_started_at: datetime | None = None
    """When the judged window started (the same as its ticks')."""


@dataclass(frozen=True, slots=True)
class RollbackStarted:
    """The deployment is being rolled back (by a person, or by the engine after a failure)."""

    deployment: Deployment
    to_version: str | None
    reason: str
    """Plain text (a person's words, or what failed): escape before posting; never markup."""
    by: str | None
    """Slack user id of who asked, or None when the engine rolled back by itself."""


@dataclass(frozen=True, slots=True)
class EnvLocked:
    """An environment (or one service in it) was locked: manually, or by the QoS guard."""

    env: str
    service: str | None
    kind: str
    reason: str
    """Plain text (a person's words, or the guard's): escape before posting; never markup."""
    by: str
    """Slack user id of who locked it, or ``"shipthread"`` for the guard (not an id: no mention)."""
    channel: str | None = None
    deployment_id: str | None = None
    """The deployment whose guard holds the lock, so the lock is told in that thread."""
    lock_id: int | None = None
    """The stored lock, for an Unlock button."""


@dataclass(frozen=True, slots=True)
class EnvUnlocked:
    """A lock was lifted, by a person or by the guard after a clean window."""

    env: str
    service: str | None
    kind: str
    reason: str | None
    """Plain text, or None when a person lifted it (``by`` says who)."""
    by: str
    """Slack user id of who lifted it, or ``"shipthread"`` for the guard."""
    channel: str | None = None
    deployment_id: str | None = None
    """The deployment whose guard held the lock (see ``EnvLocked``)."""
    lock_id: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A request was refused (lock, prerequisite, concurrency, policy): tell the asker why.

    ``message`` is structured (``bot.domain.message``): a person's text stays text and a mention
    is an id, so rendering can escape the one and link the other.
    """

    user: str
    channel: str
    message: Message
    action: str
    """What was asked: deploy, rollback, lock, unlock, cancel, approve, reject, promote, emergency."""
    target: str
    """What it was asked of: a deployment id, ``service/env``, ``env`` or ``env/service`` (plain text)."""


Notification = (
    DeploymentOpened
    | PhaseChanged
    | ApprovalNeeded
    | ApprovalGiven
    | BuildProgress
    | RolloutProgress
    | GuardTick
    | GuardSettling
    | GuardVerdict
    | RollbackStarted
    | EnvLocked
    | EnvUnlocked
    | Refused
)
