"""The cancellable and roll-backable phases are read off the transition table, never restated."""

from __future__ import annotations

from bot.domain import buttons, transitions
from bot.domain.events import Cancelled, RollbackRequested
from bot.domain.phases import Phase


def test_cancellable_is_where_nothing_is_deployed_yet() -> None:
    assert {Phase.REQUESTED, Phase.AWAITING_APPROVAL, Phase.BUILDING} == transitions.CANCELLABLE


def test_rollbackable_is_where_something_is_live_for_any_deployment() -> None:
    # requested + RollbackRequested is legal only for a /rollback deployment: not "roll-backable".
    assert {Phase.DEPLOYING, Phase.VERIFYING} == transitions.ROLLBACKABLE
    assert Phase.REQUESTED in transitions.accepting(RollbackRequested)


def test_they_are_exactly_the_phases_the_table_accepts_the_event_in() -> None:
    table = transitions.TRANSITIONS
    assert {p for (p, e) in table if e is Cancelled} == transitions.CANCELLABLE
    unconditional = {p for (p, e) in table if e is RollbackRequested and (p, e) not in transitions.CONDITIONS}
    assert unconditional == transitions.ROLLBACKABLE


def test_the_buttons_use_the_same_sets() -> None:
    assert buttons.CANCELLABLE is transitions.CANCELLABLE
    assert buttons.ROLLBACKABLE is transitions.ROLLBACKABLE
    assert buttons.MEANINGFUL[buttons.Button.ROLLBACK] == transitions.ROLLBACKABLE | {Phase.SUCCEEDED}
