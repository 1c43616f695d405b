"""Fixtures shared by every test package: one real Prometheus per session, fed by remote write; the
Jenkins and Kubernetes emulators at 1/20 of real time; a run id that keeps a test's series apart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.jenkins import create_jenkins_app
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from tests.engine.stack import new_run
from tests.support.prometheus import PrometheusServer, find_prometheus, missing_server


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    binary = find_prometheus()
    if binary is None:
        missing_server("prometheus")
        raise AssertionError("unreachable")
    server = PrometheusServer(binary).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jenkins_server() -> Iterator[ServerThread]:
    # Builds take 2 emulated seconds by default; at 1/20 of real time that is 0.1 s.
    with ServerThread(create_jenkins_app(time_scale=0.05), name="jenkins") as server:
        yield server


@pytest.fixture
def k8s_server() -> Iterator[ServerThread]:
    with ServerThread(create_kubernetes_app(time_scale=0.05), name="kubernetes") as server:
        yield server


@pytest.fixture
def run() -> str:
    return new_run()
