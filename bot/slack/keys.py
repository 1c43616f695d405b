"""The idempotency key of each kind of Slack delivery: what makes two deliveries "the same".

- A slash command: its ``trigger_id`` (Slack does not retry slash commands; a person typing the
  command again gets a new trigger and is a new request, which the engine judges on its own).
- A button click: the rendered button it was made on — the message (or Home view) it sits in,
  its ``action_id``, the clicker and its value (which carries the deployment's ``version_no``).
  A double click and a redelivered click are the same key; a click on a newer rendering is not.
- A view submission: the view's id and ``hash`` (the hash changes with every update of the view).
- An event: Slack's ``event_id``, the same across ``X-Slack-Retry-Num`` retries.

Keys longer than the store's column are shortened to a digest, which is just as unique.
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


def command_key(body: Mapping[str, Any]) -> str:
    return _fit(f"slack-command:{body.get('trigger_id') or body.get('response_url') or ''}")


def click_key(body: Mapping[str, Any], action: Mapping[str, Any]) -> str:
    container = body.get("container") or {}
    where = container.get("message_ts") or container.get("view_id") or action.get("action_ts") or ""
    channel = container.get("channel_id") or ""
    user = (body.get("user") or {}).get("id", "")
    return _fit(
        f"slack-click:{channel}:{where}:{action.get('action_id', '')}:{user}:{action.get('value', '')}"
    )


def view_key(body: Mapping[str, Any]) -> str:
    view = body.get("view") or {}
    return _fit(f"slack-view:{view.get('id', '')}:{view.get('hash', '')}")


def event_key(body: Mapping[str, Any]) -> str:
    return _fit(f"slack-event:{body.get('event_id', '')}")
