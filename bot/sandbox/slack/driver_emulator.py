"""The Slack driver's calls to the Slack emulator: what Slack knows and mints, read through its control API.

Why a module of its own: a request Slack sends carries what only Slack has — the workspace's ids and
names, the user's name, the message holding a button, a modal's blocks, a fresh ``trigger_id`` or
``response_url`` — so the driver (``driver``, and ``socket_driver`` for its envelopes) asks the
emulator's ``/_sandbox/`` API for them. Those reads and mints are this module's; building and
signing the requests stays the driver's.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.sandbox.slack.records import JSONDict


class EmulatorCalls:
    """The emulator at ``base_url`` (no trailing slash), each call under ``timeout``."""

    def __init__(self, base_url: str, timeout: aiohttp.ClientTimeout) -> None:
        self.base_url = base_url
        self._timeout = timeout
        self._workspace: JSONDict | None = None

    async def get(self, path: str, **query: str) -> JSONDict:
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.get(f"{self.base_url}{path}", params=query) as response,
        ):
            answer = await response.json()
            return answer if isinstance(answer, dict) else {}

    async def post(self, path: str, payload: JSONDict) -> JSONDict:
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.post(f"{self.base_url}{path}", json=payload) as response,
        ):
            answer = await response.json()
            if response.status >= 400 or not isinstance(answer, dict):
                raise RuntimeError(f"the Slack emulator refused {path}: {answer}")
            return answer

    async def workspace(self) -> JSONDict:
        """The workspace's ids, users and channels (read once, again when a user is not found)."""
        if self._workspace is None:
            self._workspace = await self.get("/_sandbox/workspace")
        return self._workspace

    async def user(self, user_id: str) -> JSONDict:
        for refresh in (False, True):
            if refresh:
                self._workspace = None
            workspace = await self.workspace()
            for user in workspace.get("users", []):
                if user.get("id") == user_id:
                    return dict(user)
        return {"id": user_id, "name": user_id}

    @staticmethod
    def channel_name(workspace: JSONDict, channel_id: str) -> str:
        for channel in workspace.get("channels", []):
            if channel.get("id") == channel_id:
                return str(channel.get("name", channel_id))
        return channel_id

    async def trigger(self, user_id: str, view_id: str | None = None) -> str:
        """A fresh ``trigger_id`` for ``user_id`` (for a view submission, tied to its view)."""
        request: JSONDict = {"user_id": user_id}
        if view_id:
            request["view_id"] = view_id
        return str((await self.post("/_sandbox/triggers", request))["trigger_id"])

    async def response_url(self, **context: Any) -> str:
        """A fresh ``response_url`` answering in ``context`` (channel, user, message...)."""
        request = {k: v for k, v in context.items() if v is not None}
        return str((await self.post("/_sandbox/response_urls", request))["response_url"])


def json_object(text: str) -> JSONDict:
    """``text`` as a JSON object; anything else (empty, not JSON, not an object) as ``{}``."""
    try:
        answer = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
