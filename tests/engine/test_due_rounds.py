"""The timer's rounds: deployments move on from their stored due times alone, guard windows with
the same interval tick together on its beat, and a restarted engine carries on from the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.domain import due
from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.domain.template import placeholders_in
from bot.engine.due_timer import DueTimer
from bot.engine.engine import Engine
from bot.ports import DueWork
from tests.engine.fast_stack import MemoryStack, make_memory_stack
from tests.engine.stack import playbook

IMAGE = "registry.example.com/{}:1.0.0"
INTERVAL = 0.5


async def _stack(tmp_path: Path, run: str, *services: str) -> MemoryStack:
    books = [playbook(s, run, interval=INTERVAL, window=3 * INTERVAL) for s in services]
    stack = await make_memory_stack(tmp_path, books, run=run)
    for service in services:
        stack.add_workload(service, IMAGE.format(service))
        stack.ratio(service, 0.01)
    return stack


async def _rounds_until(
    stack: MemoryStack,
    engine: Engine,
    ids: list[str],
    until: Callable[[Deployment], bool],
    timeout: float = 30.0,
) -> list[Deployment]:
    """Run the timer's rounds (only what is due) on the stack's clock until every deployment is done."""
    deadline = stack.elapsed() + timeout
    while True:
        deps = [await stack.get(i) for i in ids]
        if all(until(d) for d in deps):
            return deps
        assert stack.elapsed() < deadline, [(d.id, d.phase) for d in deps]
        await engine.rounds()
        await stack.pause(0.05)


async def _deploy(stack: MemoryStack, service: str) -> str:
    outcome = await stack.engine.deploy(Deploy(service, "1.1.0"), "U0ALICE", "C0DEPLOYS")
    assert outcome.ok and outcome.deployment is not None, outcome.message
    return outcome.deployment.id


async def test_windows_with_one_interval_tick_together_on_its_beat(tmp_path: Path, run: str) -> None:
    stack = await _stack(tmp_path, run, "checkout", "payments")
    try:
        ids = [await _deploy(stack, "checkout")]
        await stack.pause(0.15)  # the second starts a little later: its window is out of phase
        ids.append(await _deploy(stack, "payments"))
        deps = await _rounds_until(stack, stack.engine, ids, lambda d: d.phase.terminal)
        assert [d.phase for d in deps] == [Phase.SUCCEEDED] * 2, [d.reason for d in deps]
        ticks = [[e.at for e in await stack.store.events_for(i) if e.type == "GuardTicked"] for i in ids]
        interval = timedelta(seconds=INTERVAL)
        assert ticks[0] and ticks[0] == ticks[1]  # the same instants, so one batch of queries each
        assert all(due.on_beat(at, interval) == at for at in ticks[0])
    finally:
        await stack.runtime.close()


async def test_a_window_between_its_beats_is_not_due(tmp_path: Path, run: str) -> None:
    stack = await _stack(tmp_path, run, "checkout")
    try:
        [dep_id] = [await _deploy(stack, "checkout")]
        [dep] = await _rounds_until(stack, stack.engine, [dep_id], lambda d: d.guard_ticks >= 1)
        assert dep.phase is Phase.VERIFYING and dep.guard_started_at is not None
        beat = due.on_beat(stack.clock.now(), timedelta(seconds=INTERVAL))
        if beat == stack.clock.now():
            beat += timedelta(seconds=INTERVAL)
        before = await stack.store.take_due(beat - timedelta(milliseconds=1))
        assert dep_id not in [d.id for d in before.deployments]  # no poll while it only waits
        at_beat = await stack.store.take_due(beat)
        assert [d.id for d in at_beat.deployments] == [dep_id]
    finally:
        await stack.runtime.close()


async def test_a_restarted_engine_carries_on_from_the_stored_due_times(tmp_path: Path, run: str) -> None:
    stack = await _stack(tmp_path, run, "checkout")
    try:
        dep_id = await _deploy(stack, "checkout")
        await _rounds_until(stack, stack.engine, [dep_id], lambda d: d.phase is Phase.VERIFYING)
        # A new engine on the same store: nothing in memory survives, only the rows.
        restarted = Engine(stack.engine.ctx, use_scheduler=False)
        await restarted.recover()
        [dep] = await _rounds_until(stack, restarted, [dep_id], lambda d: d.phase.terminal)
        assert dep.phase is Phase.SUCCEEDED, dep.reason
        assert await stack.store.take_due(stack.clock.now() + timedelta(days=1)) == DueWork()  # done
    finally:
        await stack.runtime.close()


class _WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def test_the_timer_sleeps_until_due_wakes_early_and_lets_a_round_finish() -> None:
    clock = _WallClock()
    rounds: list[datetime] = []
    finished: list[datetime] = []
    upcoming: list[timedelta] = []
    """What the next rounds find due next (from their end); none left: nothing is due."""

    async def round() -> datetime | None:
        rounds.append(clock.now())
        await asyncio.sleep(0.05)
        finished.append(clock.now())
        return clock.now() + upcoming.pop(0) if upcoming else None

    timer = DueTimer(round, clock, idle_s=30.0)
    timer.start()
    await asyncio.sleep(0.2)
    assert len(rounds) == 1  # nothing due: it sleeps (up to idle_s)
    timer.wake(clock.now() + timedelta(seconds=0.1))
    timer.wake(clock.now() + timedelta(seconds=5))  # a later wake changes nothing
    await asyncio.sleep(0.3)
    assert len(rounds) == 2  # woken for that instant, then asleep again
    assert rounds[1] - rounds[0] >= timedelta(seconds=0.25)
    upcoming.append(timedelta(seconds=0.2))
    timer.wake(clock.now())
    await asyncio.sleep(0.1)
    assert len(rounds) == 3
    await asyncio.sleep(0.3)
    assert len(rounds) == 4  # at the due time the round returned, and not again
    timer.wake(clock.now())
    await asyncio.sleep(0.01)  # a round is running now
    await timer.stop(grace_s=5.0)
    assert len(finished) == len(rounds) == 5  # it finished, and no round began after stop
    assert not timer.running


async def test_a_batch_key_holds_only_the_placeholders_its_template_uses(tmp_path: Path, run: str) -> None:
    stack = await _stack(tmp_path, run, "checkout", "payments")
    try:
        ctx = stack.engine.ctx
        spec = ctx.playbook("checkout").guard_for("production")
        assert spec is not None
        ours = ctx.guard_queries("checkout", "production", "1.1.0", spec, "canary")
        theirs = ctx.guard_queries("payments", "production", "2.0.0", spec, "stable")
        for name, query in ours.items():
            assert {k for k, _ in query.params} == placeholders_in(query.template)
            # Another service at another version: the same shape, so one batched request for both.
            assert [p for p in query.params if p[0] != "service"] == [
                p for p in theirs[name].params if p[0] != "service"
            ]
    finally:
        await stack.runtime.close()
