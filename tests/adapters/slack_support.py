"""What the notifier's tests share: a small planner with stable keys, and reading a thread back.

In the notifier's own tests the planner stands in for the renderer (``bot.slack.thread.plan``):
it gives each notification the messages the notifier must deliver, with keys that depend only on
what happened (never on timing), so runs can be compared message by message. The thread is read
back through the real slack-sdk client, metadata included. The engine's tests run the real
renderer, whose guard-window keys hold times: they compare keys normalised (``normalised_keys``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.events import GuardTicked, RolloutCompleted
from bot.domain.notifications import (
    ApprovalNeeded,
    DeploymentOpened,
    EnvLocked,
    Notification,
    PhaseChanged,
    Refused,
)
from bot.slack.outgoing import CARD, ChannelPost, Ephemeral, Outgoing, Plan, Priority, RenderContext


def _section(text: str) -> tuple[dict[str, Any], ...]:
    return ({"type": "section", "text": {"type": "mrkdwn", "text": text}},)


def card_text(service: str, version: str, phase: str, step: int) -> str:
    return f"{service} {version}: {phase} (step {step})"


def plan(card_state: Mapping[str, Any] | None, n: Notification, ctx: RenderContext) -> Plan:
    if isinstance(n, Refused):
        return Plan(None, ephemeral=(Ephemeral(n.channel, n.user, str(n.message)),))
    if isinstance(n, EnvLocked):
        text = f"{n.env} locked: {n.reason}"
        post = ChannelPost(
            n.channel or "#deploys", Outgoing(f"lock:{n.env}", text, _section(text), Priority.URGENT)
        )
        return Plan(None, channel=(post,))
    dep = getattr(n, "deployment", None)
    if dep is None:
        return Plan(None)
    state = {"phase": dep.phase.value, "step": dep.step}
    text = card_text(dep.service, dep.version, dep.phase.value, dep.step)
    card = Outgoing(CARD, text, _section(text), Priority.URGENT)
    replies: tuple[Outgoing, ...] = ()
    if isinstance(n, ApprovalNeeded):
        line = f"approval {n.stage}: {n.needed} needed from {n.group}"
        replies = (Outgoing(f"approval:{n.stage}", line, _section(line), Priority.URGENT),)
    elif isinstance(n, PhaseChanged):
        event = type(n.event).__name__
        if isinstance(n.event, GuardTicked):
            line = f"guard step {dep.step}: {dep.guard_ticks} ticks"
            replies = (Outgoing(f"guard:{dep.step}", line, _section(line), Priority.REDRAW),)
        elif isinstance(n.event, RolloutCompleted):
            line = f"guard step {dep.step}: watching"
            replies = (Outgoing(f"guard:{dep.step}", line, _section(line), Priority.NORMAL),)
        else:
            line = f"{event} at step {dep.step}"
            replies = (Outgoing(f"{event}:{dep.step}", line, _section(line), Priority.NORMAL),)
    elif not isinstance(n, DeploymentOpened):
        return Plan(card_state=None)  # progress notices: timing-dependent, left out for stable keys
    return Plan(state, thread=(card, *replies))


async def read_thread(
    client: AsyncWebClient, channel: str, deployment: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The deployment's top-level messages and its replies' keys in thread order, from metadata."""
    parents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.conversations_history(
            channel=channel, include_all_metadata=True, limit=200, cursor=cursor
        )
        for message in page["messages"]:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("deployment") == deployment:
                parents.append(message)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    keys: list[str] = []
    if parents:
        replies = await client.conversations_replies(
            channel=channel, ts=parents[0]["ts"], include_all_metadata=True, limit=1000
        )
        for message in replies["messages"][1:]:
            keys.append(message["metadata"]["event_payload"]["key"])
    return parents, keys


@dataclass(frozen=True)
class Thread:
    """A deployment's messages as Slack holds them: its top-level messages and the first one's
    replies in thread order, metadata included."""

    parents: list[dict[str, Any]]
    replies: list[dict[str, Any]]

    @property
    def keys(self) -> list[str]:
        return [m["metadata"]["event_payload"]["key"] for m in self.replies]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [*self.parents, *self.replies]


async def read_whole_thread(client: AsyncWebClient, channel: str, deployment: str) -> Thread:
    parents, _ = await read_thread(client, channel, deployment)
    if not parents:
        return Thread([], [])
    page = await client.conversations_replies(
        channel=channel, ts=parents[0]["ts"], include_all_metadata=True, limit=1000
    )
    return Thread(parents, list(page["messages"][1:]))


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")


def normalised_keys(keys: list[str]) -> list[str]:
    """The keys with each ISO time replaced by ``#n``, its rank among the thread's times
    (``guard:1:2024-07-01T12:00:03+00:00`` becomes ``guard:1:#2``): window start times differ
    between runs, their order does not."""
    times = sorted({t for key in keys for t in _ISO_TIME.findall(key)}, key=datetime.fromisoformat)
    rank = {t: f"#{index}" for index, t in enumerate(times, 1)}
    return [_ISO_TIME.sub(lambda m: rank[m.group(0)], key) for key in keys]


def canary_thread_keys(first: str) -> list[str]:
    """The replies of a three-step canary deployment's thread, in order, keys normalised: ``first``
    (``approval:0`` with an approval stage, the ``approvals`` note without), the build, then each
    step's rollout and guard window (step 3 is the promoted main Deployment)."""
    steps = [key for step in range(4) for key in (f"rollout:{step}", f"guard:{step}:#{step + 1}")]
    return [first, "build", *steps]


def card_phase(message: Mapping[str, Any]) -> str | None:
    """What the card's *Phase* field shows (``✅ Succeeded``), read from its blocks as Slack holds them."""
    for block in message.get("blocks") or ():
        for item in block.get("fields") or ():
            head, _, value = str(item.get("text", "")).partition("\n")
            if head == "*Phase*":
                return value
    return None
