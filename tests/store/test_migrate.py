"""Migrations and ``shipthread db upgrade``: idempotent, matching the models, never leaking a password."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.domain.redact import masked_url
from bot.errors import ConfigError, ShipthreadError, TransientError
from bot.store import db, migrate
from bot.store.models import Base
from tests.support.postgres import PostgresCluster

TABLES = {
    "alembic_version",
    "approvals",
    "audit_log",
    "deployment_events",
    "deployments",
    "engine_lease",
    "guard_watches",
    "idempotency_keys",
    "locks",
    "outbox",
    "slack_messages",
    "slack_refs",
    "slack_threads",
}
HEAD = "0007"


async def table_names(url: str) -> set[str]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def shipthread_argv() -> list[str]:
    script = Path(sys.executable).parent / "shipthread"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


async def shipthread(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if k != migrate.URL_ENV}
    environ.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        *shipthread_argv(),
        *args,
        cwd=cwd,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- upgrade, on both backends --------------------------------------------------------------------


async def test_upgrade_creates_the_schema_and_twice_is_harmless(database_url: str) -> None:
    assert await migrate.current_revision(database_url) is None
    assert await migrate.upgrade(database_url) == migrate.head_revision() == HEAD
    assert await migrate.upgrade(database_url) == HEAD
    assert await migrate.current_revision(database_url) == HEAD
    assert await table_names(database_url) == TABLES


async def test_models_match_migrations(database_url: str) -> None:
    await migrate.upgrade(database_url)
    assert await migrate.schema_differences(database_url) == []


async def test_differences_are_reported_before_upgrade(database_url: str) -> None:
    differences = await migrate.schema_differences(database_url)
    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert added == set(Base.metadata.tables)


async def test_downgrade_to_base_removes_everything(database_url: str) -> None:
    await migrate.upgrade(database_url)
    config = migrate.alembic_config(database_url)

    def downgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
    finally:
        await engine.dispose()
    assert await table_names(database_url) == {"alembic_version"}
    assert await migrate.upgrade(database_url) == HEAD
    assert await migrate.schema_differences(database_url) == []


@pytest.mark.postgres
async def test_replicas_upgrading_together_both_succeed(postgres_url: str) -> None:
    results = await asyncio.gather(*(migrate.upgrade(postgres_url) for _ in range(3)))
    assert results == [HEAD] * 3
    assert await migrate.schema_differences(postgres_url) == []


# -- SQLite specifics -----------------------------------------------------------------------------


async def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/deep/er/shipthread.db"
    assert await migrate.upgrade(url) == HEAD
    assert (tmp_path / "deep" / "er" / "shipthread.db").is_file()


async def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", 1, db.SQLITE_BUSY_TIMEOUT_MS]


async def test_in_memory_sqlite_keeps_one_database() -> None:
    engine = db.create_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with engine.connect() as conn:
            assert "deployments" in await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()


# -- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("sqlite:///./shipthread.db", "sqlite+aiosqlite:///./shipthread.db"),
        ("sqlite:////var/lib/shipthread/db.sqlite", "sqlite+aiosqlite:////var/lib/shipthread/db.sqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://bot:pw@db:5432/ship", "postgresql+asyncpg://bot:pw@db:5432/ship"),
        ("postgres://bot:pw@db/ship", "postgresql+asyncpg://bot:pw@db/ship"),
        ("postgresql+asyncpg://bot@db/ship", "postgresql+asyncpg://bot@db/ship"),
    ],
)
def test_urls_get_their_async_driver(given: str, normal: str) -> None:
    assert db.normalize_url(given) == normal


def test_masked_url_hides_the_password() -> None:
    masked = masked_url("postgresql+asyncpg://bot:t0p%40secret@db:5432/ship")
    assert masked == "postgresql+asyncpg://bot:***@db:5432/ship"


@pytest.mark.parametrize(
    "url", ["mysql://bot:hunter2@db/ship", "postgresql+psycopg2://bot:hunter2@db/ship", "::"]
)
def test_unsupported_urls_are_config_errors_without_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        db.normalize_url(url)
    assert "hunter2" not in str(raised.value)


def test_url_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(migrate.URL_ENV, raising=False)
    assert migrate.resolve_url(None) == db.DEFAULT_URL
    monkeypatch.setenv(migrate.URL_ENV, "postgresql://bot@db/ship")
    assert migrate.resolve_url(None) == "postgresql+asyncpg://bot@db/ship"
    assert migrate.resolve_url("sqlite:///given.db") == "sqlite+aiosqlite:///given.db"


async def test_unreachable_server_is_a_transient_error_without_password(unused_port: int) -> None:
    url = f"postgresql://bot:hunter2@127.0.0.1:{unused_port}/ship"
    with pytest.raises(TransientError) as raised:
        await migrate.upgrade(url)
    message = str(raised.value)
    assert message.startswith(
        f"cannot reach the database at postgresql+asyncpg://bot:***@127.0.0.1:{unused_port}/"
    )
    assert "hunter2" not in message


@pytest.mark.postgres
async def test_missing_database_is_a_clear_error(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.url("no_such_db", password="hunter2")
    with pytest.raises(ShipthreadError, match='database "no_such_db" does not exist') as raised:
        await migrate.upgrade(url)
    assert "hunter2" not in str(raised.value)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


# -- the command line -----------------------------------------------------------------------------


async def test_cli_upgrades_sqlite_twice(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli/x.db"
    for _ in range(2):
        code, out, err = await shipthread("db", "upgrade", "--url", url, cwd=tmp_path)
        assert (code, err) == (0, "")
        assert out == f"database at {url} is at revision {HEAD}\n"
    with sqlite3.connect(tmp_path / "cli" / "x.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == TABLES


async def test_cli_relative_sqlite_url_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    code, out, _ = await shipthread("db", "upgrade", "--url", "sqlite:///state/ship.db", cwd=tmp_path)
    assert code == 0
    assert out == f"database at sqlite+aiosqlite:///state/ship.db is at revision {HEAD}\n"
    assert (tmp_path / "state" / "ship.db").is_file()


async def test_cli_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    code, out, _ = await shipthread("db", "upgrade", cwd=tmp_path, env={migrate.URL_ENV: url})
    assert code == 0
    assert out == f"database at sqlite+aiosqlite:///{tmp_path}/env.db is at revision {HEAD}\n"


@pytest.mark.postgres
async def test_cli_upgrades_postgres_twice_and_masks_the_password(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    asyncpg_url = await postgres_cluster.create_database()
    name = asyncpg_url.rsplit("/", 1)[1]
    # Plain postgresql:// as operators write it; trust auth accepts any password.
    url = f"postgresql://postgres:s3cr%40t-pw@127.0.0.1:{postgres_cluster.port}/{name}"
    for _ in range(2):
        code, out, err = await shipthread("db", "upgrade", "--url", url, cwd=tmp_path)
        assert (code, err) == (0, "")
        masked = f"postgresql+asyncpg://postgres:***@127.0.0.1:{postgres_cluster.port}/{name}"
        assert out == f"database at {masked} is at revision {HEAD}\n"
        assert "s3cr" not in out
    conn = await asyncpg.connect(host="127.0.0.1", port=postgres_cluster.port, user="postgres", database=name)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert {r["tablename"] for r in rows} == TABLES
    assert version == HEAD


async def test_cli_unreachable_database_exits_1_with_one_line(tmp_path: Path, unused_port: int) -> None:
    url = f"postgresql://bot:hunter2@127.0.0.1:{unused_port}/ship"
    code, out, err = await shipthread("db", "upgrade", "--url", url, cwd=tmp_path)
    assert (code, out) == (1, "")
    assert err.startswith("shipthread: cannot reach the database at postgresql+asyncpg://bot:***@127.0.0.1:")
    assert err.count("\n") == 1
    assert "hunter2" not in err


async def test_cli_unsupported_url_exits_1(tmp_path: Path) -> None:
    code, _, err = await shipthread("db", "upgrade", "--url", "mysql://bot:hunter2@db/ship", cwd=tmp_path)
    assert code == 1
    assert err.startswith("shipthread: database URL scheme 'mysql' is not supported")
    assert "hunter2" not in err
