"""Fixtures for the Slack app's end-to-end tests: emulators in threads, a ``shipthread serve`` process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import User, create_slack_app, emulator_of
from tests.engine.stack import create_k8s_deployment
from tests.slack.serve_process import ServeProcess, serve_environ, start_serve

IMAGE = "registry.example.com/{}:{}"
EXTRA_USERS = (User("U0DAVE", "dave", "Dave Lead"), User("U0ERIN", "erin", "Erin Oncall"))


@pytest.fixture
def slack_server() -> Iterator[ServerThread]:
    with ServerThread(create_slack_app(rate_limits=False), name="slack") as server:
        for user in EXTRA_USERS:
            emulator_of(server.app).add_user(user)
        yield server


@pytest.fixture
async def serve_of(
    tmp_path: Path,
    prometheus: Any,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    slack_server: ServerThread,
) -> AsyncIterator[Any]:
    """Start ``shipthread serve`` for the given playbooks (their Deployments at 1.0.0); stopped after."""
    started: list[ServeProcess] = []

    def start(
        *books: dict[str, Any],
        config: dict[str, Any] | None = None,
        args: tuple[str, ...] = ("--upgrade", "--poll-interval", "0.1"),
        create: bool = True,
        environ: dict[str, str] | None = None,
        program: tuple[str, ...] = ("-m", "bot"),
    ) -> ServeProcess:
        environ = {
            **serve_environ(
                tmp_path, prometheus.url, jenkins_server, k8s_server.url, slack_server, list(books), config
            ),
            **(environ or {}),
        }
        if create:
            for book in books:
                create_k8s_deployment(
                    k8s_server.url,
                    book["service"],
                    IMAGE.format(book["service"], "1.0.0"),
                    track=book["environments"]["production"].get("strategy") == "canary",
                )
        process = start_serve(
            tmp_path, environ, args=args, slack=slack_server, prometheus_url=prometheus.url, program=program
        )
        started.append(process)
        return process

    yield start
    for process in started:
        code = process.stop()
        assert code == 0, "serve did not exit cleanly:\n" + "\n".join(process.lines[-30:])
