"""No secret leaves the process: full deployments with secrets everywhere, then a scan of all that went out.

The stack is built the way ``shipthread serve`` builds it, with every secret Shipthread holds set in
its environment (and, on PostgreSQL, a database URL with a password). A Jenkins build prints all of
them and a handful of foreign credentials; one build fails, so its console tail is posted. Logging
runs at DEBUG (SQL parameters included). Then every captured log line, every notification the chat
got and every row of every table is searched for the secrets, and none may be found.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain.commands import Deploy
from bot.domain.notifications import BuildProgress
from bot.domain.phases import Phase
from bot.domain.redact import MASK
from bot.sandbox.chat import RecordingChat
from bot.sandbox.jenkins import BuildScript, create_jenkins_app, emulator_of
from bot.sandbox.server import ServerThread
from bot.store.models import Base
from tests.engine.stack import Stack, build_from_files, create_k8s_deployment, playbook, write_stack_files
from tests.engine.typed import deployment_of
from tests.support.postgres import PostgresCluster, cluster_or_skip
from tests.support.prometheus import PrometheusServer

HELD = {
    "SLACK_BOT_TOKEN": "xoxb-1111111111-2222222222-BoTtOkEnSeCrEt",
    # The signing secret and the Jenkins token are plain hex: no shape gives them away, only their value.
    "SLACK_SIGNING_SECRET": "8f2b6c0e4a1d9f7b3c5e8a2d6f0b4c9e",
    "SLACK_APP_TOKEN": "xapp-1-A0SHIPTHRD-1234567890-deadbeefcafe",
    "JENKINS_TOKEN": "11a2b3c4d5e6f708192a3b4c5d6e7f8091",
}
DB_PASSWORD = "Pg-pa55word-42"

FOREIGN = {
    # credential shapes nobody registered, as a build script might print them: (printed, the secret part)
    "github": (
        "GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "0123456789abcdefghijABCDEFGHIJ012345",
    ),
    "github_pat": ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "11ABCDEFG0123456789_abcdefghij"),
    "aws": ("aws_access_key_id AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    "bearer": (
        "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.cGF5bG9hZA.c2ln'",
        "eyJhbGciOiJIUzI1NiJ9",
    ),
    "basic": ("Authorization: Basic c2hpcHRocmVhZDpodW50ZXIy", "c2hpcHRocmVhZDpodW50ZXIy"),
    "url": ("git clone https://deploy:url-pa55-word@git.example.com/shop.git", "url-pa55-word"),
    "slack": ("export OTHER_BOT=xoxp-9999999999-other-user-token", "9999999999-other-user-token"),
}


def console(database_url: str) -> str:
    lines = ["+ ./gradlew publish"]
    # Bare values, as a script passes them on: no "TOKEN=" in front to give them away.
    lines += [f"+ ./notify.sh --quiet {value}" for value in HELD.values()]
    lines += [f"+ echo SHIPTHREAD_DATABASE_URL={database_url}", f"password is {DB_PASSWORD}"]
    lines += [printed for printed, _ in FOREIGN.values()]
    lines.append("FAILED: CheckoutTest > pays() expected <200> but was <500>")
    return "\n".join(lines)


@pytest.fixture
def jenkins_server() -> Iterator[ServerThread]:
    """Jenkins that knows Shipthread by the token under test (the shared fixture has a well-known one)."""
    app = create_jenkins_app(time_scale=0.05, token=HELD["JENKINS_TOKEN"])
    with ServerThread(app, name="jenkins") as server:
        yield server


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    yield from cluster_or_skip()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":  # SQLite URLs carry no password: the others are still set
        return f"sqlite+aiosqlite:///{tmp_path / 'shipthread.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = (await cluster.create_database()).rsplit("/", 1)[1]
    return cluster.url(name, password=DB_PASSWORD)


@pytest.fixture
async def stack(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
    database_url: str,
) -> AsyncIterator[Stack]:
    books = [
        playbook("checkout", run),
        playbook("payments", run, approvals=[{"group": "sre", "count": 1}]),
    ]
    environ = write_stack_files(tmp_path, prometheus.url, jenkins_server, k8s_server.url, books)
    environ.update(HELD, SHIPTHREAD_DATABASE_URL=database_url)
    chat = RecordingChat()
    runtime = await build_from_files(environ, chat)
    for book in books:
        create_k8s_deployment(
            k8s_server.url, book["service"], f"registry.example.com/{book['service']}:1.0.0"
        )
    built = Stack(runtime, chat, emulator_of(jenkins_server.app), k8s_server.url, prometheus, run, tmp_path)
    try:
        yield built
    finally:
        await runtime.close()


async def all_rows(stack: Stack) -> list[str]:
    rows: list[str] = []
    async with stack.store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                rows.append(f"{table.name}: {tuple(row)!r}")
    return rows


def leaks(texts: list[str], secrets: list[str]) -> list[str]:
    """The secrets found in ``texts``, each once."""
    return sorted({secret for text in texts for secret in secrets if secret in text})


async def test_no_secret_in_logs_chat_or_database_after_full_deployments(
    stack: Stack, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    printed = console(database_url)
    stack.jenkins.script(
        "checkout-build", BuildScript(result="FAILURE", console=printed), BuildScript(console=printed)
    )
    stack.jenkins.script("payments-build", BuildScript(console=printed))
    stack.ratio("checkout", 0.0)
    stack.ratio("payments", 0.0)

    failed = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    assert failed.ok, failed.message
    assert (await stack.finish(deployment_of(failed).id)).phase is Phase.FAILED
    shipped = await stack.engine.deploy(Deploy("checkout", "1.1.1"), "U0ALICE", "C0DEPLOYS")
    approved = await stack.engine.deploy(Deploy("payments", "2.0.0"), "U0ALICE", "C0DEPLOYS")
    assert (await stack.engine.approve(deployment_of(approved).id, "U0BOB")).ok
    for outcome in (shipped, approved):
        assert (await stack.finish(deployment_of(outcome).id)).phase is Phase.SUCCEEDED

    # The failed build's tail was posted, and it is still useful: the failure reads as it was.
    tails = [
        n.console_tail
        for n in stack.chat.of(BuildProgress)
        if isinstance(n, BuildProgress) and n.console_tail
    ]
    assert tails and "FAILED: CheckoutTest > pays() expected <200> but was <500>" in tails[-1]
    assert tails[-1].count(f"+ ./notify.sh --quiet {MASK}") == len(HELD)  # they were there, masked

    secrets = [*HELD.values(), *(secret for _, secret in FOREIGN.values())]
    if "postgresql" in database_url:  # a SQLite URL has no password to register
        secrets.append(DB_PASSWORD)
    logged = [caplog.text, *(r.getMessage() for r in caplog.records)]
    assert len(caplog.records) > 50  # DEBUG really was on
    assert leaks(logged, secrets) == []
    said = [text for n in stack.chat.notifications for text in (repr(n), str(n))]
    assert leaks(said, secrets) == []
    rows = await all_rows(stack)
    assert any(row.startswith("audit_log") for row in rows)
    assert leaks(rows, secrets) == []
