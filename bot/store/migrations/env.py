"""Alembic's environment: how migrations reach the database.

``bot.store.migrate`` opens the connection itself (through ``bot.store.db.create_engine``, so SQLite
gets its pragmas and URLs their async driver) and hands it over in ``config.attributes["connection"]``.
Run by the ``alembic`` command line instead, this file builds the async engine from
``$SHIPTHREAD_DATABASE_URL`` (or the default SQLite file) and runs the migrations through
``connection.run_sync``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from bot.store import db
from bot.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or os.environ.get("SHIPTHREAD_DATABASE_URL") or db.DEFAULT_URL
    return db.normalize_url(str(url))


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables instead.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = db.create_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
