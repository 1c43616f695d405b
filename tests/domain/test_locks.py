"""Locks: which stored locks and freeze windows stop a service in an environment, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.cron import CronError
from bot.domain.locks import (
    FREEZE_AUTHOR,
    UNLOCKED,
    FreezeWindow,
    Lock,
    LockKind,
    LockReason,
    LockStatus,
    lock_applies,
    lock_status,
)

T0 = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)  # a Wednesday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lock(
    env: str = "production",
    service: str | None = None,
    kind: LockKind = LockKind.MANUAL,
    released_at: datetime | None = None,
    lock_id: int = 1,
    created_at: datetime = T0,
) -> Lock:
    return Lock(
        id=lock_id,
        env=env,
        service=service,
        kind=kind,
        reason="db migration",
        author="U123",
        created_at=created_at,
        released_at=released_at,
        released_by=None if released_at is None else "U456",
    )


WEEKEND = FreezeWindow(
    name="weekend",
    cron="0 16 * * fri",
    duration=timedelta(hours=64),
    envs=("production",),
    reason="weekend freeze",
)
NIGHTLY = FreezeWindow(name="nightly", cron="0 22 * * *", duration=timedelta(hours=8))


@pytest.mark.parametrize(
    ("stored", "service", "env", "applies"),
    [
        pytest.param(lock(), "checkout", "production", True, id="env-wide lock"),
        pytest.param(lock(service="checkout"), "checkout", "production", True, id="same service"),
        pytest.param(lock(service="payments"), "checkout", "production", False, id="other service"),
        pytest.param(lock(env="staging"), "checkout", "production", False, id="other env"),
        pytest.param(lock(released_at=T0), "checkout", "production", False, id="released"),
        pytest.param(lock(kind=LockKind.GUARD), "checkout", "production", True, id="guard lock"),
        pytest.param(lock(env="Production"), "checkout", "production", False, id="env names are exact"),
    ],
)
def test_lock_applies(stored: Lock, service: str, env: str, applies: bool) -> None:
    assert lock_applies(stored, service, env) is applies


def test_nothing_is_unlocked() -> None:
    assert (
        lock_status("checkout", "production", T0, [], []) == UNLOCKED == LockStatus(locked=False, reasons=())
    )


def test_manual_lock_is_reported_with_its_details() -> None:
    status = lock_status(
        "checkout", "production", T0 + timedelta(hours=1), [lock(service="checkout", lock_id=7)], []
    )
    assert status == LockStatus(
        locked=True,
        reasons=(
            LockReason(
                kind=LockKind.MANUAL,
                reason="db migration",
                author="U123",
                since=T0,
                until=None,
                lock_id=7,
                service="checkout",
            ),
        ),
    )


@pytest.mark.parametrize(
    ("stored", "locked"),
    [
        pytest.param(lock(released_at=T0 + timedelta(minutes=5)), False, id="released before now"),
        pytest.param(lock(released_at=T0 + timedelta(minutes=10)), False, id="released exactly now"),
        pytest.param(lock(released_at=T0 + timedelta(minutes=11)), True, id="released after now (history)"),
        pytest.param(
            lock(created_at=T0 + timedelta(minutes=10, seconds=1)),
            True,
            id="created a moment later (clock skew)",
        ),
        pytest.param(lock(service="payments"), False, id="other service"),
        pytest.param(lock(env="staging"), False, id="other env"),
    ],
)
def test_stored_locks_at_a_moment(stored: Lock, locked: bool) -> None:
    assert lock_status("checkout", "production", T0 + timedelta(minutes=10), [stored], []).locked is locked


@pytest.mark.parametrize(
    ("freeze", "env", "now", "since"),
    [
        pytest.param(WEEKEND, "production", "2024-01-05T16:00", "2024-01-05T16:00", id="starts"),
        pytest.param(WEEKEND, "production", "2024-01-05T15:59:59", None, id="not yet"),
        pytest.param(WEEKEND, "production", "2024-01-07T03:00", "2024-01-05T16:00", id="sunday night"),
        pytest.param(WEEKEND, "production", "2024-01-08T07:59:59", "2024-01-05T16:00", id="last second"),
        pytest.param(WEEKEND, "production", "2024-01-08T08:00", None, id="ended (end is exclusive)"),
        pytest.param(WEEKEND, "staging", "2024-01-06T12:00", None, id="not for this env"),
        pytest.param(
            NIGHTLY, "staging", "2024-01-04T02:00", "2024-01-03T22:00", id="all envs, across midnight"
        ),
        pytest.param(NIGHTLY, "dev", "2024-01-03T21:59", None, id="before the nightly freeze"),
        pytest.param(NIGHTLY, "dev", "2024-01-04T06:00", None, id="after the nightly freeze"),
        pytest.param(
            FreezeWindow(name="zero", cron="* * * * *", duration=timedelta(0)),
            "dev",
            "2024-01-04T06:00",
            None,
            id="zero duration never freezes",
        ),
    ],
)
def test_freeze_windows(freeze: FreezeWindow, env: str, now: str, since: str | None) -> None:
    status = lock_status("checkout", env, at(now), [], [freeze])
    if since is None:
        assert status == UNLOCKED
        return
    (reason,) = status.reasons
    assert status.locked
    assert reason.kind is LockKind.FREEZE
    assert reason.since == at(since)
    assert reason.until == at(since) + freeze.duration
    assert reason.author == FREEZE_AUTHOR
    assert reason.name == freeze.name
    assert reason.lock_id is None


def test_freeze_reason_text_defaults_to_its_name() -> None:
    (reason,) = lock_status("checkout", "dev", at("2024-01-03T23:00"), [], [NIGHTLY]).reasons
    assert reason.reason == "freeze window nightly"
    (reason,) = lock_status("checkout", "production", at("2024-01-06T10:00"), [], [WEEKEND]).reasons
    assert reason.reason == "weekend freeze"


def test_all_reasons_are_listed_in_order() -> None:
    guard = lock(kind=LockKind.GUARD, lock_id=2, created_at=at("2024-01-06T09:00"), service="checkout")
    manual = lock(lock_id=1, created_at=at("2024-01-04T10:00"))
    unrelated = lock(lock_id=3, service="payments")
    status = lock_status(
        "checkout", "production", at("2024-01-06T10:00"), [guard, unrelated, manual], [NIGHTLY, WEEKEND]
    )
    assert status.locked
    assert [(r.kind, r.lock_id, r.name) for r in status.reasons] == [
        (LockKind.MANUAL, 1, None),
        (LockKind.FREEZE, None, "weekend"),
        (LockKind.GUARD, 2, None),
    ]
    assert [(r.kind, r.lock_id) for r in status.emergency_blockers] == [
        (LockKind.MANUAL, 1),
        (LockKind.GUARD, 2),
    ]


def test_a_freeze_alone_does_not_block_an_emergency() -> None:
    status = lock_status("checkout", "production", at("2024-01-06T10:00"), [], [WEEKEND])
    assert status.locked
    assert status.emergency_blockers == ()


def test_invalid_freeze_cron_is_an_error() -> None:
    bad = FreezeWindow(name="bad", cron="0 25 * * *", duration=timedelta(hours=1))
    with pytest.raises(CronError, match="hour 25 is out of range 0-23"):
        lock_status("checkout", "production", T0, [], [bad])


@settings(max_examples=200, deadline=None)
@given(
    start_offset=st.integers(-10_000, 10_000),
    duration_minutes=st.integers(1, 3 * 24 * 60),
)
def test_daily_freeze_covers_exactly_its_window(start_offset: int, duration_minutes: int) -> None:
    """A daily 22:00 freeze of d minutes covers t iff some 22:00 start s has s <= t < s + d."""
    now = T0 + timedelta(minutes=start_offset)
    freeze = FreezeWindow(name="n", cron="0 22 * * *", duration=timedelta(minutes=duration_minutes))
    starts = [
        datetime(d.year, d.month, d.day, 22, tzinfo=UTC)
        for d in ((now - timedelta(days=k)).date() for k in range(-1, 5))
    ]
    expected = any(s <= now < s + freeze.duration for s in starts)
    assert lock_status("checkout", "dev", now, [], [freeze]).locked is expected
