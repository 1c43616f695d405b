"""SQL helpers every store module shares: the dialect's own INSERT, and a statement's row count.

Both take an ORM session or a Core connection (``Executor``): the hot paths (a transition, the
reads every poll makes) run on a bare connection, where the ORM's per-statement cost shows.

``on_conflict_do_nothing``/``do_update`` exist only on the PostgreSQL and SQLite dialects' INSERT,
not on SQLAlchemy's generic one, so each store module builds its upserts through ``insert`` here.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.errors import PermanentError
from bot.store.models import Base

Executor = AsyncSession | AsyncConnection
"""What a store module's statements run on: an ORM session or, on the hot paths, a Core connection."""


def dialect_name(executor: Executor) -> str:
    bind = executor if isinstance(executor, AsyncConnection) else executor.get_bind()
    return bind.dialect.name


def insert(session: Executor, entity: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own INSERT into ``entity``'s table (it has ``on_conflict_do_nothing``)."""
    dialect = dialect_name(session)
    if dialect == "postgresql":
        return postgresql.insert(entity)
    if dialect == "sqlite":
        return sqlite.insert(entity)
    raise PermanentError(f"the store does not support the {dialect} database")  # pragma: no cover


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE matched (SQLAlchemy types ``execute``'s result loosely)."""
    return cast(CursorResult[Any], result).rowcount
