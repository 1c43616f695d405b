"""The post-rollback watch's state machine: every (status, event) pair, and how a window ends."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import guard
from bot.domain import watch_transitions as wt
from bot.domain.measurements import TickOutcome
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch, WatchStatus

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)

# Written out by hand, independently of the module's table.
EXPECTED: dict[tuple[WatchStatus, type[wt.WatchEvent]], WatchStatus] = {
    (WatchStatus.WATCHING, wt.WatchTicked): WatchStatus.WATCHING,
    (WatchStatus.WATCHING, wt.WindowClean): WatchStatus.CLEARED,
    (WatchStatus.WATCHING, wt.WindowFailing): WatchStatus.WATCHING,
    (WatchStatus.WATCHING, wt.LiftedByPerson): WatchStatus.STOPPED,
}

SAMPLES: dict[type[wt.WatchEvent], wt.WatchEvent] = {
    wt.WatchTicked: wt.WatchTicked(TickOutcome.FAIL),
    wt.WindowClean: wt.WindowClean("5 clean ticks"),
    wt.WindowFailing: wt.WindowFailing(guard.WindowStatus.FAIL, "2 failed ticks: error_rate 0.2 > 0.05"),
    wt.LiftedByPerson: wt.LiftedByPerson("U_SRE"),
}

EVENT_TYPES: tuple[type[wt.WatchEvent], ...] = (
    wt.WatchTicked,
    wt.WindowClean,
    wt.WindowFailing,
    wt.LiftedByPerson,
)


def make(status: WatchStatus = WatchStatus.WATCHING, **changes: object) -> GuardWatch:
    watch = GuardWatch(7, "d-abc", "checkout", "production", "1.4.1", 11, T0, status=status)
    return dataclasses.replace(watch, **changes)  # type: ignore[arg-type]


def spec(**fields: object) -> GuardSpec:
    base: dict[str, object] = {
        "interval": "1m",
        "window": "3m",
        "checks": [{"name": "error_rate", "query": "sum(rate(errors[1m]))", "max": 0.05}],
    }
    return GuardSpec.model_validate(base | fields)


def test_the_table_is_exactly_the_expected_one() -> None:
    assert dict(wt.TRANSITIONS) == EXPECTED
    assert set(SAMPLES) == set(EVENT_TYPES)


def test_final_statuses_are_those_without_a_way_out() -> None:
    assert {WatchStatus.CLEARED, WatchStatus.STOPPED} == wt.FINAL


@pytest.mark.parametrize(
    ("status", "event_type"),
    list(itertools.product(WatchStatus, EVENT_TYPES)),
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_every_status_event_pair_moves_as_the_table_says_or_is_refused(
    status: WatchStatus, event_type: type[wt.WatchEvent]
) -> None:
    watch = make(status)
    event = SAMPLES[event_type]
    expected = EXPECTED.get((status, event_type))
    if expected is None:
        with pytest.raises(wt.InvalidWatchTransition) as refused:
            wt.apply(watch, event, NOW)
        assert refused.value.status is status
        assert refused.value.event_type is event_type
        assert f"{status} is final" in str(refused.value)
        assert event_type.__name__ in str(refused.value)
    else:
        assert wt.apply(watch, event, NOW).watch.status is expected


def test_a_refusal_changes_nothing() -> None:
    watch = make(WatchStatus.CLEARED, ticks=3)
    with pytest.raises(wt.InvalidWatchTransition):
        wt.apply(watch, wt.WatchTicked(TickOutcome.FAIL), NOW)
    assert watch.ticks == 3 and watch.status is WatchStatus.CLEARED


@pytest.mark.parametrize(
    ("outcome", "failed", "inconclusive"),
    [(TickOutcome.PASS, 0, 0), (TickOutcome.FAIL, 1, 0), (TickOutcome.INCONCLUSIVE, 0, 1)],
)
def test_a_tick_is_counted_and_does_nothing_else(
    outcome: TickOutcome, failed: int, inconclusive: int
) -> None:
    decision = wt.apply(make(ticks=2), wt.WatchTicked(outcome), NOW)
    assert (decision.watch.ticks, decision.watch.failed, decision.watch.inconclusive) == (
        3,
        failed,
        inconclusive,
    )
    assert decision.actions == ()


def test_a_clean_window_releases_the_lock_then_says_so() -> None:
    decision = wt.apply(make(), wt.WindowClean("3 clean ticks"), NOW)
    assert decision.watch.last_reason == "3 clean ticks"
    assert decision.actions == (
        wt.WatchAction.RELEASE_LOCK,
        wt.WatchAction.TELL_VERDICT,
        wt.WatchAction.TELL_UNLOCKED,
    )


def test_a_clean_window_without_a_lock_has_none_to_release() -> None:
    decision = wt.apply(make(lock_id=None), wt.WindowClean("clean"), NOW)
    assert wt.WatchAction.RELEASE_LOCK not in decision.actions
    assert decision.actions == (wt.WatchAction.TELL_VERDICT, wt.WatchAction.TELL_UNLOCKED)


def test_the_first_failing_window_starts_another_and_says_why() -> None:
    event = SAMPLES[wt.WindowFailing]
    assert isinstance(event, wt.WindowFailing)
    decision = wt.apply(make(ticks=3, failed=2, inconclusive=1), event, NOW)
    assert decision.watch.status is WatchStatus.WATCHING
    assert decision.watch.started_at == NOW
    assert decision.watch.windows == 2
    assert (decision.watch.ticks, decision.watch.failed, decision.watch.inconclusive) == (0, 0, 0)
    assert decision.watch.last_reason == event.reason
    assert decision.actions == (wt.WatchAction.TELL_VERDICT,)


def test_later_failing_windows_keep_watching_quietly() -> None:
    later = make(windows=2, last_reason="still failing")
    decision = wt.apply(later, wt.WindowFailing(guard.WindowStatus.INCONCLUSIVE, "no data"), NOW)
    assert decision.watch.windows == 3
    assert decision.actions == ()


def test_a_person_lifting_the_lock_stops_the_watch_without_a_verdict() -> None:
    decision = wt.apply(make(ticks=1), wt.LiftedByPerson("U_SRE"), NOW)
    assert decision.watch.status is WatchStatus.STOPPED
    assert decision.watch.ticks == 1
    assert decision.actions == ()


def test_a_window_still_running_has_no_end() -> None:
    verdict = guard.TickVerdict(TickOutcome.PASS, ())
    assert wt.window_event(make(ticks=1), spec(), T0 + timedelta(minutes=1), verdict) is None


def test_a_whole_clean_window_ends_clean() -> None:
    verdict = guard.TickVerdict(TickOutcome.PASS, ())
    ending = wt.window_event(make(ticks=3), spec(), T0 + timedelta(hours=1), verdict)
    assert isinstance(ending, wt.WindowClean)
    assert ending.status is guard.WindowStatus.PASS


def test_a_failing_window_ends_failing_with_the_checks_that_were_not_clean() -> None:
    bad = guard.CheckVerdict("error_rate", guard.CheckStatus.FAIL, "error_rate 0.2 > 0.05")
    verdict = guard.TickVerdict(TickOutcome.FAIL, (bad,))
    ending = wt.window_event(make(ticks=1, failed=1), spec(), T0 + timedelta(minutes=1), verdict)
    assert isinstance(ending, wt.WindowFailing)
    assert ending.status is guard.WindowStatus.FAIL
    assert ending.reason.endswith(": error_rate 0.2 > 0.05")


def test_an_unmeasurable_window_ends_inconclusive() -> None:
    verdict = guard.TickVerdict(TickOutcome.INCONCLUSIVE, ())
    watch = make(ticks=2, inconclusive=2)
    ending = wt.window_event(watch, spec(inconclusive_limit=1), T0 + timedelta(minutes=2), verdict)
    assert isinstance(ending, wt.WindowFailing)
    assert ending.status is guard.WindowStatus.INCONCLUSIVE
