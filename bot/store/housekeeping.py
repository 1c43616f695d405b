"""What the serve process asks of the database besides the engine's work: figures and pruning.

Two small statements, kept out of the repository because nothing in the engine needs them:

- ``outbox_stats``: the outbox's depth and its oldest waiting effect in one ``COUNT``/``MIN``
  query, for the ``/metrics`` gauges — a scrape every few seconds must not load every pending row.
- ``prune_delivery_keys``: the idempotency keys of Slack deliveries (``slack-…``, see
  ``bot.slack.keys``) stop mattering once Slack has stopped retrying (minutes) and people have
  stopped double-clicking; without pruning the table grows by one row per request for ever.
  Effects' keys stay: they are one per deployment step and some carry a result a later step reads
  (the colour a blue-green rollout brought up).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import sql
from bot.store.models import IdempotencyKeyRow, OutboxRow

DELIVERY_KEY_PREFIX: Final = "slack-"
"""What every Slack delivery's key starts with (``bot.slack.keys``)."""

DELIVERY_KEY_TTL: Final = timedelta(days=1)
"""How long a delivery key is kept: far beyond Slack's retries and any double click."""


async def outbox_stats(engine: AsyncEngine) -> tuple[int, datetime | None]:
    """How many effects wait in the outbox, and when the oldest of them was decided (None: none)."""
    query = select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.done_at.is_(None))
    async with engine.connect() as connection:
        row = (await connection.execute(query)).one()
    return int(row[0]), row[1]


async def prune_delivery_keys(engine: AsyncEngine, now: datetime, ttl: timedelta = DELIVERY_KEY_TTL) -> int:
    """Delete the Slack delivery keys claimed before ``now - ttl``; returns how many went."""
    statement = delete(IdempotencyKeyRow).where(
        IdempotencyKeyRow.key.startswith(DELIVERY_KEY_PREFIX, autoescape=True),
        IdempotencyKeyRow.created_at < now - ttl,
    )
    async with engine.begin() as connection:
        return sql.rowcount(await connection.execute(statement))
