"""The Slack emulator's Web API: ``/api/<method>`` dispatch and one handler per method.

Each handler answers one documented Slack method the way Slack does (arguments, refusals,
pagination, views and triggers), so slack-sdk and slack-bolt cannot tell the emulator from Slack.
Routing, authentication and rate limiting come first in ``_dispatch``; the handlers only see a
``Call``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from aiohttp import web

from bot.sandbox.slack.conversations import SlackConversationsApi
from bot.sandbox.slack.faults import Fault
from bot.sandbox.slack.records import (
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    Channel,
    Ephemeral,
    Identity,
    JSONDict,
    Message,
)
from bot.sandbox.slack.socket_mode import SocketMode
from bot.sandbox.slack.views import SlackViewsApi
from bot.sandbox.slack.wire import ApiError, Call, json_response, read_args

Handler = Callable[[Call], JSONDict]

APP_TOKEN_METHODS: Final = frozenset({"apps.connections.open"})
"""Methods that take an app-level token and refuse any other (``not_allowed_token_type``)."""


class SlackWebApi(SlackConversationsApi, SlackViewsApi):
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
