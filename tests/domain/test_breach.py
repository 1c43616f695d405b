"""What a guard window's verdict does to a deployment; the next canary step; what a rollback takes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import breach, guard
from bot.domain import events as ev
from bot.domain.deployment import Deployment, Strategy
from bot.domain.measurements import TickOutcome
from bot.domain.phases import Phase
from bot.domain.playbook import BreachAction, CanarySpec
from bot.domain.rollback import RollbackPlan, rollback_plan

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CANARY = CanarySpec.model_validate({"steps": [10, {"weight": 50, "pause": "10m"}, 100]})


def make(strategy: Strategy = Strategy.ROLLING, step: int = 0) -> Deployment:
    dep = Deployment("d-1", "checkout", "production", "1.4.2", strategy, "U_ANA", Phase.VERIFYING, T0, T0)
    return dataclasses.replace(dep, step=step, guard_started_at=T0)


def window(status: guard.WindowStatus) -> guard.WindowVerdict:
    return guard.WindowVerdict(status, f"{status} reason")


def test_a_breach_rolls_back_when_the_playbook_says_so() -> None:
    event = breach.window_event(
        make(), window(guard.WindowStatus.FAIL), "why", BreachAction.ROLLBACK, None, T0
    )
    assert event == ev.GuardBreached(reason="why")


def test_a_breach_locks_and_holds_when_the_playbook_says_lock() -> None:
    event = breach.window_event(make(), window(guard.WindowStatus.FAIL), "why", BreachAction.LOCK, None, T0)
    assert event == ev.GuardHeld(reason="why", lock=True)


@pytest.mark.parametrize("action", list(BreachAction))
def test_an_inconclusive_window_holds_for_a_person_without_a_lock(action: BreachAction) -> None:
    event = breach.window_event(make(), window(guard.WindowStatus.INCONCLUSIVE), "why", action, None, T0)
    assert event == ev.GuardHeld(reason="why")


@pytest.mark.parametrize("action", list(BreachAction))
def test_a_running_window_does_nothing(action: BreachAction) -> None:
    assert breach.window_event(make(), window(guard.WindowStatus.RUNNING), "why", action, None, T0) is None


def test_a_clean_window_passes_a_rolling_deployment() -> None:
    event = breach.window_event(make(), window(guard.WindowStatus.PASS), "x", BreachAction.ROLLBACK, None, T0)
    assert event == ev.GuardPassed()


def test_a_clean_canary_window_waits_for_the_steps_pause() -> None:
    dep = make(Strategy.CANARY, step=1)
    clean = window(guard.WindowStatus.PASS)
    early = T0 + timedelta(minutes=9)
    assert breach.window_event(dep, clean, "x", BreachAction.ROLLBACK, CANARY, early) is None
    later = T0 + timedelta(minutes=10)
    promoted = breach.window_event(dep, clean, "x", BreachAction.ROLLBACK, CANARY, later)
    assert promoted == ev.Promoted(final=False)  # into step 2 of 3, not yet the last


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, ev.Promoted(user="U_SRE", final=False)),
        (1, ev.Promoted(user="U_SRE", final=False)),
        (2, ev.Promoted(user="U_SRE", final=True)),
        (3, ev.GuardPassed(user="U_SRE")),
    ],
)
def test_the_next_canary_step(step: int, expected: ev.Event) -> None:
    assert breach.next_step_event(make(Strategy.CANARY, step), 3, "U_SRE") == expected


@pytest.mark.parametrize(("step", "expected"), [(0, ev.Promoted()), (1, ev.GuardPassed())])
def test_blue_green_switches_once(step: int, expected: ev.Event) -> None:
    assert breach.next_step_event(make(Strategy.BLUE_GREEN, step), 0) == expected


@pytest.mark.parametrize("strategy", [Strategy.ROLLING, Strategy.RECREATE])
def test_rolling_has_no_next_step(strategy: Strategy) -> None:
    assert breach.next_step_event(make(strategy), 3) == ev.GuardPassed()


def test_pause_is_over_at_once_for_anything_but_a_canary_step() -> None:
    assert breach.pause_over(make(), CANARY, T0)
    assert breach.pause_over(make(Strategy.CANARY, step=3), CANARY, T0)  # promoted: no step left
    assert breach.pause_over(make(Strategy.CANARY, step=1), None, T0)
    assert not breach.pause_over(make(Strategy.CANARY, step=1), CANARY, T0)


def test_with_checks_names_the_checks_that_were_not_clean() -> None:
    verdict = guard.TickVerdict(
        TickOutcome.FAIL,
        (
            guard.CheckVerdict("a", guard.CheckStatus.PASS, "a ok"),
            guard.CheckVerdict("b", guard.CheckStatus.FAIL, "b 0.2 > 0.05"),
            guard.CheckVerdict("c", guard.CheckStatus.INCONCLUSIVE, "c: no data"),
        ),
    )
    assert breach.with_checks("2 ticks failed", verdict) == "2 ticks failed: b 0.2 > 0.05; c: no data"
    assert breach.with_checks("clean", guard.TickVerdict(TickOutcome.PASS, ())) == "clean"


@pytest.mark.parametrize(
    ("strategy", "step", "expected"),
    [
        (Strategy.ROLLING, 0, RollbackPlan(False, True, True, False)),
        (Strategy.RECREATE, 0, RollbackPlan(False, True, True, False)),
        (Strategy.CANARY, 0, RollbackPlan(True, False, False, True)),
        (Strategy.CANARY, 2, RollbackPlan(True, False, False, True)),
        (Strategy.CANARY, 3, RollbackPlan(True, True, True, False)),  # promoted: the main one changed
        (Strategy.BLUE_GREEN, 0, RollbackPlan(False, False, False, True)),
        (Strategy.BLUE_GREEN, 1, RollbackPlan(False, True, False, True)),
    ],
)
def test_what_a_rollback_takes_and_whether_it_completes_at_once(
    strategy: Strategy, step: int, expected: RollbackPlan
) -> None:
    assert rollback_plan(make(strategy, step), 3) == expected
