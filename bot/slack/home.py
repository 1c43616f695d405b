"""The App Home tab: what is deploying, what is locked, and the last deployments of each service.

A pure function of what the store holds (and of who is looking: the Unlock button shows only on
locks the viewer may lift), published with ``views.publish`` when the person opens the tab.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from bot.domain.deployment import Deployment
from bot.domain.locks import Lock
from bot.slack import actions, limits
from bot.slack import blocks as b

HOME_BLOCKS: Final = 100
RECENT_PER_SERVICE: Final = 3


def _ago(now: datetime, at: datetime) -> str:
    return b.duration((now - at).total_seconds())


def _thread(links: Mapping[str, str], dep: Deployment) -> str:
    url = links.get(dep.id)
    return f" · {b.link(url, 'thread')}" if url else ""


def view(
    active: Sequence[Deployment],
    locks: Sequence[Lock],
    recent: Mapping[str, Sequence[Deployment]],
    now: datetime,
    links: Mapping[str, str],
    may_unlock: Collection[int],
) -> dict[str, Any]:
    """The Home view. ``recent`` maps a service to its latest deployments, newest first."""
    out: list[dict[str, Any]] = [b.header("Shipthread"), b.section("*Active deployments*")]
    for dep in active:
        state = dep.phase.value.replace("_", " ") + (" (paused)" if dep.paused else "")
        out.append(
            b.section(
                f"{b.code(dep.id)} {b.code(dep.service)} {b.code(dep.version)} → {b.code(dep.env)}: "
                f"*{b.text(state)}*, {_ago(now, dep.created_at)} old, by {b.mention(dep.requester)}"
                f"{_thread(links, dep)}"
            )
        )
    if not active:
        out.append(b.context("Nothing is deploying."))
    out += [b.divider(), b.section("*Locks*")]
    for lock in locks:
        scope = b.code(lock.env) + (f"/{b.code(lock.service)}" if lock.service else " (all services)")
        section = b.section(
            f":lock: {scope} — {b.text(lock.kind.value)} by {b.mention(lock.author)}, "
            f"{_ago(now, lock.created_at)} ago: {b.text(lock.reason)}"
        )
        if lock.id is not None and lock.id in may_unlock:
            value = actions.encode(
                actions.ButtonValue(lock.deployment_id or f"lock-{lock.id}", 0, lock_id=lock.id)
            )
            section["accessory"] = b.button("Unlock", actions.UNLOCK, value)
        out.append(section)
    if not locks:
        out.append(b.context("No locks."))
    out += [b.divider(), b.section("*Last deployments*")]
    for service in sorted(recent):
        lines = [
            f"{b.code(d.version)} → {b.code(d.env)}: {b.text(d.phase.value.replace('_', ' '))}, "
            f"{b.when(d.created_at)}{_thread(links, d)}"
            for d in recent[service][:RECENT_PER_SERVICE]
        ]
        if lines:
            out.append(b.section(f"*{b.text(service)}*\n" + "\n".join(lines)))
    if not recent:
        out.append(b.context("No deployments yet."))
    fitted = list(limits.fit_blocks(out))
    return {"type": "home", "blocks": fitted[:HOME_BLOCKS]}
