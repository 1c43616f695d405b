"""The Slack emulator's conversations methods: history, replies, info and list, with Slack's pagination.

Reading a channel back has rules of its own (``oldest``/``latest`` bounds, ``inclusive``, cursors
that name the next page), so these live apart from the methods that write (``methods``).
"""

from __future__ import annotations

import base64
import binascii

from bot.sandbox.slack.ids import decimal_ts, decode_cursor, encode_cursor
from bot.sandbox.slack.records import JSONDict, Message
from bot.sandbox.slack.state import SlackWorkspace
from bot.sandbox.slack.wire import ApiError, Call


class SlackConversationsApi(SlackWorkspace):
    """The workspace plus the methods that read channels and threads back."""

    def _window(
        self, call: Call, items: list[Message], *, newest_first: bool, default_limit: int, max_limit: int
    ) -> tuple[list[Message], str | None]:
        """Apply latest/oldest/inclusive/cursor/limit to ``items`` (already in answer order)."""
        latest = self._ts_bound(call, "latest", "invalid_ts_latest")
        oldest = self._ts_bound(call, "oldest", "invalid_ts_oldest")
        inclusive = call.flag("inclusive")
        limit = call.number("limit", default_limit)
        limit = default_limit if limit <= 0 else min(limit, max_limit)
        cursor = call.text("cursor")
        start = decode_cursor(cursor) if cursor else None

        def keep(m: Message) -> bool:
            ts = decimal_ts(m.ts)
            if latest is not None and (ts > latest or (ts == latest and not inclusive)):
                return False
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            if start is not None:
                return ts <= start if newest_first else ts >= start
            return True

        chosen = [m for m in items if keep(m)]
        page = chosen[:limit]
        return page, encode_cursor(chosen[limit].ts) if len(chosen) > limit else None

    def _conversations_history(self, call: Call) -> JSONDict:
        channel = self._conversation(call)
        visible = [
            m
            for m in self._messages.get(channel.id, {}).values()
            if (m.top_level or m.broadcast) and not m.orphaned
        ]
        visible.sort(key=lambda m: decimal_ts(m.ts), reverse=True)
        page, next_cursor = self._window(call, visible, newest_first=True, default_limit=100, max_limit=999)
        metadata = call.flag("include_all_metadata")
        out: JSONDict = {
            "messages": [self._message_json(m, metadata=metadata) for m in page],
            "has_more": next_cursor is not None,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if next_cursor:
            out["response_metadata"] = {"next_cursor": next_cursor}
        return out

    def _conversations_replies(self, call: Call) -> JSONDict:
        channel = self._conversation(call)
        root = self._find(channel.id, call.required("ts", "thread_not_found"))
        if root is None:
            raise ApiError("thread_not_found")
        replies = self._replies(channel.id, root.ts)
        page, next_cursor = self._window(
            call, replies, newest_first=False, default_limit=1000, max_limit=1000
        )
        first_page = not call.text("cursor")
        metadata = call.flag("include_all_metadata")
        messages = ([self._message_json(root, metadata=metadata)] if first_page else []) + [
            self._message_json(m, metadata=metadata) for m in page
        ]
        out: JSONDict = {"messages": messages, "has_more": next_cursor is not None}
        if next_cursor:
            out["response_metadata"] = {"next_cursor": next_cursor}
        return out

    def _conversations_info(self, call: Call) -> JSONDict:
        return {"channel": self._conversation(call).to_json()}

    def _conversations_list(self, call: Call) -> JSONDict:
        """Public and/or private channels by id order, ``limit`` per page (Slack's default 100)."""
        kinds = {t.strip() for t in (call.text("types") or "public_channel").split(",")}
        unknown = kinds - {"public_channel", "private_channel", "mpim", "im"}
        if unknown:
            raise ApiError("invalid_types")
        chosen = sorted(
            (
                c
                for c in self._channels.values()
                if ("private_channel" if c.is_private else "public_channel") in kinds
            ),
            key=lambda c: c.id,
        )
        limit = call.number("limit", 100)
        limit = 100 if limit <= 0 else min(limit, 1000)
        cursor = call.text("cursor")
        if cursor:
            start = next((i for i, c in enumerate(chosen) if c.id == _channel_cursor(cursor)), None)
            if start is None:
                raise ApiError("invalid_cursor")
            chosen = chosen[start:]
        page, rest = chosen[:limit], chosen[limit:]
        return {
            "channels": [c.to_json() for c in page],
            "response_metadata": {"next_cursor": _encode_channel_cursor(rest[0].id) if rest else ""},
        }


def _encode_channel_cursor(channel_id: str) -> str:
    return base64.b64encode(f"next_id:{channel_id}".encode()).decode()


def _channel_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if not raw.startswith("next_id:"):
        raise ApiError("invalid_cursor")
    return raw.removeprefix("next_id:")
