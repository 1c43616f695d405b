"""The Slack emulator's Web API: ``/api/<method>`` dispatch and one handler per method.

Each handler answers one documented Slack method the way Slack does (arguments, refusals,
pagination, views and triggers), so slack-sdk and slack-bolt cannot tell the emulator from Slack.
Routing, authentication and rate limiting come first in ``_dispatch``; the handlers only see a
``Call``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from aiohttp import web

from bot.sandbox import slack_blocks
from bot.sandbox.slack_faults import Fault
from bot.sandbox.slack_ids import decimal_ts, decode_cursor, encode_cursor
from bot.sandbox.slack_records import (
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    TRIGGER_LIFETIME,
    VIEW_STACK,
    Channel,
    Ephemeral,
    Identity,
    JSONDict,
    Message,
    Trigger,
    View,
)
from bot.sandbox.slack_socket import SocketMode
from bot.sandbox.slack_state import SlackWorkspace
from bot.sandbox.slack_wire import ApiError, Call, json_response, missing, read_args

Handler = Callable[[Call], JSONDict]

APP_TOKEN_METHODS: Final = frozenset({"apps.connections.open"})
"""Methods that take an app-level token and refuse any other (``not_allowed_token_type``)."""


class SlackWebApi(SlackWorkspace):
    """The workspace plus the Web API methods that read and change it."""

    _methods: dict[str, Handler]
    socket: SocketMode

    def _method_table(self) -> dict[str, Handler]:
        return {
            "api.test": self._api_test,
            "apps.connections.open": self._apps_connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    # -- HTTP ----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        now = self.clock.now()
        args: JSONDict = {}
        fault: Fault | None = None
        generation = 0
        try:
            args, token, warnings = await read_args(request)
            with self._lock:
                fault, generation = self.faults.take(method, now), self.faults.generation
                if fault is not None and fault.mode != "accept_then_hang":
                    raise ApiError("fatal_error", status=fault.status if fault.mode == "error" else 504)
                body = self._dispatch(method, args, token, warnings, origin=str(request.url.origin()))
        except ApiError as refusal:
            with self._lock:
                self._record(method, args, now, refusal.status, refusal.error, ())
            if fault is not None and fault.mode == "hang":
                await self._hold(fault, generation)
            return json_response(refusal.body(), refusal.status, refusal.headers)
        with self._lock:
            self._record(
                method, args, now, 200, None, tuple(body.get("response_metadata", {}).get("warnings", ()))
            )
        if fault is not None:
            await self._hold(fault, generation)
        return json_response(body)

    async def _hold(self, fault: Fault, generation: int) -> None:
        """Keep a request waiting while its hang fault lasts (the client times out meanwhile)."""
        deadline = time.monotonic() + fault.hang_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.faults.holds(fault, generation, self.clock.now()):
                    return
            await asyncio.sleep(0.05)

    def _dispatch(
        self, method: str, args: JSONDict, token: str | None, warnings: list[str], *, origin: str = ""
    ) -> JSONDict:
        handler = self._methods.get(method)
        if handler is None:
            raise ApiError("unknown_method", req_method=method)
        identity = self._identify(method, token)
        now = self.clock.now()
        wait = self.limiter.method_wait(method, now)
        if wait:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        call = Call(method, args, identity, now, warnings=list(warnings), origin=origin)
        result = handler(call)
        body: JSONDict = {"ok": True, **result}
        if call.warnings:
            body["warning"] = ",".join(call.warnings)
            meta = body.setdefault("response_metadata", {})
            meta["warnings"] = list(call.warnings)
            if call.notes:
                meta["messages"] = list(call.notes)
        return body

    def _identify(self, method: str, token: str | None) -> Identity:
        """Who calls; an app-level (``xapp-``) token is for ``apps.connections.open`` and nothing else."""
        if method == "api.test":
            return Identity("", None)
        app_level = self.socket.is_app_token(token)
        if method in APP_TOKEN_METHODS:
            if app_level:
                return Identity("", None)
            self._authenticate(token)  # not_authed / invalid_auth come first, as on Slack
            raise ApiError("not_allowed_token_type")
        if app_level:
            raise ApiError("not_allowed_token_type")
        return self._authenticate(token)

    # -- Web API methods ---------------------------------------------------------------------

    def _api_test(self, call: Call) -> JSONDict:
        args = {k: v for k, v in call.args.items() if k != "token"}
        if "error" in args:
            raise ApiError(str(args["error"]), args=args)
        return {"args": args}

    def _apps_connections_open(self, call: Call) -> JSONDict:
        return self.socket.open_url(call.origin, call.now)

    def _auth_test(self, call: Call) -> JSONDict:
        user = self._users.get(call.identity.user_id)
        out: JSONDict = {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": user.name if user else call.identity.user_id,
            "team_id": TEAM_ID,
            "user_id": call.identity.user_id,
            "is_enterprise_install": False,
        }
        if call.identity.bot_id:
            out["bot_id"] = call.identity.bot_id
        return out

    def _chat_post_message(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        thread_ts = call.text("thread_ts")
        orphaned = False
        if thread_ts is not None:
            parent = self._find(channel.id, thread_ts)
            orphaned = parent is None or not parent.top_level or parent.tombstone
        if not channel.is_member:
            raise ApiError("not_in_channel")
        wait = self.limiter.post_wait(channel.id, call.now)
        if wait:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        try:
            metadata = call.structured("metadata")
        except ValueError:
            raise ApiError("invalid_metadata_format") from None
        message = Message(
            channel=channel.id,
            ts=self._ids.ts(call.now),
            user=call.identity.user_id,
            text=content.text or "",
            blocks=content.blocks,
            attachments=content.attachments,
            thread_ts=thread_ts,
            broadcast=thread_ts is not None and call.flag("reply_broadcast") and not orphaned,
            orphaned=orphaned,
            bot=call.identity.bot_id is not None,
            metadata=metadata if isinstance(metadata, dict) else None,
        )
        self._store(message)
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(message)}

    def _owned_message(self, call: Call, channel: Channel, ts_arg: str, refusal: str) -> Message:
        message = self._find(channel.id, call.text(ts_arg))
        if message is None or message.tombstone:
            raise ApiError("message_not_found")
        if message.user != call.identity.user_id:
            raise ApiError(refusal)
        return message

    def _chat_update(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._owned_message(call, channel, "ts", "cant_update_message")
        content = self._content(call)
        given_blocks = call.args.get("blocks") is not None
        given_attachments = call.args.get("attachments") is not None
        if content.text is None and not given_blocks and not given_attachments:
            raise ApiError("no_text")
        updated = replace(
            message,
            text=content.text if content.text is not None else message.text,
            blocks=(content.blocks or None) if given_blocks else message.blocks,
            attachments=(content.attachments or None) if given_attachments else message.attachments,
            edited={"user": call.identity.user_id, "ts": self._ids.ts(call.now)},
        )
        self._store(updated)
        return {
            "channel": channel.id,
            "ts": updated.ts,
            "text": updated.text,
            "message": self._message_json(updated),
        }

    def _chat_delete(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._owned_message(call, channel, "ts", "cant_delete_message")
        self._delete(message)
        return {"channel": channel.id, "ts": message.ts}

    def _chat_post_ephemeral(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        user = call.text("user")
        if user is None or user not in self._users:
            raise ApiError("user_not_in_channel")
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        ephemeral = Ephemeral(
            channel.id,
            user,
            self._ids.ts(call.now),
            content.text or "",
            content.blocks,
            content.attachments,
            call.text("thread_ts"),
        )
        self._ephemeral.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    def _chat_get_permalink(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._find(channel.id, call.required("message_ts", "message_not_found"))
        if message is None:
            raise ApiError("message_not_found")
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.thread_ts is not None:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

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

    def _reactions_add(self, call: Call) -> JSONDict:
        name = (call.text("name") or "").strip(":")
        channel_ref, ts = call.text("channel"), call.text("timestamp")
        if channel_ref is None or ts is None:
            raise ApiError("no_item_specified")
        channel = self._channel(channel_ref)
        if not name:
            raise ApiError("invalid_name")
        message = self._find(channel.id, ts)
        if message is None or message.tombstone:
            raise ApiError("message_not_found")
        reactions = dict(message.reactions)
        users = reactions.get(name, ())
        if call.identity.user_id in users:
            raise ApiError("already_reacted")
        reactions[name] = (*users, call.identity.user_id)
        self._store(replace(message, reactions=tuple(reactions.items())))
        return {}

    def _users_info(self, call: Call) -> JSONDict:
        user = self._users.get(call.required("user", "user_not_found"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_json()}

    def _users_lookup_by_email(self, call: Call) -> JSONDict:
        email = call.required("email", "users_not_found").lower()
        for user in self._users.values():
            if user.email.lower() == email and not user.deleted:
                return {"user": user.to_json()}
        raise ApiError("users_not_found")

    def _usergroups_list(self, call: Call) -> JSONDict:
        include_users = call.flag("include_users")
        include_disabled = call.flag("include_disabled")
        include_count = call.flag("include_count", True)
        groups = [g for g in self._usergroups.values() if include_disabled or not g.disabled]
        return {
            "usergroups": [
                g.to_json(include_users=include_users, include_count=include_count) for g in groups
            ]
        }

    def _usergroups_users_list(self, call: Call) -> JSONDict:
        group = self._usergroups.get(call.required("usergroup", "no_such_subteam"))
        if group is None or (group.disabled and not call.flag("include_disabled")):
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    # -- views ---------------------------------------------------------------------------------

    def _view_arg(self, call: Call, kinds: frozenset[str]) -> JSONDict:
        if call.args.get("view") is None:
            raise missing("view")
        try:
            view = call.structured("view")
        except ValueError:
            view = None
        problems = slack_blocks.check_view(view, kinds=kinds)
        if problems:
            raise ApiError("invalid_arguments", messages=[f"[ERROR] {p}" for p in problems])
        assert isinstance(view, dict)
        stored = dict(view)
        stored["blocks"] = slack_blocks.with_ids(view.get("blocks", []), self._ids.short)
        for name in ("title", "submit", "close"):
            if isinstance(stored.get(name), dict):
                stored[name] = {"emoji": True, **stored[name]}
        return stored

    def _check_external_id(self, body: JSONDict, replacing: str | None = None) -> None:
        external_id = body.get("external_id")
        if not external_id:
            return
        for view in self._views.values():
            if view.external_id == external_id and view.id != replacing and not view.closed:
                raise ApiError("duplicate_external_id")

    def _exchange(self, call: Call) -> Trigger:
        trigger = self._triggers.get(call.required("trigger_id"))
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        if call.now - trigger.issued_at > TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")
        used = replace(trigger, used=True)
        self._triggers[trigger.id] = used
        return used

    def _new_view(self, user_id: str, body: JSONDict, *, root: str | None, previous: str | None) -> View:
        view_id = self._ids.next("V")
        view = View(
            view_id,
            user_id,
            str(body["type"]),
            body,
            self._view_hash(),
            root or view_id,
            previous,
        )
        self._views[view_id] = view
        return view

    def _view_hash(self) -> str:
        return f"{int(self.clock.now())}.{self._ids.hex(8)}"

    def _views_open(self, call: Call) -> JSONDict:
        body = self._view_arg(call, frozenset({"modal"}))
        self._check_external_id(body)
        trigger = self._exchange(call)
        for view_id in self._stacks.get(trigger.user_id, []):
            self._views[view_id] = replace(self._views[view_id], closed=True)
        view = self._new_view(trigger.user_id, body, root=None, previous=None)
        self._stacks[trigger.user_id] = [view.id]
        return {"view": view.to_json()}

    def _views_push(self, call: Call) -> JSONDict:
        body = self._view_arg(call, frozenset({"modal"}))
        self._check_external_id(body)
        trigger = self._exchange(call)
        stack = self._stacks.setdefault(trigger.user_id, [])
        if len(stack) >= VIEW_STACK:
            raise ApiError("push_limit_reached")
        view = self._new_view(
            trigger.user_id, body, root=stack[0] if stack else None, previous=stack[-1] if stack else None
        )
        stack.append(view.id)
        return {"view": view.to_json()}

    def _views_update(self, call: Call) -> JSONDict:
        view_id, external_id = call.text("view_id"), call.text("external_id")
        if view_id is None and external_id is None:
            raise missing("view_id")
        current = self._views.get(view_id or "")
        if current is None and external_id is not None:
            current = next((v for v in self._views.values() if v.external_id == external_id), None)
        if current is None or current.closed:
            raise ApiError("not_found")
        body = self._view_arg(call, frozenset({current.type}))
        given_hash = call.text("hash")
        if given_hash is not None and given_hash != current.hash:
            raise ApiError("hash_conflict")
        if current.external_id and not body.get("external_id"):
            body["external_id"] = current.external_id  # naming the view by it must keep working
        self._check_external_id(body, replacing=current.id)
        updated = replace(current, body=body, hash=self._view_hash())
        self._views[current.id] = updated
        return {"view": updated.to_json()}

    def _views_publish(self, call: Call) -> JSONDict:
        user_id = call.required("user_id")
        if user_id not in self._users:
            raise ApiError("user_not_found")
        body = self._view_arg(call, frozenset({"home"}))
        current = self._views.get(self._home.get(user_id, ""))
        given_hash = call.text("hash")
        if current is not None and given_hash is not None and given_hash != current.hash:
            raise ApiError("hash_conflict")
        if current is None:
            view = self._new_view(user_id, body, root=None, previous=None)
            self._home[user_id] = view.id
        else:
            view = replace(current, body=body, hash=self._view_hash())
            self._views[view.id] = view
        return {"view": view.to_json()}


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
