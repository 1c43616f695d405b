"""What each domain event of a phase change (``PhaseChanged.event``) does to a thread's state.

One small function per event type, found through ``EVENTS``; ``apply_event`` is the fold's only
entry here. The table is checked against ``bot.domain.events.Event`` when this module loads, so an
event added to the domain without a handler fails at once rather than being dropped silently
(a table loses the ``assert_never`` that an ``if`` chain had).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, get_args

from bot.domain import events as ev
from bot.slack.blocks import code, mention, text
from bot.slack.outgoing import Priority
from bot.slack.thread_fold import ThreadFold, build_key


def apply_event(f: ThreadFold, e: ev.Event) -> None:
    EVENTS[type(e)](f, e)


def _requester(f: ThreadFold) -> str:
    return mention(f.s["deployment"].get("requester"))


def _build(f: ThreadFold) -> str:
    """The key of the current build attempt's reply."""
    return str(f.s.get("build_key", "build"))


# -- approvals -----------------------------------------------------------------------------------


def _approvals_required(f: ThreadFold, e: ev.ApprovalsRequired) -> None:
    f.s["approvals_required"] = True


def _approvals_skipped(f: ThreadFold, e: ev.ApprovalsSkipped) -> None:
    if e.emergency_reason:
        f.note(
            "approvals",
            f"🚨 *Emergency*: approvals and freezes skipped for {_requester(f)}: {text(e.emergency_reason)}",
            Priority.URGENT,
        )
    else:
        f.note("approvals", f"👍 No approval needed in {code(f.s['deployment']['env'])}.")


def _approval_recorded(f: ThreadFold, e: ev.ApprovalRecorded) -> None:
    f.vote(e.user, e.stage, True)
    if e.stage_complete:
        f.decide(f"approval:{e.stage}", "✅ Stage approved", e.user)


def _approvals_complete(f: ThreadFold, e: ev.ApprovalsComplete) -> None:
    stage = f.approval_stage()
    f.vote(e.user, stage, True)
    f.decide(f"approval:{stage}", "✅ Approved", e.user)
    f.s["pending_approval"] = None


def _rejected(f: ThreadFold, e: ev.Rejected) -> None:
    stage = f.approval_stage()
    f.vote(e.user, stage, False, e.reason)
    f.reject(e.user, stage, e.reason)


def _approval_expired(f: ThreadFold, e: ev.ApprovalExpired) -> None:
    f.decide(f"approval:{f.approval_stage()}", "⌛ Expired", None)
    f.card_decision("⌛ Approvals expired", None)
    f.s["pending_approval"] = None
    f.note("approvals", f"⌛ Approvals did not arrive in time, {_requester(f)}: nothing was deployed.")


def _cancelled(f: ThreadFold, e: ev.Cancelled) -> None:
    f.decide(f"approval:{f.approval_stage()}", "✋ Cancelled", e.user, e.reason)
    f.card_decision("✋ Cancelled", e.user, e.reason)
    f.s["pending_approval"] = None


# -- the build -----------------------------------------------------------------------------------


def _build_queued(f: ThreadFold, e: ev.BuildQueued) -> None:
    attempt = f.s["deployment"]["build_attempt"]
    f.reply(_build(f), "build", state="queued", queue_item=e.queue_item, attempt=attempt)


def _build_started(f: ThreadFold, e: ev.BuildStarted) -> None:
    attempt = f.s["deployment"]["build_attempt"]
    f.reply(_build(f), "build", state="running", number=e.number, attempt=attempt)


def _build_succeeded(f: ThreadFold, e: ev.BuildSucceeded) -> None:
    attempt = f.s["deployment"]["build_attempt"]
    f.reply(_build(f), "build", state="succeeded", progress=1.0, attempt=attempt)


def _build_skipped(f: ThreadFold, e: ev.BuildSkipped) -> None:
    f.reply(_build(f), "build", state="skipped")


def _build_retried(f: ThreadFold, e: ev.BuildRetried) -> None:
    build = _build(f)
    if build in f.s["replies"]:
        f.reply(build, "build", state="retrying", reason=e.reason)
    f.s["build_key"] = build_key(int(f.s["deployment"]["build_attempt"]))


def _build_failed(f: ThreadFold, e: ev.BuildFailed) -> None:
    build = _build(f)
    reply = f.s["replies"].get(build, {})
    status = reply.get("state") if reply.get("state") in ("failed", "aborted", "cancelled") else "failed"
    f.reply(build, "build", Priority.URGENT, state=status, reason=e.reason)


# -- the rollout ---------------------------------------------------------------------------------


def _rollout_started(f: ThreadFold, e: ev.RolloutStarted) -> None:
    weight = f.s["weights"].get(str(e.step))
    f.reply(f"rollout:{e.step}", "rollout", step=e.step, state="progress", weight=weight)


def _rollout_completed(f: ThreadFold, e: ev.RolloutCompleted) -> None:
    f.reply(f"rollout:{e.step}", "rollout", step=e.step, state="done")


def _rollout_failed(f: ThreadFold, e: ev.RolloutFailed) -> None:
    step = int(f.s["deployment"].get("step", 0))
    f.reply(f"rollout:{step}", "rollout", Priority.URGENT, step=step, state="failed", reason=e.reason)


def _deploy_refused(f: ThreadFold, e: ev.DeployRefused) -> None:
    f.reply("rollout:0", "rollout", Priority.URGENT, step=0, state="refused", reason=e.reason)


# -- the guard and the rollback ------------------------------------------------------------------


def _guard_silent(f: ThreadFold, e: ev.GuardTicked | ev.GuardBreached) -> None:
    pass  # the GuardTick / GuardVerdict notifications carry what a person reads


def _guard_passed(f: ThreadFold, e: ev.GuardPassed) -> None:
    held = f.held_window()
    if held and e.user:
        f.decide(held, "✅ Accepted", e.user)


def _guard_held(f: ThreadFold, e: ev.GuardHeld) -> None:
    windows = f.s["windows"]
    if windows:
        f.window(windows[-1], False, None)["held"] = True
        f.touch(windows[-1], Priority.URGENT)
    else:
        f.note("held", f"⏸️ *Held*: {text(e.reason)}\n{_requester(f)}, promote or abort.", Priority.URGENT)


def _promoted(f: ThreadFold, e: ev.Promoted) -> None:
    held = f.held_window()
    if held:
        f.decide(held, "⏩ Promoted", e.user)


def _rollback_requested(f: ThreadFold, e: ev.RollbackRequested) -> None:
    held = f.held_window()
    if held:
        f.decide(held, "⏪ Aborted", e.user, e.reason)
    if e.user:
        f.card_decision("⏪ Rollback asked", e.user, e.reason)
    f.reply(
        "rollback",
        "rollback",
        Priority.URGENT,
        to_version=e.to_version,
        reason=e.reason,
        by=e.user,
        state="started",
    )


def _rollback_completed(f: ThreadFold, e: ev.RollbackCompleted) -> None:
    f.reply("rollback", "rollback", Priority.URGENT, state="done", version=e.version)


def _rollback_failed(f: ThreadFold, e: ev.RollbackFailed) -> None:
    f.reply("rollback", "rollback", Priority.URGENT, state="failed", reason=e.reason)


EVENTS: Final[dict[type[Any], Callable[[ThreadFold, Any], None]]] = {
    ev.ApprovalsRequired: _approvals_required,
    ev.ApprovalsSkipped: _approvals_skipped,
    ev.ApprovalRecorded: _approval_recorded,
    ev.ApprovalsComplete: _approvals_complete,
    ev.Rejected: _rejected,
    ev.ApprovalExpired: _approval_expired,
    ev.Cancelled: _cancelled,
    ev.BuildQueued: _build_queued,
    ev.BuildStarted: _build_started,
    ev.BuildSucceeded: _build_succeeded,
    ev.BuildSkipped: _build_skipped,
    ev.BuildRetried: _build_retried,
    ev.BuildFailed: _build_failed,
    ev.RolloutStarted: _rollout_started,
    ev.RolloutCompleted: _rollout_completed,
    ev.RolloutFailed: _rollout_failed,
    ev.DeployRefused: _deploy_refused,
    ev.GuardTicked: _guard_silent,
    ev.GuardBreached: _guard_silent,
    ev.GuardPassed: _guard_passed,
    ev.GuardHeld: _guard_held,
    ev.Promoted: _promoted,
    ev.RollbackRequested: _rollback_requested,
    ev.RollbackCompleted: _rollback_completed,
    ev.RollbackFailed: _rollback_failed,
}
"""One handler per domain event type, looked up by exact type (no event subclasses another)."""

_unhandled = set(get_args(ev.Event)) - EVENTS.keys()
if _unhandled:
    raise TypeError(f"no thread handler for {sorted(t.__name__ for t in _unhandled)}")
