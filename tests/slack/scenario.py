"""One deployment's life as notifications, one of every type, with the text fields left to the test.

The same scenario feeds the unit tests (plain words), the property test (hostile words) and the
round trip through the Slack emulator, so every notification type is rendered by all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import events as ev
from bot.domain.deployment import Deployment, Strategy
from bot.domain.guard import CheckStatus, CheckVerdict
from bot.domain.measurements import TickOutcome
from bot.domain.message import Mention, Message
from bot.domain.notifications import (
    ApprovalGiven,
    ApprovalNeeded,
    BuildProgress,
    CheckResult,
    DeploymentOpened,
    EnvLocked,
    EnvUnlocked,
    GuardSettling,
    GuardTick,
    GuardVerdict,
    Notification,
    PhaseChanged,
    Refused,
    RollbackStarted,
    RolloutProgress,
)
from bot.domain.phases import Phase
from bot.slack.outgoing import RenderContext
from bot.slack.thread import plan

T0 = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
REQUESTER = "U0ANN"
APPROVER = "U0BOB"
PROMETHEUS = "http://prometheus.test:9090"
JENKINS = "http://jenkins.test/job/checkout/7/"
GRAFANA = "https://grafana.test/d/abc"


@dataclass(frozen=True)
class Words:
    """Every piece of text a person or CI controls in a deployment's notifications."""

    service: str = "checkout"
    env: str = "production"
    version: str = "1.4.2"
    previous: str = "1.4.1"
    reason: str = "error ratio too high"
    console: str = "npm ERR! test failed"
    check: str = "error_ratio"
    query: str = 'sum(rate(http_requests_total{code=~"5.."}[1m]))'
    message: str = "pods are starting"
    group: str = "sre"
    dep_id: str = "d-7"


def ctx(minutes: float = 5) -> RenderContext:
    return RenderContext(T0 + timedelta(minutes=minutes), PROMETHEUS, GRAFANA)


def deployment(w: Words, strategy: Strategy = Strategy.CANARY) -> Deployment:
    return Deployment(
        w.dep_id,
        w.service,
        w.env,
        w.version,
        strategy,
        REQUESTER,
        Phase.REQUESTED,
        T0,
        T0,
        previous_version=w.previous,
    )


def at(dep: Deployment, phase: Phase, minutes: float, **changes: Any) -> Deployment:
    return replace(dep.with_phase(phase, T0 + timedelta(minutes=minutes)), **changes)


def result(w: Words, value: float | None, status: CheckStatus) -> CheckResult:
    return CheckResult(CheckVerdict(w.check, status, f"{w.check} = {value}", value), None, 0.05, w.query)


def life(w: Words = Words(), strategy: Strategy = Strategy.CANARY) -> Iterator[Notification]:
    """Opened → approved → built (a failed attempt first) → rolled out → guarded → held → rolled back."""
    dep = deployment(w, strategy)
    yield DeploymentOpened(dep, "C0DEPLOYS")
    dep = at(dep, Phase.AWAITING_APPROVAL, 0.1)
    yield PhaseChanged(dep, ev.ApprovalsRequired())
    yield ApprovalNeeded(dep, 0, w.group, 1, (APPROVER, "U0CAT"), T0 + timedelta(hours=1))
    yield ApprovalGiven(dep, APPROVER, 0, True, w.reason)
    dep = at(dep, Phase.BUILDING, 1)
    yield PhaseChanged(dep, ev.ApprovalsComplete(user=APPROVER))
    yield PhaseChanged(dep, ev.BuildQueued(queue_item=3))
    dep = replace(dep, build_queue_item=3, build_number=7)
    yield PhaseChanged(dep, ev.BuildStarted(number=7))
    yield BuildProgress(dep, "running", JENKINS, 0.4, None, 7)
    yield BuildProgress(dep, "failed", JENKINS, None, w.console, 7, "FAILURE")
    yield PhaseChanged(dep, ev.BuildRetried(reason=w.reason))
    dep = replace(dep, build_attempt=2)
    yield PhaseChanged(dep, ev.BuildQueued(queue_item=4))
    yield BuildProgress(dep, "succeeded", JENKINS, 1.0, None, 8, "SUCCESS")
    dep = at(dep, Phase.DEPLOYING, 3)
    yield PhaseChanged(dep, ev.BuildSucceeded(number=8))
    yield PhaseChanged(dep, ev.RolloutStarted(step=0))
    yield RolloutProgress(dep, 0, 10, w.message, 1, 4)
    dep = at(dep, Phase.VERIFYING, 4, guard_started_at=T0 + timedelta(minutes=4))
    yield PhaseChanged(dep, ev.RolloutCompleted(step=0))
    yield GuardSettling(
        dep,
        (f"{w.check} settling for 1m: its 1m window still sees {w.check}",),
        T0 + timedelta(minutes=5),
        3,
        step=0,
        window_started_at=dep.guard_started_at,
    )
    for tick, (value, status) in enumerate(
        [(0.01, CheckStatus.PASS), (None, CheckStatus.INCONCLUSIVE), (0.2, CheckStatus.FAIL)], start=1
    ):
        dep = replace(dep, guard_ticks=tick)
        outcome = TickOutcome(status.value)
        yield GuardTick(
            dep,
            outcome,
            (f"{w.check} = {value}",),
            tick,
            10,
            results=(result(w, value, status),),
            step=0,
            window_started_at=dep.guard_started_at,
        )
    yield GuardVerdict(dep, "inconclusive", w.reason, step=0, window_started_at=dep.guard_started_at)
    dep = at(dep, Phase.VERIFYING, 6, paused=True, reason=w.reason)
    yield PhaseChanged(dep, ev.GuardHeld(reason=w.reason, lock=True))
    yield EnvLocked(w.env, w.service, "guard", w.reason, "shipthread", "C0DEPLOYS", dep.id, 11)
    dep = at(dep, Phase.ROLLING_BACK, 7, paused=False)
    yield PhaseChanged(dep, ev.RollbackRequested(user=REQUESTER, reason=w.reason, to_version=w.previous))
    yield RollbackStarted(dep, w.previous, w.reason, REQUESTER)
    dep = at(dep, Phase.ROLLED_BACK, 8)
    yield PhaseChanged(dep, ev.RollbackCompleted(version=w.previous))
    yield GuardTick(
        dep,
        TickOutcome.PASS,
        ("ok",),
        1,
        10,
        post_rollback=True,
        results=(result(w, 0.01, CheckStatus.PASS),),
        window_started_at=T0 + timedelta(minutes=8),
    )
    yield GuardVerdict(dep, "pass", w.reason, post_rollback=True, window_started_at=T0 + timedelta(minutes=8))
    yield EnvUnlocked(w.env, w.service, "guard", w.reason, "shipthread", "C0DEPLOYS", dep.id, 11)
    yield EnvLocked(w.env, None, "manual", w.reason, APPROVER, "C0DEPLOYS")
    yield EnvUnlocked(w.env, None, "manual", None, APPROVER, "C0DEPLOYS")
    yield Refused(
        REQUESTER, "C0DEPLOYS", Message.of(w.reason, " — ask ", Mention(APPROVER)), "deploy", w.service
    )


def other_events(w: Words = Words()) -> Iterator[Notification]:
    """The events ``life`` does not reach: rejection, expiry, cancel, skips, failures, promotion."""
    dep = at(deployment(w), Phase.AWAITING_APPROVAL, 0.1)
    yield PhaseChanged(dep, ev.ApprovalRecorded(user=APPROVER, stage=0, stage_complete=True))
    yield PhaseChanged(
        at(dep, Phase.REJECTED, 1, reason=w.reason), ev.Rejected(user=APPROVER, reason=w.reason)
    )
    yield PhaseChanged(at(dep, Phase.EXPIRED, 1), ev.ApprovalExpired())
    yield PhaseChanged(at(dep, Phase.CANCELLED, 1), ev.Cancelled(user=REQUESTER, reason=w.reason))
    yield PhaseChanged(at(dep, Phase.BUILDING, 1), ev.ApprovalsSkipped(emergency_reason=w.reason))
    yield PhaseChanged(at(dep, Phase.BUILDING, 1), ev.ApprovalsSkipped())
    yield PhaseChanged(at(dep, Phase.DEPLOYING, 1), ev.BuildSkipped())
    yield PhaseChanged(at(dep, Phase.FAILED, 1, reason=w.reason), ev.BuildFailed(reason=w.reason))
    yield PhaseChanged(at(dep, Phase.FAILED, 1, reason=w.reason), ev.DeployRefused(reason=w.reason))
    yield PhaseChanged(at(dep, Phase.ROLLING_BACK, 1), ev.RolloutFailed(reason=w.reason))
    yield PhaseChanged(at(dep, Phase.VERIFYING, 1), ev.GuardTicked(outcome=TickOutcome.PASS))
    yield PhaseChanged(at(dep, Phase.ROLLING_BACK, 1), ev.GuardBreached(reason=w.reason))
    yield PhaseChanged(at(dep, Phase.SUCCEEDED, 1), ev.GuardPassed(user=APPROVER))
    yield PhaseChanged(at(dep, Phase.DEPLOYING, 1, step=1), ev.Promoted(user=APPROVER, final=True))
    yield PhaseChanged(at(dep, Phase.ROLLBACK_FAILED, 1, reason=w.reason), ev.RollbackFailed(reason=w.reason))
    yield GuardVerdict(dep, "fail", w.reason, step=0, window_started_at=None)


def run(notifications: Iterator[Notification], state: dict[str, Any] | None = None) -> list[Any]:
    """Every plan of the notifications folded in order (the state of one passed to the next)."""
    plans = []
    for n in notifications:
        p = plan(state, n, ctx())
        if p.card_state is not None:
            state = p.card_state
        plans.append((n, p))
    return plans
