"""A ``shipthread serve`` process's life: what it tidies at start, what it says while it drains.

Real processes against the emulators, as in ``test_app_serve``: the Slack delivery keys of long
ago are pruned when it starts, the event loop's lag is on ``/metrics`` from the first moment, and
once SIGTERM starts the drain ``/readyz`` answers 503 naming ``shutting_down`` (so a load balancer
stops sending work) until the process is gone.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bot.sandbox.server import ServerThread
from bot.store import migrate
from bot.store.db import create_engine
from bot.store.repository import Repository
from tests.engine.stack import playbook
from tests.slack.serve_process import ServeProcess

SRE = [{"group": "sre", "count": 1}]
StartServe = Callable[..., ServeProcess]


async def _readyz(serve: ServeProcess) -> tuple[int, dict[str, object]] | None:
    """``/readyz``'s answer, or None once nothing listens any more."""
    try:
        status, body = await serve.get("/readyz")
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    return status, json.loads(body)


async def test_readyz_says_shutting_down_from_sigterm_until_the_process_is_gone(
    run: str, serve_of: StartServe, slack_server: ServerThread
) -> None:
    serve = serve_of(playbook("checkout", run, approvals=SRE))
    first = await _readyz(serve)
    assert first is not None and first[0] == 200, first
    # Slack holds every post for a while: the notifier's flush at shutdown keeps the process
    # draining long enough to ask it how it is.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{slack_server.url}/_sandbox/faults",
            json={"mode": "hang", "methods": ["chat.postMessage"], "seconds": 30, "hang_s": 3},
        ) as installed,
    ):
        assert installed.status < 300, await installed.text()
    acked = await serve.driver().slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")
    assert acked.status == 200
    await serve.wait(lambda: serve.ephemerals("U0ALICE"), what="the deployment's answer")
    serve.process.send_signal(signal.SIGTERM)
    answers: list[tuple[int, dict[str, object]]] = []
    while serve.process.poll() is None:
        answer = await _readyz(serve)
        if answer is None:
            break
        answers.append(answer)
        await asyncio.sleep(0.05)
    # Waited for, not signalled again: a second SIGTERM after the drain would kill it.
    assert await asyncio.to_thread(serve.process.wait, 30) == 0
    assert answers, "the process was gone before /readyz could be asked"
    for status, body in answers:
        assert status == 503, body
        failing = body["failing"]
        assert isinstance(failing, dict) and "shutting_down" in failing, body
        assert "SIGTERM" in str(failing["shutting_down"])


async def test_old_delivery_keys_are_pruned_at_start_and_the_loop_lag_is_on_metrics(
    tmp_path: Path, run: str, serve_of: StartServe
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shipthread.db'}"  # where the stack's config puts it
    await migrate.upgrade(url)
    engine = create_engine(url)
    try:
        repo = Repository(engine)
        now = datetime.now(UTC)
        await repo.complete_key("slack-command:long-ago", {"text": "done"}, now - timedelta(days=2))
        await repo.claim_key("slack-command:just-now", now - timedelta(minutes=5))
    finally:
        await engine.dispose()

    serve = serve_of(playbook("checkout", run, approvals=SRE))
    engine = create_engine(url)
    try:
        repo = Repository(engine)
        assert await repo.get_key("slack-command:long-ago") is None
        assert await repo.get_key("slack-command:just-now") is not None
    finally:
        await engine.dispose()
    assert await serve.metric("shipthread_event_loop_lag_seconds_count") > 0
    assert await serve.metric("shipthread_event_loop_lag_max_seconds") > 0


def _handshakes(port: int, count: int, timeout_s: float) -> int:
    """How many of ``count`` TCP handshakes with 127.0.0.1:``port`` complete within ``timeout_s``.

    The kernel completes a handshake and queues the connection for ``accept`` without the process's
    help, up to the listen backlog; past it the handshake is dropped and a client retries it after
    a second. So with the server stopped, the completed handshakes count the backlog (+1)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        deadline = time.monotonic() + timeout_s
        done: set[int] = set()
        while len(done) < count and time.monotonic() < deadline:
            _, writable, _ = select.select([], [s for s in sockets if s.fileno() not in done], [], 0.05)
            done.update(s.fileno() for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        return len(done)
    finally:
        for sock in sockets:
            sock.close()


async def test_a_burst_of_connections_past_aiohttps_default_backlog_is_held_not_dropped(
    run: str, serve_of: StartServe
) -> None:
    # 200 simultaneous /deploys (bench/ack.py) used to lose the handshakes past 128 (aiohttp's
    # default backlog) and wait a second for the client's retry: the p99 of such a burst was 1 s.
    serve = serve_of(playbook("checkout", run))
    serve.process.send_signal(signal.SIGSTOP)  # nothing is accepted: only the backlog holds them
    try:
        held = await asyncio.to_thread(_handshakes, serve.port, 400, 0.5)
    finally:
        serve.process.send_signal(signal.SIGCONT)
    assert held == 400
    status, _ = await serve.get("/healthz")  # and every one of them let go without harm
    assert status == 200
