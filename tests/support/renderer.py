"""The bot's thread renderer in the shape the Slack notifier takes, for tests that wire a real notifier.

``bot.slack.thread.plan`` reads a card state as a dict; the notifier hands its planner the stored
state as a read-only mapping (``bot.adapters.slack_notifier.Planner``). Where the bot wires its
notifier it copies one into the other (``bot.wiring``); a test that wires one itself uses this
planner, which does the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain.notifications import Notification
from bot.slack.outgoing import Plan, RenderContext
from bot.slack.thread import plan


def planner(card_state: Mapping[str, Any] | None, notification: Notification, ctx: RenderContext) -> Plan:
    return plan(dict(card_state) if card_state is not None else None, notification, ctx)
