"""Send requests to a Slack app exactly as Slack does: signed slash commands, clicks, submissions, events.

The other direction from the emulator in ``bot.sandbox.slack``: Slack calls the app. Tests of the
Bolt app and the sandbox need to type ``/deploy ...``, click a button in a message the bot posted,
submit a modal or open the Home tab, with the bodies, headers and signature Slack would send, so
that Bolt's own request verification and parsing run unchanged. What a real request carries that
only Slack can mint (``trigger_id``, ``response_url``) is minted by the emulator, so ``views.open``
and ``respond()`` work against it; the button is found in the message as the emulator stored it.

Field names follow Slack's payload reference: slash commands are form-encoded (``token``,
``team_id``, ``team_domain``, ``channel_id``, ``channel_name``, ``user_id``, ``user_name``,
``command``, ``text``, ``api_app_id``, ``is_enterprise_install``, ``response_url``,
``trigger_id``); interactions are a form field ``payload`` holding JSON; events are JSON.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack import blocks as slack_blocks
from bot.sandbox.slack.driver_emulator import EmulatorCalls, json_object
from bot.sandbox.slack.records import JSONDict
from bot.sandbox.slack.socket_records import EVENTS_API, INTERACTIVE, SLASH_COMMANDS
from bot.sandbox.slack.view_state import view_state

FORM: Final = "application/x-www-form-urlencoded"
JSON_TYPE: Final = "application/json"


@dataclass(frozen=True)
class DriverResponse:
    """What the app answered, and what was sent to it."""

    status: int
    body: str
    headers: Mapping[str, str]
    sent: JSONDict = field(default_factory=dict)
    """The fields (slash command) or payload (interactions, events) that were sent."""
    envelope: JSONDict | None = None
    """Over Socket Mode: the emulator's record of the envelope (attempts, acks)."""

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class SlackDriver:
    """Plays Slack towards the app at ``app_url`` (its request URL, e.g. ``.../slack/events``).

    ``signing_secret`` signs every request; give a wrong one to check the app refuses it.
    ``emulator_url`` is the Slack emulator's base URL: the driver reads messages and views there
    and has it mint trigger ids and response URLs.
    """

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        emulator_url: str,
        *,
        verification_token: str = "sandbox-verification-token",  # noqa: S107 -- Slack's legacy field, unused by Bolt
        timeout: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_url = app_url
        self.emulator_url = emulator_url.rstrip("/")
        self._verifier = SignatureVerifier(signing_secret)
        self._verification_token = verification_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._wall_clock = wall_clock
        self.emulator = EmulatorCalls(self.emulator_url, self._timeout)
        """What the driver reads from the emulator, and what it has it mint."""

    # -- what a person does --------------------------------------------------------------------

    async def slash_command(
        self,
        command: str,
        text: str = "",
        user_id: str = "U0ALICE",
        channel_id: str = "C0DEPLOYS",
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> DriverResponse:
        """Type ``command text`` in ``channel_id`` as ``user_id``."""
        workspace = await self.emulator.workspace()
        user = await self.emulator.user(user_id)
        fields = {
            "token": self._verification_token,
            "team_id": workspace["team_id"],
            "team_domain": workspace["team_domain"],
            "channel_id": channel_id,
            "channel_name": self.emulator.channel_name(workspace, channel_id),
            "user_id": user_id,
            "user_name": user.get("name", user_id),
            "command": command if command.startswith("/") else f"/{command}",
            "text": text,
            "api_app_id": workspace["app_id"],
            "is_enterprise_install": "false",
            "response_url": await self.emulator.response_url(channel_id=channel_id, user_id=user_id),
            "trigger_id": await self.emulator.trigger(user_id),
        }
        return await self._deliver(SLASH_COMMANDS, fields, retry_num, retry_reason)

    async def click_button(
        self,
        channel: str,
        ts: str,
        action_id: str,
        user_id: str = "U0BOB",
        *,
        block_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> DriverResponse:
        """Click the button ``action_id`` of the message ``ts`` in ``channel``, as the emulator holds it.

        Raises ``LookupError`` when the message or the button is not there (a test mistake, or a
        message the app never posted).
        """
        workspace = await self.emulator.workspace()
        found = await self.emulator.get("/_sandbox/message", channel=channel, ts=ts)
        if not found.get("ok"):
            raise LookupError(f"no message {ts} in {channel}")
        message: JSONDict = found["message"]
        is_ephemeral = bool(found.get("is_ephemeral"))
        button_block, button = self._find_button(message.get("blocks") or [], action_id, block_id)
        user = await self.emulator.user(user_id)
        thread_ts = message.get("thread_ts") if message.get("thread_ts") != message.get("ts") else None
        container: JSONDict = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": is_ephemeral,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        action = _button_action(button, button_block, f"{self._wall_clock():.6f}")
        payload: JSONDict = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user.get("name", user_id), "name": user.get("name", user_id)},
            "api_app_id": workspace["app_id"],
            "token": self._verification_token,
            "container": container,
            "trigger_id": await self.emulator.trigger(user_id),
            "team": {"id": workspace["team_id"], "domain": workspace["team_domain"]},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.emulator.channel_name(workspace, channel)},
            "state": {"values": {}},
            "response_url": await self.emulator.response_url(
                channel_id=channel,
                user_id=user_id,
                message_ts=ts,
                is_ephemeral=is_ephemeral,
                thread_ts=thread_ts,
            ),
            "actions": [action],
        }
        payload["user"]["team_id"] = workspace["team_id"]
        if not is_ephemeral:
            payload["message"] = message
        return await self._deliver(INTERACTIVE, payload, retry_num, retry_reason)

    async def submit_view(
        self,
        view_id: str,
        values: Mapping[str, Any],
        user_id: str = "U0BOB",
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> DriverResponse:
        """Press Submit on the modal ``view_id`` with ``values`` typed into its inputs.

        ``values`` maps a block_id to ``{action_id: value}``, or an action_id straight to its
        value; a plain value (text, option value, user id, date...) is shaped as Slack shapes that
        element's state, a mapping with a ``type`` is sent as given. Inputs left out are sent
        empty, as Slack does. The app's answer (close, clear, update, push, errors) is applied to
        the emulator's view stack.
        """
        workspace = await self.emulator.workspace()
        found = await self.emulator.get(f"/_sandbox/views/{view_id}")
        if not found.get("ok"):
            raise LookupError(f"no view {view_id} in the emulator")
        view: JSONDict = found["view"]
        state = view_state(view.get("blocks") or [], values)
        user = await self.emulator.user(user_id)
        payload: JSONDict = {
            "type": "view_submission",
            "team": {"id": workspace["team_id"], "domain": workspace["team_domain"]},
            "user": {
                "id": user_id,
                "username": user.get("name", user_id),
                "name": user.get("name", user_id),
                "team_id": workspace["team_id"],
            },
            "api_app_id": workspace["app_id"],
            "token": self._verification_token,
            "trigger_id": await self.emulator.trigger(user_id, view_id=view_id),
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        response = await self._deliver(INTERACTIVE, payload, retry_num, retry_reason)
        if response.status == 200:
            answer = json_object(response.body)
            await self.emulator.post(f"/_sandbox/views/{view_id}/response", {**answer, "state": state})
        return response

    async def app_home_opened(
        self,
        user_id: str = "U0ALICE",
        *,
        tab: str = "home",
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> DriverResponse:
        """The Events API ``app_home_opened`` callback; pass the same ``event_id`` to redeliver."""
        workspace = await self.emulator.workspace()
        now = self._wall_clock()
        event: JSONDict = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id.removeprefix("U"),
            "tab": tab,
            "event_ts": f"{now:.6f}",
        }
        views = await self.emulator.get("/_sandbox/views", user=user_id)
        home = [v for v in views.get("views", []) if v.get("type") == "home"]
        if home:
            event["view"] = {k: v for k, v in home[-1].items() if k not in ("user_id", "closed")}
        payload: JSONDict = {
            "token": self._verification_token,
            "team_id": workspace["team_id"],
            "api_app_id": workspace["app_id"],
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": workspace["team_id"],
                    "user_id": workspace["bot_user_id"],
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }
        return await self._deliver(EVENTS_API, payload, retry_num, retry_reason)

    async def url_verification(self, challenge: str | None = None) -> DriverResponse:
        """The handshake Slack sends when the request URL is saved; the app must echo ``challenge``."""
        payload = {
            "token": self._verification_token,
            "challenge": challenge or secrets.token_urlsafe(32),
            "type": "url_verification",
        }
        return await self.send(json.dumps(payload), JSON_TYPE, sent=payload)

    # -- the wire --------------------------------------------------------------------------------

    async def send(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        sent: JSONDict | None = None,
    ) -> DriverResponse:
        """POST ``body`` to the app, signed as Slack signs (``timestamp`` defaults to now)."""
        stamp = str(int(self._wall_clock()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=stamp, body=body)
        if signature is None:  # slack-sdk returns None only for a missing timestamp or body
            raise ValueError("cannot sign a request without a timestamp and a body")
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.post(self.app_url, data=body.encode(), headers=headers) as response,
        ):
            text = await response.text()
            return DriverResponse(response.status, text, dict(response.headers), sent or {})

    async def _deliver(
        self, kind: str, sent: JSONDict, retry_num: int | None, retry_reason: str | None
    ) -> DriverResponse:
        """Hand ``sent`` to the app the way Slack does over HTTP: a form, a form ``payload`` or JSON.

        ``kind`` is the Socket Mode envelope type it would travel as (``SocketModeDriver``).
        """
        if kind == SLASH_COMMANDS:
            body, content_type = urlencode(sent), FORM
        elif kind == INTERACTIVE:
            body, content_type = urlencode({"payload": json.dumps(sent)}), FORM
        else:
            body, content_type = json.dumps(sent), JSON_TYPE
        return await self.send(
            body, content_type, sent=dict(sent), retry_num=retry_num, retry_reason=retry_reason
        )

    @staticmethod
    def _find_button(blocks: list[Any], action_id: str, block_id: str | None) -> tuple[str, JSONDict]:
        for found_block, element in slack_blocks.interactive_elements(blocks):
            if element.get("action_id") == action_id and block_id in (None, found_block):
                if element.get("type") != "button":
                    raise LookupError(f"{action_id} is a {element.get('type')}, not a button")
                return found_block, element
        raise LookupError(f"no button {action_id!r} in the message")


def _button_action(button: JSONDict, block_id: str, action_ts: str) -> JSONDict:
    """The ``actions[0]`` of a ``block_actions`` payload: the button as Slack reports its click."""
    action: JSONDict = {
        "action_id": button["action_id"],
        "block_id": block_id,
        "text": button.get("text"),
        "type": "button",
        "action_ts": action_ts,
    }
    for optional in ("value", "style", "url", "confirm"):
        if optional in button:
            action[optional] = button[optional]
    return action
