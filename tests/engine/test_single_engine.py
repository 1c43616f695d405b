"""One engine per database: a second one, built as ``shipthread serve`` builds it, refuses to start.

Two engines on one database double notifications, can run two Jenkins builds, and deployed requests
one of them had refused (issue 8). Until several replicas are built properly, the second engine's
``start()`` raises ``LeaseHeld`` naming the first; once the first stops, the second starts at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from bot.container import Runtime
from bot.ports import LeaseHeld
from bot.sandbox.chat import RecordingChat
from tests.engine.stack import build_from_files, playbook, write_stack_files
from tests.support.postgres import PostgresCluster, unavailable_reason


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_second_engine_on_one_database_refuses_to_start_and_names_the_first(
    backend, request, tmp_path, prometheus, jenkins_server, k8s_server, run
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
