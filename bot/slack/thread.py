"""A deployment's thread as a fold: card state + one notification → new card state + messages.

The notifier keeps one JSON document per deployment (the *card state*) and calls ``plan`` for each
notification. Everything a later redraw needs lives in that state: a snapshot of the deployment,
the votes, each reply's data under its key, the guard windows' recent values (bounded), the locks.
Because the output is a pure function of (state, notification, context), an outbox retry after a
crash plans the same messages under the same keys, and the notifier turns them into edits.

The state has a version field (``v``); a state of another version is dropped and rebuilt from the
notification's deployment, which loses history but never breaks the thread.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, assert_never

from bot.domain import events as ev
from bot.domain import mrkdwn
from bot.domain.deployment import Deployment
from bot.domain.notifications import (
    SKIPPED,
    ApprovalGiven,
    ApprovalNeeded,
    BuildProgress,
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
from bot.slack import blocks, card, limits, replies
from bot.slack.blocks import code, mention, text
from bot.slack.outgoing import ChannelPost, Ephemeral, Outgoing, Plan, Priority, RenderContext

STATE_VERSION: Final = 1
MAX_WINDOWS: Final = 3
"""Guard windows kept in the state; older windows' replies stay in Slack as they were last drawn."""
MAX_VALUES: Final = 20
"""Recent values per check per window, for the sparkline."""
MAX_CHECKS: Final = 20
MAX_LOCKS: Final = 10
MAX_TAIL: Final = 2900
"""Console tail kept for a failed build's reply (its end: the last lines say why)."""

State = dict[str, Any]


def plan(card_state: dict[str, Any] | None, notification: Notification, ctx: RenderContext) -> Plan:
    """The new card state and the messages to send for ``notification``."""
    n = notification
    if isinstance(n, Refused):
        return Plan(card_state, ephemeral=(_refused(n),))
    if isinstance(n, EnvLocked | EnvUnlocked):
        state = _loaded(card_state) if _deployment_id(n) is not None else None
        if state is None or state["deployment"]["id"] != _deployment_id(n):
            return _channel_lock(card_state, n, ctx)
        return _Thread(state, ctx, first=False).run(n)
    dep = n.deployment
    loaded = _loaded(card_state)
    if loaded is None or loaded["deployment"]["id"] != dep.id:
        return _Thread(_fresh(dep), ctx, first=True).run(n)
    return _Thread(loaded, ctx, first=False).run(n)


# -- state ---------------------------------------------------------------------------------------


def _loaded(card_state: dict[str, Any] | None) -> State | None:
    if not isinstance(card_state, dict) or card_state.get("v") != STATE_VERSION:
        return None
    if not isinstance(card_state.get("deployment"), dict):
        return None
    return copy.deepcopy(card_state)  # pure: the caller's dict is never changed


def _fresh(dep: Deployment) -> State:
    return {
        "v": STATE_VERSION,
        "deployment": _snapshot(dep),
        "channel": None,
        "approvals_required": False,
        "votes": [],
        "pending_approval": None,
        "replies": {},
        "windows": [],
        "checks": {},
        "weights": {},
        "locks": {},
        "decision": None,
        "build_key": _build_key(dep.build_attempt),
        "card_digest": None,
    }


def _snapshot(dep: Deployment) -> dict[str, Any]:
    return {
        "id": dep.id,
        "service": dep.service,
        "env": dep.env,
        "version": dep.version,
        "previous_version": dep.previous_version,
        "strategy": dep.strategy.value,
        "requester": dep.requester,
        "phase": dep.phase.value,
        "version_no": dep.version_no,
        "created_at": dep.created_at.isoformat(),
        "updated_at": dep.updated_at.isoformat(),
        "step": dep.step,
        "paused": dep.paused,
        "reason": dep.reason,
        "emergency_reason": dep.emergency_reason,
        "is_rollback": dep.is_rollback,
        "approval_stage": dep.approval_stage,
        "build_attempt": dep.build_attempt,
    }


def _build_key(attempt: int) -> str:
    return "build" if attempt <= 1 else f"build:{attempt}"


def _deployment_id(n: EnvLocked | EnvUnlocked) -> str | None:
    return n.deployment_id or None


def _lock_key(n: EnvLocked | EnvUnlocked) -> str:
    if n.lock_id is not None:
        return f"lock:{n.lock_id}"
    return f"lock:{n.env}:{n.service or '*'}:{n.kind}"


def _window_key(post_rollback: bool, step: int | None, started: datetime | None) -> str:
    where = "rollback" if post_rollback else str(step if step is not None else 0)
    return f"guard:{where}:{started.isoformat() if started else 'none'}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# -- messages outside a thread -------------------------------------------------------------------


def _refused(n: Refused) -> Ephemeral:
    said = mrkdwn.render(n.message)
    return Ephemeral(
        n.channel,
        n.user,
        limits.fit_fallback(f"Refused: {said}"),
        limits.fit_blocks([blocks.section(f"🙅 {said}")]),
    )


def _lock_data(n: EnvLocked | EnvUnlocked, at: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "env": n.env,
        "service": n.service,
        "lock_kind": n.kind,
        "lock_id": n.lock_id,
    }
    if isinstance(n, EnvLocked):
        data.update(reason=n.reason, by=n.by, at=at.isoformat(), unlocked=None)
    else:
        data["unlocked"] = {"by": n.by, "reason": n.reason, "at": at.isoformat()}
    return data


def _channel_lock(card_state: dict[str, Any] | None, n: EnvLocked | EnvUnlocked, ctx: RenderContext) -> Plan:
    if not n.channel:
        return Plan(card_state)
    fallback, out = replies.lock_post(_lock_data(n, ctx.now), ctx)
    key = _lock_key(n)
    post = ChannelPost(n.channel, Outgoing(key, fallback, tuple(out), Priority.URGENT))
    return Plan(card_state, channel=(post,))


# -- the fold ------------------------------------------------------------------------------------


@dataclass
class _Thread:
    """One notification folded into one thread's state: which replies it touched, how urgently."""

    s: State
    ctx: RenderContext
    first: bool
    touched: dict[str, Priority] = field(default_factory=dict)

    def run(self, n: Notification) -> Plan:
        before = self.s["deployment"]["phase"]
        if not isinstance(n, EnvLocked | EnvUnlocked | Refused):
            self._update_deployment(n.deployment)
        self._apply(n)
        phase_changed = self.first or before != self.s["deployment"]["phase"]
        if phase_changed:
            priority = Priority.URGENT
        elif isinstance(n, GuardTick):
            priority = Priority.REDRAW
        else:
            priority = Priority.NORMAL
        thread: list[Outgoing] = []
        the_card = card.render(self.s, self.ctx, priority)
        digest = _digest(the_card)
        if phase_changed or digest != self.s.get("card_digest"):
            thread.append(the_card)
        self.s["card_digest"] = digest
        for key, reply_priority in self.touched.items():
            data = self.s["replies"].get(key)
            if data is not None:
                thread.append(replies.render(key, data, self.s, self.ctx, reply_priority))
        return Plan(self.s, tuple(thread))

    def _update_deployment(self, dep: Deployment) -> None:
        # Notifications can arrive out of order (an outbox retry): never go back to an older snapshot.
        if dep.version_no >= int(self.s["deployment"].get("version_no", -1)):
            self.s["deployment"] = _snapshot(dep)

    @property
    def _at(self) -> str:
        return str(self.s["deployment"]["updated_at"])

    def _touch(self, key: str, priority: Priority = Priority.NORMAL) -> dict[str, Any]:
        self.touched[key] = min(priority, self.touched.get(key, priority))
        reply: dict[str, Any] = self.s["replies"][key]
        return reply

    def _reply(
        self, key: str, kind: str, priority: Priority = Priority.NORMAL, **data: Any
    ) -> dict[str, Any]:
        reply = self.s["replies"].setdefault(key, {"kind": kind})
        reply.update(data)
        return self._touch(key, priority)

    def _decide(self, key: str, what: str, by: str | None, reason: str | None = None) -> None:
        reply = self.s["replies"].get(key)
        if reply is not None and not reply.get("decision"):
            reply["decision"] = {"what": what, "by": by, "at": self._at, "reason": reason}
            self._touch(key, Priority.URGENT)

    def _card_decision(self, what: str, by: str | None, reason: str | None = None) -> None:
        self.s["decision"] = {"what": what, "by": by, "at": self._at, "reason": reason}

    def _note(self, key: str, body: str, priority: Priority = Priority.NORMAL) -> None:
        self._reply(key, "note", priority, text=body)

    def _vote(self, user: str, stage: int, approve: bool, reason: str | None = None) -> bool:
        votes: list[dict[str, Any]] = self.s["votes"]
        if any(v["user"] == user and v["stage"] == stage for v in votes):
            return False
        votes.append({"user": user, "stage": stage, "approve": approve, "at": self._at, "reason": reason})
        pending = self.s.get("pending_approval")
        if approve and pending and pending["stage"] == stage and pending["needed"] > 0:
            pending["needed"] -= 1
        if f"approval:{stage}" in self.s["replies"]:
            self._touch(f"approval:{stage}")
        return True

    def _approval_stage(self) -> int:
        pending = self.s.get("pending_approval")
        return int(pending["stage"]) if pending else int(self.s["deployment"].get("approval_stage", 0))

    def _held_window(self) -> str | None:
        for key in reversed(self.s["windows"]):
            reply = self.s["replies"].get(key, {})
            if reply.get("held") and not reply.get("decision"):
                return str(key)
        return None

    def _window(self, key: str, post_rollback: bool, step: int | None) -> dict[str, Any]:
        windows: list[str] = self.s["windows"]
        if key not in windows:
            windows.append(key)
            while len(windows) > MAX_WINDOWS:
                self.s["replies"].pop(windows.pop(0), None)
            self.s["replies"][key] = {
                "kind": "window",
                "post_rollback": post_rollback,
                "step": step,
                "ticks": 0,
                "expected": 0,
                "outcomes": [],
                "checks": {},
                "lines": [],
                "verdict": None,
                "held": False,
            }
        reply: dict[str, Any] = self.s["replies"][key]
        return reply

    # -- one handler per notification type ------------------------------------------------------

    def _apply(self, n: Notification) -> None:
        if isinstance(n, DeploymentOpened):
            self.s["channel"] = n.channel
        elif isinstance(n, PhaseChanged):
            self._event(n.event)
        elif isinstance(n, ApprovalNeeded):
            self._approval_needed(n)
        elif isinstance(n, ApprovalGiven):
            if self._vote(n.user, n.stage, n.approve, n.reason) and not n.approve:
                self._reject(n.user, n.stage, n.reason)
        elif isinstance(n, BuildProgress):
            self._build_progress(n)
        elif isinstance(n, RolloutProgress):
            if n.weight is not None:
                self.s["weights"][str(n.step)] = n.weight
            self._reply(
                f"rollout:{n.step}",
                "rollout",
                step=n.step,
                weight=n.weight,
                ready=n.ready,
                desired=n.desired,
                message=n.message,
                state="progress",
            )
        elif isinstance(n, GuardTick):
            self._guard_tick(n)
        elif isinstance(n, GuardSettling):
            self._guard_settling(n)
        elif isinstance(n, GuardVerdict):
            self._guard_verdict(n)
        elif isinstance(n, RollbackStarted):
            self._reply(
                "rollback",
                "rollback",
                Priority.URGENT,
                to_version=n.to_version,
                reason=n.reason,
                by=n.by,
                state="started",
            )
        elif isinstance(n, EnvLocked | EnvUnlocked):
            self._lock(n)
        elif isinstance(n, Refused):
            pass  # handled before the fold: a refusal is never part of a thread
        else:
            assert_never(n)

    def _approval_needed(self, n: ApprovalNeeded) -> None:
        self.s["approvals_required"] = True
        for stage in range(n.stage):  # an earlier stage that is still open was satisfied
            self._decide(f"approval:{stage}", "✅ Stage approved", None)
        self.s["pending_approval"] = {"stage": n.stage, "needed": n.needed, "group": n.group}
        self._reply(
            f"approval:{n.stage}",
            "approval",
            Priority.URGENT,
            stage=n.stage,
            group=n.group,
            needed=n.needed,
            approvers=list(n.approvers),
            expires_at=n.expires_at.isoformat() if n.expires_at else None,
        )

    def _reject(self, user: str, stage: int, reason: str | None) -> None:
        self._decide(f"approval:{stage}", "🚫 Rejected", user, reason)
        self._card_decision("🚫 Rejected", user, reason)
        self.s["pending_approval"] = None

    def _build_progress(self, n: BuildProgress) -> None:
        key = _build_key(n.deployment.build_attempt)
        self.s["build_key"] = key
        failed = n.state not in ("queued", "running", "succeeded")
        data: dict[str, Any] = {"state": n.state, "attempt": n.deployment.build_attempt}
        for name, value in (("url", n.url), ("number", n.number), ("result", n.result)):
            if value is not None:
                data[name] = value
        data["progress"] = n.progress
        if n.console_tail:
            data["tail"] = n.console_tail[-MAX_TAIL:]
        self._reply(key, "build", Priority.URGENT if failed else Priority.NORMAL, **data)

    def _guard_tick(self, n: GuardTick) -> None:
        dep = n.deployment
        step = None if n.post_rollback else (n.step if n.step is not None else dep.step)
        started = n.window_started_at or (None if n.post_rollback else dep.guard_started_at)
        key = _window_key(n.post_rollback, step, started)
        window = self._window(key, n.post_rollback, step)
        self._touch(key, Priority.REDRAW)
        if n.tick <= int(window["ticks"]):
            return  # the same tick again (a retried notification): nothing new to draw
        window["ticks"], window["expected"] = n.tick, n.expected_ticks
        window["outcomes"] = [*window["outcomes"], n.outcome.value][-MAX_VALUES:]
        if not n.results:
            window["lines"] = list(n.checks)[:MAX_CHECKS]
        checks: dict[str, Any] = window["checks"]
        for result in n.results:
            name = result.verdict.check
            if name not in checks and len(checks) >= MAX_CHECKS:
                continue
            check = checks.setdefault(name, {"values": [], "statuses": []})
            check["values"] = [*check["values"], _finite(result.verdict.value)][-MAX_VALUES:]
            check["statuses"] = [*check["statuses"], result.verdict.status.value][-MAX_VALUES:]
            check.update(
                min=_finite(result.min),
                max=_finite(result.max),
                query=result.query,
                line=result.verdict.message,
            )
            if result.query and (name in self.s["checks"] or len(self.s["checks"]) < MAX_CHECKS):
                self.s["checks"][name] = result.query

    def _guard_settling(self, n: GuardSettling) -> None:
        dep = n.deployment
        step = None if n.post_rollback else (n.step if n.step is not None else dep.step)
        started = n.window_started_at or (None if n.post_rollback else dep.guard_started_at)
        key = _window_key(n.post_rollback, step, started)
        window = self._window(key, n.post_rollback, step)
        window["settling"] = list(n.checks)[:MAX_CHECKS]
        window["judges_at"] = n.judges_at.isoformat()
        window["expected"] = window["expected"] or n.expected_ticks
        self._touch(key)

    def _guard_verdict(self, n: GuardVerdict) -> None:
        dep = n.deployment
        step = None if n.post_rollback else (n.step if n.step is not None else dep.step)
        started = n.window_started_at or (None if n.post_rollback else dep.guard_started_at)
        key = _window_key(n.post_rollback, step, started)
        window = self._window(key, n.post_rollback, step)
        window["verdict"] = {"verdict": n.verdict, "reason": n.reason}
        self._touch(key, Priority.NORMAL if n.verdict in ("pass", SKIPPED) else Priority.URGENT)

    def _lock(self, n: EnvLocked | EnvUnlocked) -> None:
        key = _lock_key(n)
        locks: dict[str, Any] = self.s["locks"]
        if isinstance(n, EnvUnlocked) and key not in locks:
            # Unlocked without a lock id: the newest open lock of that kind in that environment.
            open_keys = [
                k
                for k, lk in locks.items()
                if lk["env"] == n.env and lk["kind"] == n.kind and not lk.get("unlocked")
            ]
            key = open_keys[-1] if open_keys else key
        data = _lock_data(n, self.ctx.now)
        if key in self.s["replies"] and isinstance(n, EnvUnlocked):
            self._reply(key, "lock", Priority.URGENT, unlocked=data["unlocked"])
        else:
            self._reply(key, "lock", Priority.URGENT, **data)
        entry = locks.setdefault(key, {"env": n.env, "kind": n.kind, "reason": ""})
        if isinstance(n, EnvLocked):
            entry.update(reason=n.reason, unlocked=None)
        else:
            entry["unlocked"] = True
        while len(locks) > MAX_LOCKS:
            del locks[next(iter(locks))]

    def _event(self, e: ev.Event) -> None:
        dep = self.s["deployment"]
        requester = mention(dep.get("requester"))
        build = str(self.s.get("build_key", "build"))
        if isinstance(e, ev.ApprovalsRequired):
            self.s["approvals_required"] = True
        elif isinstance(e, ev.ApprovalsSkipped):
            if e.emergency_reason:
                self._note(
                    "approvals",
                    f"🚨 *Emergency*: approvals and freezes skipped for {requester}: "
                    f"{text(e.emergency_reason)}",
                    Priority.URGENT,
                )
            else:
                self._note("approvals", f"👍 No approval needed in {code(dep['env'])}.")
        elif isinstance(e, ev.ApprovalRecorded):
            self._vote(e.user, e.stage, True)
            if e.stage_complete:
                self._decide(f"approval:{e.stage}", "✅ Stage approved", e.user)
        elif isinstance(e, ev.ApprovalsComplete):
            stage = self._approval_stage()
            self._vote(e.user, stage, True)
            self._decide(f"approval:{stage}", "✅ Approved", e.user)
            self.s["pending_approval"] = None
        elif isinstance(e, ev.Rejected):
            stage = self._approval_stage()
            self._vote(e.user, stage, False, e.reason)
            self._reject(e.user, stage, e.reason)
        elif isinstance(e, ev.ApprovalExpired):
            self._decide(f"approval:{self._approval_stage()}", "⌛ Expired", None)
            self._card_decision("⌛ Approvals expired", None)
            self.s["pending_approval"] = None
            self._note(
                "approvals", f"⌛ Approvals did not arrive in time, {requester}: nothing was deployed."
            )
        elif isinstance(e, ev.Cancelled):
            self._decide(f"approval:{self._approval_stage()}", "✋ Cancelled", e.user, e.reason)
            self._card_decision("✋ Cancelled", e.user, e.reason)
            self.s["pending_approval"] = None
        elif isinstance(e, ev.BuildQueued):
            self._reply(build, "build", state="queued", queue_item=e.queue_item, attempt=dep["build_attempt"])
        elif isinstance(e, ev.BuildStarted):
            self._reply(build, "build", state="running", number=e.number, attempt=dep["build_attempt"])
        elif isinstance(e, ev.BuildSucceeded):
            self._reply(build, "build", state="succeeded", progress=1.0, attempt=dep["build_attempt"])
        elif isinstance(e, ev.BuildSkipped):
            self._reply(build, "build", state="skipped")
        elif isinstance(e, ev.BuildRetried):
            if build in self.s["replies"]:
                self._reply(build, "build", state="retrying", reason=e.reason)
            self.s["build_key"] = _build_key(int(dep["build_attempt"]))
        elif isinstance(e, ev.BuildFailed):
            reply = self.s["replies"].get(build, {})
            status = (
                reply.get("state") if reply.get("state") in ("failed", "aborted", "cancelled") else "failed"
            )
            self._reply(build, "build", Priority.URGENT, state=status, reason=e.reason)
        elif isinstance(e, ev.RolloutStarted):
            self._reply(
                f"rollout:{e.step}",
                "rollout",
                step=e.step,
                state="progress",
                weight=self.s["weights"].get(str(e.step)),
            )
        elif isinstance(e, ev.RolloutCompleted):
            self._reply(f"rollout:{e.step}", "rollout", step=e.step, state="done")
        elif isinstance(e, ev.RolloutFailed):
            step = int(dep.get("step", 0))
            self._reply(
                f"rollout:{step}", "rollout", Priority.URGENT, step=step, state="failed", reason=e.reason
            )
        elif isinstance(e, ev.DeployRefused):
            self._reply("rollout:0", "rollout", Priority.URGENT, step=0, state="refused", reason=e.reason)
        elif isinstance(e, ev.GuardTicked | ev.GuardBreached):
            pass  # the GuardTick / GuardVerdict notifications carry what a person reads
        elif isinstance(e, ev.GuardPassed):
            held = self._held_window()
            if held and e.user:
                self._decide(held, "✅ Accepted", e.user)
        elif isinstance(e, ev.GuardHeld):
            windows = self.s["windows"]
            if windows:
                self._window(windows[-1], False, None)["held"] = True
                self._touch(windows[-1], Priority.URGENT)
            else:
                self._note(
                    "held", f"⏸️ *Held*: {text(e.reason)}\n{requester}, promote or abort.", Priority.URGENT
                )
        elif isinstance(e, ev.Promoted):
            held = self._held_window()
            if held:
                self._decide(held, "⏩ Promoted", e.user)
        elif isinstance(e, ev.RollbackRequested):
            held = self._held_window()
            if held:
                self._decide(held, "⏪ Aborted", e.user, e.reason)
            if e.user:
                self._card_decision("⏪ Rollback asked", e.user, e.reason)
            self._reply(
                "rollback",
                "rollback",
                Priority.URGENT,
                to_version=e.to_version,
                reason=e.reason,
                by=e.user,
                state="started",
            )
        elif isinstance(e, ev.RollbackCompleted):
            self._reply("rollback", "rollback", Priority.URGENT, state="done", version=e.version)
        elif isinstance(e, ev.RollbackFailed):
            self._reply("rollback", "rollback", Priority.URGENT, state="failed", reason=e.reason)
        else:
            assert_never(e)


def _digest(message: Outgoing) -> str:
    payload = json.dumps([message.text, message.blocks], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
