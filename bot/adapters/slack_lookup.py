"""Finding a post again whose answer was lost, so the notifier adopts it instead of posting twice.

Every message Shipthread posts carries metadata (``EVENT_TYPE``, with the deployment, the key and
the revision). A post marked as attempted whose ``ts`` never reached us (a crash, a timeout
after Slack did the work) is looked for in the channel's history (a card) or its thread's
replies (a reply), newest first, at most ``pages`` pages. Both methods are Tier 3: each page
waits for a token of the pacer's lookup bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from bot.adapters.slack_pacing import Bucket
from bot.store.threads import OutMessage

EVENT_TYPE: Final = "shipthread_message"
"""The metadata event type of every message Shipthread posts (how a lost post is found again)."""

Api = Callable[[str, Mapping[str, Any], str], Awaitable[dict[str, Any]]]
"""``(method, args, http_verb) -> answer``: one Web API call (``bot.adapters.slack_wire.call``)."""


def metadata(message: OutMessage) -> dict[str, Any]:
    """The metadata a post of ``message`` carries."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"deployment": message.thread_id, "key": message.key, "revision": message.revision},
    }


async def find_posted(
    api: Api,
    message: OutMessage,
    channel: str,
    *,
    pages: int,
    bucket: Bucket,
    clock: Callable[[], float],
) -> tuple[str, int] | None:
    """``(ts, revision)`` of ``message`` as an earlier attempt posted it, or None if not there."""
    cursor: str | None = None
    for _ in range(pages):
        wait = bucket.wait(clock())
        if wait > 0:
            await asyncio.sleep(wait)
            bucket.wait(clock())  # take the token the sleep waited for
        args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
        if cursor:
            args["cursor"] = cursor
        if message.top_level:
            page = await api("conversations.history", args, "GET")
        else:
            page = await api("conversations.replies", {**args, "ts": message.parent_ts}, "GET")
        for item in page.get("messages", []):
            meta = item.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (
                meta.get("event_type") == EVENT_TYPE
                and payload.get("deployment") == message.thread_id
                and payload.get("key") == message.key
            ):
                return str(item["ts"]), int(payload.get("revision", 0))
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None
    return None
