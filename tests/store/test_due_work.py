"""The timer's store: due times stored with transitions and watches, what is due taken in one query,
the next due times stored only for work that did not change, a tick's outcomes in one transaction —
and the number of statements of each, pinned (so nothing turns them into one statement per row)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.domain.watch import GuardWatch, WatchStatus
from bot.errors import StaleDeployment
from bot.ports import DeploymentDue, DueWork, PendingEffect, Transition, WatchDue
from bot.store.repository import Repository
from tests.store.test_repository import at, deployment, lock, stored

N = 40


@contextmanager
def statements(repo: Repository) -> Iterator[list[str]]:
    """Every SQL statement the repository's engine sends while the block runs (executemany: one)."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(repo.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(repo.engine.sync_engine, "before_cursor_execute", count)


def _verifying(i: int) -> Deployment:
    return deployment(f"d{i}", service=f"svc{i}", phase=Phase.VERIFYING, guard_started_at=at(0))


async def _due_deployments(repo: Repository, n: int) -> list[Deployment]:
    deps = [_verifying(i) for i in range(n)]
    await stored(repo, *deps)
    await repo.save_transitions(
        [
            Transition(d, d.version_no, "GuardTicked", {}, at(1), (), at(2 + i / 100))
            for i, d in enumerate(deps)
        ]
    )
    return [dataclasses.replace(d, version_no=d.version_no + 1) for d in deps]


async def test_a_transition_stores_its_due_time_and_a_finished_deployment_has_none(repo: Repository) -> None:
    dep = deployment(phase=Phase.BUILDING)
    await stored(repo, dep)
    await repo.save_transition(dep, 0, "BuildStarted", {}, at(1), due_at=at(2))
    assert [d.id for d in (await repo.take_due(at(2))).deployments] == ["d1"]
    assert (await repo.take_due(at(1.9))).deployments == ()
    done = dataclasses.replace(dep, phase=Phase.FAILED)
    await repo.save_transition(done, 1, "BuildFailed", {}, at(3), due_at=at(4))
    assert await repo.take_due(at(60)) == DueWork()
    assert [e.seq for e in await repo.events_for("d1")] == [1, 2, 3]


async def test_due_work_comes_earliest_first_and_only_once_due(repo: Repository) -> None:
    deps = await _due_deployments(repo, 3)
    work = await repo.take_due(at(2.015))
    assert [d.id for d in work.deployments] == ["d0", "d1"]
    assert work.deployments[0] == dataclasses.replace(deps[0], updated_at=deps[0].updated_at)
    assert [d.id for d in (await repo.take_due(at(9), limit=2)).deployments] == ["d0", "d1"]


async def test_rescheduling_keeps_the_due_time_a_transition_stored(repo: Repository) -> None:
    [dep] = await _due_deployments(repo, 1)
    await repo.save_transition(dep, dep.version_no, "GuardTicked", {}, at(2), due_at=at(5))
    # The timer read it at the old version: its reschedule must not undo the transition's due time.
    earliest = await repo.reschedule([DeploymentDue(dep.id, dep.version_no, at(3))], [])
    assert earliest == at(5)
    assert await repo.reschedule([DeploymentDue(dep.id, dep.version_no + 1, at(4))], []) == at(4)


async def test_watches_are_due_at_their_start_then_when_told(repo: Repository) -> None:
    dep = deployment(phase=Phase.ROLLED_BACK)
    await stored(repo, dep)
    held = await repo.add_lock(lock("production", "checkout"))
    watch = await repo.add_watch(GuardWatch(None, "d1", "checkout", "production", "1.4.1", held.id, at(1)))
    assert watch.id is not None
    assert (await repo.take_due(at(1))).watches == (watch,)
    assert await repo.reschedule([], [WatchDue(watch.id, watch.windows, watch.ticks, at(3))]) == at(3)
    assert (await repo.take_due(at(2))).watches == ()
    ticked = dataclasses.replace(watch, ticks=1)
    await repo.save_watch(ticked, at(4))
    assert await repo.reschedule([], [WatchDue(watch.id, watch.windows, 0, at(3.5))]) == at(4)  # stale
    await repo.save_watch(dataclasses.replace(ticked, status=WatchStatus.CLEARED))
    assert await repo.take_due(at(60)) == DueWork()
    assert await repo.next_due_at() is None


async def test_a_stale_deployment_in_a_batch_writes_nothing(repo: Repository) -> None:
    deps = await _due_deployments(repo, 3)
    batch = [Transition(d, d.version_no, "GuardTicked", {}, at(3), (), at(4)) for d in deps]
    stale = dataclasses.replace(batch[1], expected_version_no=0)
    with pytest.raises(StaleDeployment):
        await repo.save_transitions([batch[0], stale, batch[2]])
    assert [len(await repo.events_for(d.id)) for d in deps] == [2, 2, 2]
    await repo.save_transitions(batch)
    assert [[e.seq for e in await repo.events_for(d.id)] for d in deps] == [[1, 2, 3]] * 3
    stored_now = await repo.get_deployments([d.id for d in deps] + ["nope"])
    assert sorted(d.version_no for d in stored_now) == [d.version_no + 1 for d in deps]


# -- statements per operation, pinned ---------------------------------------------------------------


async def test_taking_due_work_is_two_statements_however_much_is_due(repo: Repository) -> None:
    await _due_deployments(repo, N)
    with statements(repo) as sent:
        work = await repo.take_due(at(60))
    assert len(work.deployments) == N
    assert len(sent) == 2  # one SELECT per table


async def test_rescheduling_is_one_statement_per_table_and_one_for_the_earliest(repo: Repository) -> None:
    deps = await _due_deployments(repo, N)
    with statements(repo) as sent:
        await repo.reschedule([DeploymentDue(d.id, d.version_no, at(9)) for d in deps], [])
    assert len(sent) == 2


async def test_a_tick_batch_is_stored_in_a_fixed_number_of_statements(repo: Repository) -> None:
    deps = await _due_deployments(repo, N)
    batch = [Transition(d, d.version_no, "GuardTicked", {"outcome": "pass"}, at(3), (), at(4)) for d in deps]
    with statements(repo) as sent:
        found = await repo.get_deployments([d.id for d in deps])
        await repo.save_transitions(batch)
    assert len(found) == N
    if repo.engine.dialect.supports_sane_multi_rowcount:  # SQLite: executemany says how many it updated
        assert len(sent) == 3
    else:  # asyncpg: one guarded UPDATE per deployment, still one transaction
        assert len(sent) == N + 2


async def test_a_transition_with_one_effect_is_three_statements(repo: Repository) -> None:
    dep = deployment(phase=Phase.BUILDING)
    await stored(repo, dep)
    effect = PendingEffect("d1:notify:1", "d1", "Notify", {}, at(1))
    with statements(repo) as sent:
        await repo.save_transition(dep, 0, "BuildStarted", {}, at(1), [effect], due_at=at(2))
    assert len(sent) == 3  # UPDATE, INSERT event (its seq computed inside), INSERT effect


async def test_a_transition_with_three_effects_is_three_statements_and_keeps_their_order(
    repo: Repository,
) -> None:
    dep = deployment(phase=Phase.BUILDING)
    await stored(repo, dep)
    effects = [PendingEffect(f"d1:{name}:1", "d1", "Notify", {}, at(1)) for name in ("c", "a", "b")]
    with statements(repo) as sent:
        owed = await repo.save_transition_owed(Transition(dep, 0, "BuildStarted", {}, at(1), effects, at(2)))
    if repo.engine.dialect.name == "sqlite":  # one multi-row INSERT keeps the order there
        assert len(sent) == 3  # UPDATE (saying the outbox owed nothing), INSERT event, INSERT effects
    else:  # one INSERT per effect, so the sequence is drawn in order
        assert len(sent) == 5
    assert owed == effects  # it owed nothing else: these are what it owes, in order
    assert await repo.pending_effects("d1") == effects


async def test_a_transition_says_what_the_outbox_owes_only_when_it_owed_nothing_else(
    repo: Repository,
) -> None:
    dep = deployment(phase=Phase.BUILDING)
    await stored(repo, dep)
    first, second, third = (PendingEffect(f"d1:{n}", "d1", "Notify", {}, at(n)) for n in (1, 2, 3))

    def step(version_no: int, *effects: PendingEffect) -> Transition:
        return Transition(dep, version_no, "BuildStarted", {}, at(version_no + 1), effects, None)

    assert await repo.save_transition_owed(step(0, first)) == [first]
    # ``first`` is still owed: the outbox must be read to know what is.
    assert await repo.save_transition_owed(step(1, second)) is None
    # What the event completes is left out: with both done, only ``third`` is owed.
    assert await repo.save_transition_owed(step(2, third), (first.key, second.key)) == [third]
    # A key already queued is not queued again, and not reported as owed twice.
    assert await repo.save_transition_owed(step(3, third)) is None
    assert await repo.pending_effects("d1") == [third]


async def test_rescheduling_for_a_caller_that_wakes_the_timer_itself_is_one_statement(
    repo: Repository,
) -> None:
    deps = await _due_deployments(repo, N)
    with statements(repo) as sent:
        told = await repo.reschedule(
            [DeploymentDue(d.id, d.version_no, at(9)) for d in deps], [], earliest=False
        )
    assert told is None and len(sent) == 1  # the UPDATE; no SELECT of the earliest
    assert (await repo.take_due(at(8.9))).deployments == ()


async def test_effects_done_together_are_one_statement(repo: Repository) -> None:
    dep = deployment(phase=Phase.BUILDING)
    await stored(repo, dep)
    effects = [PendingEffect(f"d1:{n}", "d1", "Notify", {}, at(1)) for n in range(5)]
    await repo.save_transition(dep, 0, "BuildStarted", {}, at(1), effects)
    with statements(repo) as sent:
        await repo.effects_done([e.key for e in effects[:4]] + ["unknown"], at(2))
    assert len(sent) == 1
    assert await repo.pending_effects("d1") == effects[4:]
