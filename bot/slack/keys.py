"""The idempotency key of each kind of Slack delivery: what makes two deliveries "the same".

- A slash command: its ``trigger_id`` (Slack does not retry slash commands; a person typing the
  command again gets a new trigger and is a new request, which the engine judges on its own).
- A button click: the rendered button it was made on — the message (or Home view) it sits in,
  its ``action_id``, the clicker and its value (which carries the deployment's ``version_no``).
  A double click and a redelivered click are the same key; a click on a newer rendering is not.
- A view submission: the view's id and ``hash`` (the hash changes with every update of the view).
- An event: Slack's ``event_id``, the same across ``X-Slack-Retry-Num`` retries.

Keys longer than the store's column are shortened to a digest, which is just as unique. A delivery
missing a part that tells it apart (no trigger id, view id, event id, …) has no key (None): deduping
it on what is left would make every such delivery "the same" and drop all but the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

MAX_KEY = 255


def _fit(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    kind = key.split(":", 1)[0]
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _key(kind: str, *parts: object) -> str | None:
    """``kind:part:part…``, or None when a part is missing: an empty part tells nothing apart."""
    if any(part is None or str(part) == "" for part in parts):
        return None
    return _fit(":".join([kind, *(str(p) for p in parts)]))


def command_key(body: Mapping[str, Any]) -> str | None:
    return _key("slack-command", body.get("trigger_id") or body.get("response_url"))


def click_key(body: Mapping[str, Any], action: Mapping[str, Any]) -> str | None:
    container = body.get("container") or {}
    where = container.get("message_ts") or container.get("view_id") or action.get("action_ts")
    # A Home tab's button has no channel, and a button may carry no value: neither is required.
    channel = container.get("channel_id") or "-"
    user = (body.get("user") or {}).get("id")
    return _key("slack-click", channel, where, action.get("action_id"), user, action.get("value") or "-")


def view_key(body: Mapping[str, Any]) -> str | None:
    view = body.get("view") or {}
    return _key("slack-view", view.get("id"), view.get("hash"))


def event_key(body: Mapping[str, Any]) -> str | None:
    return _key("slack-event", body.get("event_id"))
