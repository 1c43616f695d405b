"""Polls of Jenkins and the cluster come soon after a deployment begins waiting, then back off.

A fixed poll interval paced every lifecycle at one interval per step (a 40 ms build seen 2 s late);
``bot.domain.due.poll_delay`` polls half the wait so far, between ``first_poll`` and ``poll``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import due
from bot.domain.deployment import Deployment, Strategy
from bot.domain.phases import Phase

T0 = datetime(2026, 12, 1, 12, 0, 7, tzinfo=UTC)
POLL = timedelta(seconds=2)
FIRST = timedelta(milliseconds=200)


def _waiting(phase: Phase, since: datetime) -> Deployment:
    dep = Deployment("d1", "checkout", "production", "1.0", Strategy.ROLLING, "U1", phase, since, since)
    return replace(dep, updated_at=since)


@pytest.mark.parametrize("phase", [Phase.BUILDING, Phase.DEPLOYING, Phase.ROLLING_BACK])
def test_a_step_that_just_began_is_polled_soon_then_ever_less_often(phase: Phase) -> None:
    delays = []
    now = T0
    for _ in range(12):
        at = due.next_due(_waiting(phase, T0), now, poll=POLL, first_poll=FIRST)
        assert at is not None
        delays.append(at - now)
        now = at
    assert delays[0] == FIRST
    assert delays == sorted(delays) and delays[-1] == POLL
    # each delay half the wait so far: the wait grows 1.5x a poll, so about log1.5(10) + 2 extra polls
    assert sum(1 for d in delays if d < POLL) <= 8


def test_without_a_first_poll_the_interval_is_fixed() -> None:
    assert due.next_due(_waiting(Phase.BUILDING, T0), T0, poll=POLL) == T0 + POLL
    assert due.poll_delay(timedelta(0), poll=POLL, first_poll=None) == POLL
    assert due.poll_delay(timedelta(0), poll=POLL, first_poll=POLL * 2) == POLL


def test_the_wait_so_far_sets_the_delay() -> None:
    assert due.poll_delay(timedelta(seconds=1), poll=POLL, first_poll=FIRST) == timedelta(milliseconds=500)
    assert due.poll_delay(timedelta(minutes=9), poll=POLL, first_poll=FIRST) == POLL
