"""A deployment's thread as a fold: card state + one notification → new card state + messages.

The notifier keeps one JSON document per deployment (the *card state*) and calls ``plan`` for each
notification. Everything a later redraw needs lives in that state: a snapshot of the deployment,
the votes, each reply's data under its key, the guard windows' recent values (bounded), the locks.
Because the output is a pure function of (state, notification, context), an outbox retry after a
crash plans the same messages under the same keys, and the notifier turns them into edits.

The state has a version field (``v``); a state of another version is dropped and rebuilt from the
notification's deployment, which loses history but never breaks the thread.

Each notification type has its handler here (``NOTIFICATIONS``); a phase change's domain event has
its own in ``bot.slack.thread_events``; both change the state through ``bot.slack.thread_fold``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any, Final, get_args

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
from bot.slack.outgoing import ChannelPost, Ephemeral, Outgoing, Plan, Priority, RenderContext
from bot.slack.thread_events import apply_event
from bot.slack.thread_fold import (
    MAX_CHECKS,
    MAX_LOCKS,
    MAX_TAIL,
    MAX_VALUES,
    State,
    ThreadFold,
    build_key,
    finite,
    lock_data,
    lock_key,
    snapshot,
    window_key,
)

STATE_VERSION: Final = 1


def plan(card_state: dict[str, Any] | None, notification: Notification, ctx: RenderContext) -> Plan:
    """The new card state and the messages to send for ``notification``."""
    n = notification
    if isinstance(n, Refused):
        return Plan(card_state, ephemeral=(_refused(n),))
    if isinstance(n, EnvLocked | EnvUnlocked):
        state = _loaded(card_state) if _deployment_id(n) is not None else None
        if state is None or state["deployment"]["id"] != _deployment_id(n):
            return _channel_lock(card_state, n, ctx)
        return _run(ThreadFold(state, ctx, first=False), n)
    dep = n.deployment
    loaded = _loaded(card_state)
    if loaded is None or loaded["deployment"]["id"] != dep.id:
        return _run(ThreadFold(_fresh(dep), ctx, first=True), n)
    return _run(ThreadFold(loaded, ctx, first=False), n)


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
        "deployment": snapshot(dep),
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
        "build_key": build_key(dep.build_attempt),
        "card_digest": None,
    }


def _deployment_id(n: EnvLocked | EnvUnlocked) -> str | None:
    return n.deployment_id or None


# -- messages outside a thread -------------------------------------------------------------------


def _refused(n: Refused) -> Ephemeral:
    said = mrkdwn.render(n.message)
    return Ephemeral(
        n.channel,
        n.user,
        limits.fit_fallback(f"Refused: {said}"),
        limits.fit_blocks([blocks.section(f"🙅 {said}")]),
    )


def _channel_lock(card_state: dict[str, Any] | None, n: EnvLocked | EnvUnlocked, ctx: RenderContext) -> Plan:
    if not n.channel:
        return Plan(card_state)
    fallback, out = replies.lock_post(lock_data(n, ctx.now), ctx)
    key = lock_key(n)
    post = ChannelPost(n.channel, Outgoing(key, fallback, tuple(out), Priority.URGENT))
    return Plan(card_state, channel=(post,))


# -- the fold ------------------------------------------------------------------------------------


def _run(f: ThreadFold, n: Notification) -> Plan:
    before = f.s["deployment"]["phase"]
    if not isinstance(n, EnvLocked | EnvUnlocked | Refused):
        f.update_deployment(n.deployment)
    NOTIFICATIONS[type(n)](f, n)
    phase_changed = f.first or before != f.s["deployment"]["phase"]
    if phase_changed:
        priority = Priority.URGENT
    elif isinstance(n, GuardTick):
        priority = Priority.REDRAW
    else:
        priority = Priority.NORMAL
    thread: list[Outgoing] = []
    the_card = card.render(f.s, f.ctx, priority)
    digest = _digest(the_card)
    if phase_changed or digest != f.s.get("card_digest"):
        thread.append(the_card)
    f.s["card_digest"] = digest
    for key, reply_priority in f.touched.items():
        data = f.s["replies"].get(key)
        if data is not None:
            thread.append(replies.render(key, data, f.s, f.ctx, reply_priority))
    return Plan(f.s, tuple(thread))


def _digest(message: Outgoing) -> str:
    payload = json.dumps([message.text, message.blocks], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- one handler per notification type -----------------------------------------------------------


def _opened(f: ThreadFold, n: DeploymentOpened) -> None:
    f.s["channel"] = n.channel


def _phase_changed(f: ThreadFold, n: PhaseChanged) -> None:
    apply_event(f, n.event)


def _approval_needed(f: ThreadFold, n: ApprovalNeeded) -> None:
    f.s["approvals_required"] = True
    for stage in range(n.stage):  # an earlier stage that is still open was satisfied
        f.decide(f"approval:{stage}", "✅ Stage approved", None)
    f.s["pending_approval"] = {"stage": n.stage, "needed": n.needed, "group": n.group}
    f.reply(
        f"approval:{n.stage}",
        "approval",
        Priority.URGENT,
        stage=n.stage,
        group=n.group,
        needed=n.needed,
        approvers=list(n.approvers),
        expires_at=n.expires_at.isoformat() if n.expires_at else None,
    )


def _approval_given(f: ThreadFold, n: ApprovalGiven) -> None:
    if f.vote(n.user, n.stage, n.approve, n.reason) and not n.approve:
        f.reject(n.user, n.stage, n.reason)


def _build_progress(f: ThreadFold, n: BuildProgress) -> None:
    key = build_key(n.deployment.build_attempt)
    f.s["build_key"] = key
    failed = n.state not in ("queued", "running", "succeeded")
    data: dict[str, Any] = {"state": n.state, "attempt": n.deployment.build_attempt}
    for name, value in (("url", n.url), ("number", n.number), ("result", n.result)):
        if value is not None:
            data[name] = value
    data["progress"] = n.progress
    if n.console_tail:
        data["tail"] = n.console_tail[-MAX_TAIL:]
    f.reply(key, "build", Priority.URGENT if failed else Priority.NORMAL, **data)


def _rollout_progress(f: ThreadFold, n: RolloutProgress) -> None:
    if n.weight is not None:
        f.s["weights"][str(n.step)] = n.weight
    f.reply(
        f"rollout:{n.step}",
        "rollout",
        step=n.step,
        weight=n.weight,
        ready=n.ready,
        desired=n.desired,
        message=n.message,
        state="progress",
    )


def _guard_window(f: ThreadFold, n: GuardTick | GuardSettling | GuardVerdict) -> tuple[str, dict[str, Any]]:
    """The key and state of the guard window ``n`` is about (created if new)."""
    dep = n.deployment
    step = None if n.post_rollback else (n.step if n.step is not None else dep.step)
    started = n.window_started_at or (None if n.post_rollback else dep.guard_started_at)
    key = window_key(n.post_rollback, step, started)
    return key, f.window(key, n.post_rollback, step)


def _guard_tick(f: ThreadFold, n: GuardTick) -> None:
    key, window = _guard_window(f, n)
    f.touch(key, Priority.REDRAW)
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
        check["values"] = [*check["values"], finite(result.verdict.value)][-MAX_VALUES:]
        check["statuses"] = [*check["statuses"], result.verdict.status.value][-MAX_VALUES:]
        check.update(
            min=finite(result.min),
            max=finite(result.max),
            query=result.query,
            line=result.verdict.message,
        )
        if result.query and (name in f.s["checks"] or len(f.s["checks"]) < MAX_CHECKS):
            f.s["checks"][name] = result.query


def _guard_settling(f: ThreadFold, n: GuardSettling) -> None:
    key, window = _guard_window(f, n)
    window["settling"] = list(n.checks)[:MAX_CHECKS]
    window["judges_at"] = n.judges_at.isoformat()
    window["expected"] = window["expected"] or n.expected_ticks
    f.touch(key)


def _guard_verdict(f: ThreadFold, n: GuardVerdict) -> None:
    key, window = _guard_window(f, n)
    window["verdict"] = {"verdict": n.verdict, "reason": n.reason}
    f.touch(key, Priority.NORMAL if n.verdict in ("pass", SKIPPED) else Priority.URGENT)


def _rollback_started(f: ThreadFold, n: RollbackStarted) -> None:
    f.reply(
        "rollback",
        "rollback",
        Priority.URGENT,
        to_version=n.to_version,
        reason=n.reason,
        by=n.by,
        state="started",
    )


def _lock(f: ThreadFold, n: EnvLocked | EnvUnlocked) -> None:
    key = lock_key(n)
    locks: dict[str, Any] = f.s["locks"]
    if isinstance(n, EnvUnlocked) and key not in locks:
        # Unlocked without a lock id: the newest open lock of that kind in that environment.
        open_keys = [
            k
            for k, lk in locks.items()
            if lk["env"] == n.env and lk["kind"] == n.kind and not lk.get("unlocked")
        ]
        key = open_keys[-1] if open_keys else key
    data = lock_data(n, f.ctx.now)
    if key in f.s["replies"] and isinstance(n, EnvUnlocked):
        f.reply(key, "lock", Priority.URGENT, unlocked=data["unlocked"])
    else:
        f.reply(key, "lock", Priority.URGENT, **data)
    entry = locks.setdefault(key, {"env": n.env, "kind": n.kind, "reason": ""})
    if isinstance(n, EnvLocked):
        entry.update(reason=n.reason, unlocked=None)
    else:
        entry["unlocked"] = True
    while len(locks) > MAX_LOCKS:
        del locks[next(iter(locks))]


NOTIFICATIONS: Final[dict[type[Any], Callable[[ThreadFold, Any], None]]] = {
    DeploymentOpened: _opened,
    PhaseChanged: _phase_changed,
    ApprovalNeeded: _approval_needed,
    ApprovalGiven: _approval_given,
    BuildProgress: _build_progress,
    RolloutProgress: _rollout_progress,
    GuardTick: _guard_tick,
    GuardSettling: _guard_settling,
    GuardVerdict: _guard_verdict,
    RollbackStarted: _rollback_started,
    EnvLocked: _lock,
    EnvUnlocked: _lock,
}
"""One handler per notification folded into a thread; a ``Refused`` never is (``plan`` answers it)."""

_unhandled = set(get_args(Notification)) - NOTIFICATIONS.keys() - {Refused}
if _unhandled:
    raise TypeError(f"no thread handler for {sorted(t.__name__ for t in _unhandled)}")
