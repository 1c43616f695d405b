"""Fixtures of the contract suite: each port's world, once per implementation (``adapter``, ``memory``).

The same test function runs on both: the ``adapter`` world is the real adapter over real HTTP
against a fresh emulator with a frozen clock (real Prometheus for metrics), the ``memory`` world the
stand-in. The ``memory`` runs are marked ``fast``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bot.adapters.prometheus import PrometheusMetrics
from bot.sandbox.jenkins import create_jenkins_app, emulator_of
from bot.sandbox.kubernetes import create_kubernetes_app, kubernetes_sandbox
from bot.sandbox.server import ServerThread
from tests.contracts import worlds
from tests.support.prometheus import PrometheusServer, free_port

IMPLEMENTATIONS = [
    pytest.param("memory", marks=pytest.mark.fast, id="memory"),
    pytest.param("adapter", id="adapter"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def ci_world(request: pytest.FixtureRequest) -> Iterator[worlds.CIWorld]:
    if request.param == "memory":
        yield worlds.memory_ci_world()
        return
    with ServerThread(create_jenkins_app(time_scale=0), name="jenkins") as server:
        world = worlds.jenkins_world(server, emulator_of(server.app))
        try:
            yield world
        finally:
            world.ci.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def cluster_world(request: pytest.FixtureRequest) -> Iterator[worlds.ClusterWorld]:
    if request.param == "memory":
        yield worlds.memory_cluster_world()
        return
    with ServerThread(create_kubernetes_app(time_scale=0), name="kubernetes") as server:
        world = worlds.kubernetes_world(server, kubernetes_sandbox(server.app))
        try:
            yield world
        finally:
            world.close()


@pytest.fixture(
    params=[IMPLEMENTATIONS[0], pytest.param("adapter", marks=pytest.mark.prometheus, id="adapter")]
)
def metrics_world(request: pytest.FixtureRequest) -> Iterator[worlds.MetricsWorld]:
    if request.param == "memory":
        yield worlds.memory_metrics_world()
        return
    prometheus: PrometheusServer = request.getfixturevalue("prometheus")
    world = worlds.PrometheusWorld(
        PrometheusMetrics(prometheus.url, timeout_s=2.0, policy=worlds.FAST),
        prometheus.url,
        f"http://127.0.0.1:{free_port()}",
    )
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def series() -> str:
    """A metric name no other test uses (Prometheus refuses samples older than a series' newest)."""
    return f"contract_{uuid.uuid4().hex[:10]}"
