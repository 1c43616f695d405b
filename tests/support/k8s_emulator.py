"""The Kubernetes emulator as the adapter tests drive it: one server thread, its control API, a client.

Why it exists: the Kubernetes adapter's tests, its strategy tests, the manifest tests and the HTTP
status tests all set up the same emulator the same way; they share this module instead of importing
from one another's test modules.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from bot.adapters.kubernetes import ClusterAccess, KubernetesCluster
from bot.adapters.retrying import RetryPolicy
from bot.ports import RolloutPhase, RolloutStatus, Target
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from tests.support.k8s_models import present

NS = "shop"
CLUSTER = "prod-eu"
OLD = "registry.example/checkout:1.4.1"
NEW = "registry.example/checkout:1.4.2"
BAD = "registry.example/checkout:1.4.3-broken"
FAST = RetryPolicy(attempts=4, total_s=5.0, initial_s=0.02, max_wait_s=0.1, jitter_s=0.01)
TIME_SCALE = 0.01
"""Emulated seconds run 100× faster: a pod starts in 2.5 ms, a 60 s progress deadline passes in 0.6 s."""


def deployment_body(
    name: str, image: str, *, replicas: int, deadline_s: int, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A one-container Deployment ``name`` running ``image``, selecting its pods on ``labels``
    (``app: name`` by default): what the stacks and the emulator's own tests create."""
    pod_labels = labels or {"app": name}
    return {
        "metadata": {"name": name, "labels": pod_labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline_s,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


# --- the emulator and a real client to set it up -------------------------------------------------


class Emulator:
    """One Kubernetes emulator in its own thread, its control API, and a kubernetes client for setup."""

    def __init__(self, name: str = "kubernetes") -> None:
        self.server = ServerThread(create_kubernetes_app(time_scale=TIME_SCALE), name=name)

    def start(self) -> Emulator:
        self.server.start()
        configuration = k8s.Configuration()
        configuration.host = self.url
        self._client = k8s.ApiClient(configuration)
        self.apps = k8s.AppsV1Api(self._client)
        self.core = k8s.CoreV1Api(self._client)
        return self

    def stop(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self.control("POST", "/_sandbox/reset")
        self.core.create_namespace(
            present(k8s.V1Namespace.from_dict({"metadata": {"name": NS}}), "namespace")
        )

    def fault(
        self, path: str, *, method: str = "*", status: int | None = 500, count: int = 1, delay: float = 0
    ) -> None:
        fault = {"path": path, "method": method, "status": status, "count": count, "delay": delay}
        self.control("POST", "/_sandbox/faults", fault)

    def faults(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "/_sandbox/faults")["faults"])

    def bad_images(self, *patterns: str) -> None:
        self.control("POST", "/_sandbox/bad-images", {"patterns": list(patterns)})

    def calls(self, method: str, path_end: str) -> list[int]:
        """Statuses of the API requests received with ``method`` on a path ending in ``path_end``."""
        calls = self.control("GET", "/_sandbox/calls")["calls"]
        return [c["status"] for c in calls if c["method"] == method and c["path"].endswith(path_end)]

    def deployment(
        self,
        name: str,
        image: str = OLD,
        *,
        replicas: int = 2,
        labels: dict[str, str] | None = None,
        progress_deadline_s: int | None = None,
    ) -> None:
        pod_labels = labels or {"app": name}
        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [{"name": "app", "image": image}, {"name": "proxy", "image": "envoy:1.30"}]
                },
            },
        }
        if progress_deadline_s is not None:
            spec["progressDeadlineSeconds"] = progress_deadline_s
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        self.apps.create_namespaced_deployment(NS, present(k8s.V1Deployment.from_dict(body), "deployment"))

    def service(self, name: str, selector: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        self.core.create_namespaced_service(NS, present(k8s.V1Service.from_dict(body), "service"))

    def read(self, name: str, kind: str = "Deployment") -> dict[str, Any]:
        """The object exactly as the server sends it."""
        # with _preload_content=False the client answers the raw HTTP response, not the model it declares
        read: Callable[..., Any] = (
            self.apps.read_namespaced_deployment
            if kind == "Deployment"
            else self.core.read_namespaced_service
        )
        return dict(json.loads(read(name, NS, _preload_content=False).data))

    def image(self, name: str, container: str = "app") -> str:
        containers = self.read(name)["spec"]["template"]["spec"]["containers"]
        return str(next(c["image"] for c in containers if c["name"] == container))

    def replica_sets(self, owner: str) -> list[dict[str, Any]]:
        list_raw: Callable[..., Any] = self.apps.list_namespaced_replica_set  # the raw answer, as in read()
        items = json.loads(list_raw(NS, _preload_content=False).data)["items"]
        return [
            rs
            for rs in items
            if any(ref["name"] == owner for ref in rs["metadata"].get("ownerReferences", []))
        ]

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.apps.patch_namespaced_deployment(name, NS, {"metadata": {"annotations": annotations}})


def adapter(*emulators: tuple[str, Emulator], **kwargs: Any) -> KubernetesCluster:
    kwargs.setdefault("timeout_s", 2.0)
    kwargs.setdefault("policy", FAST)
    return KubernetesCluster({name: ClusterAccess(server=emu.url) for name, emu in emulators}, **kwargs)


async def settle(cluster: KubernetesCluster, target: Target, timeout_s: float = 10.0) -> RolloutStatus:
    """Poll the rollout until it is no longer progressing (or give up after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await cluster.rollout(target)
        if status.phase is not RolloutPhase.PROGRESSING or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.02)


def find_kubectl() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("kubectl", path=os.pathsep.join([str(beside.parent), os.environ.get("PATH", "")]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
