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
that fell due), replaying due pod starts in time order, so it costs nothing when the cluster is
idle and the outcome at a given emulated instant does not depend on how often it runs.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable

from bot.sandbox.clock import EmulatedClock
from bot.sandbox.k8s_admission import Admission, surge_and_unavailable
from bot.sandbox.k8s_api import DEPLOYMENTS, PODS, REPLICASETS, JsonDict, ResourceType
from bot.sandbox.k8s_store import Store, controller_uid

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NOT_COPIED = {
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}

log = logging.getLogger(__name__)

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_STEPS = 10_000
NODE_NAME = "sandbox-node"
NODE_IP = "172.18.0.2"


class ScaledClock(EmulatedClock):
    """Emulated seconds from 0: wall time divided by ``time_scale`` (0.01 makes a minute pass in 0.6 s).

    Never frozen: the controller's ticker sleeps ``real_seconds`` until the next pod start is due.
    """

    def __init__(self, time_scale: float, monotonic: Callable[[], float] = time.monotonic):
        super().__init__(_running(time_scale), start=0.0, source=monotonic)

    def set_time_scale(self, time_scale: float) -> None:
        super().set_time_scale(_running(time_scale))


def _running(time_scale: float) -> float:
    if time_scale <= 0:
        raise ValueError("time_scale must be > 0")
    return time_scale


def _annotations(obj: JsonDict) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    annotations: dict[str, str] = meta.setdefault("annotations", {})
    return annotations


def revision(obj: JsonDict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _uid(obj: JsonDict) -> str:
    return str(obj["metadata"]["uid"])


def _owner_ref(owner: JsonDict, rt: ResourceType) -> JsonDict:
    return {
        "apiVersion": rt.group_version,
        "kind": rt.kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def template_hash(template: JsonDict, collision_count: int = 0) -> str:
    """A short, stable name suffix for a pod template, in the controller's alphabet."""
    digest = hashlib.sha256(json.dumps([template, collision_count], sort_keys=True).encode()).digest()
    number = str(int.from_bytes(digest[:4], "big"))
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in number)


def templates_equal(rs_template: JsonDict, deployment_template: JsonDict) -> bool:
    """Equal but for the ``pod-template-hash`` label the controller adds (compared without copying)."""
    if {k: v for k, v in rs_template.items() if k != "metadata"} != {
        k: v for k, v in deployment_template.items() if k != "metadata"
    }:
        return False
    rs_meta, d_meta = rs_template.get("metadata") or {}, deployment_template.get("metadata") or {}
    if {k: v for k, v in rs_meta.items() if k != "labels"} != {
        k: v for k, v in d_meta.items() if k != "labels"
    }:
        return False
    rs_labels = {k: v for k, v in (rs_meta.get("labels") or {}).items() if k != HASH_LABEL}
    return bool(rs_labels == (d_meta.get("labels") or {}))


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def _spec_replicas(obj: JsonDict) -> int:
    return _int((obj.get("spec") or {}).get("replicas"), 1)


def _status(obj: JsonDict, key: str) -> int:
    return _int((obj.get("status") or {}).get(key))


def _without_zeros(status: JsonDict, keep: Iterable[str] = ()) -> JsonDict:
    """Go's ``omitempty``: zero counters are left out of a status, as the API server does."""
    return {k: v for k, v in status.items() if v not in (0, None) or k in keep}


class RolloutController:
    """Moves Deployments, ReplicaSets and Pods forward to the current emulated time."""

    def __init__(
        self,
        store: Store,
        clock: ScaledClock,
        admission: Admission,
        *,
        pod_startup_seconds: float = 0.25,
    ):
        self._store = store
        self._clock = clock
        self._admission = admission
        self.pod_startup_seconds = pod_startup_seconds
        self._bad_images: list[str] = []
        self._settle_at: dict[str, float] = {}  # pod uid → when its containers start, or fail to pull
        self._progress_at: dict[str, float] = {}  # deployment uid → last progress, for the deadline
        self._deadlines: dict[str, float] = {}  # deployment uid → when its rollout times out
        self._seen = store.resource_version  # the store's changes up to here are reconciled
        self._everything = True  # look at every object on the next reconcile
        self._random = random.Random(0)  # noqa: S311 - pod names, not secrets; seeded for repeatable runs

    def reset(self) -> None:
        self._bad_images = []
        self._settle_at.clear()
        self._progress_at.clear()
        self._deadlines.clear()
        self._seen = self._store.resource_version
        self._everything = True
        self._random = random.Random(0)  # noqa: S311

    @property
    def bad_images(self) -> list[str]:
        return list(self._bad_images)

    @bad_images.setter
    def bad_images(self, patterns: Iterable[str]) -> None:
        self._bad_images = list(patterns)
        self._everything = True  # pods waiting on an image that is no longer bad start now

    def is_bad_image(self, image: str) -> bool:
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self._bad_images)

    # the loop

    def reconcile(self) -> None:
        """Bring the cluster up to now: react to every change since the last call, and replay each
        pod start and progress deadline that fell due, in time order. Costs nothing when idle."""
        now = self._clock.now()
        for _ in range(_MAX_STEPS):
            for uid in [u for u in self._settle_at if self._store.by_uid(u) is None]:
                del self._settle_at[uid]
            due = min((t for t in self._settle_at.values() if t <= now), default=None)
            at = now if due is None else due
            roots = self._changed_roots()
            roots.update(self._root_of(uid) for uid, t in self._settle_at.items() if t <= at)
            roots.update(uid for uid, t in self._deadlines.items() if t < at)
            if not roots:
                return
            self._step(at, roots)
        log.error("kubernetes emulator: the controllers did not settle after %d steps", _MAX_STEPS)

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
            return {_uid(obj) for rt in (DEPLOYMENTS, REPLICASETS, PODS) for obj in self._store.iter(rt)} | {
                self._root_of(_uid(obj)) for rt in (REPLICASETS, PODS) for obj in self._store.iter(rt)
            }
        roots: set[str] = set()
        for event in self._store.events_since(self._seen):
            if event.resource in (DEPLOYMENTS, REPLICASETS, PODS):
                uid = _uid(event.obj)
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

    # helpers over the store

    def _fresh(self, rt: ResourceType, obj: JsonDict) -> JsonDict | None:
        meta = obj["metadata"]
        return self._store.find(rt, meta.get("namespace", ""), meta["name"])

    def _write(self, rt: ResourceType, obj: JsonDict) -> JsonDict:
        return self._store.update(rt, obj, check_version=False)

    def _write_status(self, rt: ResourceType, obj: JsonDict, status: JsonDict) -> None:
        if obj.get("status") != status:
            new = copy.deepcopy(obj)
            new["status"] = status
            self._write(rt, new)

    def _owned(self, rt: ResourceType, owner: JsonDict) -> list[JsonDict]:
        return list(self._store.dependents(rt, _uid(owner)))

    # pods

    def _containers(self, pod: JsonDict) -> list[JsonDict]:
        spec = pod.get("spec") or {}
        return [c for c in spec.get("containers") or [] if isinstance(c, dict)]

    def _sync_pod(self, pod: JsonDict, at: float) -> None:
        fresh = self._fresh(PODS, pod)
        if fresh is None:
            return
        pod = fresh
        uid = _uid(pod)
        status = pod.get("status") or {}
        waiting = [
            (cs.get("state") or {}).get("waiting", {}).get("reason")
            for cs in status.get("containerStatuses") or []
            if isinstance(cs, dict)
        ]
        if "containerStatuses" not in status and uid not in self._settle_at:
            self._settle_at[uid] = at + self.pod_startup_seconds
            self._write_status(PODS, pod, self._pending_status(pod, at))
        elif uid in self._settle_at and self._settle_at[uid] <= at:
            del self._settle_at[uid]
            self._write_status(PODS, pod, self._started_status(pod))
        elif (
            "ImagePullBackOff" in waiting
            and uid not in self._settle_at
            and not any(self.is_bad_image(str(c.get("image", ""))) for c in self._containers(pod))
        ):
            # the pattern was lifted: the image "appeared" and the next pull succeeds
            self._write_status(PODS, pod, self._started_status(pod))

    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> JsonDict:
        cond: JsonDict = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": self._store.now(),
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _pending_status(self, pod: JsonDict, at: float) -> JsonDict:
        status = dict(pod.get("status") or {})
        status.update(
            phase="Pending",
            conditions=[self._condition("PodScheduled", True)],
            hostIP=NODE_IP,
            hostIPs=[{"ip": NODE_IP}],
            startTime=self._store.now(),
            containerStatuses=[
                {
                    "name": c.get("name"),
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {},
                    "ready": False,
                    "restartCount": 0,
                    "image": c.get("image"),
                    "imageID": "",
                    "started": False,
                }
                for c in self._containers(pod)
            ],
            qosClass=status.get("qosClass", "BestEffort"),
        )
        return status

    def _started_status(self, pod: JsonDict) -> JsonDict:
        status = dict(pod.get("status") or {})
        now = self._store.now()
        statuses, unready = [], []
        for c in self._containers(pod):
            image = str(c.get("image", ""))
            entry: JsonDict = {"name": c.get("name"), "lastState": {}, "restartCount": 0, "image": image}
            if self.is_bad_image(image):
                unready.append(str(c.get("name")))
                entry |= {
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{image}": ErrImagePull: '
                            f'failed to pull and unpack image "{image}": not found',
                        }
                    },
                    "ready": False,
                    "imageID": "",
                    "started": False,
                }
            else:
                digest = hashlib.sha256(image.encode()).hexdigest()
                entry |= {
                    "state": {"running": {"startedAt": now}},
                    "ready": True,
                    "imageID": f"{image.split(':')[0]}@sha256:{digest}",
                    "containerID": f"containerd://{hashlib.sha256((image + _uid(pod)).encode()).hexdigest()}",
                    "started": True,
                }
            statuses.append(entry)
        ok = not unready
        why = (
            ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
            if unready
            else ("", "")
        )
        ip = status.get("podIP") or self._admission.next_pod_ip()
        status.update(
            phase="Running" if ok else "Pending",
            conditions=[
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("Ready", ok, *why),
                self._condition("ContainersReady", ok, *why),
                self._condition("PodScheduled", True),
            ],
            podIP=ip,
            podIPs=[{"ip": ip}],
            containerStatuses=statuses,
        )
        return status

    @staticmethod
    def pod_ready(pod: JsonDict) -> bool:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                return bool(cond.get("status") == "True")
        return False

    # replica sets

    def _sync_replicaset_pods(self, rs: JsonDict) -> None:
        fresh = self._fresh(REPLICASETS, rs)
        if fresh is None:
            return
        rs = fresh
        pods = self._owned(PODS, rs)
        want = _spec_replicas(rs)
        if len(pods) < want:
            for _ in range(want - len(pods)):
                self._create_pod(rs)
        elif len(pods) > want:
            # unready pods go first, then the newest, as the ReplicaSet controller prefers
            ranked = sorted(pods, key=lambda p: (self.pod_ready(p), -int(p["metadata"]["resourceVersion"])))
            for pod in ranked[: len(pods) - want]:
                self._store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self._settle_at.pop(_uid(pod), None)

    def _create_pod(self, rs: JsonDict) -> None:
        meta = rs["metadata"]
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        pod_meta = template.get("metadata") or {}
        namespace = meta["namespace"]
        while True:
            suffix = "".join(self._random.choice(_SAFE_ALPHABET) for _ in range(5))
            name = f"{meta['name']}-{suffix}"
            if self._store.find(PODS, namespace, name) is None:
                break
        pod_meta.pop("creationTimestamp", None)
        pod_meta |= {
            "name": name,
            "generateName": f"{meta['name']}-",
            "namespace": namespace,
            "ownerReferences": [_owner_ref(rs, REPLICASETS)],
        }
        spec = template.get("spec") or {}
        spec["nodeName"] = NODE_NAME
        pod = {"metadata": pod_meta, "spec": spec}
        self._store.create(PODS, self._admission.for_create(PODS, pod))

    def _sync_replicaset_status(self, rs: JsonDict) -> None:
        fresh = self._fresh(REPLICASETS, rs)
        if fresh is None:
            return
        rs = fresh
        pods = self._owned(PODS, rs)
        ready = sum(1 for p in pods if self.pod_ready(p))
        status = _without_zeros(
            {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation"),
            },
            keep=("replicas",),
        )
        self._write_status(REPLICASETS, rs, status)

    def _scale(self, rs: JsonDict, replicas: int, deployment: JsonDict) -> JsonDict:
        rs = copy.deepcopy(self._fresh(REPLICASETS, rs) or rs)
        surge, _ = surge_and_unavailable(deployment["spec"])
        desired = _spec_replicas(deployment)
        annotations = _annotations(rs)
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
        annotations = _annotations(rs)
        for key, value in (deployment["metadata"].get("annotations") or {}).items():
            if key not in _NOT_COPIED:
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
                "ownerReferences": [_owner_ref(deployment, DEPLOYMENTS)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": _int(spec.get("minReadySeconds")),
                "selector": selector,
                "template": template,
            },
        }
        self._copy_annotations(deployment, rs)
        _annotations(rs).update(
            {
                DESIRED_REPLICAS: str(_spec_replicas(deployment)),
                MAX_REPLICAS: str(_spec_replicas(deployment) + surge),
                REVISION: str(rev),
            }
        )
        return self._store.create(REPLICASETS, self._admission.for_create(REPLICASETS, rs))

    def _set_progressing(self, deployment: JsonDict, reason: str, message: str, at: float) -> JsonDict:
        status = copy.deepcopy(deployment.get("status") or {})
        self._set_condition(status, "Progressing", "True", reason, message, update_time=True)
        self._progress_at[_uid(deployment)] = at
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
            annotations = _annotations(new)
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
            _annotations(updated)[REVISION] = str(revision(new))
            deployment = self._write(DEPLOYMENTS, updated)
        if paused:
            return
        if spec.get("strategy", {}).get("type") == "Recreate":
            self._rollout_recreate(deployment, new, old)
        else:
            self._rollout_rolling(deployment, new, old)
        self._clean_up_history(deployment, old)

    def _rollout_recreate(self, deployment: JsonDict, new: JsonDict, old: list[JsonDict]) -> None:
        active = [rs for rs in old if _spec_replicas(rs) > 0]
        for rs in active:
            self._scale(rs, 0, deployment)
        if any(self._owned(PODS, rs) for rs in old):
            return
        if _spec_replicas(new) != _spec_replicas(deployment):
            self._scale(new, _spec_replicas(deployment), deployment)

    def _rollout_rolling(self, deployment: JsonDict, new: JsonDict, old: list[JsonDict]) -> None:
        desired = _spec_replicas(deployment)
        if not any(_spec_replicas(rs) > 0 for rs in old):
            if _spec_replicas(new) != desired:
                self._scale(new, desired, deployment)
            return
        surge, unavailable = surge_and_unavailable(deployment["spec"])
        # scale the new ReplicaSet up, within maxSurge
        total = _spec_replicas(new) + sum(_spec_replicas(rs) for rs in old)
        if _spec_replicas(new) > desired:
            new = self._scale(new, desired, deployment)
        elif _spec_replicas(new) < desired and total < desired + surge:
            grow = min(desired + surge - total, desired - _spec_replicas(new))
            new = self._scale(new, _spec_replicas(new) + grow, deployment)
        # scale old ReplicaSets down, keeping maxUnavailable: unhealthy replicas first
        old = [self._fresh(REPLICASETS, rs) or rs for rs in old]
        total = _spec_replicas(new) + sum(_spec_replicas(rs) for rs in old)
        min_available = desired - unavailable
        new_unavailable = _spec_replicas(new) - _status(new, "availableReplicas")
        budget = total - min_available - new_unavailable
        if budget <= 0:
            return
        for i, rs in enumerate(old):
            unhealthy = _spec_replicas(rs) - _status(rs, "availableReplicas")
            if budget <= 0:
                break
            if _spec_replicas(rs) == 0 or unhealthy <= 0:
                continue
            cut = min(budget, unhealthy)
            old[i] = self._scale(rs, _spec_replicas(rs) - cut, deployment)
            budget -= cut
        available = _status(new, "availableReplicas") + sum(
            min(_status(rs, "availableReplicas"), _spec_replicas(rs)) for rs in old
        )
        to_remove = available - min_available
        for rs in old:
            if to_remove <= 0:
                break
            if _spec_replicas(rs) == 0:
                continue
            cut = min(_spec_replicas(rs), to_remove)
            self._scale(rs, _spec_replicas(rs) - cut, deployment)
            to_remove -= cut

    def _clean_up_history(self, deployment: JsonDict, old: list[JsonDict]) -> None:
        limit = _int(deployment["spec"].get("revisionHistoryLimit"), 10)
        idle = [
            rs
            for rs in (self._fresh(REPLICASETS, r) for r in old)
            if rs is not None and _spec_replicas(rs) == 0 and _status(rs, "replicas") == 0
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
        uid = _uid(deployment)
        new, old = self._replica_sets(deployment)
        everything = ([new] if new else []) + old
        desired = _spec_replicas(deployment)
        available = sum(_status(rs, "availableReplicas") for rs in everything)
        previous = deployment.get("status") or {}
        counts = {
            "observedGeneration": deployment["metadata"].get("generation"),
            "replicas": sum(_status(rs, "replicas") for rs in everything),
            "updatedReplicas": _status(new, "replicas") if new else 0,
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in everything),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(_spec_replicas(rs) for rs in everything) - available),
        }
        status: JsonDict = _without_zeros(counts)
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
            self._deadlines[uid] = started + _int(spec.get("progressDeadlineSeconds"), 600)
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
        uid = _uid(deployment)
        desired = _spec_replicas(deployment)
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
        old_replicas = counts["replicas"] - counts["updatedReplicas"]
        previous_old = _int(previous.get("replicas")) - _int(previous.get("updatedReplicas"))
        if (
            counts["updatedReplicas"] == desired
            and counts["replicas"] == desired
            and counts["availableReplicas"] == desired
        ):
            self._set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif (
            counts["updatedReplicas"] > _int(previous.get("updatedReplicas"))
            or old_replicas < previous_old
            or counts["readyReplicas"] > _int(previous.get("readyReplicas"))
            or counts["availableReplicas"] > _int(previous.get("availableReplicas"))
        ):
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
            if started + _int(spec.get("progressDeadlineSeconds"), 600) < at:
                self._set_condition(
                    status,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                )
