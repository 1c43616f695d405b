"""The primitives of a thread's fold: one card state being changed by one notification.

``bot.slack.thread`` (the notifications) and ``bot.slack.thread_events`` (a phase change's domain
event) both change the card state only through ``ThreadFold``: it records which replies were
touched and how urgently, so the fold knows what to redraw. The keys under which replies live
(build attempts, guard windows, locks) and the bounds that keep the state small are here too, so
each is said once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bot.domain.deployment import Deployment
from bot.domain.notifications import EnvLocked, EnvUnlocked
from bot.slack.outgoing import Priority, RenderContext

MAX_WINDOWS: Final = 3
"""Guard windows kept in the state; older windows' replies stay in Slack as they were last drawn."""
MAX_VALUES: Final = 20
"""Recent values per check per window, for the sparkline."""
MAX_CHECKS: Final = 20
MAX_LOCKS: Final = 10
MAX_TAIL: Final = 2900
"""Console tail kept for a failed build's reply (its end: the last lines say why)."""

State = dict[str, Any]


def snapshot(dep: Deployment) -> dict[str, Any]:
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


def build_key(attempt: int) -> str:
    return "build" if attempt <= 1 else f"build:{attempt}"


def lock_key(n: EnvLocked | EnvUnlocked) -> str:
    if n.lock_id is not None:
        return f"lock:{n.lock_id}"
    return f"lock:{n.env}:{n.service or '*'}:{n.kind}"


def window_key(post_rollback: bool, step: int | None, started: datetime | None) -> str:
    where = "rollback" if post_rollback else str(step if step is not None else 0)
    return f"guard:{where}:{started.isoformat() if started else 'none'}"


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def lock_data(n: EnvLocked | EnvUnlocked, at: datetime) -> dict[str, Any]:
    """A lock reply's data, the same in a thread and in a channel post outside any thread."""
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


@dataclass
class ThreadFold:
    """One notification folded into one thread's state: which replies it touched, how urgently."""

    s: State
    ctx: RenderContext
    first: bool
    touched: dict[str, Priority] = field(default_factory=dict)

    def update_deployment(self, dep: Deployment) -> None:
        # Notifications can arrive out of order (an outbox retry): never go back to an older snapshot.
        if dep.version_no >= int(self.s["deployment"].get("version_no", -1)):
            self.s["deployment"] = snapshot(dep)

    @property
    def at(self) -> str:
        return str(self.s["deployment"]["updated_at"])

    def touch(self, key: str, priority: Priority = Priority.NORMAL) -> dict[str, Any]:
        self.touched[key] = min(priority, self.touched.get(key, priority))
        reply: dict[str, Any] = self.s["replies"][key]
        return reply

    def reply(self, key: str, kind: str, priority: Priority = Priority.NORMAL, **data: Any) -> dict[str, Any]:
        reply = self.s["replies"].setdefault(key, {"kind": kind})
        reply.update(data)
        return self.touch(key, priority)

    def decide(self, key: str, what: str, by: str | None, reason: str | None = None) -> None:
        reply = self.s["replies"].get(key)
        if reply is not None and not reply.get("decision"):
            reply["decision"] = {"what": what, "by": by, "at": self.at, "reason": reason}
            self.touch(key, Priority.URGENT)

    def card_decision(self, what: str, by: str | None, reason: str | None = None) -> None:
        self.s["decision"] = {"what": what, "by": by, "at": self.at, "reason": reason}

    def note(self, key: str, body: str, priority: Priority = Priority.NORMAL) -> None:
        self.reply(key, "note", priority, text=body)

    def vote(self, user: str, stage: int, approve: bool, reason: str | None = None) -> bool:
        votes: list[dict[str, Any]] = self.s["votes"]
        if any(v["user"] == user and v["stage"] == stage for v in votes):
            return False
        votes.append({"user": user, "stage": stage, "approve": approve, "at": self.at, "reason": reason})
        pending = self.s.get("pending_approval")
        if approve and pending and pending["stage"] == stage and pending["needed"] > 0:
            pending["needed"] -= 1
        if f"approval:{stage}" in self.s["replies"]:
            self.touch(f"approval:{stage}")
        return True

    def reject(self, user: str, stage: int, reason: str | None) -> None:
        self.decide(f"approval:{stage}", "🚫 Rejected", user, reason)
        self.card_decision("🚫 Rejected", user, reason)
        self.s["pending_approval"] = None

    def approval_stage(self) -> int:
        pending = self.s.get("pending_approval")
        return int(pending["stage"]) if pending else int(self.s["deployment"].get("approval_stage", 0))

    def held_window(self) -> str | None:
        for key in reversed(self.s["windows"]):
            reply = self.s["replies"].get(key, {})
            if reply.get("held") and not reply.get("decision"):
                return str(key)
        return None

    def window(self, key: str, post_rollback: bool, step: int | None) -> dict[str, Any]:
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
