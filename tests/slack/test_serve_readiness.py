"""``/readyz`` takes a server whose engine lost its lease out of service, naming why.

Run in-process (``build_server`` and ``Server`` exactly as ``shipthread serve`` runs them) so the
lease's heartbeat is driven by hand (``Engine.renew_lease``) instead of waiting ``RENEW_EVERY``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.lease import TTL
from bot.sandbox.server import ServerThread
from bot.serve import ServeOptions, build_server
from bot.store.lease import DatabaseLease
from tests.engine.stack import playbook
from tests.slack.serve_process import serve_environ


class Later:
    """The clock of an engine that starts once the server's lease has expired."""

    def now(self) -> datetime:
        return datetime.now(UTC) + TTL * 2


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


async def test_readyz_fails_naming_the_engine_that_took_the_lease_over(
    tmp_path: Path,
    prometheus: Any,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    slack_server: ServerThread,
    run: str,
) -> None:
    environ = serve_environ(
        tmp_path, prometheus.url, jenkins_server, k8s_server.url, slack_server, [playbook("checkout", run)]
    )
    server = await build_server(ServeOptions(host="127.0.0.1", port=0, upgrade=True), environ)
    await server.start()
    try:
        status, body = await readyz(server.port)
        assert status == 200 and body["checks"]["engine"] == "ok", body
        # Another engine takes over, as it may once this one has missed its heartbeats for a TTL.
        await DatabaseLease(server.runtime.store.engine, Later(), host="bot-elsewhere").acquire()
        assert not await server.runtime.engine.renew_lease()
        status, body = await readyz(server.port)
        assert status == 503, body
        assert set(body["failing"]) == {"engine"}, json.dumps(body)
        assert "lease was taken over" in body["failing"]["engine"]
        assert "host bot-elsewhere" in body["failing"]["engine"]
    finally:
        await server.stop()
