"""Free text is redacted on its way into a row, on SQLite and PostgreSQL: the database is a way out too.

Every write path that takes text from people, CI or exceptions is driven with secrets in it; then
every row of every table is read back raw and searched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.phases import Phase
from bot.domain.redact import MASK, Redactor
from bot.domain.watch import GuardWatch
from bot.ports import PendingEffect
from bot.store import migrate
from bot.store.db import create_engine
from bot.store.models import Base
from bot.store.repository import Repository

HELD = "8f2b6c0e4a1d9f7b3c5e8a2d6f0b4c9e"  # a signing secret: no shape gives it away
DB_PASSWORD = "Pg-pa55word-42"
PG_URL = f"postgresql+asyncpg://shipthread:{DB_PASSWORD}@db.internal:5432/ship"
SHAPE = "xoxb-1234567890-abcdefghijkl"  # nobody registered it: its shape gives it away
SECRETS = [HELD, DB_PASSWORD, "1234567890-abcdefghijkl"]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def carrying(what: str) -> str:
    return f"{what}: {HELD} / {SHAPE} / could not connect to {PG_URL}"


@pytest.fixture
async def masked_repo(database_url: str) -> AsyncIterator[Repository]:
    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield Repository(engine, redactor=Redactor([HELD, DB_PASSWORD]))
    finally:
        await engine.dispose()


async def all_rows(repo: Repository) -> list[str]:
    async with repo.engine.connect() as conn:
        return [
            f"{table.name}: {tuple(row)!r}"
            for table in Base.metadata.sorted_tables
            for row in await conn.execute(select(table))
        ]


async def test_no_secret_reaches_a_row(masked_repo: Repository) -> None:
    repo = masked_repo
    dep = Deployment(
        id="d1",
        service="checkout",
        env="production",
        version="1.4.2",
        strategy=Strategy.ROLLING,
        requester="U_ALICE",
        phase=Phase.REQUESTED,
        created_at=at(0),
        updated_at=at(0),
        emergency_reason=carrying("emergency"),
    )
    effect = PendingEffect("d1:notify:1", "d1", "notify", {"text": carrying("effect"), "n": 1}, at(0))
    await repo.create_deployment(dep, "requested", {"note": carrying("event"), "list": [HELD]}, [effect])
    failed = dataclasses.replace(dep.with_phase(Phase.FAILED, at(1)), reason=carrying("reason"))
    await repo.save_transition(failed, dep.version_no, "build_failed", {"reason": carrying("event")}, at(1))
    await repo.effect_failed("d1:notify:1", carrying("OSError"), at(2))
    await repo.add_vote(Vote("d1", 0, "U_BOB", approve=True, at=at(1)))
    await repo.add_vote(Vote("d1", 0, "U_BOB", approve=False, at=at(2), reason=carrying("rejected")))
    await repo.add_vote(Vote("d1", 1, "U_CAROL", approve=False, at=at(2), reason=carrying("rejected")))
    held = await repo.add_lock(
        Lock(None, "production", None, LockKind.MANUAL, carrying("lock"), "U_OPS", at(3), "d1")
    )
    watch = await repo.add_watch(GuardWatch(None, "d1", "checkout", "production", "1.4.1", held.id, at(3)))
    await repo.save_watch(watch.next_window(at(4), carrying("guard")))
    # outcome is a String(128) column: a short one, the long text goes in the detail
    await repo.record_audit(
        AuditEntry(at(5), "U_ALICE", "deploy", "C1", f"checkout/{HELD}", f"refused: {HELD} {SHAPE}",
                   {"text": carrying("detail"), "nested": {"args": [HELD]}})
    )  # fmt: skip

    rows = await all_rows(repo)
    assert len(rows) >= 9
    assert [s for s in SECRETS if any(s in row for row in rows)] == []
    # What was said is still there to read, only the secrets are gone.
    (entry,) = await repo.audit_entries()
    assert entry.outcome == f"refused: {MASK} xoxb-{MASK}"
    assert entry.target == f"checkout/{MASK}"
    url = f"postgresql+asyncpg://shipthread:{MASK}@db.internal:5432/ship"
    masked = f"detail: {MASK} / xoxb-{MASK} / could not connect to {url}"
    assert entry.detail == {"text": masked, "nested": {"args": [MASK]}}
    outbox = await repo.outbox_entry("d1:notify:1")
    assert outbox is not None and outbox.last_error is not None
    assert outbox.last_error.startswith(f"OSError: {MASK} / ")
    assert outbox.effect.payload == {"text": masked.replace("detail", "effect"), "n": 1}


async def test_without_a_redactor_the_shapes_are_still_masked(database_url: str) -> None:
    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        repo = Repository(engine)
        await repo.record_audit(
            AuditEntry(at(0), "U_ALICE", "lock", "C1", "production", f"{HELD} {SHAPE}", {"e": carrying("e")})
        )
        (entry,) = await repo.audit_entries()
    finally:
        await engine.dispose()
    assert "1234567890-abcdefghijkl" not in entry.outcome and DB_PASSWORD not in str(entry.detail)
    assert HELD in entry.outcome  # only a registered value is known to be secret
