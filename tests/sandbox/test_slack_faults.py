"""The Slack emulator's channel listing, membership, metadata on request, and faults on demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import Channel, SlackEmulator, parse_fault


@pytest.fixture
def emulator() -> Iterator[tuple[SlackEmulator, AsyncWebClient]]:
    emu = SlackEmulator()
    with ServerThread(emu.app, name="slack") as server:
        yield (
            emu,
            AsyncWebClient(token="xoxb-sandbox", base_url=f"{server.url}/api/", timeout=1, retry_handlers=[]),
        )


async def test_channels_are_listed_page_by_page_with_membership(
    emulator: tuple[SlackEmulator, AsyncWebClient],
) -> None:
    emu, client = emulator
    emu.add_channel(Channel("C0OUTSIDE", "outside", is_member=False))
    emu.add_channel(Channel("G0SECRET", "secret", is_private=True))
    seen, cursor = [], None
    while True:
        page = await client.conversations_list(types="public_channel,private_channel", limit=2, cursor=cursor)
        seen += [(c["name"], c["is_member"]) for c in page["channels"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [("deploys", True), ("general", True), ("outside", False), ("secret", True)]
    public = await client.conversations_list()
    assert {c["name"] for c in public["channels"]} == {"deploys", "general", "outside"}
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0OUTSIDE", text="hi")
    assert refused.value.response["error"] == "not_in_channel"


async def test_metadata_comes_back_only_when_asked_for(
    emulator: tuple[SlackEmulator, AsyncWebClient],
) -> None:
    _, client = emulator
    meta = {"event_type": "shipthread_message", "event_payload": {"key": "card"}}
    await client.chat_postMessage(channel="C0DEPLOYS", text="card", metadata=meta)
    plain = await client.conversations_history(channel="C0DEPLOYS")
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel="C0DEPLOYS", include_all_metadata=True)
    assert full["messages"][0]["metadata"] == meta


async def test_faults_answer_500_hang_or_lose_the_answer_of_a_done_post(
    emulator: tuple[SlackEmulator, AsyncWebClient],
) -> None:
    emu, client = emulator
    with emu._lock:
        now = emu.clock.now()
        emu.faults.add(parse_fault({"mode": "error", "calls": 1}, now))
        emu.faults.add(parse_fault({"mode": "accept_then_hang", "calls": 1, "hang_s": 2}, now))
        emu.faults.add(parse_fault({"mode": "hang", "calls": 1, "hang_s": 2}, now))
    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel="C0DEPLOYS", text="one")
    assert failed.value.response.status_code == 500
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="C0DEPLOYS", text="two")  # done, answer lost
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="C0DEPLOYS", text="three")  # never done
    assert time.monotonic() - started >= 1.9
    await client.chat_postMessage(channel="C0DEPLOYS", text="four")
    await asyncio.sleep(2.2)  # let the held requests end
    assert [m["text"] for m in emu.messages("C0DEPLOYS")] == ["two", "four"]
