"""The outbox and idempotency keys: the effects a transition still owes, and work done once.

A part of ``Repository`` (``bot.store.base``). Effects are queued in the transaction of the
transition that decided them (``queue_effects``), performed after it, and marked done with the
event they produced; a key claimed with ``INSERT ... ON CONFLICT DO NOTHING`` is how an adapter
finds its own earlier work after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.domain.redact import Redactor
from bot.errors import NotFound
from bot.ports import (
    PendingEffect,
)
from bot.store import rows as convert
from bot.store import sql
from bot.store.base import StoreBase
from bot.store.models import (
    IdempotencyKeyRow,
    OutboxRow,
)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An idempotency key: claimed at ``created_at``; ``completed_at`` and ``result`` once done."""

    key: str
    created_at: datetime
    result: Mapping[str, Any] | None
    completed_at: datetime | None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outbox effect with its delivery record: how often it failed, and the last reason why."""

    effect: PendingEffect
    attempts: int
    last_error: str | None
    last_failed_at: datetime | None


_OUTBOX = cast(Table, OutboxRow.__table__)
_SQLITE_ROWS_PER_INSERT = 100
"""Effects per multi-row INSERT on SQLite: 7 parameters each, under the 999 older SQLites allow."""


async def queue_effects(
    session: sql.Executor, effects: Sequence[PendingEffect], redactor: Redactor
) -> list[PendingEffect]:
    """Insert ``effects`` into the outbox, in order; a key already queued is left as it is.
    Returns the effects it inserted (not those whose key was there already), in order.

    ``seq`` must follow the order of ``effects``. SQLite inserts a multi-row VALUES row by row, in
    order, each taking the next rowid, so there the effects are one statement (an INSERT per effect
    was a sixth of a lifecycle's statements); elsewhere (PostgreSQL does not promise the order in
    which one statement's rows draw from the sequence) one statement per effect.
    """
    if not effects:
        return []
    rows = [
        {
            "key": effect.key,
            "deployment_id": effect.deployment_id,
            "effect_type": effect.effect_type,
            "payload": redactor.redact_data(dict(effect.payload)),
            "created_at": effect.created_at,
            "done_at": effect.done_at,
            "attempts": 0,
        }
        for effect in effects
    ]
    size = _SQLITE_ROWS_PER_INSERT if sql.dialect_name(session) == "sqlite" else 1
    batches = [rows[i : i + size] for i in range(0, len(rows), size)]
    inserted: set[str] = set()
    try:
        for batch in batches:
            result = await session.execute(
                sql.insert(session, OutboxRow)
                .values(batch)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(_OUTBOX.c.key)
            )
            inserted.update(result.scalars())
    except IntegrityError as exc:  # only the foreign key is left to violate
        named = ", ".join(sorted({e.deployment_id for e in effects}))
        raise NotFound(f"effects {effects[0].key}... name deployment {named}, which does not exist") from exc
    return [effect for effect in effects if effect.key in inserted]


class OutboxQueries(StoreBase):
    # -- idempotency keys -------------------------------------------------------------------------

    async def claim_key(self, key: str, at: datetime, takeover_before: datetime | None = None) -> bool:
        """Claim ``key``: True for the first claimer only, also under concurrent claims and replicas.

        With ``takeover_before``, a claim made before it and never completed is taken over (its
        claimer died or hung): the one statement moves its ``created_at`` to ``at``, so of two
        concurrent takers only one matches the condition and wins.
        """
        async with self._sessions.begin() as session:
            stmt = sql.insert(session, IdempotencyKeyRow).values(
                key=key, created_at=at, result=None, completed_at=None
            )
            if takeover_before is None:
                stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
            else:
                stmt = stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"created_at": at},
                    where=IdempotencyKeyRow.completed_at.is_(None)
                    & (IdempotencyKeyRow.created_at < takeover_before),
                )
            inserted = await session.execute(stmt.returning(IdempotencyKeyRow.key))
            return inserted.first() is not None

    async def complete_key(self, key: str, result: Mapping[str, Any], at: datetime) -> None:
        """Record what the work done under ``key`` produced (claiming it too, if nobody had)."""
        async with self._sessions.begin() as session:
            stmt = sql.insert(session, IdempotencyKeyRow).values(
                key=key, created_at=at, result=dict(result), completed_at=at
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"], set_={"result": stmt.excluded.result, "completed_at": at}
                )
            )

    async def release_key(self, key: str) -> bool:
        """Give up a claim that was never completed (the work failed), so a retry may claim it again.

        False if the key is unknown or already completed: a completed key is never released.
        """
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(IdempotencyKeyRow)
                .where(IdempotencyKeyRow.key == key, IdempotencyKeyRow.completed_at.is_(None))
                .execution_options(synchronize_session=False)
            )
            return sql.rowcount(result) == 1

    async def get_key(self, key: str) -> KeyRecord | None:
        async with self._sessions() as session:
            row = await session.get(IdempotencyKeyRow, key)
            if row is None:
                return None
            return convert.from_row(KeyRecord, row)

    # -- outbox -----------------------------------------------------------------------------------

    async def pending_effects(self, deployment_id: str | None = None) -> list[PendingEffect]:
        """Effects not yet done (of ``deployment_id``, or all), in the order they were decided.

        Core on a bare connection: every poll and transition asks this, and the ORM's cost showed.
        """
        query = select(_OUTBOX).where(_OUTBOX.c.done_at.is_(None))
        if deployment_id is not None:
            query = query.where(_OUTBOX.c.deployment_id == deployment_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(_OUTBOX.c.created_at, _OUTBOX.c.seq))
            return [convert.to_effect(row) for row in rows]

    async def effect_done(self, key: str, at: datetime) -> None:
        """Mark the effect done (the first time only). An unknown key is ignored."""
        await self.effects_done((key,), at)

    async def effects_done(self, keys: Sequence[str], at: datetime) -> None:
        """Mark the effects done (each the first time only), in one statement; unknown keys are ignored.

        The engine marks a run's effects without a result together (``Handler.run_effects``)."""
        if not keys:
            return
        async with self._engine.begin() as conn:  # Core: once per run of effects
            await conn.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.key.in_(list(keys)), _OUTBOX.c.done_at.is_(None))
                .values(done_at=at)
            )

    async def effect_failed(self, key: str, error: str, at: datetime) -> None:
        """Count a failed attempt of a pending effect and keep why. An unknown or done key is ignored.

        The effect stays pending: whether and when to try again is the engine's decision.
        """
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.done_at.is_(None))
                .values(
                    attempts=OutboxRow.attempts + 1,
                    last_error=self._redactor.redact(error),
                    last_failed_at=at,
                )
                .execution_options(synchronize_session=False)
            )

    async def outbox_entry(self, key: str) -> OutboxEntry | None:
        """The effect under ``key`` with its delivery record, done or not (for people and tests)."""
        async with self._sessions() as session:
            row = await session.scalar(select(OutboxRow).where(OutboxRow.key == key))
            if row is None:
                return None
            return OutboxEntry(convert.to_effect(row), row.attempts, row.last_error, row.last_failed_at)
