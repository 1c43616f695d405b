"""Socket Mode against the emulator, with Bolt's real ``AsyncSocketModeHandler`` on the other end.

The emulator runs in its ServerThread with a frozen clock (ack deadlines move only when a test
advances it); the Bolt app and its handlers run in the test's loop. ``process_before_response``
makes Bolt finish each listener before it acks, so a test reads the listener's effects as soon as
the driver has the ack. Rate limits stay on: a reconnecting client must not be held back by them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import DEFAULT_APP_TOKEN, Clock, SlackEmulator, SocketModeDriver, SocketSettings
from tests.sandbox.slack_requests import SLASH_FIELDS, TOKEN, reject_modal


@dataclass
class Seen:
    commands: list[dict[str, Any]] = field(default_factory=list)
    retry_headers: list[tuple[str | None, str | None]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Every message a Socket Mode client read, with the index of the handler that read it."""


def build_bolt(emulator_url: str, seen: Seen) -> AsyncApp:
    client = AsyncWebClient(token=TOKEN, base_url=f"{emulator_url}/api/", timeout=10)
    app = AsyncApp(client=client, process_before_response=True)

    @app.command("/deploy")
    async def deploy(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        seen.commands.append(command)
        if command["text"] == "modal":
            await client.views_open(trigger_id=command["trigger_id"], view=reject_modal())
            await ack()
            return
        await client.chat_postMessage(
            channel=command["channel_id"],
            text=f"Deploying {command['text']}",
            blocks=[
                {
                    "type": "actions",
                    "block_id": "decide",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "approve",
                            "value": command["text"],
                            "text": {"type": "plain_text", "text": "Approve"},
                        }
                    ],
                }
            ],
        )
        await ack(f"Queued {command['text']}")

    @app.command("/flaky")
    async def flaky(ack: Any, command: dict[str, Any], request: Any) -> None:
        """Acks only a redelivery: the first delivery times out."""
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        seen.retry_headers.append((retry, request.headers.get("x-slack-retry-reason", [None])[0]))
        if retry is not None:
            await ack(f"Second time lucky: {command['text']}")

    @app.command("/silent")
    async def silent(command: dict[str, Any]) -> None:
        seen.commands.append(command)  # and never acks

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        seen.actions.append(body)
        await client.chat_postMessage(
            channel=body["channel"]["id"],
            thread_ts=body["container"]["message_ts"],
            text=f"Approved by <@{body['user']['id']}>",
        )
        await respond(replace_original=True, text="Approved")
        await ack()

    @app.view("reject")
    async def rejected(ack: Any, view: dict[str, Any]) -> None:
        if not view["state"]["values"]["reason"]["text"]["value"]:
            await ack(response_action="errors", errors={"reason": "Say why"})
            return
        await ack()

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"Hello <@{event['user']}>"}}]
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": blocks})

    return app


@dataclass
class World:
    emulator: SlackEmulator
    emulator_url: str
    app: AsyncApp
    seen: Seen
    driver: SocketModeDriver
    client: AsyncWebClient
    handlers: list[AsyncSocketModeHandler] = field(default_factory=list)

    async def connect(self) -> AsyncSocketModeHandler:
        """One more Socket Mode connection of the app, by one more Bolt handler."""
        handler = AsyncSocketModeHandler(self.app, DEFAULT_APP_TOKEN)
        index = len(self.handlers)

        async def remember(
            client: AsyncBaseSocketModeClient, message: dict[str, Any], raw: str | None
        ) -> None:
            self.seen.messages.append((index, message))

        handler.client.message_listeners.append(remember)
        self.handlers.append(handler)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await self.driver.connections(open_count=len(self.handlers), wait=5)
        return handler

    async def control(self, path: str, **query: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.emulator_url}/_sandbox/{path}", params=query) as response,
        ):
            return await response.json()

    def socket_events(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self.emulator.socket.log() if e["event"] in names]


@pytest.fixture
def emulator() -> Iterator[tuple[SlackEmulator, str]]:
    emulator = SlackEmulator(token=TOKEN, clock=Clock(scale=0))
    with ServerThread(emulator.app, name="slack") as thread:
        yield emulator, thread.url


@pytest.fixture
async def world(emulator: tuple[SlackEmulator, str]) -> AsyncIterator[World]:
    emu, url = emulator
    seen = Seen()
    client = AsyncWebClient(token=TOKEN, base_url=f"{url}/api/", timeout=10)
    world = World(emu, url, build_bolt(url, seen), seen, SocketModeDriver(url, ack_wait=5), client)
    try:
        yield world
    finally:
        for handler in world.handlers:
            await handler.close_async()  # type: ignore[no-untyped-call]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for something the emulator's thread does (a delivery), up to ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_a_slash_command_is_delivered_and_its_ack_carries_the_reply(world: World) -> None:
    await world.connect()

    answer = await world.driver.slash_command("/deploy", "checkout 1.4.2", user_id="U0ALICE")

    assert answer.status == 200
    assert answer.json() == {"text": "Queued checkout 1.4.2"}, "Bolt's ack(text) rides in the ack"
    assert set(answer.sent) == SLASH_FIELDS
    assert {k: world.seen.commands[0][k] for k in SLASH_FIELDS} == answer.sent
    envelope = answer.envelope
    assert envelope is not None
    assert (envelope["type"], envelope["accepts_response_payload"], envelope["state"]) == (
        "slash_commands",
        True,
        "acked",
    )
    assert [(a["retry_attempt"], a["connection_id"]) for a in envelope["attempts"]] == [(0, "c1")]
    hello = [m for _, m in world.seen.messages if m.get("type") == "hello"]
    assert hello == [
        {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {
                "host": "applink-sandbox",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": "A0SHIPTHREAD"},
        }
    ]
    delivered = next(m for _, m in world.seen.messages if m.get("envelope_id") == envelope["envelope_id"])
    assert set(delivered) == {"envelope_id", "payload", "type", "accepts_response_payload"}
    assert [e["event"] for e in world.emulator.socket.log()] == [
        "ticket",
        "connected",
        "envelope",
        "delivered",
        "ack",
    ]
    history = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert [m["text"] for m in history] == ["Deploying checkout 1.4.2"]


async def test_a_block_action_reaches_its_listener_and_is_acked_without_a_payload(world: World) -> None:
    await world.connect()
    await world.driver.slash_command("/deploy", "checkout 1.4.2")
    parent = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"][0]

    answer = await world.driver.click_button("C0DEPLOYS", parent["ts"], "approve", "U0BOB")

    assert (answer.status, answer.body) == (200, "")
    assert answer.envelope is not None
    assert (answer.envelope["type"], answer.envelope["accepts_response_payload"]) == ("interactive", False)
    body = world.seen.actions[0]
    assert body == answer.sent, "Bolt got the payload the HTTP driver would have sent"
    assert (body["type"], body["actions"][0]["action_id"], body["actions"][0]["value"]) == (
        "block_actions",
        "approve",
        "checkout 1.4.2",
    )
    thread = (await world.client.conversations_replies(channel="C0DEPLOYS", ts=parent["ts"]))["messages"]
    assert [m["text"] for m in thread] == ["Approved", "Approved by <@U0BOB>"]


async def test_a_view_submission_is_answered_in_the_ack(world: World) -> None:
    await world.connect()
    await world.driver.slash_command("/deploy", "modal", user_id="U0BOB")
    view_id = (await world.control("views", user="U0BOB"))["views"][0]["id"]

    empty = await world.driver.submit_view(view_id, {}, user_id="U0BOB")

    assert empty.status == 200
    assert empty.envelope is not None and empty.envelope["accepts_response_payload"] is True
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "Say why"}}
    assert (await world.control(f"views/{view_id}"))["closed"] is False

    done = await world.driver.submit_view(view_id, {"reason": {"text": "too risky"}}, user_id="U0BOB")

    assert (done.status, done.body) == (200, "")
    assert (await world.control(f"views/{view_id}"))["closed"] is True


async def test_an_event_envelope_carries_retry_fields_and_bolt_acks_it(world: World) -> None:
    await world.connect()

    answer = await world.driver.app_home_opened("U0ALICE")

    assert answer.status == 200
    assert answer.envelope is not None and answer.envelope["type"] == "events_api"
    delivered = next(m for _, m in world.seen.messages if m.get("type") == "events_api")
    assert (delivered["retry_attempt"], delivered["retry_reason"], delivered["accepts_response_payload"]) == (
        0,
        "",
        False,
    )
    homes = (await world.control("views", user="U0ALICE"))["views"]
    assert [v["type"] for v in homes] == ["home"]


async def test_an_unacked_envelope_is_redelivered_to_the_next_connection(world: World) -> None:
    await world.connect()
    await world.connect()

    sending = asyncio.create_task(world.driver.slash_command("/flaky", "web 2.0"))
    await until(lambda: len(world.seen.retry_headers) == 1)
    assert world.socket_events("redelivered") == [], "nothing is sent again before the deadline"
    world.emulator.clock.advance(3.0)  # Slack's ack timeout
    answer = await sending

    assert answer.status == 200
    assert answer.json() == {"text": "Second time lucky: web 2.0"}
    assert answer.envelope is not None
    attempts = [
        (a["retry_attempt"], a["retry_reason"], a["connection_id"]) for a in answer.envelope["attempts"]
    ]
    assert attempts == [(0, "", "c1"), (1, "timeout", "c2")], "same envelope, next connection"
    assert world.seen.retry_headers == [(None, None), ("1", "timeout")]
    assert [(a["retry_attempt"], a["connection_id"]) for a in answer.envelope["acks"]] == [(1, "c2")]
    redelivered = [m for i, m in world.seen.messages if i == 1 and m.get("retry_attempt") == 1]
    assert [m["envelope_id"] for m in redelivered] == [answer.envelope["envelope_id"]]
    hellos = [(i, m["num_connections"]) for i, m in world.seen.messages if m.get("type") == "hello"]
    assert hellos == [(0, 1), (1, 2)]


async def test_an_envelope_never_acked_is_dropped_after_the_retry_budget(world: World) -> None:
    world.emulator.socket.settings = SocketSettings(ack_timeout=1.0, max_retries=1)
    await world.connect()
    world.driver.ack_wait = 0.3

    first = await world.driver.slash_command("/silent", "x")
    assert first.status == 408 and first.envelope is not None and first.envelope["state"] == "sent"
    world.emulator.clock.advance(1.0)
    await until(lambda: len(world.seen.commands) == 2)
    world.emulator.clock.advance(1.0)
    await until(lambda: bool(world.socket_events("dropped")))

    envelope = world.emulator.socket.envelope(first.envelope["envelope_id"])
    assert envelope is not None
    assert (envelope["state"], [a["retry_attempt"] for a in envelope["attempts"]], envelope["acks"]) == (
        "dropped",
        [0, 1],
        [],
    )
    world.emulator.clock.advance(5.0)
    await asyncio.sleep(0.1)
    assert len(world.seen.commands) == 2, "a dropped envelope is not sent again"


async def test_a_disconnect_makes_bolt_reconnect_and_delivery_carries_on(world: World) -> None:
    await world.connect()
    assert (await world.driver.slash_command("/deploy", "web 1.0")).status == 200

    told = await world.driver.disconnect("refresh_requested")
    connections = await world.driver.connections(open_count=1, wait=5)
    answer = await world.driver.slash_command("/deploy", "web 2.0")

    assert told == ["c1"]
    disconnect = [(e["connection_id"], e["reason"]) for e in world.socket_events("disconnect")]
    assert disconnect == [("c1", "refresh_requested")]
    assert [(c["id"], c["state"]) for c in connections][-1] == ("c2", "open")
    assert answer.status == 200 and answer.json() == {"text": "Queued web 2.0"}
    assert answer.envelope is not None and answer.envelope["attempts"][0]["connection_id"] == "c2"
    opened = world.emulator.calls("apps.connections.open")
    assert [(c["ok"], c["status"]) for c in opened] == [(True, 200), (True, 200)], "not rate limited"
    await until(lambda: world.emulator.socket.connections()[0]["state"] == "closed")


async def test_app_level_tokens_only_open_connections(world: World) -> None:
    client = AsyncWebClient(base_url=f"{world.emulator_url}/api/", timeout=10)

    with pytest.raises(SlackApiError) as bot_token:
        await client.apps_connections_open(app_token=TOKEN)
    with pytest.raises(SlackApiError) as unknown:
        await client.apps_connections_open(app_token="xapp-1-not-registered")
    with pytest.raises(SlackApiError) as app_token_elsewhere:
        await AsyncWebClient(token=DEFAULT_APP_TOKEN, base_url=f"{world.emulator_url}/api/").chat_postMessage(
            channel="C0DEPLOYS", text="hi"
        )
    opened = await client.apps_connections_open(app_token=DEFAULT_APP_TOKEN)

    assert bot_token.value.response["error"] == "not_allowed_token_type"
    assert unknown.value.response["error"] == "invalid_auth"
    assert app_token_elsewhere.value.response["error"] == "not_allowed_token_type"
    host = world.emulator_url.removeprefix("http://")
    assert opened["url"].startswith(f"ws://{host}/link/?ticket=")
    assert opened["url"].endswith("&app_id=A0SHIPTHREAD")


async def test_a_ticket_opens_one_connection_and_the_app_has_at_most_max_connections(world: World) -> None:
    client = AsyncWebClient(base_url=f"{world.emulator_url}/api/", timeout=10)
    world.emulator.socket.settings = SocketSettings(max_connections=1)
    first_url = (await client.apps_connections_open(app_token=DEFAULT_APP_TOKEN))["url"]
    second_url = (await client.apps_connections_open(app_token=DEFAULT_APP_TOKEN))["url"]

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.ws_connect(first_url) as first,
    ):
        assert (await first.receive_json())["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
            await session.ws_connect(first_url)
        async with session.ws_connect(second_url) as second:
            refused = await second.receive_json()
            closing = await second.receive()

    assert reused.value.status == 401
    assert refused == {
        "type": "disconnect",
        "reason": "too_many_websockets",
        "debug_info": {"host": "applink-sandbox"},
    }
    assert closing.type == aiohttp.WSMsgType.CLOSE


async def test_apps_connections_open_is_tier_1_with_a_small_burst(world: World) -> None:
    client = AsyncWebClient(base_url=f"{world.emulator_url}/api/", timeout=10)
    for _ in range(5):
        await client.apps_connections_open(app_token=DEFAULT_APP_TOKEN)

    with pytest.raises(SlackApiError) as limited:
        await client.apps_connections_open(app_token=DEFAULT_APP_TOKEN)

    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert 1 <= int(limited.value.response.headers["Retry-After"]) <= 60


async def test_a_connection_slack_hangs_up_on_is_replaced(world: World) -> None:
    await world.connect()
    await world.driver.disconnect(notify=False)

    connections = await world.driver.connections(open_count=1, wait=5)
    answer = await world.driver.slash_command("/deploy", "web 3.0")

    assert [(c["id"], c["state"]) for c in connections] == [("c1", "closed"), ("c2", "open")]
    assert answer.status == 200 and answer.json() == {"text": "Queued web 3.0"}
