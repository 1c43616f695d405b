"""The Slack emulator's workspace: its state, the operations on it and how it renders messages.

Everything the Web API, the control API and response URLs read or change lives in one object
guarded by one lock; keeping the state and its bookkeeping (storing, finding, threading and
rendering messages, checking content) here lets the handler modules stay about the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import TypedDict

from bot.sandbox.slack import blocks as slack_blocks
from bot.sandbox.slack.clock import Clock
from bot.sandbox.slack.faults import Faults
from bot.sandbox.slack.ids import Ids, decimal_ts
from bot.sandbox.slack.ratelimit import RateLimiter, RateLimits
from bot.sandbox.slack.records import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    DEFAULT_CHANNELS,
    DEFAULT_USERGROUPS,
    DEFAULT_USERS,
    MAX_ATTACHMENTS,
    MAX_TEXT,
    TEAM_ID,
    TRUNCATED_NOTE,
    CallRecord,
    Channel,
    Ephemeral,
    Identity,
    JSONDict,
    Message,
    ResponseUrl,
    Trigger,
    User,
    Usergroup,
    View,
)
from bot.sandbox.slack.wire import ApiError, Call, Content


class WorkspaceOptions(TypedDict, total=False):
    """``SlackWorkspace``'s keyword arguments, for what builds one on top (``SlackEmulator``,
    ``create_slack_app``) to pass on without listing them again; the defaults live in the constructor."""

    token: str
    rate_limits: bool | RateLimits
    clock: Clock | None
    users: Iterable[User]
    channels: Iterable[Channel]
    usergroups: Iterable[Usergroup]


class SlackWorkspace:
    """One workspace's directory, messages, views, triggers, response URLs and call log.

    Callers hold ``_lock`` around the private helpers; the public methods take it themselves.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-sandbox",  # noqa: S107 -- the sandbox's well-known token, not a secret
        rate_limits: bool | RateLimits = True,
        clock: Clock | None = None,
        users: Iterable[User] = DEFAULT_USERS,
        channels: Iterable[Channel] = DEFAULT_CHANNELS,
        usergroups: Iterable[Usergroup] = DEFAULT_USERGROUPS,
    ) -> None:
        self.token = token
        self.clock = clock or Clock()
        limits = rate_limits if isinstance(rate_limits, RateLimits) else RateLimits(enabled=rate_limits)
        self.limiter = RateLimiter(limits)
        self._lock = threading.RLock()
        self._directory = (tuple(users), tuple(channels), tuple(usergroups))
        self._tokens: dict[str, Identity] = {token: Identity(BOT_USER_ID, BOT_ID)}
        self._reset_state(keep_directory=False)

    # -- state -------------------------------------------------------------------------------

    def _reset_state(self, *, keep_directory: bool) -> None:
        if not keep_directory:
            users, channels, groups = self._directory
            self._users: dict[str, User] = {u.id: u for u in users}
            self._channels: dict[str, Channel] = {c.id: c for c in channels}
            self._usergroups: dict[str, Usergroup] = {g.id: g for g in groups}
        self._ids = Ids()
        self._messages: dict[str, dict[str, Message]] = {}
        self._threads: dict[tuple[str, str], list[str]] = {}
        self._ephemeral: list[Ephemeral] = []
        self._views: dict[str, View] = {}
        self._stacks: dict[str, list[str]] = {}
        self._home: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._calls: list[CallRecord] = []
        self.faults = Faults()
        self.limiter.reset()

    def reset(self, *, keep_directory: bool = False) -> None:
        """Forget messages, views, calls, triggers, response URLs and rate-limit windows.

        Users, channels and user groups go back to those given at creation unless
        ``keep_directory``."""
        with self._lock:
            self._reset_state(keep_directory=keep_directory)

    def add_user(self, user: User) -> None:
        with self._lock:
            self._users[user.id] = user

    def add_channel(self, channel: Channel) -> None:
        with self._lock:
            self._channels[channel.id] = channel

    def add_usergroup(self, group: Usergroup) -> None:
        with self._lock:
            self._usergroups[group.id] = group

    def configure(self, limits: RateLimits) -> None:
        """New rate limits; the windows start afresh."""
        with self._lock:
            self.limiter.reset(limits)

    def calls(self, method: str | None = None) -> list[JSONDict]:
        with self._lock:
            return [c.to_json() for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[JSONDict]:
        """Every message, replies and orphans included, oldest first, as the control API gives them."""
        with self._lock:
            out = []
            for channel_id, by_ts in self._messages.items():
                if channel is not None and channel_id != channel:
                    continue
                for message in by_ts.values():
                    item = self._message_json(message)
                    item["channel"] = channel_id
                    if message.orphaned:
                        item["orphaned"] = True
                    out.append(item)
            return sorted(out, key=lambda m: decimal_ts(m["ts"]))

    def ephemeral(self, channel: str | None = None, user: str | None = None) -> list[JSONDict]:
        with self._lock:
            return [
                e.to_json()
                for e in self._ephemeral
                if (channel is None or e.channel == channel) and (user is None or e.user == user)
            ]

    def issue_trigger(self, user_id: str, view_id: str | None = None) -> str:
        """A fresh trigger_id for ``user_id``, valid for views.open/push for 3 s of emulator time."""
        with self._lock:
            now = self.clock.now()
            trigger_id = f"{int(now)}.{int(now * 1000) % 10_000_000}.{self._ids.hex(32)}"
            self._triggers[trigger_id] = Trigger(trigger_id, user_id, now, view_id=view_id)
            return trigger_id

    def issue_response_url(
        self,
        base_url: str,
        *,
        channel_id: str,
        user_id: str,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
        thread_ts: str | None = None,
    ) -> str:
        """A fresh response_url under ``base_url`` (the emulator's own address)."""
        with self._lock:
            rid = f"{TEAM_ID}/{self._ids.next('', 13)}/{self._ids.hex(24)}"
            url = f"{base_url.rstrip('/')}/_sandbox/response/{rid}"
            self._response_urls[rid] = ResponseUrl(
                rid, url, channel_id, user_id, self.clock.now(), message_ts, is_ephemeral, thread_ts
            )
            return url

    def _authenticate(self, token: str | None) -> Identity:
        if not token:
            raise ApiError("not_authed")
        identity = self._tokens.get(token)
        if identity is None:
            raise ApiError("invalid_auth")
        return identity

    def _record(
        self,
        method: str,
        args: JSONDict,
        now: float,
        status: int,
        error: str | None,
        warnings: tuple[str, ...],
    ) -> None:
        self._calls.append(CallRecord(method, dict(args), now, status, error is None, error, warnings))

    # -- helpers -------------------------------------------------------------------------------

    def _channel(self, ref: str | None) -> Channel:
        if not ref:
            raise ApiError("channel_not_found")
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name:
                return channel
        raise ApiError("channel_not_found")

    def _conversation(self, call: Call) -> Channel:
        return self._channel(call.required("channel"))

    def _content(self, call: Call) -> Content:
        try:
            blocks = call.structured("blocks")
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        if blocks:
            problems = slack_blocks.check_message_blocks(blocks)
            if problems:
                raise ApiError("invalid_blocks", errors=problems, messages=[f"[ERROR] {p}" for p in problems])
            blocks = slack_blocks.with_ids(blocks, self._ids.short)
        try:
            attachments = call.structured("attachments")
        except ValueError:
            raise ApiError("invalid_attachments") from None
        if attachments is not None and not isinstance(attachments, list):
            raise ApiError("invalid_attachments")
        if attachments and len(attachments) > MAX_ATTACHMENTS:
            raise ApiError("too_many_attachments")
        text = call.text("text")
        if text is not None and len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            call.warnings.append("message_truncated")
            call.notes.append(TRUNCATED_NOTE)
        return Content(text, blocks, attachments)

    def _channel_messages(self, channel: str) -> dict[str, Message]:
        return self._messages.setdefault(channel, {})

    def _find(self, channel: str, ts: str | None) -> Message | None:
        message = self._messages.get(channel, {}).get(ts or "")
        return message

    def _store(self, message: Message) -> None:
        self._channel_messages(message.channel)[message.ts] = message
        if message.thread_ts is not None:
            replies = self._threads.setdefault((message.channel, message.thread_ts), [])
            if message.ts not in replies:
                replies.append(message.ts)

    def _remove(self, message: Message) -> None:
        self._messages.get(message.channel, {}).pop(message.ts, None)
        if message.thread_ts is not None:
            replies = self._threads.get((message.channel, message.thread_ts), [])
            if message.ts in replies:
                replies.remove(message.ts)

    def _replies(self, channel: str, ts: str) -> list[Message]:
        by_ts = self._messages.get(channel, {})
        return [by_ts[r] for r in self._threads.get((channel, ts), []) if r in by_ts]

    def _bot_profile(self) -> JSONDict:
        return {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "icons": {"image_48": "https://avatars.example/shipthread_48.png"},
            "deleted": False,
            "updated": 1_700_000_000,
            "team_id": TEAM_ID,
        }

    def _message_json(self, m: Message, *, metadata: bool = True) -> JSONDict:
        if m.tombstone:
            out: JSONDict = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                "hidden": True,
                "ts": m.ts,
            }
        else:
            out = {"type": "message", "text": m.text, "user": m.user, "ts": m.ts, "team": TEAM_ID}
            if m.bot:
                out.update(bot_id=BOT_ID, app_id=APP_ID, bot_profile=self._bot_profile())
            if m.blocks is not None:
                out["blocks"] = m.blocks
            if m.attachments:
                out["attachments"] = [{"id": i + 1, **a} for i, a in enumerate(m.attachments)]
            if m.edited is not None:
                out["edited"] = m.edited
            if m.reactions:
                out["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in m.reactions]
            if m.metadata is not None and metadata:
                out["metadata"] = m.metadata
            if m.files:
                out.update(files=list(m.files), upload=True, display_as_bot=False)
        if m.thread_ts is not None:
            out["thread_ts"] = m.thread_ts
            parent = self._find(m.channel, m.thread_ts)
            if parent is not None:
                out["parent_user_id"] = parent.user
            if m.broadcast:
                out["subtype"] = "thread_broadcast"
                if parent is not None and parent.top_level:
                    out["root"] = {k: v for k, v in self._message_json(parent).items() if k != "bot_profile"}
        else:
            replies = [r for r in self._replies(m.channel, m.ts) if not r.tombstone]
            if replies:
                users = list(dict.fromkeys(r.user for r in replies))
                out.update(
                    thread_ts=m.ts,
                    reply_count=len(replies),
                    reply_users_count=len(users),
                    latest_reply=replies[-1].ts,
                    reply_users=users[:5],
                    is_locked=False,
                    subscribed=False,
                )
        return out

    def _ts_bound(self, call: Call, name: str, error: str) -> Decimal | None:
        value = call.text(name)
        if value is None:
            return None
        try:
            return decimal_ts(value)
        except ValueError:
            raise ApiError(error) from None

    def _delete(self, message: Message) -> None:
        if message.top_level and self._replies(message.channel, message.ts):
            # A parent with replies leaves a tombstone so the thread stays readable, as on Slack.
            self._store(replace(message, tombstone=True, text="", blocks=None, attachments=None))
        else:
            self._remove(message)
