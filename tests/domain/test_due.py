"""When deployments and watches are due: on the beat, every tick of a window, nothing for the idle."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import due, guard
from bot.domain.deployment import Deployment, Strategy
from bot.domain.measurements import TickOutcome
from bot.domain.phases import Phase
from bot.domain.playbook import CheckSpec, GuardSpec
from bot.domain.watch import GuardWatch, WatchStatus

T0 = datetime(2026, 12, 1, 12, 0, 7, tzinfo=UTC)
POLL = timedelta(seconds=2)
SPEC = GuardSpec(
    checks=(CheckSpec(name="errors", query="sum(rate(x_total[1m]))", max=1.0),),
    interval=timedelta(seconds=10),
    window=timedelta(seconds=60),
)


def _dep(phase: Phase, **changes: object) -> Deployment:
    dep = Deployment("d1", "checkout", "production", "1.0", Strategy.ROLLING, "U1", phase, T0, T0)
    return replace(dep, **changes)  # type: ignore[arg-type]


def test_on_beat_rounds_up_to_multiples_of_the_interval() -> None:
    ten = timedelta(seconds=10)
    assert due.on_beat(T0, ten) == T0.replace(second=10)
    assert due.on_beat(T0.replace(second=10), ten) == T0.replace(second=10)
    assert due.on_beat(T0, timedelta(minutes=1)) == T0.replace(minute=1, second=0)


@pytest.mark.parametrize("phase", [Phase.BUILDING, Phase.DEPLOYING, Phase.ROLLING_BACK])
def test_the_outside_world_is_polled(phase: Phase) -> None:
    assert due.next_due(_dep(phase), T0, poll=POLL) == T0 + POLL


@pytest.mark.parametrize("phase", [Phase.REQUESTED, *(p for p in Phase if p.terminal)])
def test_queued_and_finished_deployments_are_never_due(phase: Phase) -> None:
    assert due.next_due(_dep(phase), T0, poll=POLL) is None


def test_an_approval_is_due_when_it_expires() -> None:
    expires = T0 + timedelta(hours=4)
    assert due.next_due(_dep(Phase.AWAITING_APPROVAL), T0, poll=POLL, approval_expires_at=expires) == expires
    assert due.next_due(_dep(Phase.AWAITING_APPROVAL), T0, poll=POLL) == T0 + POLL


def test_a_paused_window_waits_for_a_person() -> None:
    dep = _dep(Phase.VERIFYING, guard_started_at=T0, paused=True)
    assert due.next_due(dep, T0, poll=POLL, spec=SPEC) is None


def test_a_fresh_window_that_settles_is_due_at_once_then_on_its_first_beat() -> None:
    dep = _dep(Phase.VERIFYING, guard_started_at=T0)
    settle = guard.first_settled(SPEC)
    assert settle > timedelta(0)
    assert due.next_due(dep, T0, poll=POLL, spec=SPEC, fresh=True) == T0
    first = due.next_due(dep, T0, poll=POLL, spec=SPEC)
    assert first == due.on_beat(T0 + settle + SPEC.interval, SPEC.interval)
    assert first is not None and guard.tick_is_due(SPEC, T0, 0, first)
    assert not guard.tick_is_due(SPEC, T0, 0, first - SPEC.interval)


def test_no_guard_moves_on_after_the_pause() -> None:
    dep = _dep(Phase.VERIFYING, guard_started_at=T0)
    assert due.next_due(dep, T0, poll=POLL, pause=timedelta(minutes=2)) == T0 + timedelta(minutes=2)
    assert due.next_due(dep, T0, poll=POLL) == T0


def test_stored_counters_that_decide_the_window_are_due_at_once() -> None:
    dep = _dep(Phase.VERIFYING, guard_started_at=T0, guard_ticks=1, guard_failed_ticks=1)
    assert due.next_due(dep, T0 + timedelta(minutes=5), poll=POLL, spec=SPEC) == T0


def test_a_full_window_is_due_at_its_end_or_its_pause_whichever_is_later() -> None:
    needed = guard.expected_ticks(SPEC)
    dep = _dep(Phase.VERIFYING, guard_started_at=T0, guard_ticks=needed)
    end = T0 + guard.first_settled(SPEC) + guard.judged_span(SPEC)
    assert due.next_due(dep, end, poll=POLL, spec=SPEC) == min(due.guard_tick_at(SPEC, T0, needed), end)
    long_pause = timedelta(hours=1)
    assert due.next_due(dep, end, poll=POLL, spec=SPEC, pause=long_pause) == due.guard_tick_at(
        SPEC, T0, needed
    )


@settings(max_examples=200, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=10**6),
    interval_s=st.sampled_from([1, 5, 10, 15, 30, 60]),
    window_ticks=st.integers(min_value=1, max_value=20),
)
def test_every_window_gets_all_its_ticks_on_shared_beats(
    offset: int, interval_s: int, window_ticks: int
) -> None:
    interval = timedelta(seconds=interval_s)
    spec = replace_spec(interval, interval * window_ticks)
    start = T0 + timedelta(milliseconds=offset)
    state = guard.WindowState.start(start)
    ticks: list[datetime] = []
    while True:
        at = due.window_due(spec, state, fresh=False)
        end = start + guard.first_settled(spec) + guard.judged_span(spec)
        if state.ticks >= guard.expected_ticks(spec) and at <= due.guard_tick_at(spec, start, state.ticks):
            assert at == min(due.guard_tick_at(spec, start, state.ticks), end)
            break
        assert guard.tick_is_due(spec, start, state.ticks, at)  # never before the guard allows it
        assert due.on_beat(at, interval) == at  # on the shared beat
        ticks.append(at)
        state = guard.apply_tick(state, TickOutcome.PASS)
    assert len(ticks) == guard.expected_ticks(spec)
    assert all(b - a == interval for a, b in itertools.pairwise(ticks))
    assert guard.window_verdict(spec, state, max(ticks[-1], end)).status is guard.WindowStatus.PASS


def replace_spec(interval: timedelta, window: timedelta) -> GuardSpec:
    return GuardSpec(checks=SPEC.checks, interval=interval, window=window)


def _watch(**changes: object) -> GuardWatch:
    watch = GuardWatch(None, "d1", "checkout", "production", "0.9", 3, T0)
    return replace(watch, **changes)  # type: ignore[arg-type]


def test_a_watch_ticks_on_the_beat_and_ends_with_its_status() -> None:
    assert due.watch_due(_watch(), SPEC, fresh=True) == T0
    assert due.watch_due(_watch(), SPEC, fresh=False) == due.guard_tick_at(SPEC, T0, 0)
    many = _watch(ticks=50)
    assert due.watch_due(many, SPEC, fresh=False) == due.guard_tick_at(SPEC, T0, 50)
    assert due.watch_due(_watch(status=WatchStatus.CLEARED), SPEC, fresh=False) is None
    assert due.watch_due(_watch(version=None), SPEC, fresh=False) is None
    assert due.watch_due(_watch(), None, fresh=False) is None
