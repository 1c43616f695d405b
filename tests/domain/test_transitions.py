"""The deployment state machine: every (phase, event) pair, every path, keys and the event codec."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import effects as fx
from bot.domain import events as ev
from bot.domain.deployment import Deployment, Strategy
from bot.domain.measurements import TickOutcome
from bot.domain.phases import TERMINAL, Phase
from bot.domain.transitions import CONDITIONS, TRANSITIONS, Decision, allowed_events, apply
from bot.errors import InvalidTransition

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)

# Written out by hand from DESIGN.md and the brief, independently of the module's table: a change to
# the lifecycle has to be made in both places, on purpose.
EXPECTED: dict[tuple[Phase, type[ev.Event]], Phase] = {
    (Phase.REQUESTED, ev.ApprovalsRequired): Phase.AWAITING_APPROVAL,
    (Phase.REQUESTED, ev.ApprovalsSkipped): Phase.BUILDING,
    (Phase.REQUESTED, ev.Cancelled): Phase.CANCELLED,
    (Phase.REQUESTED, ev.RollbackRequested): Phase.ROLLING_BACK,
    (Phase.AWAITING_APPROVAL, ev.ApprovalRecorded): Phase.AWAITING_APPROVAL,
    (Phase.AWAITING_APPROVAL, ev.ApprovalsComplete): Phase.BUILDING,
    (Phase.AWAITING_APPROVAL, ev.Rejected): Phase.REJECTED,
    (Phase.AWAITING_APPROVAL, ev.ApprovalExpired): Phase.EXPIRED,
    (Phase.AWAITING_APPROVAL, ev.Cancelled): Phase.CANCELLED,
    (Phase.BUILDING, ev.BuildQueued): Phase.BUILDING,
    (Phase.BUILDING, ev.BuildStarted): Phase.BUILDING,
    (Phase.BUILDING, ev.BuildRetried): Phase.BUILDING,
    (Phase.BUILDING, ev.BuildSucceeded): Phase.DEPLOYING,
    (Phase.BUILDING, ev.BuildSkipped): Phase.DEPLOYING,
    (Phase.BUILDING, ev.BuildFailed): Phase.FAILED,
    (Phase.BUILDING, ev.Cancelled): Phase.CANCELLED,
    (Phase.DEPLOYING, ev.RolloutStarted): Phase.DEPLOYING,
    (Phase.DEPLOYING, ev.RolloutCompleted): Phase.VERIFYING,
    (Phase.DEPLOYING, ev.RolloutFailed): Phase.ROLLING_BACK,
    (Phase.DEPLOYING, ev.DeployRefused): Phase.FAILED,
    (Phase.DEPLOYING, ev.RollbackRequested): Phase.ROLLING_BACK,
    (Phase.VERIFYING, ev.GuardTicked): Phase.VERIFYING,
    (Phase.VERIFYING, ev.GuardHeld): Phase.VERIFYING,
    (Phase.VERIFYING, ev.GuardPassed): Phase.SUCCEEDED,
    (Phase.VERIFYING, ev.GuardBreached): Phase.ROLLING_BACK,
    (Phase.VERIFYING, ev.Promoted): Phase.DEPLOYING,
    (Phase.VERIFYING, ev.RollbackRequested): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, ev.RollbackCompleted): Phase.ROLLED_BACK,
    (Phase.ROLLING_BACK, ev.RollbackFailed): Phase.ROLLBACK_FAILED,
}

# Pairs that are legal only when the deployment (or the event) also satisfies a rule.
CONDITIONED = {
    (Phase.REQUESTED, ev.RollbackRequested),
    (Phase.AWAITING_APPROVAL, ev.ApprovalRecorded),
    (Phase.DEPLOYING, ev.RolloutStarted),
    (Phase.DEPLOYING, ev.RolloutCompleted),
    (Phase.DEPLOYING, ev.DeployRefused),
    (Phase.VERIFYING, ev.Promoted),
}

# make(phase) is rolling, not a rollback, at step 0: of the conditions, only these refuse it.
PLAIN_REFUSED = {(Phase.REQUESTED, ev.RollbackRequested), (Phase.VERIFYING, ev.Promoted)}

SAMPLES: dict[type[ev.Event], ev.Event] = {
    ev.ApprovalsRequired: ev.ApprovalsRequired(),
    ev.ApprovalsSkipped: ev.ApprovalsSkipped(emergency_reason="checkout is down"),
    ev.ApprovalRecorded: ev.ApprovalRecorded(user="U2", stage=0),
    ev.ApprovalsComplete: ev.ApprovalsComplete(user="U3"),
    ev.Rejected: ev.Rejected(user="U2", reason="not on a Friday"),
    ev.ApprovalExpired: ev.ApprovalExpired(),
    ev.Cancelled: ev.Cancelled(user="U1", reason="wrong version"),
    ev.BuildQueued: ev.BuildQueued(queue_item=7),
    ev.BuildStarted: ev.BuildStarted(number=42),
    ev.BuildSucceeded: ev.BuildSucceeded(number=42),
    ev.BuildSkipped: ev.BuildSkipped(),
    ev.BuildRetried: ev.BuildRetried(reason="agent went away"),
    ev.BuildFailed: ev.BuildFailed(reason="FAILURE"),
    ev.RolloutStarted: ev.RolloutStarted(step=0),
    ev.RolloutCompleted: ev.RolloutCompleted(step=0),
    ev.RolloutFailed: ev.RolloutFailed(reason="ProgressDeadlineExceeded"),
    ev.DeployRefused: ev.DeployRefused(reason="forbidden"),
    ev.GuardTicked: ev.GuardTicked(outcome=TickOutcome.FAIL),
    ev.GuardPassed: ev.GuardPassed(),
    ev.GuardBreached: ev.GuardBreached(reason="5xx ratio 0.2 > 0.01"),
    ev.GuardHeld: ev.GuardHeld(reason="no data", lock=False),
    ev.Promoted: ev.Promoted(user="U1"),
    ev.RollbackRequested: ev.RollbackRequested(user="U1", reason="looks wrong"),
    ev.RollbackCompleted: ev.RollbackCompleted(version="1.4.1"),
    ev.RollbackFailed: ev.RollbackFailed(reason="undo refused"),
}


def make(phase: Phase = Phase.REQUESTED, **changes: object) -> Deployment:
    base = Deployment(
        id="d7",
        service="checkout",
        env="production",
        version="1.4.2",
        strategy=Strategy.ROLLING,
        requester="U1",
        phase=phase,
        created_at=T0,
        updated_at=T0,
        previous_version="1.4.1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def run(dep: Deployment, *events: ev.Event) -> tuple[Deployment, list[Decision]]:
    """Apply ``events`` in turn, one minute apart; the final deployment and every decision."""
    decisions = []
    for i, event in enumerate(events):
        decision = apply(dep, event, NOW + timedelta(minutes=i))
        decisions.append(decision)
        dep = decision.deployment
    return dep, decisions


def kinds(decision: Decision) -> list[type[fx.Effect]]:
    return [type(e) for e in decision.effects]


# --- the table --------------------------------------------------------------------------------------


def test_samples_cover_every_event_type_once() -> None:
    assert set(SAMPLES) == set(ev.EVENT_TYPES)
    assert len(ev.EVENT_TYPES) == len(set(ev.EVENT_TYPES))
    assert set(ev.EVENT_TYPES) == set(ev.Event.__args__)


def test_table_is_the_designed_lifecycle() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert set(CONDITIONS) == CONDITIONED


def test_terminal_phases_accept_nothing_and_others_accept_something() -> None:
    for phase in Phase:
        assert (allowed_events(phase) == frozenset()) == phase.terminal, phase


def test_allowed_events_lists_the_table_rows() -> None:
    for phase in Phase:
        assert allowed_events(phase) == {e for (p, e) in EXPECTED if p is phase}


def test_every_event_type_is_used() -> None:
    assert {e for (_, e) in TRANSITIONS} == set(ev.EVENT_TYPES)


def test_every_phase_is_reachable_and_every_active_phase_can_end() -> None:
    edges: dict[Phase, set[Phase]] = {}
    for (src, _), dst in TRANSITIONS.items():
        edges.setdefault(src, set()).add(dst)

    def reach(start: Phase) -> set[Phase]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reach(Phase.REQUESTED) == set(Phase)
    for phase in Phase:
        if not phase.terminal:
            assert reach(phase) & TERMINAL, f"{phase} can never end"


def test_nothing_deployed_means_no_rollback_and_something_deployed_means_no_cancel() -> None:
    before = {Phase.REQUESTED, Phase.AWAITING_APPROVAL, Phase.BUILDING}
    assert {p for (p, e) in TRANSITIONS if e is ev.Cancelled} == before
    assert {p for (p, e) in TRANSITIONS if e is ev.RollbackRequested} == {
        Phase.REQUESTED,  # a /rollback deployment only (see CONDITIONS)
        Phase.DEPLOYING,
        Phase.VERIFYING,
    }


# --- every (phase, event) pair -------------------------------------------------------------------


def well_placed(phase: Phase) -> Deployment:
    """A deployment in ``phase`` that satisfies every condition for the sample events."""
    return make(phase, strategy=Strategy.CANARY, is_rollback=True)


@pytest.mark.parametrize(
    ("phase", "event_type"),
    list(itertools.product(Phase, ev.EVENT_TYPES)),
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_every_pair_reaches_its_phase_or_is_refused_unchanged(
    phase: Phase, event_type: type[ev.Event]
) -> None:
    event = SAMPLES[event_type]
    for dep in (well_placed(phase), make(phase)):
        snapshot = dataclasses.replace(dep)
        expected = EXPECTED.get((phase, event_type))
        refused_plain = (phase, event_type) in PLAIN_REFUSED and dep == make(phase)
        if expected is None or refused_plain:
            with pytest.raises(InvalidTransition) as caught:
                apply(dep, event, NOW)
            assert str(caught.value).startswith(
                f"deployment d7 is {phase.value}; cannot apply {event_type.__name__}"
            )
            assert caught.value.phase is phase
            assert caught.value.event_type is event_type
            assert caught.value.deployment_id == "d7"
        else:
            decision = apply(dep, event, NOW)
            new = decision.deployment
            assert new.phase is expected
            assert new.version_no == dep.version_no + 1
            assert new.updated_at == NOW
            assert (new.id, new.service, new.env, new.version) == (dep.id, dep.service, dep.env, dep.version)
            assert all(e.key.startswith("d7:") for e in decision.effects)
            assert len({e.key for e in decision.effects}) == len(decision.effects)
            # Same input, same output: nothing depends on hidden state.
            assert apply(dep, event, NOW) == decision
        assert dep == snapshot


def test_refusal_message_names_deployment_phase_and_event() -> None:
    with pytest.raises(InvalidTransition) as caught:
        apply(make(Phase.SUCCEEDED), ev.BuildFailed(reason="x"), NOW)
    assert str(caught.value) == "deployment d7 is succeeded; cannot apply BuildFailed (succeeded is final)"

    with pytest.raises(InvalidTransition) as caught:
        apply(make(Phase.ROLLING_BACK), ev.Cancelled(user="U1"), NOW)
    assert str(caught.value) == (
        "deployment d7 is rolling_back; cannot apply Cancelled "
        "(rolling_back accepts RollbackCompleted, RollbackFailed)"
    )


# --- conditions ------------------------------------------------------------------------------------


def test_only_a_rollback_deployment_rolls_back_from_requested() -> None:
    with pytest.raises(InvalidTransition, match="only a /rollback deployment"):
        apply(make(Phase.REQUESTED), ev.RollbackRequested(user="U1", reason="x"), NOW)


def test_an_approval_for_another_stage_is_refused() -> None:
    dep = make(Phase.AWAITING_APPROVAL, approval_stage=1)
    with pytest.raises(InvalidTransition, match="another stage"):
        apply(dep, ev.ApprovalRecorded(user="U2", stage=0, stage_complete=True), NOW)
    assert apply(dep, ev.ApprovalRecorded(user="U2", stage=1), NOW).deployment.approval_stage == 1


@pytest.mark.parametrize("event_type", [ev.RolloutStarted, ev.RolloutCompleted])
def test_a_stale_rollout_event_for_an_earlier_step_is_refused(event_type: type[ev.Event]) -> None:
    dep = make(Phase.DEPLOYING, strategy=Strategy.CANARY, step=1)
    with pytest.raises(InvalidTransition, match="another step"):
        apply(dep, event_type(step=0), NOW)  # type: ignore[call-arg]
    assert apply(dep, event_type(step=1), NOW).deployment.step == 1  # type: ignore[call-arg]


def test_deploy_refused_once_a_step_is_live_must_roll_back_instead() -> None:
    dep = make(Phase.DEPLOYING, strategy=Strategy.CANARY, step=1)
    with pytest.raises(InvalidTransition, match="RolloutFailed"):
        apply(dep, ev.DeployRefused(reason="forbidden"), NOW)
    assert apply(dep, ev.RolloutFailed(reason="forbidden"), NOW).deployment.phase is Phase.ROLLING_BACK


@pytest.mark.parametrize(
    ("strategy", "step", "ok"),
    [
        (Strategy.ROLLING, 0, False),
        (Strategy.RECREATE, 0, False),
        (Strategy.BLUE_GREEN, 0, True),
        (Strategy.BLUE_GREEN, 1, False),
        (Strategy.CANARY, 0, True),
        (Strategy.CANARY, 3, True),
    ],
)
def test_promotion_needs_a_next_step(strategy: Strategy, step: int, ok: bool) -> None:
    dep = make(Phase.VERIFYING, strategy=strategy, step=step)
    if ok:
        assert apply(dep, ev.Promoted(), NOW).deployment.step == step + 1
    else:
        with pytest.raises(InvalidTransition, match="no further step"):
            apply(dep, ev.Promoted(), NOW)


# --- scenarios ------------------------------------------------------------------------------------


def test_happy_path_rolling_with_two_approval_stages() -> None:
    dep, ds = run(
        make(),
        ev.ApprovalsRequired(),
        ev.ApprovalRecorded(user="U2", stage=0, stage_complete=True),
        ev.ApprovalRecorded(user="U3", stage=1),
        ev.ApprovalsComplete(user="U4"),
        ev.BuildQueued(queue_item=7),
        ev.BuildStarted(number=42),
        ev.BuildSucceeded(number=None),
        ev.RolloutStarted(step=0),
        ev.RolloutCompleted(step=0),
        ev.GuardTicked(outcome=TickOutcome.FAIL),
        ev.GuardTicked(outcome=TickOutcome.FAIL),
        ev.GuardTicked(outcome=TickOutcome.INCONCLUSIVE),
        ev.GuardTicked(outcome=TickOutcome.PASS),
        ev.GuardPassed(),
    )
    phases = [d.deployment.phase for d in ds]
    assert phases == [
        Phase.AWAITING_APPROVAL,
        Phase.AWAITING_APPROVAL,
        Phase.AWAITING_APPROVAL,
        Phase.BUILDING,
        Phase.BUILDING,
        Phase.BUILDING,
        Phase.DEPLOYING,
        Phase.DEPLOYING,
        Phase.VERIFYING,
        Phase.VERIFYING,
        Phase.VERIFYING,
        Phase.VERIFYING,
        Phase.VERIFYING,
        Phase.SUCCEEDED,
    ]
    assert ds[0].effects == (
        fx.Notify(deployment_id="d7", version_no=1, event=ev.ApprovalsRequired()),
        fx.RequestApprovals(deployment_id="d7", stage=0),
        fx.ScheduleApprovalExpiry(deployment_id="d7"),
    )
    assert ds[1].deployment.approval_stage == 1
    assert ds[1].effects[1:] == (fx.RequestApprovals(deployment_id="d7", stage=1),)
    assert kinds(ds[2]) == [fx.Notify]  # a vote that does not complete its stage opens nothing
    assert ds[3].effects[1:] == (fx.TriggerBuild(deployment_id="d7", attempt=1),)
    assert ds[5].deployment.build_queue_item == 7
    assert ds[6].deployment.build_number == 42  # kept from BuildStarted when the success has none
    assert ds[6].effects[1:] == (fx.StartRollout(deployment_id="d7", step=0),)
    assert ds[8].deployment.guard_started_at == NOW + timedelta(minutes=8)
    assert ds[8].effects[1:] == (fx.StartGuard(deployment_id="d7", step=0),)
    assert [d.effects for d in ds[9:13]] == [(), (), (), ()]  # guard ticks are silent
    watched = ds[12].deployment
    assert (watched.guard_ticks, watched.guard_failed_ticks, watched.guard_inconclusive_ticks) == (4, 2, 1)
    assert kinds(ds[13]) == [fx.Notify]
    assert dep.phase is Phase.SUCCEEDED
    assert dep.version_no == 14
    assert dep.updated_at == NOW + timedelta(minutes=13)
    assert dep.reason is None


def test_notify_carries_the_event_for_the_thread() -> None:
    decision = apply(make(Phase.AWAITING_APPROVAL), ev.Rejected(user="U2", reason="not today"), NOW)
    (notice,) = decision.effects
    assert isinstance(notice, fx.Notify)
    assert notice.kind == "Rejected"
    assert notice.event == ev.Rejected(user="U2", reason="not today")
    assert decision.deployment.reason == "not today"
    assert decision.deployment.phase is Phase.REJECTED


def test_canary_walks_its_steps_through_promotion() -> None:
    start = make(Phase.BUILDING, strategy=Strategy.CANARY)
    dep, ds = run(
        start,
        ev.BuildSkipped(),
        ev.RolloutCompleted(step=0),
        ev.GuardTicked(outcome=TickOutcome.FAIL),
        ev.Promoted(),  # the guard promotes by itself after a clean enough window
        ev.RolloutStarted(step=1),
        ev.RolloutCompleted(step=1),
        ev.Promoted(user="U1", final=True),
        ev.RolloutCompleted(step=2),
        ev.GuardPassed(),
    )
    promoted = ds[3].deployment
    assert (promoted.phase, promoted.step) == (Phase.DEPLOYING, 1)
    assert (promoted.guard_ticks, promoted.guard_failed_ticks, promoted.guard_started_at) == (0, 0, None)
    assert ds[3].effects[1:] == (fx.StartRollout(deployment_id="d7", step=1),)
    assert ds[5].effects[1:] == (fx.StartGuard(deployment_id="d7", step=1),)
    assert ds[6].effects[1:] == (fx.PromoteCanary(deployment_id="d7", step=2),)
    assert ds[7].effects[1:] == (fx.StartGuard(deployment_id="d7", step=2),)
    assert (dep.phase, dep.step) == (Phase.SUCCEEDED, 2)
    keys = [e.key for d in ds for e in d.effects]
    assert len(keys) == len(set(keys)), keys


def test_blue_green_switches_once() -> None:
    dep, ds = run(
        make(Phase.DEPLOYING, strategy=Strategy.BLUE_GREEN),
        ev.RolloutCompleted(step=0),
        ev.Promoted(user="U1"),
        ev.RolloutCompleted(step=1),
    )
    assert ds[1].effects[1:] == (fx.SwitchTraffic(deployment_id="d7", step=1),)
    assert dep.phase is Phase.VERIFYING
    with pytest.raises(InvalidTransition):
        apply(dep, ev.Promoted(user="U1"), NOW)
    assert apply(dep, ev.GuardPassed(), NOW).deployment.phase is Phase.SUCCEEDED


def test_rejection_ends_it() -> None:
    dep, ds = run(make(), ev.ApprovalsRequired(), ev.Rejected(user="U2", reason="freeze week"))
    assert (dep.phase, dep.reason) == (Phase.REJECTED, "freeze week")
    assert kinds(ds[1]) == [fx.Notify]
    for event in SAMPLES.values():
        with pytest.raises(InvalidTransition, match="rejected is final"):
            apply(dep, event, NOW)


def test_expiry_ends_it() -> None:
    dep, ds = run(make(), ev.ApprovalsRequired(), ev.ApprovalExpired())
    assert dep.phase is Phase.EXPIRED
    assert dep.reason == "approvals did not arrive in time"
    assert kinds(ds[1]) == [fx.Notify]


def test_cancel_while_building_aborts_the_build() -> None:
    dep, ds = run(
        make(Phase.BUILDING),
        ev.BuildQueued(queue_item=7),
        ev.BuildStarted(number=42),
        ev.Cancelled(user="U1", reason="wrong version"),
    )
    assert (dep.phase, dep.reason) == (Phase.CANCELLED, "wrong version")
    assert ds[2].effects[1:] == (fx.AbortBuild(deployment_id="d7", attempt=1, queue_item=7, number=42),)
    assert ds[2].effects[1].key == "d7:abort-build:1"


@pytest.mark.parametrize("phase", [Phase.REQUESTED, Phase.AWAITING_APPROVAL])
def test_cancel_before_building_has_nothing_to_abort(phase: Phase) -> None:
    decision = apply(make(phase), ev.Cancelled(user="U1"), NOW)
    assert decision.deployment.phase is Phase.CANCELLED
    assert kinds(decision) == [fx.Notify]


def test_guard_breach_rolls_back_and_locks_for_the_guard() -> None:
    dep, ds = run(
        make(Phase.VERIFYING, guard_started_at=T0, guard_ticks=2, guard_failed_ticks=1),
        ev.GuardBreached(reason="5xx ratio 0.2 > 0.01"),
        ev.RollbackCompleted(version="1.4.1"),
    )
    assert ds[0].deployment.phase is Phase.ROLLING_BACK
    assert ds[0].effects[1:] == (fx.StartRollback(deployment_id="d7", to_version="1.4.1"),)
    assert dep.phase is Phase.ROLLED_BACK
    assert kinds(ds[1]) == [fx.Notify, fx.LockForGuard]
    lock = ds[1].effects[1]
    assert lock == fx.LockForGuard(
        deployment_id="d7", step=0, reason="5xx ratio 0.2 > 0.01", after_rollback=True
    )
    assert lock.key == "d7:guard-lock:rollback"


def test_failed_rollout_rolls_back_and_a_failed_rollback_is_loud() -> None:
    dep, ds = run(
        make(Phase.DEPLOYING),
        ev.RolloutStarted(step=0),
        ev.RolloutFailed(reason="ProgressDeadlineExceeded"),
        ev.RollbackFailed(reason="undo refused: 403"),
    )
    assert ds[1].effects[1:] == (fx.StartRollback(deployment_id="d7", to_version="1.4.1"),)
    assert (dep.phase, dep.reason) == (Phase.ROLLBACK_FAILED, "undo refused: 403")
    assert kinds(ds[2]) == [fx.Notify]


def test_refused_first_deploy_fails_without_rollback() -> None:
    decision = apply(make(Phase.DEPLOYING), ev.DeployRefused(reason="image not allowed"), NOW)
    assert (decision.deployment.phase, decision.deployment.reason) == (Phase.FAILED, "image not allowed")
    assert kinds(decision) == [fx.Notify]


@pytest.mark.parametrize("phase", [Phase.DEPLOYING, Phase.VERIFYING])
def test_manual_rollback_restores_the_named_or_previous_version(phase: Phase) -> None:
    named = apply(make(phase), ev.RollbackRequested(user="U1", reason="slow", to_version="1.3.9"), NOW)
    assert named.deployment.phase is Phase.ROLLING_BACK
    assert named.effects[1:] == (fx.StartRollback(deployment_id="d7", to_version="1.3.9"),)
    previous = apply(make(phase, paused=True), ev.RollbackRequested(user="U1", reason="slow"), NOW)
    assert previous.effects[1:] == (fx.StartRollback(deployment_id="d7", to_version="1.4.1"),)
    assert (previous.deployment.paused, previous.deployment.reason) == (False, "slow")


def test_rollback_deployment_path() -> None:
    rollback = make(version="1.4.1", previous_version="1.4.2", is_rollback=True)
    dep, ds = run(
        rollback,
        ev.RollbackRequested(user="U1", reason="checkout 1.4.2 errors"),
        ev.RollbackCompleted(version="1.4.1"),
    )
    assert ds[0].effects == (
        fx.Notify(
            deployment_id="d7",
            version_no=1,
            event=ev.RollbackRequested(user="U1", reason="checkout 1.4.2 errors"),
        ),
        fx.StartRollback(deployment_id="d7", to_version="1.4.1"),
    )
    assert dep.phase is Phase.ROLLED_BACK
    assert kinds(ds[1]) == [fx.Notify, fx.LockForGuard]


def test_held_guard_pauses_and_a_person_resumes() -> None:
    verifying = make(Phase.VERIFYING, strategy=Strategy.CANARY, guard_started_at=T0)
    held = apply(verifying, ev.GuardHeld(reason="error rate above max", lock=True), NOW)
    assert held.deployment.phase is Phase.VERIFYING
    assert (held.deployment.paused, held.deployment.reason) == (True, "error rate above max")
    assert held.effects[1:] == (
        fx.LockForGuard(deployment_id="d7", step=0, reason="error rate above max", after_rollback=False),
    )
    assert held.effects[1].key == "d7:guard-lock:0"

    inconclusive = apply(verifying, ev.GuardHeld(reason="no data"), NOW)
    assert kinds(inconclusive) == [fx.Notify]

    resumed = apply(held.deployment, ev.Promoted(user="U1"), NOW).deployment
    assert (resumed.paused, resumed.reason, resumed.step) == (False, None, 1)
    accepted = apply(held.deployment, ev.GuardPassed(user="U1"), NOW).deployment
    assert (accepted.phase, accepted.paused, accepted.reason) == (Phase.SUCCEEDED, False, None)


def test_emergency_skips_approvals() -> None:
    decision = apply(make(), ev.ApprovalsSkipped(emergency_reason="checkout is down"), NOW)
    assert decision.deployment.phase is Phase.BUILDING
    assert decision.deployment.emergency_reason == "checkout is down"
    assert decision.effects[1:] == (fx.TriggerBuild(deployment_id="d7", attempt=1),)
    # A plain skip keeps an emergency reason recorded when the deployment was created.
    kept = apply(make(emergency_reason="sev1"), ev.ApprovalsSkipped(), NOW)
    assert kept.deployment.emergency_reason == "sev1"


def test_build_retry_starts_a_new_attempt() -> None:
    dep, ds = run(
        make(Phase.BUILDING),
        ev.BuildQueued(queue_item=7),
        ev.BuildStarted(number=41),
        ev.BuildRetried(reason="agent went away"),
        ev.BuildQueued(queue_item=8),
    )
    assert ds[2].deployment.build_attempt == 2
    assert (ds[2].deployment.build_queue_item, ds[2].deployment.build_number) == (None, None)
    assert ds[2].effects[1:] == (fx.TriggerBuild(deployment_id="d7", attempt=2),)
    assert dep.build_queue_item == 8


def test_build_failure_fails() -> None:
    decision = apply(make(Phase.BUILDING), ev.BuildFailed(reason="FAILURE"), NOW)
    assert (decision.deployment.phase, decision.deployment.reason) == (Phase.FAILED, "FAILURE")
    assert kinds(decision) == [fx.Notify]


def test_decision_and_deployment_are_frozen() -> None:
    decision = apply(make(), ev.ApprovalsRequired(), NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.effects = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.deployment.phase = Phase.SUCCEEDED  # type: ignore[misc]


# --- idempotency keys --------------------------------------------------------------------------


def test_keys_name_deployment_what_and_step_or_attempt() -> None:
    assert fx.TriggerBuild(deployment_id="d1", attempt=1).key == "d1:build:1"
    assert fx.TriggerBuild(deployment_id="d1", attempt=2).key == "d1:build:2"
    assert fx.StartRollout(deployment_id="d1", step=2).key == "d1:rollout:2"
    assert fx.StartGuard(deployment_id="d1", step=0).key == "d1:guard:0"
    assert fx.Notify(deployment_id="d1", version_no=5, event=ev.BuildSkipped()).key == "d1:notify:5"
    assert fx.StartRollback(deployment_id="d1", to_version=None).key == "d1:rollback"


def test_keys_are_stable_across_reapply_and_time() -> None:
    dep = make(Phase.DEPLOYING, strategy=Strategy.CANARY, step=1)
    first = apply(dep, ev.RolloutCompleted(step=1), NOW)
    again = apply(dep, ev.RolloutCompleted(step=1), NOW + timedelta(hours=3))
    assert [e.key for e in first.effects] == [e.key for e in again.effects] == ["d7:notify:1", "d7:guard:1"]


def test_keys_are_distinct_for_every_effect_of_a_long_life() -> None:
    # Two approval stages, a retried build, three canary steps, a hold with a lock, then a rollback.
    _, ds = run(
        make(strategy=Strategy.CANARY),
        ev.ApprovalsRequired(),
        ev.ApprovalRecorded(user="U2", stage=0, stage_complete=True),
        ev.ApprovalsComplete(user="U3"),
        ev.BuildRetried(reason="lost"),
        ev.BuildSucceeded(number=3),
        ev.RolloutCompleted(step=0),
        ev.Promoted(),
        ev.RolloutCompleted(step=1),
        ev.GuardHeld(reason="p99 high", lock=True),
        ev.Promoted(user="U1"),
        ev.RolloutCompleted(step=2),
        ev.GuardHeld(reason="p99 high again", lock=True),
        ev.GuardBreached(reason="p99 breached"),
        ev.RollbackCompleted(version="1.4.1"),
    )
    keys = [e.key for d in ds for e in d.effects]
    assert len(keys) == len(set(keys)), keys
    assert {"d7:build:1", "d7:build:2", "d7:rollout:0", "d7:rollout:1", "d7:rollout:2"} <= set(keys)
    assert {"d7:guard-lock:1", "d7:guard-lock:2", "d7:guard-lock:rollback"} <= set(keys)


# --- event codec -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", list(SAMPLES.values()), ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: ev.Event) -> None:
    name = ev.event_type_name(event)
    stored = json.dumps(ev.event_to_payload(event))
    assert ev.event_from_payload(name, json.loads(stored)) == event


def test_enums_are_stored_as_values() -> None:
    assert ev.event_to_payload(ev.GuardTicked(outcome=TickOutcome.INCONCLUSIVE)) == {
        "outcome": "inconclusive"
    }


@given(st.sampled_from(ev.EVENT_TYPES).flatmap(st.from_type))
def test_any_event_round_trips_through_json(event: ev.Event) -> None:
    stored = json.dumps(ev.event_to_payload(event))
    assert ev.event_from_payload(ev.event_type_name(event), json.loads(stored)) == event


@pytest.mark.parametrize(
    ("type_name", "payload", "message"),
    [
        ("Deployed", {}, "unknown event type 'Deployed'"),
        ("BuildQueued", {}, "BuildQueued: missing field(s) queue_item"),
        ("BuildQueued", {"queue_item": 1, "extra": 2}, "BuildQueued: unknown field(s) extra"),
        ("BuildQueued", {"queue_item": "7"}, "BuildQueued.queue_item: expected int, got '7'"),
        ("BuildQueued", {"queue_item": True}, "BuildQueued.queue_item: expected int, got True"),
        ("BuildSucceeded", {"number": 1.5}, "BuildSucceeded.number: 1.5 is not a int | None"),
        ("GuardTicked", {"outcome": "great"}, "GuardTicked.outcome: 'great' is not one of"),
        ("Rejected", {"user": "U1", "reason": None}, "Rejected.reason: expected str, got None"),
        ("GuardHeld", {"reason": "x", "lock": 1}, "GuardHeld.lock: expected bool, got 1"),
    ],
)
def test_bad_stored_events_are_refused_clearly(
    type_name: str, payload: dict[str, object], message: str
) -> None:
    with pytest.raises(ev.EventPayloadError) as caught:
        ev.event_from_payload(type_name, payload)
    assert str(caught.value).startswith(message)


def test_optional_fields_may_be_left_out_of_a_payload() -> None:
    assert ev.event_from_payload("RollbackRequested", {"reason": "r"}) == ev.RollbackRequested(reason="r")


def test_datetimes_are_stored_as_iso_8601() -> None:
    # No event carries a datetime today; the codec is ready for the first one that does.
    @dataclasses.dataclass(frozen=True)
    class Stamped:
        at: datetime

    assert ev.event_to_payload(Stamped(at=NOW)) == {"at": "2024-05-06T09:30:00+00:00"}  # type: ignore[arg-type]
    assert ev._decode("2024-05-06T09:30:00+00:00", datetime, "Stamped.at") == NOW
    with pytest.raises(ev.EventPayloadError, match="not an ISO 8601 datetime"):
        ev._decode("yesterday", datetime, "Stamped.at")
