"""What the renderer hands the notifier: messages with a stable key, a priority and their content.

The key is what makes a thread restart-safe: the notifier stores the Slack ``ts`` of each key it
posted, so the same key later (an edit, or an outbox retry after a crash) becomes ``chat.update``
of the message already there instead of a second post. Keys are stable strings chosen by the
renderer: ``"card"`` for the parent card, ``"build"``, ``"rollout:<step>"``,
``"guard:<step>:<window>"``, ``"approval:<stage>"``, ``"rollback"``, ``"lock:<id>"`` and so on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

CARD = "card"
"""The key of a deployment's parent message."""


class Priority(IntEnum):
    """Which message goes first when Slack's allowance is short (lower goes first)."""

    URGENT = 0
    """Phase changes on the card, approval requests, rollbacks, locks: never stale."""
    NORMAL = 1
    """Stage replies: build and rollout progress, verdicts."""
    REDRAW = 2
    """Guard-tick redraws of a window's reply: yield to everything else, coalesced."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message as it should look now. Posting twice under one key is an edit, never a repost."""

    key: str
    text: str
    """The fallback text (notifications, screen readers); always set, already escaped."""
    blocks: tuple[dict[str, Any], ...]
    """Block Kit blocks, already within Slack's limits (``bot.slack.limits``)."""
    priority: Priority = Priority.NORMAL


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A message only ``user`` sees in ``channel`` (a refusal): never stored, never edited."""

    channel: str
    user: str
    text: str
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelPost:
    """A top-level message outside any deployment's thread (a manual lock of a whole environment)."""

    channel: str
    message: Outgoing


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What rendering needs besides the notification: the time and where links point."""

    now: datetime
    prometheus_url: str | None = None
    """Base URL of Prometheus; guard checks link to its ``/graph`` page with their query."""
    grafana_url: str | None = None
    """A dashboard URL from config, linked from the card when set."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one notification changes: the card state to keep, and the messages to send."""

    card_state: dict[str, Any] | None
    """The new JSON-able state of the deployment's card (stored by the notifier), or None when the
    notification concerns no deployment thread."""
    thread: tuple[Outgoing, ...] = ()
    """Messages of the deployment's thread, in order; the card (key ``CARD``) is the thread's parent."""
    channel: tuple[ChannelPost, ...] = field(default=())
    ephemeral: tuple[Ephemeral, ...] = ()
