"""The engine lease in the database: one holder, taken over only from the gone, never by two at once.

Every test runs on SQLite and on a real PostgreSQL. Each lease gets its own ``AsyncEngine`` (its own
connections), as two engine processes would have.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.deployment import Deployment, Strategy
from bot.domain.lease import TTL, Holding
from bot.domain.phases import Phase
from bot.errors import Busy, DuplicateDeployment, LeaseHeld, LeaseLost
from bot.store import migrate
from bot.store.db import create_engine
from bot.store.lease import DatabaseLease, pid_running
from bot.store.repository import Repository

T0 = datetime(2024, 7, 1, 12, 0, 0, 250000, tzinfo=UTC)


class ManualClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[Callable[[], AsyncEngine]]:
    """Fresh ``AsyncEngine``s over one migrated database, disposed after the test."""
    await migrate.upgrade(database_url)
    made: list[AsyncEngine] = []

    def new() -> AsyncEngine:
        made.append(create_engine(database_url))
        return made[-1]

    yield new
    for engine in made:
        await engine.dispose()


async def held(lease: DatabaseLease) -> Holding:
    """The lease as stored now, which the test expects someone to hold."""
    holding = await lease.current()
    assert holding is not None, "nobody holds the lease"
    return holding


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def dead_pid() -> int:
    """The pid of a process that ran and has been reaped."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


async def test_a_second_engine_is_refused_with_the_holder_named(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    first = DatabaseLease(engines(), clock, host="bot-0")
    await first.acquire()
    second = DatabaseLease(engines(), clock, host="bot-0")
    clock.advance(seconds=3)
    with pytest.raises(LeaseHeld) as refused:
        await second.acquire()
    message = str(refused.value)
    assert f"host bot-0, pid {first.holder.pid}" in message
    assert "running since 2024-07-01T12:00:00+00:00" in message
    assert "(3 s ago)" in message
    held = await second.current()
    assert held is not None and held.holder == first.holder


async def test_release_lets_the_next_engine_start_at_once(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    first = DatabaseLease(engines(), clock)
    await first.acquire()
    await first.release()
    second = DatabaseLease(engines(), clock)
    await second.acquire()
    assert (await held(second)).holder == second.holder
    await first.release()  # no longer first's: releasing again takes nothing from second
    assert (await held(second)).holder == second.holder


async def test_heartbeats_keep_it_and_a_missed_ttl_loses_it(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    first = DatabaseLease(engines(), clock, host="bot-0")
    await first.acquire()
    other_host = DatabaseLease(engines(), clock, host="bot-1")
    for _ in range(5):  # well past one TTL in all, but never a TTL without a heartbeat
        clock.advance(seconds=TTL.total_seconds() - 1)
        await first.renew()
        with pytest.raises(LeaseHeld):
            await other_host.acquire()
    clock.advance(seconds=TTL.total_seconds())
    await other_host.acquire()
    assert (await held(other_host)).holder.host == "bot-1"
    with pytest.raises(LeaseLost, match="host bot-1"):
        await first.renew()


async def test_a_dead_process_on_this_host_is_taken_over_at_once(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    # What the crash tests do: SIGKILL, then start again straight away on the same database.
    crashed = DatabaseLease(engines(), clock, host="bot-0", pid=dead_pid())
    await crashed.acquire()
    clock.advance(seconds=1)
    restarted = DatabaseLease(engines(), clock, host="bot-0")
    await restarted.acquire()
    assert (await held(restarted)).holder == restarted.holder


async def test_an_engine_in_another_pid_namespace_under_our_host_name_waits_for_the_ttl(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    # Two containers with `--network host`: one host name, one kernel, both pid 1, each in its own
    # PID namespace. The second must not read the first's pid 1 as "an earlier process of ours".
    first = DatabaseLease(engines(), clock, host="bot-0", pid=1, process="proc-a", pid_namespace=4026532001)
    await first.acquire()
    clock.advance(seconds=1)
    second = DatabaseLease(engines(), clock, host="bot-0", pid=1, process="proc-b", pid_namespace=4026532002)
    with pytest.raises(LeaseHeld, match="another PID namespace or boot"):
        await second.acquire()
    clock.advance(seconds=TTL.total_seconds())
    await second.acquire()
    assert (await held(second)).holder == second.holder
    with pytest.raises(LeaseLost):
        await first.renew()


async def test_the_lease_records_this_kernel_boot_and_pid_namespace(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    lease = DatabaseLease(engines(), clock)
    await lease.acquire()
    held = await lease.current()
    assert held is not None and held.holder == lease.holder
    assert held.holder.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert held.holder.pid_namespace == os.stat("/proc/self/ns/pid").st_ino


async def test_a_dead_pid_on_another_host_means_nothing_there(
    engines: Callable[[], AsyncEngine], clock: ManualClock
) -> None:
    elsewhere = DatabaseLease(engines(), clock, host="bot-1", pid=dead_pid())
    await elsewhere.acquire()
    with pytest.raises(LeaseHeld, match="host bot-1"):
        await DatabaseLease(engines(), clock, host="bot-0").acquire()


@pytest.mark.parametrize("taken", ["free", "dead"])
async def test_engines_starting_together_have_exactly_one_winner(
    engines: Callable[[], AsyncEngine], clock: ManualClock, taken: str
) -> None:
    if taken == "dead":
        await DatabaseLease(engines(), clock, pid=dead_pid()).acquire()
    leases = [DatabaseLease(engines(), clock) for _ in range(6)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases), return_exceptions=True)
    winners = [lease for lease, result in zip(leases, results, strict=True) if result is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, LeaseHeld) for r in results if r is not None), results
    assert (await held(leases[0])).holder == winners[0].holder


def test_a_zombie_is_not_running(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_running(proc.pid):  # exited but not reaped: a zombie until wait()
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert Path(f"/proc/{proc.pid}").exists()  # still there, as a zombie
    finally:
        proc.wait()
    assert not pid_running(proc.pid)


async def test_the_one_active_index_is_busy_not_a_taken_id(engines: Callable[[], AsyncEngine]) -> None:
    # The orchestrator draws a new id on DuplicateDeployment only: the index must not look like one.
    repo = Repository(engines())
    active = Deployment(
        id="d1",
        service="checkout",
        env="production",
        version="1.0.0",
        strategy=Strategy.ROLLING,
        requester="U1",
        phase=Phase.BUILDING,
        created_at=T0,
        updated_at=T0,
    )
    await repo.create_deployment(active, "Requested", {})
    second = dataclasses.replace(active, id="d2", version="1.1.0")
    with pytest.raises(Busy) as refused:
        await repo.create_deployment(second, "Requested", {})
    assert not isinstance(refused.value, DuplicateDeployment)
    with pytest.raises(DuplicateDeployment):
        await repo.create_deployment(active, "Requested", {})
