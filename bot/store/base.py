"""What every part of the repository shares: the engine, its sessions, and redaction on the way in.

``Repository`` (``bot.store.repository``) is composed of parts by topic — deployments and the
timer's queries there, people's records (``bot.store.records``), the outbox and idempotency keys
(``bot.store.outbox``) — each a class over this base, so each module holds one job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.domain.redact import Redactor

R = TypeVar("R")
V = TypeVar("V")


class StoreBase:
    """Async access to the store over one ``AsyncEngine``. Safe to share; each call is a transaction."""

    def __init__(self, engine: AsyncEngine, *, redactor: Redactor | None = None) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Free text (reasons, audit outcomes, payloads, errors) is redacted on its way into a row:
        # a database is a way out of the process too (backups, replicas, people reading it).
        self._redactor = redactor or Redactor()

    def _masked(self, values: dict[str, Any], *fields: str) -> dict[str, Any]:
        """``values`` with the text of ``fields`` redacted."""
        return {
            k: self._redactor.redact(v) if k in fields and isinstance(v, str) else v
            for k, v in values.items()
        }

    async def _inserted(self, row: R, value_of: Callable[[R], V]) -> V:
        """Insert ``row`` in a transaction of its own; the value it stands for, with the ids the
        database gave it (an ``IntegrityError`` is the caller's to name)."""
        async with self._sessions.begin() as session:
            session.add(row)
            await session.flush()
            return value_of(row)

    def _text(self, text: str | None) -> str | None:
        return None if text is None else self._redactor.redact(text)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine
