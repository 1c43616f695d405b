"""What the emulated cluster's controllers share: the scaled clock, object helpers, state and store access.

Split from ``rollout`` (which holds the reconcile loop) so that the pod, ReplicaSet and Deployment
controllers (``rollout_pods``, ``rollout_deployments``) can each live in a module of their own on
top of one base that holds their common state.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable

from bot.sandbox.clock import EmulatedClock
from bot.sandbox.kubernetes.admission import Admission
from bot.sandbox.kubernetes.etcd import Store
from bot.sandbox.kubernetes.vocabulary import JsonDict, ResourceType

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
NOT_COPIED = {
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}


SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NODE_NAME = "sandbox-node"
NODE_IP = "172.18.0.2"


class ScaledClock(EmulatedClock):
    """Epoch seconds from the emulator's start, running ``1 / time_scale`` times as fast as real time
    (0.01 makes a minute pass in 0.6 s).

    Epoch seconds because the cluster's timestamps (``creationTimestamp``, conditions, a pod's
    ``startTime``, kubectl's AGE) are read from it too, so they agree with the controllers' time
    when a test runs the clock fast or jumps it. ``time_scale`` 0 freezes it until ``advance``
    (the shared clock's rule, validated there); the controller's ticker then polls at its own pace,
    as nothing falls due by itself.
    """

    def __init__(
        self,
        time_scale: float,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        start: float | None = None,
    ):
        super().__init__(time_scale, start=start, source=monotonic)


def annotations_of(obj: JsonDict) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    annotations: dict[str, str] = meta.setdefault("annotations", {})
    return annotations


def revision(obj: JsonDict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def uid_of(obj: JsonDict) -> str:
    return str(obj["metadata"]["uid"])


def owner_ref(owner: JsonDict, rt: ResourceType) -> JsonDict:
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
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in number)


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


def int_or(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def spec_replicas(obj: JsonDict) -> int:
    return int_or((obj.get("spec") or {}).get("replicas"), 1)


def status_count(obj: JsonDict, key: str) -> int:
    return int_or((obj.get("status") or {}).get(key))


def without_zeros(status: JsonDict, keep: Iterable[str] = ()) -> JsonDict:
    """Go's ``omitempty``: zero counters are left out of a status, as the API server does."""
    return {k: v for k, v in status.items() if v not in (0, None) or k in keep}


class ControllerBase:
    """The controllers' state (pods waiting to start, rollout progress, bad images) and store helpers."""

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
        self._reconciled_to = clock.now()  # emulated instant the cluster is reconciled up to
        self._seen = store.resource_version  # the store's changes up to here are reconciled
        self._everything = True  # look at every object on the next reconcile
        self._random = random.Random(0)  # noqa: S311 - pod names, not secrets; seeded for repeatable runs

    def reset(self) -> None:
        self._bad_images = []
        self._settle_at.clear()
        self._progress_at.clear()
        self._deadlines.clear()
        self._reconciled_to = self._clock.now()
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
        return list(self._store.dependents(rt, uid_of(owner)))
