"""The serve process's own statements: the outbox's figures in one query, old delivery keys pruned.

On SQLite and on a real PostgreSQL (the ``repo`` fixture), on a freshly migrated database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event
from sqlalchemy.engine import Connection

from bot.domain.deployment import Deployment, Strategy
from bot.domain.phases import Phase
from bot.ports import PendingEffect
from bot.store import housekeeping
from bot.store.repository import Repository

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _deployment(dep_id: str) -> Deployment:
    return Deployment(
        id=dep_id,
        service="checkout",
        env=f"env-{dep_id}",
        version="1.4.2",
        strategy=Strategy.ROLLING,
        requester="U_ALICE",
        phase=Phase.REQUESTED,
        created_at=T0,
        updated_at=T0,
    )


def _effect(key: str, dep_id: str, minutes: float) -> PendingEffect:
    return PendingEffect(
        key=key,
        deployment_id=dep_id,
        effect_type="post",
        payload={},
        created_at=T0 + timedelta(minutes=minutes),
    )


async def test_outbox_stats_count_the_waiting_effects_and_date_the_oldest_in_one_query(
    repo: Repository,
) -> None:
    assert await housekeeping.outbox_stats(repo.engine) == (0, None)
    await repo.create_deployment(_deployment("d1"), "Requested", {}, [_effect("d1:a", "d1", 5)])
    await repo.create_deployment(
        _deployment("d2"), "Requested", {}, [_effect("d2:a", "d2", 2), _effect("d2:b", "d2", 9)]
    )
    await repo.effect_done("d2:a", T0 + timedelta(minutes=10))  # done: neither counted nor oldest

    statements: list[str] = []

    def seen(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(repo.engine.sync_engine, "before_cursor_execute", seen)
    try:
        depth, oldest = await housekeeping.outbox_stats(repo.engine)
    finally:
        event.remove(repo.engine.sync_engine, "before_cursor_execute", seen)
    assert (depth, oldest) == (2, T0 + timedelta(minutes=5))
    assert len(statements) == 1 and "count" in statements[0].lower(), statements


async def test_slack_delivery_keys_older_than_a_day_are_pruned_and_nothing_else(repo: Repository) -> None:
    now = T0 + timedelta(days=3)
    old = now - housekeeping.DELIVERY_KEY_TTL - timedelta(minutes=1)
    recent = now - timedelta(hours=1)
    await repo.claim_key("slack-command:old", old)
    await repo.complete_key("slack-click:C1:old", {"text": "approved"}, old)
    await repo.claim_key("slack-view:recent", recent)
    # An effect's key may carry what a later step reads (a blue-green colour): kept, however old.
    await repo.complete_key("d1:rollout:0", {"color": "green"}, old)
    await repo.claim_key("slack_command:not-a-delivery-prefix", old)

    assert await housekeeping.prune_delivery_keys(repo.engine, now) == 2
    assert await repo.get_key("slack-command:old") is None
    assert await repo.get_key("slack-click:C1:old") is None
    assert await repo.get_key("slack-view:recent") is not None
    assert await repo.get_key("d1:rollout:0") is not None
    assert await repo.get_key("slack_command:not-a-delivery-prefix") is not None
    assert await housekeeping.prune_delivery_keys(repo.engine, now) == 0
