"""Building the async engine from a database URL, with the settings each backend needs.

Accepted URLs (anything else is a ``ConfigError``):

- ``sqlite+aiosqlite:///relative/path.db``, ``sqlite+aiosqlite:////absolute/path.db`` (three slashes
  then the path: four for an absolute one); plain ``sqlite:///...`` is rewritten to ``+aiosqlite``.
  ``sqlite+aiosqlite://`` or ``.../:memory:`` is an in-memory database (one shared connection).
- ``postgresql+asyncpg://user:password@host:port/db``; plain ``postgresql://`` and ``postgres://``
  are rewritten to ``+asyncpg``.

SQLite gets WAL (readers do not block the writer), foreign keys on, and a busy timeout so that two
writers queue instead of failing at once. PostgreSQL gets a bounded pool, a connect timeout and a
statement timeout, because every network call has a timeout.

A SQLite file gets **one connection** per process (``SQLITE_POOL_SIZE``): SQLite has one writer,
and writers on several connections of one process queue on its file lock, where each waits in
SQLite's busy handler (sleeps of 1 to 100 ms, off the loop, unseen) and sometimes fails with
"database is locked". On one connection they queue in the pool instead, in order, at no cost: the
throughput bench went from 5.4 to 9.7 lifecycles/s and 115 to 79 ms of CPU per lifecycle
(``bench/README.md``). The busy timeout still serves other processes (the CLI, a second engine
asking for the lease).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.errors import ConfigError

DEFAULT_URL = "sqlite+aiosqlite:///./shipthread.db"
"""A SQLite file in the working directory: enough for one replica."""

SQLITE_BUSY_TIMEOUT_MS = 5_000
SQLITE_POOL_SIZE = 1
"""Connections to a SQLite file per process: one writer, queueing in the pool (module docstring)."""
SQLITE_POOL_TIMEOUT_S = 10.0
"""How long a statement waits for the connection (a wait that long means something holds it).

Well under the engine lease's TTL less its renewal period (30 s - 10 s, ``bot.domain.lease``): the
lease's heartbeat queues for this connection like every writer, and a renewal that waited longer
would fail only after another engine could have taken the lease over."""
PG_CONNECT_TIMEOUT_S = 10.0
PG_COMMAND_TIMEOUT_S = 30.0

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def parse_url(url: str) -> URL:
    """The URL with its async driver filled in; ``ConfigError`` for a malformed or unsupported one."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        # The message of ArgumentError quotes the URL, password included: say less.
        raise ConfigError(
            "database URL is not a valid URL (expected e.g. sqlite+aiosqlite:///./shipthread.db)"
        ) from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"database URL scheme {parsed.drivername!r} is not supported: "
            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/DB"
        )
    return parsed.set(drivername=driver)


def normalize_url(url: str) -> str:
    """``url`` with the async driver spelled out (see the module docstring). Keeps the password."""
    return parse_url(url).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return parse_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL, or None for in-memory databases and other backends."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def create_engine(url: str | None = None) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` (default: ``DEFAULT_URL``). Connects lazily, on first use."""
    parsed = parse_url(url or DEFAULT_URL)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed)


def _sqlite_engine(parsed: URL) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    in_memory = not parsed.database or parsed.database == ":memory:"
    if in_memory:
        # Each new connection to ":memory:" would be a different, empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=0, pool_timeout=SQLITE_POOL_TIMEOUT_S)
    engine = create_async_engine(parsed, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return engine


def _postgres_engine(parsed: URL) -> AsyncEngine:
    return create_async_engine(
        parsed,
        pool_size=5,
        max_overflow=10,
        pool_timeout=PG_CONNECT_TIMEOUT_S,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args={"timeout": PG_CONNECT_TIMEOUT_S, "command_timeout": PG_COMMAND_TIMEOUT_S},
    )
