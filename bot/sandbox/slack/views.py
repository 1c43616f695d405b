"""The Slack emulator's views methods: ``views.open``, ``views.push``, ``views.update``, ``views.publish``.

Modals and the Home tab have rules of their own (trigger ids that expire and are used once, a stack
of at most three views, ``hash`` conflicts, ``external_id``), so they live apart from the other
Web API methods (``methods``), on the same workspace.
"""

from __future__ import annotations

from dataclasses import replace

from bot.sandbox.slack import blocks as slack_blocks
from bot.sandbox.slack.records import TRIGGER_LIFETIME, VIEW_STACK, JSONDict, Trigger, View
from bot.sandbox.slack.state import SlackWorkspace
from bot.sandbox.slack.wire import ApiError, Call, missing


class SlackViewsApi(SlackWorkspace):
    """The workspace plus the methods that open, push, update and publish views."""

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
