"""The outbox: effects stored with the transition that decided them, run once, surviving a restart.

Each test runs on SQLite and on a real PostgreSQL, on a freshly migrated database.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.domain.deployment import Deployment, Strategy
from bot.domain.phases import Phase
from bot.errors import Busy, NotFound, StaleDeployment
from bot.ports import PendingEffect, Store
from bot.store import db, migrate
from bot.store.repository import Repository
from bot.store.rows import deployment_values

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def deployment(dep_id: str = "d1", *, env: str = "production", created: float = 0) -> Deployment:
    return Deployment(
        id=dep_id,
        service="checkout",
        env=env,
        version="1.4.2",
        strategy=Strategy.CANARY,
        requester="U_ALICE",
        phase=Phase.REQUESTED,
        created_at=at(created),
        updated_at=at(created),
    )


def effect(key: str, dep_id: str = "d1", created: float = 1, **payload: object) -> PendingEffect:
    return PendingEffect(
        key=key,
        deployment_id=dep_id,
        effect_type=key.rsplit(":", 1)[-1],
        payload=payload,
        created_at=at(created),
    )


async def keys(store: Store, deployment_id: str | None = None) -> list[str]:
    return [e.key for e in await store.pending_effects(deployment_id)]


def test_repository_is_a_store(repo: Repository) -> None:
    store: Store = repo  # mypy checks the structure; bot/store/repository.py's _as_store does too
    assert store is repo


async def test_transition_queues_its_effects_in_order(repo: Repository) -> None:
    dep = deployment()
    await repo.create_deployment(dep, "Requested", {})
    # Same created_at for all three: the order they were decided in must survive.
    effects = [
        effect("d1:post:approval", text="needs approval <!channel>", who=["U_BOB", "U_CAROL"]),
        effect("d1:dm:U_BOB", stage={"n": 1, "of": 2}),
        effect("d1:timer:expire", after_s=3600.5, flag=None),
    ]
    waiting = dep.with_phase(Phase.AWAITING_APPROVAL, at(1))
    await repo.save_transition(waiting, 0, "ApprovalsRequired", {}, at(1), effects)

    assert await repo.pending_effects() == effects
    assert await repo.pending_effects("d1") == effects
    assert await repo.pending_effects("other") == []
    assert await repo.get_deployment("d1") == waiting


async def test_an_effect_is_never_queued_twice(repo: Repository) -> None:
    dep = deployment()
    first = effect("d1:build:1", job="checkout-release")
    await repo.create_deployment(dep, "Requested", {}, [first])
    again = dataclasses.replace(first, payload={"job": "changed"}, created_at=at(2))
    step = dep.with_phase(Phase.AWAITING_APPROVAL, at(2))
    await repo.save_transition(step, 0, "A", {}, at(2), [again, effect("d1:post:x", created=2), again])
    assert await repo.pending_effects() == [first, effect("d1:post:x", created=2)]

    # Done, then decided again by a replayed event: still not queued again.
    await repo.effect_done("d1:build:1", at(3))
    await repo.save_transition(step.with_phase(Phase.BUILDING, at(4)), 1, "Approved", {}, at(4), [again])
    assert await keys(repo) == ["d1:post:x"]


async def test_pending_is_oldest_first_across_deployments(repo: Repository) -> None:
    await repo.create_deployment(deployment("a"), "Requested", {}, [effect("a:1", "a", created=5)])
    await repo.create_deployment(
        deployment("b", env="staging", created=1),
        "Requested",
        {},
        [effect("b:1", "b", created=3), effect("b:2", "b", created=3), effect("b:0", "b", created=7)],
    )
    await repo.save_transition(
        deployment("a").with_phase(Phase.CANCELLED, at(8)), 0, "Cancelled", {}, at(8), [effect("a:2", "a", 4)]
    )
    assert await keys(repo) == ["b:1", "b:2", "a:2", "a:1", "b:0"]
    assert await keys(repo, "a") == ["a:2", "a:1"]


async def test_done_effects_leave_the_queue_once(repo: Repository) -> None:
    await repo.create_deployment(deployment(), "Requested", {}, [effect("d1:a"), effect("d1:b")])
    await repo.effect_done("d1:a", at(2))
    await repo.effect_done("d1:a", at(9))  # a retry reporting again keeps the first completion
    await repo.effect_done("unknown", at(2))
    assert await keys(repo) == ["d1:b"]
    entry = await repo.outbox_entry("d1:a")
    assert entry is not None
    assert entry.effect == dataclasses.replace(effect("d1:a"), done_at=at(2))
    assert await repo.outbox_entry("unknown") is None


async def test_failures_are_counted_and_the_effect_stays_pending(repo: Repository) -> None:
    await repo.create_deployment(deployment(), "Requested", {}, [effect("d1:build:1")])
    fresh = await repo.outbox_entry("d1:build:1")
    assert fresh is not None
    assert (fresh.attempts, fresh.last_error, fresh.last_failed_at) == (0, None, None)

    await repo.effect_failed("d1:build:1", "Jenkins answered 503", at(2))
    await repo.effect_failed("d1:build:1", "timed out after 10 s", at(3))
    await repo.effect_failed("no-such-key", "whatever", at(3))
    failed = await repo.outbox_entry("d1:build:1")
    assert failed is not None
    assert (failed.attempts, failed.last_error, failed.last_failed_at) == (2, "timed out after 10 s", at(3))
    assert await keys(repo) == ["d1:build:1"]

    await repo.effect_done("d1:build:1", at(4))
    await repo.effect_failed("d1:build:1", "late report", at(5))
    done = await repo.outbox_entry("d1:build:1")
    assert done is not None and (done.attempts, done.last_error) == (2, "timed out after 10 s")


async def test_concurrent_failures_all_count(repo: Repository) -> None:
    await repo.create_deployment(deployment(), "Requested", {}, [effect("d1:x")])
    await asyncio.gather(*(repo.effect_failed("d1:x", f"try {i}", at(i)) for i in range(5)))
    entry = await repo.outbox_entry("d1:x")
    assert entry is not None and entry.attempts == 5


async def test_a_refused_transition_queues_nothing(repo: Repository) -> None:
    dep = deployment()
    await repo.create_deployment(dep, "Requested", {})
    await repo.create_deployment(deployment("live", created=1), "Requested", {})
    await repo.save_transition(
        deployment("live", created=1).with_phase(Phase.BUILDING, at(2)), 0, "B", {}, at(2)
    )

    with pytest.raises(StaleDeployment):
        await repo.save_transition(
            dep.with_phase(Phase.CANCELLED, at(3)), 7, "C", {}, at(3), [effect("d1:stale")]
        )
    with pytest.raises(Busy):
        await repo.save_transition(
            dep.with_phase(Phase.BUILDING, at(3)), 0, "B", {}, at(3), [effect("d1:busy")]
        )
    assert await repo.pending_effects() == []
    assert [e.type for e in await repo.events_for("d1")] == ["Requested"]


async def test_an_effect_of_an_unknown_deployment_rolls_the_transition_back(repo: Repository) -> None:
    dep = deployment()
    await repo.create_deployment(dep, "Requested", {})
    with pytest.raises(NotFound, match="ghost"):
        await repo.save_transition(
            dep.with_phase(Phase.CANCELLED, at(1)),
            0,
            "C",
            {},
            at(1),
            [effect("d1:ok"), effect("g:1", "ghost")],
        )
    assert await repo.get_deployment("d1") == dep
    assert [e.type for e in await repo.events_for("d1")] == ["Requested"]
    assert await repo.pending_effects() == []

    with pytest.raises(NotFound, match="ghost"):
        await repo.create_deployment(
            deployment("d2", env="staging"), "Requested", {}, [effect("g:1", "ghost")]
        )
    assert await repo.get_deployment("d2") is None


async def test_pending_effects_survive_a_restart(database_url: str) -> None:
    await migrate.upgrade(database_url)
    engine = db.create_engine(database_url)
    try:
        await Repository(engine).create_deployment(
            deployment(), "Requested", {}, [effect("d1:a"), effect("d1:b")]
        )
    finally:
        await engine.dispose()  # the process is gone; only the database remains

    engine = db.create_engine(database_url)
    try:
        restarted = Repository(engine)
        assert await keys(restarted) == ["d1:a", "d1:b"]
        await restarted.effect_done("d1:a", at(2))
        assert await keys(restarted) == ["d1:b"]
    finally:
        await engine.dispose()


async def test_0002_upgrades_a_0001_database_and_downgrades_again(database_url: str) -> None:
    # The rows are written as the schema of the revision at hand has them (reflected), not through
    # today's Repository: later revisions add columns an 0001 or 0002 database does not have.
    engine = db.create_engine(database_url)

    async def migrate_to(revision: str, *, down: bool = False) -> None:
        config = migrate.alembic_config(database_url)

        def step(connection: Connection) -> None:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)

        async with engine.begin() as conn:
            await conn.run_sync(step)

    async def insert(dep: Deployment) -> None:
        async with engine.begin() as conn:
            table = await conn.run_sync(lambda c: sa.Table("deployments", sa.MetaData(), autoload_with=c))
            values = {k: v for k, v in deployment_values(dep).items() if k in table.c}
            await conn.execute(table.insert().values(**values))

    async def start_building(dep_id: str) -> None:
        """Move a deployment out of ``requested``: raises ``IntegrityError`` where 0002's index holds."""
        async with engine.begin() as conn:
            table = await conn.run_sync(lambda c: sa.Table("deployments", sa.MetaData(), autoload_with=c))
            await conn.execute(
                table.update().where(table.c.id == dep_id).values(phase=Phase.BUILDING.value, version_no=1)
            )

    async def building() -> list[str]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT id FROM deployments WHERE phase = :p ORDER BY id"),
                {"p": Phase.BUILDING.value},
            )
            return [row[0] for row in rows]

    try:
        await migrate_to("0001")
        # Queued deployments of one service are what 0001 databases hold; they migrate as they are.
        await insert(deployment("q1"))
        await insert(deployment("q2", created=1))
        await migrate_to("0002")
        assert await migrate.current_revision(database_url) == "0002"
        await start_building("q1")
        with pytest.raises(IntegrityError):
            await start_building("q2")  # the one-active index 0002 adds

        await migrate_to("0001", down=True)
        assert await migrate.current_revision(database_url) == "0001"
        # Without the index nothing holds the environment any more (what 0002 is for).
        await start_building("q2")
        assert await building() == ["q1", "q2"]
    finally:
        await engine.dispose()
