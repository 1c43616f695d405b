"""The pod and ReplicaSet controllers of the emulated cluster: pods start, fail to pull, are counted.

A pod becomes ready ``pod_startup_seconds`` (emulated) after it is created, unless one of its images
matches a "bad image" pattern (``ImagePullBackOff`` until the pattern is lifted); a ReplicaSet keeps
``spec.replicas`` pods, removing unready and then the newest first.
"""

from __future__ import annotations

import copy
import hashlib

from bot.sandbox.kubernetes.rollout_base import (
    NODE_IP,
    NODE_NAME,
    SAFE_ALPHABET,
    ControllerBase,
    owner_ref,
    spec_replicas,
    uid_of,
    without_zeros,
)
from bot.sandbox.kubernetes.vocabulary import PODS, REPLICASETS, JsonDict


class PodSync(ControllerBase):
    """Pods and the ReplicaSets that own them, brought to a given emulated instant."""

    # pods

    def _containers(self, pod: JsonDict) -> list[JsonDict]:
        spec = pod.get("spec") or {}
        return [c for c in spec.get("containers") or [] if isinstance(c, dict)]

    def _sync_pod(self, pod: JsonDict, at: float) -> None:
        fresh = self._fresh(PODS, pod)
        if fresh is None:
            return
        pod = fresh
        uid = uid_of(pod)
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
                container = hashlib.sha256((image + uid_of(pod)).encode()).hexdigest()
                entry |= {
                    "state": {"running": {"startedAt": now}},
                    "ready": True,
                    "imageID": f"{image.split(':')[0]}@sha256:{digest}",
                    "containerID": f"containerd://{container}",
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
        want = spec_replicas(rs)
        if len(pods) < want:
            for _ in range(want - len(pods)):
                self._create_pod(rs)
        elif len(pods) > want:
            # unready pods go first, then the newest, as the ReplicaSet controller prefers
            ranked = sorted(pods, key=lambda p: (self.pod_ready(p), -int(p["metadata"]["resourceVersion"])))
            for pod in ranked[: len(pods) - want]:
                self._store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self._settle_at.pop(uid_of(pod), None)

    def _create_pod(self, rs: JsonDict) -> None:
        meta = rs["metadata"]
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        pod_meta = template.get("metadata") or {}
        namespace = meta["namespace"]
        while True:
            suffix = "".join(self._random.choice(SAFE_ALPHABET) for _ in range(5))
            name = f"{meta['name']}-{suffix}"
            if self._store.find(PODS, namespace, name) is None:
                break
        pod_meta.pop("creationTimestamp", None)
        pod_meta |= {
            "name": name,
            "generateName": f"{meta['name']}-",
            "namespace": namespace,
            "ownerReferences": [owner_ref(rs, REPLICASETS)],
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
        status = without_zeros(
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
