"""SIGKILL at every transition of a full canary deployment: it still ends right, once.

One deployment, one database, and an engine process that dies at its first (``after``) or second
(``before``) transition, restarted again and again until the deployment finishes. Every transition
is therefore a crash point, and every effect is interrupted at least once between doing its work and
recording it. The run must end exactly as an uninterrupted run does: succeeded, with exactly one
Jenkins build and the same Kubernetes writes, none repeated. Each run is its own process, forked
from a parent that imported the harness once (``tests.engine.prefork``): a run costs its own work,
not the 2-4 s of a fresh interpreter's imports.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from bot.sandbox.server import ServerThread
from tests.engine.prefork import Prefork
from tests.engine.stack import RATIO, create_k8s_deployment, k8s_deployment, playbook, write_stack_files
from tests.support.prometheus import PrometheusServer
from tests.support.promwrite import Series, push

ROOT = Path(__file__).resolve().parents[2]


def _writes(k8s_url: str) -> Counter[tuple[str, str]]:
    """The API writes the cluster received, by method and object path (the changes made)."""
    with urllib.request.urlopen(f"{k8s_url}/_sandbox/calls", timeout=5) as resp:
        calls = json.load(resp)["calls"]
    return Counter(
        (c["method"], c["path"])
        for c in calls
        if c["method"] in ("POST", "PUT", "PATCH", "DELETE") and c["status"] < 300
    )


Reference: TypeAlias = tuple[Counter[tuple[str, str]], dict[str, Any], dict[str, Any]]
"""What an uninterrupted run writes: the cluster's writes, then the main and the canary Deployment."""


@pytest.fixture(scope="module")
def harness() -> Iterator[Prefork]:
    """The process each harness run is forked from (a fresh process each, without Python's start-up)."""
    with Prefork(ROOT) as prefork:
        yield prefork


def _run_until_finished(
    harness: Prefork, mode: str, environ: dict[str, str], max_runs: int = 120
) -> list[dict[str, object]]:
    """Start the harness until it finishes; return what each killed run said."""
    killed: list[dict[str, object]] = []
    for _ in range(max_runs):
        proc = harness.run(["--mode", mode], env={**os.environ, **environ}, cwd=ROOT, timeout=120)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode == -9:
            assert lines and "killed" in lines[-1], proc.stderr[-2000:]
            killed.append(lines[-1])
            continue
        assert proc.returncode == 0, (
            f"harness exited {proc.returncode}: {proc.stdout[-500:]} {proc.stderr[-3000:]}"
        )
        assert lines[-1]["finished"] == "succeeded", lines
        return killed
    raise AssertionError(f"not finished after {max_runs} runs")


def _stack_files(
    tmp: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> dict[str, str]:
    book = playbook(
        "checkout",
        run,
        strategy="canary",
        steps=(25, 50, 100),
        approvals=[{"group": "sre", "count": 1}],
        interval=0.1,
        window=0.2,
    )
    environ = write_stack_files(tmp, prometheus.url, jenkins_server, k8s_server.url, [book])
    create_k8s_deployment(
        k8s_server.url, "checkout", "registry.example.com/checkout:1.0.0", replicas=4, track=True
    )
    now = int(time.time() * 1000)
    push(prometheus.url, [Series({"__name__": RATIO, "service": "checkout", "run": run}, [(now, 0.0)])])
    return environ


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, prometheus: PrometheusServer, harness: Prefork
) -> Iterator[Reference]:
    """What an uninterrupted run of the same deployment writes to the cluster."""
    from bot.sandbox.jenkins import create_jenkins_app, emulator_of
    from bot.sandbox.kubernetes import create_kubernetes_app
    from bot.sandbox.server import ServerThread
    from tests.engine.stack import new_run

    with (
        ServerThread(create_jenkins_app(time_scale=0.05)) as jenkins,
        ServerThread(create_kubernetes_app(time_scale=0.05)) as k8s,
    ):
        environ = _stack_files(tmp_path_factory.mktemp("reference"), prometheus, jenkins, k8s, new_run())
        assert _run_until_finished(harness, "none", environ) == []
        assert len(emulator_of(jenkins.app).builds("checkout-build")) == 1
        yield (
            _writes(k8s.url),
            k8s_deployment(k8s.url, "checkout"),
            k8s_deployment(k8s.url, "checkout-canary"),
        )


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["after", "before"])
def test_sigkill_at_every_transition_of_a_canary_deployment(
    mode: str,
    reference: Reference,
    harness: Prefork,
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    environ = _stack_files(tmp_path, prometheus, jenkins_server, k8s_server, run)
    killed = _run_until_finished(harness, mode, environ)

    events = {str(k["event"]) for k in killed}
    # Every kind of transition of the lifecycle was a crash point at least once.
    assert events >= {
        "ApprovalsRequired",
        "ApprovalsComplete",
        "BuildQueued",
        "BuildStarted",
        "BuildSucceeded",
        "RolloutStarted",
        "RolloutCompleted",
        "GuardTicked",
        "Promoted",
        "GuardPassed",
    } - ({"ApprovalsRequired"} if mode == "before" else set()), events
    assert len(killed) >= 20
    from bot.sandbox.jenkins import emulator_of

    builds = emulator_of(jenkins_server.app).builds("checkout-build")
    assert len(builds) == 1, [b.parameters for b in builds]
    writes, main, canary = reference
    assert _writes(k8s_server.url) == writes  # the same changes, none repeated
    now_main, now_canary = (
        k8s_deployment(k8s_server.url, "checkout"),
        k8s_deployment(k8s_server.url, "checkout-canary"),
    )
    assert now_main["metadata"]["generation"] == main["metadata"]["generation"]
    assert now_canary["metadata"]["generation"] == canary["metadata"]["generation"]
    assert (
        now_main["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example.com/checkout:2.0.0"
    )
    assert now_canary["spec"]["replicas"] == 0
