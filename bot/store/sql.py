"""SQL helpers every store module shares: the dialect's own INSERT, and a statement's row count.

``on_conflict_do_nothing``/``do_update`` exist only on the PostgreSQL and SQLite dialects' INSERT,
not on SQLAlchemy's generic one, so each store module builds its upserts through ``insert`` here.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import PermanentError
from bot.store.models import Base


def insert(session: AsyncSession, entity: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own INSERT into ``entity``'s table (it has ``on_conflict_do_nothing``)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(entity)
    if dialect == "sqlite":
        return sqlite.insert(entity)
    raise PermanentError(f"the store does not support the {dialect} database")  # pragma: no cover


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE matched (SQLAlchemy types ``execute``'s result loosely)."""
    return cast(CursorResult[Any], result).rowcount
