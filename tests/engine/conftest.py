"""Engine test fixtures: fresh Jenkins and Kubernetes emulators per test, the shared Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.jenkins import create_jenkins_app
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from tests.engine.stack import new_run


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
