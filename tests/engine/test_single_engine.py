"""One engine per database: a second one, built as ``shipthread serve`` builds it, refuses to start.

Two engines on one database double notifications, can run two Jenkins builds, and deployed requests
one of them had refused (issue 8). Until several replicas are built properly, the second engine's
``start()`` raises ``LeaseHeld`` naming the first; once the first stops, the second starts at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.container import Runtime
from bot.domain.commands import Deploy, Rollback
from bot.domain.lease import TTL
from bot.errors import LeaseHeld
from bot.sandbox.chat import RecordingChat
from bot.sandbox.jenkins import emulator_of
from bot.sandbox.server import ServerThread
from bot.store.lease import DatabaseLease
from tests.engine.stack import build_from_files, playbook, write_stack_files
from tests.support.postgres import PostgresCluster, cluster_or_skip
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    yield from cluster_or_skip()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_second_engine_on_one_database_refuses_to_start_and_names_the_first(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    environ: dict[str, Any] = write_stack_files(
        tmp_path, prometheus.url, jenkins_server, k8s_server.url, [playbook("checkout", run)]
    )
    if backend == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        environ["SHIPTHREAD_DATABASE_URL"] = await cluster.create_database()
    runtimes: list[Runtime] = []

    async def runtime() -> Runtime:
        runtimes.append(await build_from_files(environ, RecordingChat()))
        return runtimes[-1]

    try:
        first, second = await runtime(), await runtime()
        await first.engine.start()
        with pytest.raises(LeaseHeld) as refused:
            await second.engine.start()
        message = str(refused.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}" in message
        assert "one engine per database" in message
        await first.close()  # gives the lease up
        await second.engine.start()
        with pytest.raises(LeaseHeld):
            await (await runtime()).engine.start()
    finally:
        for built in runtimes:
            await built.close()


class Later:
    """The clock of an engine that starts once this one's lease has expired."""

    def now(self) -> datetime:
        return datetime.now(UTC) + TTL * 2


async def test_an_engine_that_lost_its_lease_refuses_every_command_and_says_so(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    service = f"lease{run}"[:30]
    environ = write_stack_files(
        tmp_path, prometheus.url, jenkins_server, k8s_server.url, [playbook(service, run)]
    )
    runtime = await build_from_files(environ, RecordingChat())
    jenkins = emulator_of(jenkins_server.app)
    try:
        await runtime.engine.start()
        assert not runtime.engine.lease_lost and runtime.engine.lease_problem is None
        # Another engine takes over, as it may once this one has missed its heartbeats for a TTL.
        await DatabaseLease(runtime.store.engine, Later(), host="bot-elsewhere").acquire()
        assert not await runtime.engine.renew_lease()
        assert runtime.engine.lease_lost
        assert "host bot-elsewhere" in (runtime.engine.lease_problem or "")

        outcome = await runtime.engine.deploy(Deploy(service, "1.2.0"), "U0ALICE", "C0DEPLOYS")
        assert not outcome.ok and outcome.deployment is None
        answer = str(outcome.message)
        assert "no longer holds the database's engine lease" in answer and "host bot-elsewhere" in answer
        await runtime.engine.tick()
        assert jenkins.builds(f"{service}-build") == []
        assert await runtime.store.active_deployments() == []
        for refused in (
            await runtime.engine.approve("d1", "U0BOB"),
            await runtime.engine.reject("d1", "U0BOB", "no"),
            await runtime.engine.cancel("d1", "U0ALICE"),
            await runtime.engine.rollback(Rollback(service), "U0ALICE"),
            await runtime.engine.promote("d1", "U0ALICE"),
            await runtime.engine.lock("production", service, "freeze", "U0ALICE"),
            await runtime.engine.unlock("production", service, "U0ALICE"),
        ):
            assert not refused.ok and "no longer holds the database's engine lease" in str(refused.message)
    finally:
        await runtime.close()
