"""The frozen values the ports speak: builds, workloads and rollouts, guard queries, stored history.

They sit apart from the Protocols in ``bot.ports`` because they are plain records (what a port
takes and returns), read by the engine, the adapters, the store and the stand-ins alike; the
Protocols say who does what with them. ``bot.ports`` re-exports every one, so ports are imported
from one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.deployment import Deployment
from bot.domain.template import render_promql
from bot.domain.watch import GuardWatch

# --- CI (Jenkins) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildRef:
    """Where a triggered build is: its job, its queue item, and its number once it has one."""

    job: str
    queue_item: int | None = None
    number: int | None = None


class BuildState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """FAILURE or UNSTABLE: the build did not produce a releasable version."""
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    """The queue item was cancelled before it became a build."""

    @property
    def finished(self) -> bool:
        return self not in (BuildState.QUEUED, BuildState.RUNNING)


@dataclass(frozen=True, slots=True)
class BuildStatus:
    """A build's state with progress: elapsed against Jenkins' estimated duration."""

    ref: BuildRef
    state: BuildState
    url: str | None = None
    result: str | None = None
    """Jenkins' own word (SUCCESS, FAILURE, UNSTABLE, ABORTED) when finished."""
    elapsed_s: float = 0.0
    estimated_s: float | None = None
    waiting_why: str | None = None
    """Jenkins' ``why`` while the item waits in the queue."""

    @property
    def progress(self) -> float | None:
        """0..1 while running when Jenkins has an estimate, else None."""
        if self.estimated_s is None or self.estimated_s <= 0:
            return None
        return max(0.0, min(1.0, self.elapsed_s / self.estimated_s))


# --- Cluster (Kubernetes) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One workload in one cluster: what a playbook environment deploys to."""

    cluster: str
    namespace: str
    deployment: str
    container: str
    service: str | None = None
    """The Kubernetes Service whose selector blue-green switches."""
    color_label: str = "color"
    rollout_timeout_s: float = 600.0
    strategy: str = "rolling"
    """rolling, recreate, canary or blue-green (``bot.domain.deployment.Strategy`` values)."""
    replicas: int | None = None
    """Replicas the playbook wants; None keeps the Deployment's own count."""


class RolloutPhase(StrEnum):
    PROGRESSING = "progressing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    phase: RolloutPhase
    message: str = ""
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0


@dataclass(frozen=True, slots=True)
class LiveState:
    """What runs now: recorded before every deployment so a rollback never guesses."""

    image: str | None
    revision: int | None = None
    replicas: int = 0
    color: str | None = None
    """Blue-green: the colour the Service selects now."""


# --- Metrics (Prometheus) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardQuery:
    """A check's PromQL template and the values of its placeholders for one deployment.

    Templates use ``{service}``, ``{env}``, ``{namespace}``, ``{version}``, ``{track}``; values are
    escaped for PromQL strings when rendered. Keeping template and values apart (rather than a
    rendered string) is what lets the metrics adapter batch the same check of many services into one
    query. ``at`` evaluates the query at that time instead of now (a ``baseline: before`` check asks
    Prometheus what the query said at the change time); it is part of the query's identity, so
    batches never mix evaluation times.
    """

    template: str
    params: tuple[tuple[str, str], ...]
    at: datetime | None = None

    @classmethod
    def of(cls, template: str, **params: str) -> GuardQuery:
        return cls(template, tuple(sorted(params.items())))

    def evaluated_at(self, at: datetime | None) -> GuardQuery:
        """The same query, evaluated at ``at`` (None: now)."""
        return replace(self, at=at)

    def param(self, name: str) -> str | None:
        return dict(self.params).get(name)

    def rendered(self) -> str:
        return render_promql(self.template, dict(self.params), keep_missing=True)


# --- Store --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingEffect:
    """An effect in the outbox: stored with the transition that caused it, done once."""

    key: str
    deployment_id: str
    effect_type: str
    payload: Mapping[str, object]
    created_at: datetime
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of a deployment's append-only history."""

    deployment_id: str
    seq: int
    """1 for the event that created the deployment, then one more per saved transition."""
    type: str
    payload: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Transition:
    """One deployment's transition to store (``Store.save_transitions``): the new deployment if the
    stored one is still at ``expected_version_no``, its event, its effects and its next due time."""

    deployment: Deployment
    expected_version_no: int
    event_type: str
    event_payload: Mapping[str, Any]
    at: datetime
    effects: Sequence[PendingEffect] = ()
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DueWork:
    """What the timer takes at one instant: the deployments and watches whose due time has come."""

    deployments: tuple[Deployment, ...] = ()
    watches: tuple[GuardWatch, ...] = ()


@dataclass(frozen=True, slots=True)
class DeploymentDue:
    """A deployment's next due time, stored only if the deployment is still at ``version_no``
    (a transition meanwhile stored its own due time with it)."""

    deployment_id: str
    version_no: int
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class WatchDue:
    """A watch's next due time, stored only if the watch still has ``ticks`` in window ``windows``."""

    watch_id: int
    windows: int
    ticks: int
    due_at: datetime | None
