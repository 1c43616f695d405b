"""The Deployment controller of the emulated cluster: ReplicaSets per template, rolling and Recreate updates.

One ReplicaSet per distinct pod template, revisions and their history, maxSurge / maxUnavailable,
the status counters and the ``Available`` / ``Progressing`` conditions with the progress deadline.
"""

from __future__ import annotations

import copy

from bot.sandbox.kubernetes.admission_rules import surge_and_unavailable
from bot.sandbox.kubernetes.rollout_base import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    NOT_COPIED,
    REVISION,
    REVISION_HISTORY,
    annotations_of,
    int_or,
    owner_ref,
    revision,
    spec_replicas,
    status_count,
    template_hash,
    templates_equal,
    uid_of,
    without_zeros,
)
from bot.sandbox.kubernetes.rollout_pods import PodSync
from bot.sandbox.kubernetes.vocabulary import DEPLOYMENTS, PODS, REPLICASETS, JsonDict


class DeploymentSync(PodSync):
    """Deployments: their ReplicaSets scaled and their status written, as the real controller does."""

    def _scale(self, rs: JsonDict, replicas: int, deployment: JsonDict) -> JsonDict:
        rs = copy.deepcopy(self._fresh(REPLICASETS, rs) or rs)
        surge, _ = surge_and_unavailable(deployment["spec"])
        desired = spec_replicas(deployment)
        annotations = annotations_of(rs)
        annotations[DESIRED_REPLICAS] = str(desired)
        annotations[MAX_REPLICAS] = str(desired + surge)
        rs["spec"]["replicas"] = max(0, replicas)
        return self._write(REPLICASETS, rs)

    # deployments

    def _replica_sets(self, deployment: JsonDict) -> tuple[JsonDict | None, list[JsonDict]]:
        """The ReplicaSet running the current template (if any) and the others, oldest revision first."""
        owned = sorted(self._owned(REPLICASETS, deployment), key=revision)
        template = deployment["spec"].get("template") or {}
        new = next((rs for rs in owned if templates_equal(rs["spec"].get("template") or {}, template)), None)
        return new, [rs for rs in owned if rs is not new]

    def _copy_annotations(self, deployment: JsonDict, rs: JsonDict) -> None:
        annotations = annotations_of(rs)
        for key, value in (deployment["metadata"].get("annotations") or {}).items():
            if key not in NOT_COPIED:
                annotations[key] = value

    def _create_replicaset(self, deployment: JsonDict, rev: int) -> JsonDict:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        for collisions in range(100):
            digest = template_hash(template, collisions)
            name = f"{meta['name']}-{digest}"
            if self._store.find(REPLICASETS, meta["namespace"], name) is None:
                break
        tmeta = template.setdefault("metadata", {})
        tmeta.setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        surge, _ = surge_and_unavailable(spec)
        rs: JsonDict = {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(tmeta["labels"]),
                "annotations": {},
                "ownerReferences": [owner_ref(deployment, DEPLOYMENTS)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int_or(spec.get("minReadySeconds")),
                "selector": selector,
                "template": template,
            },
        }
        self._copy_annotations(deployment, rs)
        annotations_of(rs).update(
            {
                DESIRED_REPLICAS: str(spec_replicas(deployment)),
                MAX_REPLICAS: str(spec_replicas(deployment) + surge),
                REVISION: str(rev),
            }
        )
        return self._store.create(REPLICASETS, self._admission.for_create(REPLICASETS, rs))

    def _set_progressing(self, deployment: JsonDict, reason: str, message: str, at: float) -> JsonDict:
        status = copy.deepcopy(deployment.get("status") or {})
        self._set_condition(status, "Progressing", "True", reason, message, update_time=True)
        self._progress_at[uid_of(deployment)] = at
        self._write_status(DEPLOYMENTS, deployment, status)
        return self._fresh(DEPLOYMENTS, deployment) or deployment

    def _sync_deployment(self, deployment: JsonDict, at: float) -> None:
        spec = deployment.get("spec") or {}
        new, old = self._replica_sets(deployment)
        paused = bool(spec.get("paused"))
        if new is None and paused:
            return
        max_old = max((revision(rs) for rs in old), default=0)
        if new is None:
            new = self._create_replicaset(deployment, max_old + 1)
            deployment = self._set_progressing(
                deployment, "NewReplicaSetCreated", f'Created new replica set "{new["metadata"]["name"]}"', at
            )
        elif revision(new) <= max_old:
            new = copy.deepcopy(new)
            annotations = annotations_of(new)
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(revision(new))])
            annotations[REVISION] = str(max_old + 1)
            self._copy_annotations(deployment, new)
            new = self._write(REPLICASETS, new)
            deployment = self._set_progressing(
                deployment, "FoundNewReplicaSet", f'Found new replica set "{new["metadata"]["name"]}"', at
            )
        if (deployment["metadata"].get("annotations") or {}).get(REVISION) != str(revision(new)):
            updated = copy.deepcopy(deployment)
            annotations_of(updated)[REVISION] = str(revision(new))
            deployment = self._write(DEPLOYMENTS, updated)
        if paused:
            return
        if spec.get("strategy", {}).get("type") == "Recreate":
            self._rollout_recreate(deployment, new, old)
        else:
            self._rollout_rolling(deployment, new, old)
        self._clean_up_history(deployment, old)

    def _rollout_recreate(self, deployment: JsonDict, new: JsonDict, old: list[JsonDict]) -> None:
        active = [rs for rs in old if spec_replicas(rs) > 0]
        for rs in active:
            self._scale(rs, 0, deployment)
        if any(self._owned(PODS, rs) for rs in old):
            return
        if spec_replicas(new) != spec_replicas(deployment):
            self._scale(new, spec_replicas(deployment), deployment)

    def _rollout_rolling(self, deployment: JsonDict, new: JsonDict, old: list[JsonDict]) -> None:
        desired = spec_replicas(deployment)
        if not any(spec_replicas(rs) > 0 for rs in old):
            if spec_replicas(new) != desired:
                self._scale(new, desired, deployment)
            return
        surge, unavailable = surge_and_unavailable(deployment["spec"])
        # scale the new ReplicaSet up, within maxSurge
        total = spec_replicas(new) + sum(spec_replicas(rs) for rs in old)
        if spec_replicas(new) > desired:
            new = self._scale(new, desired, deployment)
        elif spec_replicas(new) < desired and total < desired + surge:
            grow = min(desired + surge - total, desired - spec_replicas(new))
            new = self._scale(new, spec_replicas(new) + grow, deployment)
        # scale old ReplicaSets down, keeping maxUnavailable: unhealthy replicas first
        old = [self._fresh(REPLICASETS, rs) or rs for rs in old]
        total = spec_replicas(new) + sum(spec_replicas(rs) for rs in old)
        min_available = desired - unavailable
        new_unavailable = spec_replicas(new) - status_count(new, "availableReplicas")
        budget = total - min_available - new_unavailable
        if budget <= 0:
            return
        for i, rs in enumerate(old):
            unhealthy = spec_replicas(rs) - status_count(rs, "availableReplicas")
            if budget <= 0:
                break
            if spec_replicas(rs) == 0 or unhealthy <= 0:
                continue
            cut = min(budget, unhealthy)
            old[i] = self._scale(rs, spec_replicas(rs) - cut, deployment)
            budget -= cut
        available = status_count(new, "availableReplicas") + sum(
            min(status_count(rs, "availableReplicas"), spec_replicas(rs)) for rs in old
        )
        to_remove = available - min_available
        for rs in old:
            if to_remove <= 0:
                break
            if spec_replicas(rs) == 0:
                continue
            cut = min(spec_replicas(rs), to_remove)
            self._scale(rs, spec_replicas(rs) - cut, deployment)
            to_remove -= cut

    def _clean_up_history(self, deployment: JsonDict, old: list[JsonDict]) -> None:
        limit = int_or(deployment["spec"].get("revisionHistoryLimit"), 10)
        idle = [
            rs
            for rs in (self._fresh(REPLICASETS, r) for r in old)
            if rs is not None and spec_replicas(rs) == 0 and status_count(rs, "replicas") == 0
        ]
        for rs in sorted(idle, key=revision)[: max(0, len(idle) - limit)]:
            self._store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _set_condition(
        self, status: JsonDict, kind: str, state: str, reason: str, message: str, *, update_time: bool = False
    ) -> None:
        """``SetDeploymentCondition``: same status and reason is no change (unless forced for progress)."""
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        current = next((c for c in conditions if c.get("type") == kind), None)
        if current and current.get("status") == state and current.get("reason") == reason and not update_time:
            return
        now = self._store.now()
        transition = current["lastTransitionTime"] if current and current.get("status") == state else now
        condition = {
            "type": kind,
            "status": state,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }
        status["conditions"] = [c for c in conditions if c.get("type") != kind] + [condition]

    def _sync_deployment_status(self, deployment: JsonDict, at: float) -> None:
        fresh = self._fresh(DEPLOYMENTS, deployment)
        if fresh is None:
            return
        deployment = fresh
        spec = deployment.get("spec") or {}
        uid = uid_of(deployment)
        new, old = self._replica_sets(deployment)
        everything = ([new] if new else []) + old
        desired = spec_replicas(deployment)
        available = sum(status_count(rs, "availableReplicas") for rs in everything)
        previous = deployment.get("status") or {}
        counts = {
            "observedGeneration": deployment["metadata"].get("generation"),
            "replicas": sum(status_count(rs, "replicas") for rs in everything),
            "updatedReplicas": status_count(new, "replicas") if new else 0,
            "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in everything),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(spec_replicas(rs) for rs in everything) - available),
        }
        status: JsonDict = without_zeros(counts)
        if previous.get("collisionCount"):
            status["collisionCount"] = previous["collisionCount"]
        status["conditions"] = list(previous.get("conditions") or [])  # conditions are replaced, never edited
        _, unavailable = surge_and_unavailable(spec)
        if available >= desired - unavailable:
            self._set_condition(
                status,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            self._set_condition(
                status,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        self._sync_progress(deployment, status, previous, counts, new, at)
        started = self._progress_at.setdefault(uid, at)
        progressing: JsonDict = next((c for c in status["conditions"] if c.get("type") == "Progressing"), {})
        if progressing.get("status") == "True" and progressing.get("reason") != "NewReplicaSetAvailable":
            self._deadlines[uid] = started + int_or(spec.get("progressDeadlineSeconds"), 600)
        else:
            self._deadlines.pop(uid, None)
        self._write_status(DEPLOYMENTS, deployment, status)

    def _sync_progress(
        self,
        deployment: JsonDict,
        status: JsonDict,
        previous: JsonDict,
        counts: JsonDict,
        new: JsonDict | None,
        at: float,
    ) -> None:
        spec = deployment.get("spec") or {}
        uid = uid_of(deployment)
        desired = spec_replicas(deployment)
        current = next((c for c in status["conditions"] if c.get("type") == "Progressing"), None)
        if spec.get("paused"):
            self._set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
            return
        if current and current.get("reason") == "DeploymentPaused":
            self._set_condition(
                status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"
            )
            self._progress_at[uid] = at
            current = next((c for c in status["conditions"] if c.get("type") == "Progressing"), None)
        if (
            counts["replicas"] == counts["updatedReplicas"]
            and current
            and current.get("reason") == "NewReplicaSetAvailable"
        ):
            return
        rs_name = new["metadata"]["name"] if new else ""
        if all(counts[key] == desired for key in ("updatedReplicas", "replicas", "availableReplicas")):
            self._set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif made_progress(counts, previous):
            self._set_condition(
                status,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                update_time=True,
            )
            self._progress_at[uid] = at
        elif current is not None and current.get("reason") != "ProgressDeadlineExceeded":
            started = self._progress_at.setdefault(uid, at)
            if started + int_or(spec.get("progressDeadlineSeconds"), 600) < at:
                self._set_condition(
                    status,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                )


def made_progress(counts: JsonDict, previous: JsonDict) -> bool:
    """The deployment controller's notion of progress: more updated, ready or available, fewer old."""
    now = {
        key: int_or(counts.get(key))
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    }
    before = {key: int_or(previous.get(key)) for key in now}
    return (
        now["updatedReplicas"] > before["updatedReplicas"]
        or now["replicas"] - now["updatedReplicas"] < before["replicas"] - before["updatedReplicas"]
        or now["readyReplicas"] > before["readyReplicas"]
        or now["availableReplicas"] > before["availableReplicas"]
    )
