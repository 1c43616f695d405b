"""The driver plays Slack towards a real slack-bolt AsyncApp, which answers through the emulator.

The Bolt app is served by its own aiohttp adapter on a random port in the test's loop; the
emulator runs in its ServerThread. ``process_before_response`` makes Bolt finish each listener
before it answers, so a test reads the listener's effects as soon as the driver returns.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import FORM, Clock, SlackDriver, SlackEmulator, view_state
from tests.sandbox.slack_requests import SLASH_FIELDS, TOKEN, reject_modal

SECRET = "sandbox-signing-secret"


@dataclass
class Seen:
    commands: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)


def build_bolt(emulator_url: str, seen: Seen) -> AsyncApp:
    client = AsyncWebClient(token=TOKEN, base_url=f"{emulator_url}/api/", timeout=10)
    app = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)

    @app.middleware
    async def remember_headers(req: Any, resp: Any, next: Any) -> Any:
        seen.headers.append(dict(req.headers))
        return await next()

    @app.command("/deploy")
    async def deploy(ack: Any, command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        seen.commands.append(command)
        if command["text"] == "modal":
            await client.views_open(trigger_id=command["trigger_id"], view=reject_modal())
            return
        await respond(f"Queued {command['text']}")
        await client.chat_postMessage(
            channel=command["channel_id"],
            text=f"Deploying {command['text']}",
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": f"Deploying *{command['text']}*"}},
                {
                    "type": "actions",
                    "block_id": "decide",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "approve",
                            "style": "primary",
                            "value": command["text"],
                            "text": {"type": "plain_text", "text": "Approve"},
                        },
                        {
                            "type": "button",
                            "action_id": "reject",
                            "text": {"type": "plain_text", "text": "Reject"},
                        },
                    ],
                },
            ],
        )

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        seen.actions.append(body)
        await client.chat_postMessage(
            channel=body["channel"]["id"],
            thread_ts=body["container"]["message_ts"],
            text=f"Approved by <@{body['user']['id']}>",
        )
        await respond(replace_original=True, text="Approved")

    @app.action("reject")
    async def reject(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(
            trigger_id=body["trigger_id"], view=reject_modal(body["container"]["message_ts"])
        )

    @app.view("reject")
    async def rejected(ack: Any, view: dict[str, Any]) -> None:
        reason = view["state"]["values"]["reason"]["text"]["value"]
        if not reason:
            await ack(response_action="errors", errors={"reason": "Say why"})
            return
        seen.submissions.append(view)
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
    app_url: str
    seen: Seen
    driver: SlackDriver
    client: AsyncWebClient

    async def control(self, path: str, **query: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.emulator_url}/_sandbox/{path}", params=query) as response,
        ):
            return await response.json()


@pytest.fixture
def emulator() -> Iterator[tuple[SlackEmulator, str]]:
    emulator = SlackEmulator(token=TOKEN, clock=Clock(scale=0), rate_limits=False)
    with ServerThread(emulator.app, name="slack") as thread:
        yield emulator, thread.url


@pytest.fixture
async def world(emulator: tuple[SlackEmulator, str]) -> AsyncIterator[World]:
    emu, emulator_url = emulator
    seen = Seen()
    runner = web.AppRunner(build_bolt(emulator_url, seen).web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    app_url = f"http://127.0.0.1:{port}/slack/events"
    client = AsyncWebClient(token=TOKEN, base_url=f"{emulator_url}/api/", timeout=10)
    try:
        yield World(emu, emulator_url, app_url, seen, SlackDriver(app_url, SECRET, emulator_url), client)
    finally:
        await runner.cleanup()


async def test_a_signed_slash_command_reaches_the_listener_which_posts_back(world: World) -> None:
    answer = await world.driver.slash_command(
        "/deploy", "checkout 1.4.2", user_id="U0ALICE", channel_id="C0DEPLOYS"
    )

    assert answer.status == 200
    assert set(answer.sent) == SLASH_FIELDS
    command = world.seen.commands[0]
    assert {k: command[k] for k in SLASH_FIELDS} == answer.sent
    assert (command["user_name"], command["channel_name"], command["team_id"]) == (
        "alice",
        "deploys",
        "T0SANDBOX",
    )
    history = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert [m["text"] for m in history] == ["Deploying checkout 1.4.2"]
    ephemeral = await world.control("ephemeral", user="U0ALICE")
    assert [(m["text"], m["via"]) for m in ephemeral["messages"]] == [
        ("Queued checkout 1.4.2", "response_url")
    ]


async def test_a_click_on_the_posted_button_reaches_its_listener(world: World) -> None:
    await world.driver.slash_command("/deploy", "checkout 1.4.2")
    parent = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"][0]

    answer = await world.driver.click_button("C0DEPLOYS", parent["ts"], "approve", "U0BOB")

    assert answer.status == 200
    body = world.seen.actions[0]
    assert body["type"] == "block_actions"
    assert body["container"] == {
        "type": "message",
        "message_ts": parent["ts"],
        "channel_id": "C0DEPLOYS",
        "is_ephemeral": False,
    }
    action = body["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "decide",
        "checkout 1.4.2",
        "button",
    )
    assert action["text"]["text"] == "Approve" and action["action_ts"]
    assert body["message"]["ts"] == parent["ts"] and body["trigger_id"] and body["response_url"]
    thread = (await world.client.conversations_replies(channel="C0DEPLOYS", ts=parent["ts"]))["messages"]
    assert [m["text"] for m in thread] == ["Approved", "Approved by <@U0BOB>"], "respond() replaced the card"


async def test_a_button_trigger_opens_a_modal_and_its_submission_is_answered(world: World) -> None:
    await world.driver.slash_command("/deploy", "checkout 1.4.2")
    parent = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"][0]
    await world.driver.click_button("C0DEPLOYS", parent["ts"], "reject", "U0BOB")
    views = (await world.control("views", user="U0BOB"))["views"]
    assert [(v["callback_id"], v["private_metadata"], v["closed"]) for v in views] == [
        ("reject", parent["ts"], False)
    ]
    view_id = views[0]["id"]

    empty = await world.driver.submit_view(view_id, {}, user_id="U0BOB")
    assert empty.status == 200
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "Say why"}}
    assert (await world.control(f"views/{view_id}"))["closed"] is False

    answer = await world.driver.submit_view(view_id, {"reason": {"text": "too risky"}}, user_id="U0BOB")

    assert answer.status == 200
    assert answer.sent["view"]["state"]["values"] == {
        "reason": {"text": {"type": "plain_text_input", "value": "too risky"}}
    }
    assert world.seen.submissions[0]["private_metadata"] == parent["ts"]
    assert (await world.control(f"views/{view_id}"))["closed"] is True


async def test_a_slash_command_trigger_opens_a_modal_once(world: World) -> None:
    answer = await world.driver.slash_command("/deploy", "modal", user_id="U0CAROL")

    assert answer.status == 200
    opened = world.emulator.calls("views.open")
    assert [(c["ok"], c["args"]["trigger_id"]) for c in opened] == [(True, answer.sent["trigger_id"])]
    with pytest.raises(SlackApiError) as reused:
        await world.client.views_open(trigger_id=answer.sent["trigger_id"], view=reject_modal())
    assert reused.value.response["error"] == "exchanged_trigger_id"


async def test_a_request_signed_with_the_wrong_secret_is_refused(world: World) -> None:
    impostor = SlackDriver(world.app_url, "not-the-secret", world.emulator_url)

    answer = await impostor.slash_command("/deploy", "checkout 1.4.2")

    assert answer.status == 401
    assert world.seen.commands == []
    assert world.emulator.calls("chat.postMessage") == []

    body = urlencode({"command": "/deploy", "text": "x"})
    stale = await world.driver.send(body, FORM, timestamp=int(time.time()) - 10 * 60)
    assert stale.status == 401


async def test_retries_carry_slacks_retry_headers(world: World) -> None:
    await world.driver.slash_command("/deploy", "web 2.0", retry_num=1, retry_reason="http_timeout")

    headers = world.seen.headers[-1]
    assert headers["x-slack-retry-num"] == ["1"]
    assert headers["x-slack-retry-reason"] == ["http_timeout"]
    assert headers["x-slack-signature"][0].startswith("v0=")


async def test_opening_the_home_tab_publishes_it(world: World) -> None:
    answer = await world.driver.app_home_opened("U0ALICE")

    assert answer.status == 200
    assert answer.sent["type"] == "event_callback" and answer.sent["event_id"].startswith("Ev")
    assert answer.sent["event"]["type"] == "app_home_opened" and answer.sent["event_time"]
    homes = (await world.control("views", user="U0ALICE"))["views"]
    assert [(v["type"], v["blocks"][0]["text"]["text"]) for v in homes] == [("home", "Hello <@U0ALICE>")]

    again = await world.driver.app_home_opened("U0ALICE")
    assert again.sent["event"]["view"]["id"] == homes[0]["id"], "Slack sends the published Home view"


async def test_url_verification_echoes_the_challenge(world: World) -> None:
    answer = await world.driver.url_verification("c-42")

    assert answer.status == 200
    assert answer.json() == {"challenge": "c-42"}


async def test_clicking_a_button_that_is_not_there_is_a_test_mistake(world: World) -> None:
    await world.driver.slash_command("/deploy", "checkout 1.4.2")
    parent = (await world.client.conversations_history(channel="C0DEPLOYS"))["messages"][0]

    with pytest.raises(LookupError, match="no button 'promote'"):
        await world.driver.click_button("C0DEPLOYS", parent["ts"], "promote")
    with pytest.raises(LookupError, match="no message"):
        await world.driver.click_button("C0DEPLOYS", "1.000001", "approve")


def test_view_state_is_shaped_per_element_as_slack_sends_it() -> None:
    def field_block(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "input",
            "block_id": block_id,
            "label": {"type": "plain_text", "text": block_id},
            "element": element,
        }

    option = {"text": {"type": "plain_text", "text": "Production"}, "value": "production"}
    blocks = [
        field_block("env", {"type": "static_select", "action_id": "pick", "options": [option]}),
        field_block("who", {"type": "users_select", "action_id": "user"}),
        field_block("many", {"type": "multi_users_select", "action_id": "users"}),
        field_block("checks", {"type": "checkboxes", "action_id": "c", "options": [option]}),
        field_block("note", {"type": "plain_text_input", "action_id": "text"}),
        {"type": "section", "text": {"type": "mrkdwn", "text": "not an input"}},
    ]

    state = view_state(blocks, {"pick": "production", "who": {"user": "U0BOB"}, "c": ["production"]})

    assert state == {
        "env": {"pick": {"type": "static_select", "selected_option": option}},
        "who": {"user": {"type": "users_select", "selected_user": "U0BOB"}},
        "many": {"users": {"type": "multi_users_select", "selected_users": []}},
        "checks": {"c": {"type": "checkboxes", "selected_options": [option]}},
        "note": {"text": {"type": "plain_text_input", "value": None}},
    }
    with pytest.raises(KeyError, match="nope"):
        view_state(blocks, {"nope": "x"})
