"""Fixtures of the store tests: a database URL per test, on SQLite and on a real PostgreSQL.

One PostgreSQL cluster per session (about a second to start); each test gets a fresh database in
it (tens of milliseconds). Without the server binaries the PostgreSQL cases skip with a reason,
except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.store import migrate
from bot.store.db import create_engine
from bot.store.repository import Repository
from tests.support.postgres import PostgresCluster, cluster_or_skip

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    yield from cluster_or_skip()


@pytest.fixture
async def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database of the session's cluster."""
    return await postgres_cluster.create_database()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A fresh SQLite file (absolute path, hence four slashes)."""
    return f"sqlite+aiosqlite:///{tmp_path}/shipthread.db"


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend in turn."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return await cluster.create_database()


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[Repository]:
    """A repository over a freshly migrated database."""
    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield Repository(engine)
    finally:
        await engine.dispose()
