"""The two implementations of each port, side by side, behind one small steering interface.

A contract test gets a *world*: the port under test plus what a test needs to set the scene and
move time — the same calls whichever implementation is behind it. ``adapter`` worlds are the real
adapters over real HTTP against the emulators (with frozen clocks a test advances) and a real
Prometheus; ``memory`` worlds are the stand-ins of ``bot.sandbox.memory`` on a ``ManualClock``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client as kubernetes_client

from bot.adapters.jenkins import JenkinsCI
from bot.adapters.kubernetes import ClusterAccess, KubernetesCluster
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.retrying import RetryPolicy
from bot.ports import CI, Cluster, Metrics
from bot.sandbox.jenkins import BuildScript, JenkinsEmulator, parameterized_job_xml
from bot.sandbox.kubernetes import KubernetesSandbox
from bot.sandbox.memory import BuildPlan, ManualClock, MemoryCI, MemoryCluster, MemoryMetrics
from bot.sandbox.server import ServerThread
from tests.support.k8s_emulator import deployment_body
from tests.support.promwrite import Series, push

# The kubernetes client's models are typed strictly; setting up a test cluster from plain dicts is
# what it does at run time, so the tests use it untyped.
k8s: Any = kubernetes_client
FAST = RetryPolicy(attempts=3, total_s=3.0, initial_s=0.02, max_wait_s=0.1, jitter_s=0.01)
NS = "shop"
CLUSTER = "main"
POD_STARTUP_S = 0.25
"""Both clusters start a pod in 0.25 s (the emulator's default)."""


# --- CI ---------------------------------------------------------------------------------------------


class CIWorld(Protocol):
    @property
    def ci(self) -> CI: ...

    def add_job(self, name: str, *, keyed: bool = True) -> None: ...

    def script(
        self,
        job: str,
        *,
        result: str = "SUCCESS",
        duration: float = 2.0,
        queue_wait: float = 0.5,
        console: str = "",
    ) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def build_parameters(self, job: str) -> list[dict[str, str]]:
        """The parameters of every build of ``job`` so far, oldest first."""
        ...


@dataclass
class JenkinsWorld:
    ci: JenkinsCI
    emulator: JenkinsEmulator

    def add_job(self, name: str, *, keyed: bool = True) -> None:
        params = ("SHIPTHREAD_KEY", "VERSION") if keyed else ("VERSION",)
        self.emulator.create_job(name, parameterized_job_xml(*params, concurrent=True))

    def script(
        self,
        job: str,
        *,
        result: str = "SUCCESS",
        duration: float = 2.0,
        queue_wait: float = 0.5,
        console: str = "",
    ) -> None:
        steps = BuildScript(result=result, duration=duration, queue_wait=queue_wait, console=console or None)
        self.emulator.script(job, steps, append=True)

    def advance(self, seconds: float) -> None:
        self.emulator.advance(seconds)

    def build_parameters(self, job: str) -> list[dict[str, str]]:
        return [{k: str(v) for k, v in b.parameters.items()} for b in self.emulator.builds(job)]


@dataclass
class MemoryCIWorld:
    clock: ManualClock
    ci: MemoryCI

    def add_job(self, name: str, *, keyed: bool = True) -> None:
        self.ci.add_job(name, keyed=keyed)

    def script(
        self,
        job: str,
        *,
        result: str = "SUCCESS",
        duration: float = 2.0,
        queue_wait: float = 0.5,
        console: str = "",
    ) -> None:
        self.ci.script(
            job, BuildPlan(result=result, duration=duration, queue_wait=queue_wait, console=console)
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def build_parameters(self, job: str) -> list[dict[str, str]]:
        return [dict(b.parameters) for b in self.ci.builds(job)]


def jenkins_world(server: ServerThread, emulator: JenkinsEmulator) -> JenkinsWorld:
    ci = JenkinsCI(
        server.url, "shipthread", "sandbox-token", timeout_s=5, policy=FAST, clock=emulator.clock.now
    )
    return JenkinsWorld(ci, emulator)


def memory_ci_world() -> MemoryCIWorld:
    clock = ManualClock()
    return MemoryCIWorld(clock, MemoryCI(clock))


# --- Cluster -----------------------------------------------------------------------------------------


class ClusterWorld(Protocol):
    @property
    def cluster(self) -> Cluster: ...

    def add_deployment(
        self,
        name: str,
        image: str,
        *,
        replicas: int = 2,
        labels: Mapping[str, str] | None = None,
        deadline_s: int = 20,
    ) -> None: ...

    def add_service(self, name: str, selector: Mapping[str, str]) -> None: ...

    def set_bad_images(self, patterns: list[str]) -> None: ...

    def image(self, name: str) -> str: ...

    def replicas(self, name: str) -> int: ...

    def selector(self, name: str) -> dict[str, str]: ...

    def advance(self, seconds: float) -> None: ...


@dataclass
class KubernetesWorld:
    cluster: KubernetesCluster
    sandbox: KubernetesSandbox
    url: str
    _api: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._api = k8s.ApiClient(k8s.Configuration(host=self.url))
        try:
            k8s.CoreV1Api(self._api).create_namespace({"metadata": {"name": NS}})
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise

    def close(self) -> None:
        self._api.close()
        self.cluster.close()

    def add_deployment(
        self,
        name: str,
        image: str,
        *,
        replicas: int = 2,
        labels: Mapping[str, str] | None = None,
        deadline_s: int = 20,
    ) -> None:
        labels = dict(labels) if labels else None
        body = deployment_body(name, image, replicas=replicas, deadline_s=deadline_s, labels=labels)
        k8s.AppsV1Api(self._api).create_namespaced_deployment(NS, body)
        self.advance(POD_STARTUP_S)  # as the operator left it: rolled out

    def add_service(self, name: str, selector: Mapping[str, str]) -> None:
        body = {"metadata": {"name": name}, "spec": {"selector": dict(selector), "ports": [{"port": 80}]}}
        k8s.CoreV1Api(self._api).create_namespaced_service(NS, body)

    def set_bad_images(self, patterns: list[str]) -> None:
        self.sandbox.set_bad_images(patterns)

    def image(self, name: str) -> str:
        dep = k8s.AppsV1Api(self._api).read_namespaced_deployment(name, NS)
        return str(dep.spec.template.spec.containers[0].image)

    def replicas(self, name: str) -> int:
        return int(k8s.AppsV1Api(self._api).read_namespaced_deployment(name, NS).spec.replicas)

    def selector(self, name: str) -> dict[str, str]:
        return dict(k8s.CoreV1Api(self._api).read_namespaced_service(name, NS).spec.selector)

    def advance(self, seconds: float) -> None:
        # one step: the emulator's controllers catch up over the whole jump on the next request
        self.sandbox.clock.advance(seconds)


@dataclass
class MemoryClusterWorld:
    clock: ManualClock
    cluster: MemoryCluster

    def add_deployment(
        self,
        name: str,
        image: str,
        *,
        replicas: int = 2,
        labels: Mapping[str, str] | None = None,
        deadline_s: int = 20,
    ) -> None:
        self.cluster.add_deployment(
            name,
            image,
            replicas=replicas,
            labels=dict(labels or {"app": name}),
            progress_deadline_s=deadline_s,
        )

    def add_service(self, name: str, selector: Mapping[str, str]) -> None:
        self.cluster.add_service(name, dict(selector))

    def set_bad_images(self, patterns: list[str]) -> None:
        self.cluster.set_bad_images(patterns)

    def image(self, name: str) -> str:
        return self.cluster.deployment(name).images["app"]

    def replicas(self, name: str) -> int:
        return self.cluster.deployment(name).replicas

    def selector(self, name: str) -> dict[str, str]:
        return self.cluster.selector(name)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def kubernetes_world(server: ServerThread, sandbox: KubernetesSandbox) -> KubernetesWorld:
    cluster = KubernetesCluster(
        {CLUSTER: ClusterAccess(server=server.url)}, policy=FAST, clock=lambda: sandbox.clock.now()
    )
    return KubernetesWorld(cluster, sandbox, server.url)


def memory_cluster_world() -> MemoryClusterWorld:
    clock = ManualClock()
    return MemoryClusterWorld(clock, MemoryCluster(clock, pod_startup_s=POD_STARTUP_S, clusters=[CLUSTER]))


# --- Metrics -----------------------------------------------------------------------------------------


class MetricsWorld(Protocol):
    @property
    def metrics(self) -> Metrics: ...

    def now(self) -> datetime: ...

    def push(self, labels: Mapping[str, str], samples: list[tuple[datetime, float]]) -> None:
        """Samples of one series (``__name__`` among the labels), oldest first."""
        ...

    def down(self) -> Metrics:
        """The port as it answers when Prometheus cannot be reached."""
        ...


@dataclass
class PrometheusWorld:
    metrics: PrometheusMetrics
    url: str
    dead_url: str
    _extra: list[PrometheusMetrics] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.fromtimestamp(math.floor(time.time()), UTC)

    def push(self, labels: Mapping[str, str], samples: list[tuple[datetime, float]]) -> None:
        push(self.url, [Series(dict(labels), [(int(at.timestamp() * 1000), value) for at, value in samples])])

    def down(self) -> Metrics:
        adapter = PrometheusMetrics(self.dead_url, timeout_s=0.5, policy=FAST)
        self._extra.append(adapter)
        return adapter

    def close(self) -> None:
        for adapter in [self.metrics, *self._extra]:
            adapter.close()


@dataclass
class MemoryMetricsWorld:
    clock: ManualClock
    metrics: MemoryMetrics

    def now(self) -> datetime:
        return self.clock.now()

    def push(self, labels: Mapping[str, str], samples: list[tuple[datetime, float]]) -> None:
        for at, value in samples:
            self.metrics.push(labels, value, at)

    def down(self) -> Metrics:
        dead = MemoryMetrics(self.clock)
        dead.fail_with("connection refused")
        return dead


def memory_metrics_world() -> MemoryMetricsWorld:
    clock = ManualClock(datetime.fromtimestamp(math.floor(time.time()), UTC))
    return MemoryMetricsWorld(clock, MemoryMetrics(clock))
