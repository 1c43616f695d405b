"""The Protocols the engine talks to: CI, Cluster, Metrics (Chat, Store and Clock come with the engine).

Each port is as small as the engine needs and speaks our own frozen values, never a client
library's types; adapters in ``bot.adapters`` implement them and translate library errors into
``bot.errors`` at the edge (``TransientError`` carries a retry delay, ``PermanentError`` does not).
Every method that changes something takes an idempotency ``key`` so a retry or a restart after a
crash finds the change it already made instead of making it twice.

The frozen values they speak live in ``bot.port_values`` and are re-exported here (so the engine,
adapters and store import every port name from this one module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry
from bot.domain.chart import Series, VerdictChart
from bot.domain.deployment import Deployment
from bot.domain.locks import Lock
from bot.domain.measurements import Measurement
from bot.domain.notifications import Notification
from bot.domain.watch import GuardWatch
from bot.port_values import (
    BuildRef,
    BuildState,
    BuildStatus,
    DeploymentDue,
    DueWork,
    GuardQuery,
    LiveState,
    PendingEffect,
    RolloutPhase,
    RolloutStatus,
    StoredEvent,
    Target,
    Transition,
    WatchDue,
)

__all__ = [
    "CI",
    "BuildRef",
    "BuildState",
    "BuildStatus",
    "ChartPoster",
    "Chat",
    "Clock",
    "Cluster",
    "DeploymentDue",
    "Directory",
    "DueWork",
    "EngineLease",
    "GuardQuery",
    "KeyResult",
    "LiveState",
    "Metrics",
    "PendingEffect",
    "RolloutPhase",
    "RolloutStatus",
    "Store",
    "StoredEvent",
    "Target",
    "Transition",
    "WatchDue",
]

# --- CI (Jenkins) -------------------------------------------------------------------------------


class CI(Protocol):
    async def trigger(self, job: str, params: Mapping[str, str], key: str) -> BuildRef:
        """Start a parameterized build carrying ``key``; if a build with ``key`` exists, return it."""
        ...

    async def status(self, ref: BuildRef) -> BuildStatus: ...

    async def console_tail(self, ref: BuildRef, lines: int = 20) -> str:
        """The last ``lines`` of the console, secrets redacted (not yet escaped for Slack)."""
        ...

    async def abort(self, ref: BuildRef) -> None: ...


# --- Cluster (Kubernetes) ------------------------------------------------------------------------


class Cluster(Protocol):
    async def preload(self) -> None:
        """Load now what the first call would load lazily (a client's API classes), off the event
        loop: the engine calls it once at start, before recovery. Nothing to load: do nothing."""
        ...

    async def live(self, target: Target) -> LiveState: ...

    async def set_image(self, target: Target, image: str, key: str) -> None:
        """Rolling/recreate: put ``image`` on the Deployment's container."""
        ...

    async def rollout(self, target: Target) -> RolloutStatus:
        """How the last change of ``target``'s Deployment (or canary/colour) is doing."""
        ...

    async def canary_step(self, target: Target, image: str, weight: int, key: str) -> None:
        """Run ``image`` in ``<name>-canary`` scaled to ``weight`` % of the replicas."""
        ...

    async def promote_canary(self, target: Target, image: str, key: str) -> None: ...

    async def abort_canary(self, target: Target, key: str) -> None: ...

    async def deploy_color(self, target: Target, image: str, key: str) -> str:
        """Blue-green: roll ``image`` out on the idle colour; returns that colour."""
        ...

    async def switch_traffic(self, target: Target, color: str, key: str) -> None: ...

    async def undo(self, target: Target, image: str | None, key: str) -> None:
        """Restore the previous revision's pod template, or ``image`` when given."""
        ...


# --- Metrics (Prometheus) ------------------------------------------------------------------------


class Metrics(Protocol):
    async def query(self, promql: str) -> Measurement:
        """One instant query: a value, no data, or QueryFailed — never an exception for a bad answer."""
        ...

    async def evaluate(self, queries: Sequence[GuardQuery]) -> Mapping[GuardQuery, Measurement]:
        """Every query of one tick; the same check of several services batched into one query.

        Each query is evaluated at its ``at`` (None: now); a batch holds one evaluation time.
        """
        ...

    async def range_query(self, promql: str, start: datetime, end: datetime, step: timedelta) -> Series:
        """One range query (for a verdict's chart): the one series it yields, empty for none.

        Unlike ``query``, failures raise (``TransientError``/``PermanentError``): a chart is extra,
        and whoever draws it decides what a missing series means.
        """
        ...


# --- Chat, directory, clock ----------------------------------------------------------------------


class Chat(Protocol):
    async def notify(self, notification: Notification) -> None:
        """Tell people what happened (Slack renders it into the deployment's thread)."""
        ...


class ChartPoster(Protocol):
    async def post_chart(self, chart: VerdictChart, comment: str) -> None:
        """Draw ``chart`` and post it into its deployment's thread with ``comment`` (mrkdwn).

        Best effort and bounded: it may fail (raising), it must never hang.
        """
        ...


class Directory(Protocol):
    async def members(self, group: str) -> frozenset[str]:
        """The Slack user ids of an approver group (config ids and user-group handles resolved)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now (tests pass a clock they move by hand)."""
        ...


# --- Store ---------------------------------------------------------------------------------------


class Store(Protocol):
    """What the engine needs of the database (``bot.store.repository.Repository``)."""

    async def create_deployment(
        self, dep: Deployment, event_type: str, event_payload: Mapping[str, Any]
    ) -> None:
        """Raises ``DuplicateDeployment`` when ``dep.id`` is taken (and only then)."""
        ...

    async def get_deployment(self, deployment_id: str) -> Deployment | None: ...

    async def deployment_owing(self, deployment_id: str) -> tuple[Deployment | None, bool]:
        """The deployment and whether its outbox holds effects not yet done, in one query (a poll's read)."""
        ...

    async def save_transition(
        self,
        new_dep: Deployment,
        expected_version_no: int,
        event_type: str,
        event_payload: Mapping[str, Any],
        at: datetime,
        effects: Sequence[PendingEffect] = (),
        completes: Sequence[str] = (),
        due_at: datetime | None = None,
    ) -> None:
        """Store the new deployment (only if still at ``expected_version_no``) with when it is next
        due, the event, the effects to run, and mark done the effects (``completes``) whose result
        the event is, in one transaction; raises a TransientError subclass when stale."""
        ...

    async def save_transition_owed(
        self, transition: Transition, completes: Sequence[str] = ()
    ) -> Sequence[PendingEffect] | None:
        """``save_transition``, returning what the deployment's outbox now owes when that is known
        without reading it: the effects just queued, when it owed nothing else; None when it did
        (ask ``pending_effects``)."""
        ...

    async def pending_effects(self, deployment_id: str | None = None) -> list[PendingEffect]: ...

    async def effect_done(self, key: str, at: datetime) -> None: ...

    async def effects_done(self, keys: Sequence[str], at: datetime) -> None:
        """``effect_done`` for several effects, in one statement."""
        ...

    async def effect_failed(self, key: str, error: str, at: datetime) -> None:
        """Count a failed attempt of a pending effect (it stays pending) and keep why."""
        ...

    async def active_deployments(
        self, service: str | None = None, env: str | None = None
    ) -> list[Deployment]: ...

    async def history(
        self, service: str | None, env: str | None = None, limit: int = 20
    ) -> list[Deployment]: ...

    async def last_succeeded(self, service: str, env: str) -> Deployment | None: ...

    async def succeeded(self, service: str, env: str, version: str) -> Deployment | None:
        """The latest non-rollback deployment of ``version`` there that ended ``succeeded``."""
        ...

    async def events_for(self, deployment_id: str) -> list[StoredEvent]: ...

    async def add_vote(self, vote: Vote) -> bool: ...

    async def votes_for(self, deployment_id: str) -> list[Vote]: ...

    async def add_lock(self, lock: Lock) -> Lock: ...

    async def release_lock(self, lock_id: int, by: str, at: datetime) -> bool: ...

    async def get_lock(self, lock_id: int) -> Lock | None: ...

    async def active_locks(self, env: str | None = None) -> list[Lock]: ...

    async def record_audit(self, entry: AuditEntry) -> AuditEntry: ...

    async def claim_key(self, key: str, at: datetime, takeover_before: datetime | None = None) -> bool:
        """True for the first claimer of ``key`` (or, with ``takeover_before``, for whoever takes
        over a claim made before it and never completed)."""
        ...

    async def complete_key(self, key: str, result: Mapping[str, Any], at: datetime) -> None: ...

    async def release_key(self, key: str) -> bool:
        """Give back a claim never completed (the work failed or changed nothing); False otherwise."""
        ...

    async def get_key(self, key: str) -> KeyResult | None: ...

    async def add_watch(self, watch: GuardWatch) -> GuardWatch:
        """Store a new watch, due at its start (the timer works out the rest)."""
        ...

    async def save_watch(self, watch: GuardWatch, due_at: datetime | None = None) -> None:
        """Overwrite a watch; ``due_at`` None keeps its due time (an ended watch has none)."""
        ...

    async def active_watches(self) -> list[GuardWatch]: ...

    async def save_transitions(self, transitions: Sequence[Transition]) -> None:
        """``save_transition`` for many deployments in one transaction, all or nothing (the guard
        tick's outcomes); raises a TransientError subclass when any one is stale."""
        ...

    async def get_deployments(self, deployment_ids: Sequence[str]) -> list[Deployment]:
        """The stored deployments among ``deployment_ids``, in one query (unknown ids are left out)."""
        ...

    async def take_due(self, now: datetime, limit: int = 1000) -> DueWork:
        """Unfinished deployments and watching watches due at ``now``, earliest first."""
        ...

    async def reschedule(
        self, deployments: Sequence[DeploymentDue], watches: Sequence[WatchDue], *, earliest: bool = True
    ) -> datetime | None:
        """Store the next due times of work that did not change, in one transaction; returns the
        earliest due time now stored (None: nothing is due ever, until an event). ``earliest=False``:
        the caller tells the timer itself, so that read is left out (and None returned)."""
        ...


class EngineLease(Protocol):
    """The right to run the one engine of a database (``bot.domain.lease`` has the rule)."""

    async def acquire(self) -> None:
        """Take the lease, or take over a dead holder's; raises ``LeaseHeld`` naming a live one."""
        ...

    async def renew(self) -> None:
        """The heartbeat; raises ``LeaseLost`` when someone else holds the lease now."""
        ...

    async def release(self) -> None:
        """Give the lease up (if still ours), so the next engine starts at once."""
        ...


class KeyResult(Protocol):
    """A claimed idempotency key and what the work it guarded produced."""

    @property
    def key(self) -> str: ...

    @property
    def result(self) -> Mapping[str, Any] | None: ...
