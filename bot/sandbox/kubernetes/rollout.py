"""The controllers of the emulated cluster: Deployment → ReplicaSets → Pods, on a scaled clock.

This follows the real deployment controller closely enough for kubectl and the bot to read the same
story: one ReplicaSet per distinct pod template (``<name>-<hash>``, ``pod-template-hash`` label,
increasing ``deployment.kubernetes.io/revision``; re-using an old template moves that ReplicaSet to
the newest revision), rolling updates bounded by maxSurge / maxUnavailable, Recreate, the status
counters and the ``Available`` / ``Progressing`` conditions, and ``ProgressDeadlineExceeded`` when
the new pods do not become ready in ``progressDeadlineSeconds``.

Time is emulated: ``ScaledClock`` runs ``1 / time_scale`` times faster than the wall clock. A pod
becomes ready ``pod_startup_seconds`` (emulated) after it is created, unless one of its images
matches a "bad image" pattern, in which case it waits in ``ImagePullBackOff`` (until the pattern is
lifted). Pods are available as soon as they are ready (``minReadySeconds`` is not modelled) and go
away at once when scaled down (no graceful termination).

``reconcile()`` is evaluated lazily, before each request and from a ticker (for watches). It looks
only at what changed since its last run (the store's event log, pod starts and progress deadlines
that fell due), reacting to each change at the instant it was made and replaying due events in time
order up to now, so it costs nothing when the cluster is idle and the outcome at a given emulated
instant does not depend on how often it runs, nor on how far the clock jumped in between.

This module holds that loop; the controllers it drives are ``rollout_pods`` (pods, ReplicaSets) and
``rollout_deployments``, on the state and helpers of ``rollout_base``.
"""

from __future__ import annotations

import logging
import math

from bot.sandbox.kubernetes.etcd import controller_uid
from bot.sandbox.kubernetes.rollout_base import uid_of
from bot.sandbox.kubernetes.rollout_deployments import DeploymentSync
from bot.sandbox.kubernetes.vocabulary import DEPLOYMENTS, PODS, REPLICASETS, JsonDict

log = logging.getLogger(__name__)

_MAX_STEPS = 10_000


class RolloutController(DeploymentSync):
    """Moves Deployments, ReplicaSets and Pods forward to the current emulated time."""

    # the loop

    def reconcile(self) -> None:
        """Bring the cluster up to now, as controllers that had been running all along would have.

        Changes are reacted to at the instant they were made: a request's at the end of the last
        reconcile (each request reconciles before it acts), a step's own writes at that step's
        instant. Then the clock is walked from one due event (a pod start, a passed progress
        deadline) to the next up to now, so one jump of the clock replays every rollout wave at its
        own instant instead of timing all but the first at the end of the jump. Costs nothing when idle.
        """
        now = self._clock.now()
        at = self._reconciled_to  # the clock never goes back, so this is <= now
        for _ in range(_MAX_STEPS):
            for uid in [u for u in self._settle_at if self._store.by_uid(u) is None]:
                del self._settle_at[uid]
            roots = self._changed_roots() | self._due_roots(at)
            if not roots:
                due = self._next_due()
                if due is None or due > now:
                    self._reconciled_to = now
                    return
                at = max(at, due)
                roots = self._due_roots(at)
            with self._store.stepping_at(at):
                self._step(at, roots)
            self._reconciled_to = at
        log.error("kubernetes emulator: the controllers did not settle after %d steps", _MAX_STEPS)

    def _due_roots(self, at: float) -> set[str]:
        """Roots with a pod start due by ``at`` or a progress deadline passed before it."""
        roots = {self._root_of(uid) for uid, t in self._settle_at.items() if t <= at}
        roots.update(uid for uid, t in self._deadlines.items() if t < at)
        return roots

    def _next_due(self) -> float | None:
        """The next instant something falls due: a pod start, or just after a progress deadline
        (it is exceeded only once strictly passed, as the deployment controller compares)."""
        deadlines = (math.nextafter(t, math.inf) for t in self._deadlines.values())
        return min([*self._settle_at.values(), *deadlines], default=None)

    def seconds_to_next_event(self) -> float | None:
        """Real seconds until a pod starts or a progress deadline passes (for the ticker)."""
        times = [*self._settle_at.values(), *self._deadlines.values()]
        if not times:
            return None
        return max(0.0, self._clock.real_seconds(min(times) - self._clock.now()))

    def _root_of(self, uid: str) -> str:
        """The object whose controller owns ``uid``: a Deployment, else a bare ReplicaSet or Pod."""
        for _ in range(3):
            found = self._store.by_uid(uid)
            if found is None:
                return uid
            owner = controller_uid(found[1])
            if owner is None:
                return uid
            uid = owner
        return uid

    def _changed_roots(self) -> set[str]:
        """Roots touched by store changes since the last look; a deleted object's uid stays a root."""
        if self._everything or self._seen < self._store.oldest_replayable:
            self._everything = False
            self._seen = self._store.resource_version
            return {
                uid_of(obj) for rt in (DEPLOYMENTS, REPLICASETS, PODS) for obj in self._store.iter(rt)
            } | {self._root_of(uid_of(obj)) for rt in (REPLICASETS, PODS) for obj in self._store.iter(rt)}
        roots: set[str] = set()
        for event in self._store.events_since(self._seen):
            if event.resource in (DEPLOYMENTS, REPLICASETS, PODS):
                uid = uid_of(event.obj)
                owner = controller_uid(event.obj)
                roots.add(self._root_of(owner) if owner else uid)
                if event.type == "DELETED":
                    roots.add(uid)  # its dependents are collected
        self._seen = self._store.resource_version
        return roots

    def _step(self, at: float, roots: set[str]) -> None:
        for uid in sorted(roots):
            found = self._store.by_uid(uid)
            if found is None:
                self._collect_dependents(uid)
                self._deadlines.pop(uid, None)
                self._progress_at.pop(uid, None)
            elif found[0] is DEPLOYMENTS:
                self._sync_tree(found[1], at)
            elif found[0] is REPLICASETS:
                self._sync_replicaset_tree(found[1], at)
            elif found[0] is PODS:
                self._sync_pod(found[1], at)

    def _sync_tree(self, deployment: JsonDict, at: float) -> None:
        for rs in self._owned(REPLICASETS, deployment):
            for pod in self._owned(PODS, rs):
                self._sync_pod(pod, at)
            self._sync_replicaset_status(rs)
        self._sync_deployment(deployment, at)
        for rs in self._owned(REPLICASETS, deployment):
            self._sync_replicaset_pods(rs)
            self._sync_replicaset_status(rs)
        self._sync_deployment_status(deployment, at)

    def _sync_replicaset_tree(self, rs: JsonDict, at: float) -> None:
        for pod in self._owned(PODS, rs):
            self._sync_pod(pod, at)
        self._sync_replicaset_pods(rs)
        self._sync_replicaset_status(rs)

    def _collect_dependents(self, uid: str) -> None:
        """The owner is gone: its dependents go too (background cascading deletion)."""
        for rt in (REPLICASETS, PODS):
            for obj in self._store.dependents(rt, uid):
                self._store.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
