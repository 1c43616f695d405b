"""The deployment state machine: one table of legal transitions, and ``apply``.

``TRANSITIONS`` is the whole lifecycle as data, ``(phase, event type) -> phase``; anything not in
it is refused with ``InvalidTransition`` and changes nothing. A few pairs also carry a
``CONDITIONS`` entry: a safety rule that the phase alone cannot express (a stale event for an
earlier step, a refusal that would strand a live canary). ``apply`` returns a ``Decision``: the new
frozen deployment (version bumped, progress updated from the event) and the side effects the engine
must now perform, each with its idempotency key. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import assert_never

from bot.domain.deployment import Deployment, Strategy
from bot.domain.effects import (
    AbortBuild,
    Effect,
    LockForGuard,
    Notify,
    PromoteCanary,
    RequestApprovals,
    ScheduleApprovalExpiry,
    StartGuard,
    StartRollback,
    StartRollout,
    SwitchTraffic,
    TriggerBuild,
)
from bot.domain.events import (
    ApprovalExpired,
    ApprovalRecorded,
    ApprovalsComplete,
    ApprovalsRequired,
    ApprovalsSkipped,
    BuildFailed,
    BuildQueued,
    BuildRetried,
    BuildSkipped,
    BuildStarted,
    BuildSucceeded,
    Cancelled,
    DeployRefused,
    Event,
    GuardBreached,
    GuardHeld,
    GuardPassed,
    GuardTicked,
    Promoted,
    Rejected,
    RollbackCompleted,
    RollbackFailed,
    RollbackRequested,
    RolloutCompleted,
    RolloutFailed,
    RolloutStarted,
)
from bot.domain.measurements import TickOutcome
from bot.domain.phases import Phase
from bot.errors import InvalidTransition

# fmt: off
TRANSITIONS: Mapping[tuple[Phase, type[Event]], Phase] = types.MappingProxyType({
    # Policy evaluated: ask for approvals, or go straight to the build.
    (Phase.REQUESTED,         ApprovalsRequired): Phase.AWAITING_APPROVAL,
    (Phase.REQUESTED,         ApprovalsSkipped):  Phase.BUILDING,
    (Phase.REQUESTED,         Cancelled):         Phase.CANCELLED,
    (Phase.REQUESTED,         RollbackRequested): Phase.ROLLING_BACK,       # a /rollback deployment only
    # Collecting approval stages in order.
    (Phase.AWAITING_APPROVAL, ApprovalRecorded):  Phase.AWAITING_APPROVAL,
    (Phase.AWAITING_APPROVAL, ApprovalsComplete): Phase.BUILDING,
    (Phase.AWAITING_APPROVAL, Rejected):          Phase.REJECTED,
    (Phase.AWAITING_APPROVAL, ApprovalExpired):   Phase.EXPIRED,
    (Phase.AWAITING_APPROVAL, Cancelled):         Phase.CANCELLED,
    # Following the Jenkins build.
    (Phase.BUILDING,          BuildQueued):       Phase.BUILDING,
    (Phase.BUILDING,          BuildStarted):      Phase.BUILDING,
    (Phase.BUILDING,          BuildRetried):      Phase.BUILDING,
    (Phase.BUILDING,          BuildSucceeded):    Phase.DEPLOYING,
    (Phase.BUILDING,          BuildSkipped):      Phase.DEPLOYING,
    (Phase.BUILDING,          BuildFailed):       Phase.FAILED,
    (Phase.BUILDING,          Cancelled):         Phase.CANCELLED,          # aborts the build
    # Rolling out one step; from here on something is live, so exits go through a rollback.
    (Phase.DEPLOYING,         RolloutStarted):    Phase.DEPLOYING,
    (Phase.DEPLOYING,         RolloutCompleted):  Phase.VERIFYING,
    (Phase.DEPLOYING,         RolloutFailed):     Phase.ROLLING_BACK,
    (Phase.DEPLOYING,         DeployRefused):     Phase.FAILED,             # step 0 only: nothing changed
    (Phase.DEPLOYING,         RollbackRequested): Phase.ROLLING_BACK,
    # The QoS guard watches the step.
    (Phase.VERIFYING,         GuardTicked):       Phase.VERIFYING,
    (Phase.VERIFYING,         GuardHeld):         Phase.VERIFYING,          # paused for a person
    (Phase.VERIFYING,         GuardPassed):       Phase.SUCCEEDED,
    (Phase.VERIFYING,         GuardBreached):     Phase.ROLLING_BACK,
    (Phase.VERIFYING,         Promoted):          Phase.DEPLOYING,          # next canary step / switch
    (Phase.VERIFYING,         RollbackRequested): Phase.ROLLING_BACK,
    # Restoring what was live before.
    (Phase.ROLLING_BACK,      RollbackCompleted): Phase.ROLLED_BACK,
    (Phase.ROLLING_BACK,      RollbackFailed):    Phase.ROLLBACK_FAILED,
})
# fmt: on
"""Every legal transition. Terminal phases have no row: they accept nothing."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule a legal pair must also satisfy, and why it exists (shown when it refuses)."""

    holds: Callable[[Deployment, Event], bool]
    why: str


def _is_rollback_deployment(dep: Deployment, event: Event) -> bool:
    return dep.is_rollback


def _current_stage(dep: Deployment, event: Event) -> bool:
    return isinstance(event, ApprovalRecorded) and event.stage == dep.approval_stage


def _current_step(dep: Deployment, event: Event) -> bool:
    return isinstance(event, RolloutStarted | RolloutCompleted) and event.step == dep.step


def _nothing_live(dep: Deployment, event: Event) -> bool:
    return dep.step == 0


def _has_next_step(dep: Deployment, event: Event) -> bool:
    return dep.strategy is Strategy.CANARY or (dep.strategy is Strategy.BLUE_GREEN and dep.step == 0)


CONDITIONS: Mapping[tuple[Phase, type[Event]], Condition] = types.MappingProxyType(
    {
        (Phase.REQUESTED, RollbackRequested): Condition(
            _is_rollback_deployment,
            "nothing was deployed yet; only a /rollback deployment starts by rolling back",
        ),
        (Phase.AWAITING_APPROVAL, ApprovalRecorded): Condition(
            _current_stage, "the approval is for another stage than the one being collected"
        ),
        (Phase.DEPLOYING, RolloutStarted): Condition(
            _current_step, "the event is for another step than the one being rolled out"
        ),
        (Phase.DEPLOYING, RolloutCompleted): Condition(
            _current_step, "the event is for another step than the one being rolled out"
        ),
        (Phase.DEPLOYING, DeployRefused): Condition(
            _nothing_live, "an earlier step is live, so a failure must roll back (RolloutFailed)"
        ),
        (Phase.VERIFYING, Promoted): Condition(
            _has_next_step, "there is no further step to promote to; the guard's pass finishes it"
        ),
    }
)
"""Extra rules on some legal pairs, for what the phase alone cannot tell."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What an event means: the deployment to store, and the effects to perform after storing it."""

    deployment: Deployment
    effects: tuple[Effect, ...]


def refusal(dep: Deployment, event_type: type[Event], why: str | None = None) -> InvalidTransition:
    """The ``InvalidTransition`` for ``event_type`` at ``dep``'s phase, its message naming what the
    phase accepts instead (or ``why``, a condition's reason)."""
    message = f"deployment {dep.id} is {dep.phase}; cannot apply {event_type.__name__}"
    if why is not None:
        message += f": {why}"
    elif dep.phase.terminal:
        message += f" ({dep.phase} is final)"
    else:
        accepted = sorted(t.__name__ for t in allowed_events(dep.phase))
        message += f" ({dep.phase} accepts {', '.join(accepted)})"
    return InvalidTransition(message, deployment_id=dep.id, phase=dep.phase, event_type=event_type, why=why)


def accepting(event: type[Event], *, conditional: bool = True) -> frozenset[Phase]:
    """Phases that take ``event``; with ``conditional=False``, only those that take it from any
    deployment (a ``CONDITIONS`` pair such as requested + RollbackRequested is left out)."""
    return frozenset(
        phase
        for (phase, kind) in TRANSITIONS
        if kind is event and (conditional or (phase, kind) not in CONDITIONS)
    )


CANCELLABLE: frozenset[Phase] = accepting(Cancelled)
"""Nothing is deployed yet: the deployment can simply stop (requested, awaiting approval, building)."""
ROLLBACKABLE: frozenset[Phase] = accepting(RollbackRequested, conditional=False)
"""Something is live and being rolled out or watched: undoing it is a rollback (deploying, verifying)."""


def allowed_events(phase: Phase) -> frozenset[type[Event]]:
    """The event types ``phase`` accepts (some only under their ``CONDITIONS``)."""
    return frozenset(event for (source, event) in TRANSITIONS if source is phase)


def apply(dep: Deployment, event: Event, now: datetime) -> Decision:
    """The deployment after ``event`` at ``now``, and the effects to perform.

    Raises ``InvalidTransition`` (and changes nothing) when ``dep``'s phase does not accept the
    event, or one of its ``CONDITIONS`` does not hold.
    """
    pair = (dep.phase, type(event))
    target = TRANSITIONS.get(pair)
    if target is None:
        raise refusal(dep, type(event))
    condition = CONDITIONS.get(pair)
    if condition is not None and not condition.holds(dep, event):
        raise refusal(dep, type(event), condition.why)
    new = _progress(dep.with_phase(target, at=now), event, now)
    return Decision(new, _effects(dep, new, event))


def _next_step(dep: Deployment, step: int, now: datetime) -> Deployment:
    """Going (back) to DEPLOYING for ``step``: no guard window runs until the step is rolled out.

    The change starts now, before the cluster is asked for it: what ``baseline: before`` compares
    with is measured here, while only the version it replaces serves (the window opens later, at
    ``RolloutCompleted``, when the new pods have served for the whole rollout)."""
    return replace(
        dep,
        step=step,
        change_started_at=now,
        guard_started_at=None,
        guard_ticks=0,
        guard_failed_ticks=0,
        guard_inconclusive_ticks=0,
        paused=False,
        reason=None,
    )


def _open_window(dep: Deployment, now: datetime) -> Deployment:
    """A guard window starts now over the current step, with fresh counters."""
    return replace(
        dep,
        guard_started_at=now,
        guard_ticks=0,
        guard_failed_ticks=0,
        guard_inconclusive_ticks=0,
        paused=False,
    )


def _progress(dep: Deployment, event: Event, now: datetime) -> Deployment:
    """``dep`` (already in its new phase) with the progress fields ``event`` changes."""
    match event:
        case ApprovalsRequired():
            return replace(dep, approval_stage=0)
        case ApprovalsSkipped():
            return replace(dep, emergency_reason=event.emergency_reason or dep.emergency_reason)
        case ApprovalRecorded():
            return replace(dep, approval_stage=event.stage + 1) if event.stage_complete else dep
        case ApprovalExpired():
            return replace(dep, reason="approvals did not arrive in time")
        case Rejected() | Cancelled() | BuildFailed() | DeployRefused() | RolloutFailed():
            return replace(dep, reason=event.reason)
        case BuildQueued():
            return replace(dep, build_queue_item=event.queue_item)
        case BuildStarted():
            return replace(dep, build_number=event.number)
        case BuildRetried():
            return replace(dep, build_attempt=dep.build_attempt + 1, build_queue_item=None, build_number=None)
        case BuildSucceeded():
            built = dep.build_number if event.number is None else event.number
            return _next_step(replace(dep, build_number=built), 0, now)
        case BuildSkipped():
            return _next_step(dep, 0, now)
        case RolloutCompleted():
            return _open_window(dep, now)
        case GuardTicked():
            return replace(
                dep,
                guard_ticks=dep.guard_ticks + 1,
                guard_failed_ticks=dep.guard_failed_ticks + (event.outcome is TickOutcome.FAIL),
                guard_inconclusive_ticks=dep.guard_inconclusive_ticks
                + (event.outcome is TickOutcome.INCONCLUSIVE),
            )
        case GuardHeld():
            return replace(dep, paused=True, reason=event.reason)
        case GuardPassed():
            return replace(dep, paused=False, reason=None)
        case Promoted():
            return _next_step(dep, dep.step + 1, now)
        case GuardBreached() | RollbackRequested() | RollbackFailed():
            return replace(dep, paused=False, reason=event.reason)
        case ApprovalsComplete() | RolloutStarted() | RollbackCompleted():
            return dep
        case _:
            assert_never(event)


def _effects(old: Deployment, new: Deployment, event: Event) -> tuple[Effect, ...]:
    """The side effects of moving ``old`` to ``new`` on ``event``: a notice, then the work."""
    did = new.id
    actions: tuple[Effect, ...]
    match event:
        case ApprovalsRequired():
            actions = (
                RequestApprovals(deployment_id=did, stage=0),
                ScheduleApprovalExpiry(deployment_id=did),
            )
        case ApprovalRecorded():
            opened = (RequestApprovals(deployment_id=did, stage=new.approval_stage),)
            actions = opened if event.stage_complete else ()
        case ApprovalsSkipped() | ApprovalsComplete() | BuildRetried():
            actions = (TriggerBuild(deployment_id=did, attempt=new.build_attempt),)
        case Cancelled():
            actions = _abort_build(old)
        case BuildSucceeded() | BuildSkipped():
            actions = (StartRollout(deployment_id=did, step=new.step),)
        case RolloutCompleted():
            actions = (StartGuard(deployment_id=did, step=new.step),)
        case RolloutFailed() | GuardBreached():
            actions = (StartRollback(deployment_id=did, to_version=old.previous_version),)
        case RollbackRequested():
            actions = (_requested_rollback(old, event),)
        case GuardHeld():
            lock = LockForGuard(deployment_id=did, step=new.step, reason=event.reason, after_rollback=False)
            actions = (lock,) if event.lock else ()
        case Promoted():
            actions = (_promotion(new, event),)
        case RollbackCompleted():
            reason = new.reason or f"rolled back to {event.version}"
            actions = (LockForGuard(deployment_id=did, step=new.step, reason=reason, after_rollback=True),)
        case (
            Rejected()
            | ApprovalExpired()
            | BuildQueued()
            | BuildStarted()
            | BuildFailed()
            | RolloutStarted()
            | DeployRefused()
            | GuardTicked()
            | GuardPassed()
            | RollbackFailed()
        ):
            actions = ()
        case _:
            assert_never(event)
    # A guard tick changes only counters; posting each one would flood the thread.
    if isinstance(event, GuardTicked):
        return actions
    return (Notify(deployment_id=did, version_no=new.version_no, event=event), *actions)


def _abort_build(old: Deployment) -> tuple[Effect, ...]:
    """What cancelling ``old`` stops: only a build can be running before anything is deployed; stop
    it rather than let it publish an artifact nobody will deploy."""
    if old.phase is not Phase.BUILDING:
        return ()
    return (
        AbortBuild(
            deployment_id=old.id,
            attempt=old.build_attempt,
            queue_item=old.build_queue_item,
            number=old.build_number,
        ),
    )


def _requested_rollback(old: Deployment, event: RollbackRequested) -> Effect:
    """A /rollback deployment restores its own (older) version; any other restores what was live
    before it started, unless the person named a version."""
    restore = old.version if old.is_rollback and old.phase is Phase.REQUESTED else old.previous_version
    return StartRollback(deployment_id=old.id, to_version=event.to_version or restore)


def _promotion(new: Deployment, event: Promoted) -> Effect:
    """What moving to ``new.step`` does on the cluster, by strategy (``CONDITIONS`` rule out rolling)."""
    if new.strategy is Strategy.BLUE_GREEN:
        return SwitchTraffic(deployment_id=new.id, step=new.step)
    if event.final:
        return PromoteCanary(deployment_id=new.id, step=new.step)
    return StartRollout(deployment_id=new.id, step=new.step)
