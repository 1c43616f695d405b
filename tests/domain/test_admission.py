"""Admission of a ``/deploy``: every rule that refuses, in order, and admitted or queued."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import events as ev
from bot.domain.admission import Admitted, Concurrency, DeployFacts, Refusal, admit, first_event
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind, LockReason, LockStatus, lock_status
from bot.domain.phases import Phase
from bot.domain.playbook import Environment

NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)


def env(**fields: object) -> Environment:
    return Environment.model_validate(fields)


def busy(phase: Phase = Phase.VERIFYING) -> Deployment:
    return Deployment("d-busy", "checkout", "production", "1.4.1", Strategy.ROLLING, "U_ANA", phase, NOW, NOW)


def facts(**changes: object) -> DeployFacts:
    base = DeployFacts(
        service="checkout",
        env="production",
        version="1.4.2",
        strategy=Strategy.ROLLING,
        settings=env(),
        user="U_BOB",
        emergency_reason=None,
        break_glass=frozenset(),
        locks=LockStatus(locked=False),
        succeeded_at={},
        active=(),
        concurrency=Concurrency.REFUSE,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def locked(*kinds: LockKind) -> LockStatus:
    reasons = tuple(LockReason(kind, f"{kind} reason", "U_SRE", NOW, None) for kind in kinds)
    return LockStatus(locked=bool(reasons), reasons=reasons)


def refusal(answer: Admitted | Refusal) -> str:
    assert isinstance(answer, Refusal), answer
    return str(answer.message)


def test_a_free_slot_admits_to_start_now() -> None:
    assert admit(facts()) == Admitted(queued_behind=None)


@pytest.mark.parametrize(
    ("strategy", "why"),
    [(Strategy.CANARY, "no canary steps"), (Strategy.BLUE_GREEN, "no blue_green section")],
)
def test_a_strategy_the_environment_has_no_section_for_is_refused(strategy: Strategy, why: str) -> None:
    text = refusal(admit(facts(strategy=strategy)))
    assert text == f"production has {why} in the playbook"


def test_a_strategy_with_its_section_is_admitted() -> None:
    canary = env(strategy="canary", canary={"steps": [10, 50]})
    blue_green = env(strategy="blue-green", blue_green={"service": "checkout"})
    assert isinstance(admit(facts(strategy=Strategy.CANARY, settings=canary)), Admitted)
    assert isinstance(admit(facts(strategy=Strategy.BLUE_GREEN, settings=blue_green)), Admitted)


def test_an_emergency_from_outside_break_glass_is_refused_as_an_emergency() -> None:
    answer = admit(facts(emergency_reason="checkout is down", break_glass=frozenset({"U_SRE"})))
    assert isinstance(answer, Refusal)
    assert answer.action == "emergency"
    assert "not in the break-glass group" in str(answer.message)


def test_an_emergency_without_a_reason_is_refused() -> None:
    answer = admit(facts(emergency_reason="  ", break_glass=frozenset({"U_BOB"})))
    assert isinstance(answer, Refusal) and answer.action == "emergency"
    assert "needs a reason" in str(answer.message)


@pytest.mark.parametrize("kind", list(LockKind))
def test_any_lock_refuses_a_plain_deploy(kind: LockKind) -> None:
    answer = admit(facts(locks=locked(kind)))
    assert isinstance(answer, Refusal) and answer.action == "deploy"
    assert str(answer.message) == f"production is locked for checkout ({kind}: {kind} reason)"


def test_every_reason_is_named() -> None:
    text = refusal(admit(facts(locks=locked(LockKind.MANUAL, LockKind.FREEZE))))
    assert text == "production is locked for checkout (manual: manual reason; freeze: freeze reason)"


def test_break_glass_skips_freezes_only() -> None:
    glass = {"emergency_reason": "checkout is down", "break_glass": frozenset({"U_BOB"})}
    assert isinstance(admit(facts(locks=locked(LockKind.FREEZE), **glass)), Admitted)
    for kind in (LockKind.MANUAL, LockKind.GUARD):
        assert "is locked" in refusal(admit(facts(locks=locked(LockKind.FREEZE, kind), **glass)))


def test_locks_read_from_stored_records_refuse() -> None:
    lock = Lock(1, "production", None, LockKind.MANUAL, "db migration", "U_SRE", NOW - timedelta(hours=1))
    status = lock_status("checkout", "production", NOW, [lock], [])
    assert "db migration" in refusal(admit(facts(locks=status)))


STAGING_FIRST = {"requires": [{"succeeded_in": "staging", "within": "24h"}]}


@pytest.mark.parametrize(
    ("succeeded_at", "admitted"),
    [
        ({}, False),
        ({"staging": None}, False),
        ({"staging": NOW - timedelta(days=2)}, False),
        ({"staging": NOW - timedelta(days=1)}, True),
        ({"staging": NOW - timedelta(minutes=5)}, True),
    ],
)
def test_a_prerequisite_must_have_succeeded_recently_enough(
    succeeded_at: dict[str, datetime | None], admitted: bool
) -> None:
    answer = admit(facts(settings=env(**STAGING_FIRST), succeeded_at=succeeded_at))
    if admitted:
        assert isinstance(answer, Admitted)
    else:
        assert refusal(answer) == "production needs checkout 1.4.2 to have succeeded in staging first"


def test_a_prerequisite_without_within_accepts_any_age() -> None:
    settings = env(requires=[{"succeeded_in": "staging"}])
    long_ago = {"staging": NOW - timedelta(days=400)}
    assert isinstance(admit(facts(settings=settings, succeeded_at=long_ago)), Admitted)


def test_a_busy_slot_is_refused_naming_who_holds_it() -> None:
    text = refusal(admit(facts(active=(busy(),))))
    assert text == "checkout is already being deployed to production: d-busy (1.4.1, verifying)"


def test_a_busy_slot_queues_when_the_policy_queues() -> None:
    holder = busy()
    assert admit(facts(active=(holder,), concurrency=Concurrency.QUEUE)) == Admitted(queued_behind=holder)


def test_rules_refuse_in_order_strategy_emergency_lock_prerequisite_busy() -> None:
    everything = facts(
        strategy=Strategy.CANARY,
        emergency_reason="x",
        locks=locked(LockKind.MANUAL),
        settings=env(**STAGING_FIRST),
        active=(busy(),),
    )
    assert "no canary steps" in refusal(admit(everything))
    everything = dataclasses.replace(everything, strategy=Strategy.ROLLING)
    assert "break-glass" in refusal(admit(everything))
    everything = dataclasses.replace(everything, emergency_reason=None)
    assert "is locked" in refusal(admit(everything))
    everything = dataclasses.replace(everything, locks=LockStatus(locked=False))
    assert "succeeded in staging" in refusal(admit(everything))
    everything = dataclasses.replace(everything, succeeded_at={"staging": NOW})
    assert "already being deployed" in refusal(admit(everything))


def dep(**changes: object) -> Deployment:
    return dataclasses.replace(busy(Phase.REQUESTED), **changes)  # type: ignore[arg-type]


def test_a_rollback_deployment_starts_by_rolling_back_to_its_version() -> None:
    event = first_event(dep(is_rollback=True, reason="bad release", version="1.4.0"), needs_approvals=True)
    assert event == ev.RollbackRequested(user="U_ANA", reason="bad release", to_version="1.4.0")
    assert first_event(dep(is_rollback=True), needs_approvals=False) == ev.RollbackRequested(
        user="U_ANA", reason="rollback", to_version="1.4.1"
    )


def test_break_glass_skips_approvals_and_says_why() -> None:
    event = first_event(dep(emergency_reason="checkout is down"), needs_approvals=True)
    assert event == ev.ApprovalsSkipped(emergency_reason="checkout is down")


@pytest.mark.parametrize(
    ("needs", "expected"), [(True, ev.ApprovalsRequired()), (False, ev.ApprovalsSkipped())]
)
def test_the_approval_policy_decides_the_first_event(needs: bool, expected: ev.Event) -> None:
    assert first_event(dep(), needs_approvals=needs) == expected
