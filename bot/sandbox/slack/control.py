"""The Slack emulator's control API (``/_sandbox/...``); its ``response_url`` endpoints are ``response_urls``.

Tests steer the emulator (users, channels, user groups, rate limits, the clock) and read back
everything it received through these endpoints, over plain HTTP; the ``response_url`` endpoints
handed out by ``bot.sandbox.slack.driver`` act on messages as Slack does. None of this is Slack's
Web API, so it is kept apart from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from bot.sandbox.slack.faults import parse_fault
from bot.sandbox.slack.records import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    VIEW_STACK,
    Channel,
    Identity,
    JSONDict,
    Message,
    User,
    Usergroup,
)
from bot.sandbox.slack.response_urls import SlackResponseUrls
from bot.sandbox.slack.wire import ApiError, Call, json_response, need, read_payload


class SlackControlApi(SlackResponseUrls):
    """The Web API plus what a test steers and reads, and the response URLs apps post to."""

    # -- control API -----------------------------------------------------------------------------

    async def _ctl_workspace(self, request: web.Request) -> web.Response:
        with self._lock:
            return json_response(
                {
                    "ok": True,
                    "team_id": TEAM_ID,
                    "team_name": TEAM_NAME,
                    "team_domain": TEAM_DOMAIN,
                    "enterprise_id": None,
                    "app_id": APP_ID,
                    "bot_user_id": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "users": [u.to_json() for u in self._users.values()],
                    "channels": [c.to_json() for c in self._channels.values()],
                    "usergroups": [g.to_json(include_users=True) for g in self._usergroups.values()],
                }
            )

    async def _ctl_users(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> User:
            return User(
                id=need(item, "id"),
                name=need(item, "name"),
                real_name=str(item.get("real_name", "")),
                email=str(item.get("email", "")),
                is_bot=bool(item.get("is_bot", False)),
                is_admin=bool(item.get("is_admin", False)),
                deleted=bool(item.get("deleted", False)),
            )

        return await self._register(request, "users", build, self.add_user)

    async def _ctl_channels(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> Channel:
            channel_id, name = need(item, "id"), need(item, "name").removeprefix("#")
            if not channel_id.startswith(("C", "G")):
                raise ValueError("a channel id starts with C (or G for a private channel)")
            return Channel(
                channel_id,
                name,
                bool(item.get("is_private", False)),
                str(item.get("topic", "")),
                is_member=bool(item.get("is_member", True)),
            )

        return await self._register(request, "channels", build, self.add_channel)

    async def _ctl_usergroups(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> Usergroup:
            group_id = need(item, "id")
            if not group_id.startswith("S"):
                raise ValueError("a user group id starts with S")
            users = item.get("users", [])
            if not isinstance(users, list):
                raise ValueError("users must be a list of user ids")
            handle = need(item, "handle").removeprefix("@")
            return Usergroup(
                group_id,
                handle,
                str(item.get("name", handle)),
                tuple(str(u) for u in users),
                str(item.get("description", "")),
                bool(item.get("disabled", False)),
            )

        return await self._register(request, "usergroups", build, self.add_usergroup)

    async def _register(
        self, request: web.Request, plural: str, build: Callable[[JSONDict], Any], add: Callable[[Any], None]
    ) -> web.Response:
        try:
            payload = await read_payload(request)
            items = payload.get(plural, [payload])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError(f"{plural} must be a list of objects")
            records = [build(i) for i in items]
        except (ValueError, ApiError) as exc:
            return json_response({"ok": False, "error": str(exc)}, 400)
        for record in records:
            add(record)
        return json_response({"ok": True, plural: [r.id for r in records]})

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "calls": self.calls(request.query.get("method"))})

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "messages": self.messages(request.query.get("channel"))})

    async def _ctl_post_message(self, request: web.Request) -> web.Response:
        """Post as a person (not the bot): what a human writes in a channel or thread."""
        try:
            payload = await read_payload(request)
            user = need(payload, "user")
        except (ValueError, ApiError) as exc:
            return json_response({"ok": False, "error": str(exc)}, 400)
        with self._lock:
            if user not in self._users:
                return json_response({"ok": False, "error": "user_not_found"}, 400)
            try:
                channel = self._channel(str(payload.get("channel", "")))
                call = Call("_sandbox.post", payload, Identity(user, None), self.clock.now())
                content = self._content(call)
            except ApiError as refusal:
                return json_response(refusal.body(), 400)
            thread_ts = call.text("thread_ts")
            parent = self._find(channel.id, thread_ts) if thread_ts else None
            message = Message(
                channel=channel.id,
                ts=self._ids.ts(call.now),
                user=user,
                text=content.text or "",
                blocks=content.blocks,
                thread_ts=thread_ts,
                orphaned=thread_ts is not None and (parent is None or not parent.top_level),
            )
            self._store(message)
            return json_response({"ok": True, "channel": channel.id, "ts": message.ts})

    async def _ctl_message(self, request: web.Request) -> web.Response:
        channel, ts = request.query.get("channel", ""), request.query.get("ts", "")
        with self._lock:
            message = self._find(channel, ts)
            if message is not None and not message.tombstone:
                return json_response(
                    {"ok": True, "is_ephemeral": False, "message": self._message_json(message)}
                )
            for ephemeral in self._ephemeral:
                if ephemeral.channel == channel and ephemeral.ts == ts:
                    return json_response({"ok": True, "is_ephemeral": True, "message": ephemeral.to_json()})
        return json_response({"ok": False, "error": "message_not_found"}, 404)

    async def _ctl_ephemeral(self, request: web.Request) -> web.Response:
        return json_response(
            {"ok": True, "messages": self.ephemeral(request.query.get("channel"), request.query.get("user"))}
        )

    async def _ctl_views(self, request: web.Request) -> web.Response:
        with self._lock:
            views = [
                {**v.to_json(), "user_id": v.user_id, "closed": v.closed}
                for v in self._views.values()
                if request.query.get("user") in (None, v.user_id)
            ]
        return json_response({"ok": True, "views": views})

    async def _ctl_view(self, request: web.Request) -> web.Response:
        with self._lock:
            view = self._views.get(request.match_info["view_id"])
            if view is None:
                return json_response({"ok": False, "error": "not_found"}, 404)
            return json_response(
                {"ok": True, "view": view.to_json(), "user_id": view.user_id, "closed": view.closed}
            )

    async def _ctl_view_response(self, request: web.Request) -> web.Response:
        """What Slack does with an app's answer to a view_submission (the driver reports it here)."""
        try:
            payload = await read_payload(request)
        except ApiError as refusal:
            return json_response(refusal.body(), 400)
        with self._lock:
            view = self._views.get(request.match_info["view_id"])
            if view is None:
                return json_response({"ok": False, "error": "not_found"}, 404)
            if isinstance(payload.get("state"), dict):
                view = replace(view, state=payload["state"])
                self._views[view.id] = view
            action = payload.get("response_action")
            stack = self._stacks.get(view.user_id, [])
            try:
                if action == "errors":
                    return json_response({"ok": True, "view": view.to_json()})
                if action == "update":
                    call = Call("response_action", payload, Identity(BOT_USER_ID, BOT_ID), self.clock.now())
                    body = self._view_arg(call, frozenset({"modal"}))
                    view = replace(view, body=body, hash=self._view_hash())
                    self._views[view.id] = view
                    return json_response({"ok": True, "view": view.to_json()})
                if action == "push":
                    call = Call("response_action", payload, Identity(BOT_USER_ID, BOT_ID), self.clock.now())
                    body = self._view_arg(call, frozenset({"modal"}))
                    if len(stack) >= VIEW_STACK:
                        raise ApiError("push_limit_reached")
                    pushed = self._new_view(
                        view.user_id, body, root=stack[0] if stack else view.id, previous=view.id
                    )
                    stack.append(pushed.id)
                    return json_response({"ok": True, "view": pushed.to_json()})
            except ApiError as refusal:
                return json_response(refusal.body(), 400)
            closing = list(stack) if action == "clear" else [view.id]
            for view_id in closing:
                self._views[view_id] = replace(self._views[view_id], closed=True)
            self._stacks[view.user_id] = [v for v in stack if v not in closing]
            return json_response({"ok": True, "closed": closing})

    async def _ctl_triggers(self, request: web.Request) -> web.Response:
        try:
            payload = await read_payload(request)
            user_id = need(payload, "user_id")
        except (ValueError, ApiError) as exc:
            return json_response({"ok": False, "error": str(exc)}, 400)
        view_id = payload.get("view_id")
        return json_response(
            {"ok": True, "trigger_id": self.issue_trigger(user_id, str(view_id) if view_id else None)}
        )

    async def _ctl_response_urls(self, request: web.Request) -> web.Response:
        with self._lock:
            return json_response(
                {"ok": True, "response_urls": [r.to_json() for r in self._response_urls.values()]}
            )

    async def _ctl_new_response_url(self, request: web.Request) -> web.Response:
        try:
            payload = await read_payload(request)
            channel_id, user_id = need(payload, "channel_id"), need(payload, "user_id")
        except (ValueError, ApiError) as exc:
            return json_response({"ok": False, "error": str(exc)}, 400)
        url = self.issue_response_url(
            str(request.url.origin()),
            channel_id=channel_id,
            user_id=user_id,
            message_ts=payload.get("message_ts"),
            is_ephemeral=bool(payload.get("is_ephemeral", False)),
            thread_ts=payload.get("thread_ts"),
        )
        return json_response({"ok": True, "response_url": url})

    async def _ctl_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await read_payload(request)
                with self._lock:
                    if "rate_limits" in payload:
                        patch = payload["rate_limits"]
                        if isinstance(patch, bool):
                            patch = {"enabled": patch}
                        if not isinstance(patch, dict):
                            raise ValueError("rate_limits must be an object or a boolean")
                        self.limiter.reset(self.limiter.limits.changed(patch))
                    clock = payload.get("clock", {})
                    if not isinstance(clock, dict):
                        raise ValueError("clock must be an object")
                    if "scale" in clock:
                        self.clock.set_scale(float(clock["scale"]))
                    if "advance" in clock:
                        self.clock.advance(float(clock["advance"]))
            except (ValueError, TypeError, ApiError) as exc:
                return json_response({"ok": False, "error": str(exc)}, 400)
        with self._lock:
            return json_response(
                {
                    "ok": True,
                    "rate_limits": self.limiter.limits.to_json(),
                    "clock": {"now": self.clock.now(), "scale": self.clock.scale},
                }
            )

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        """GET lists the faults, POST adds one (``bot.sandbox.slack.faults``), DELETE clears them."""
        if request.method == "POST":
            try:
                payload = await read_payload(request)
                with self._lock:
                    self.faults.add(parse_fault(payload, self.clock.now()))
            except (ValueError, TypeError, ApiError) as exc:
                return json_response({"ok": False, "error": str(exc)}, 400)
        elif request.method == "DELETE":
            with self._lock:
                self.faults.clear()
        with self._lock:
            return json_response({"ok": True, "faults": self.faults.to_json()})

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        try:
            payload = await read_payload(request) if request.can_read_body else {}
        except ApiError as refusal:
            return json_response(refusal.body(), 400)
        self.reset(keep_directory=bool(payload.get("keep_directory", False)))
        return json_response({"ok": True})
