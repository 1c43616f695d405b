"""Hostile text never breaks a message and never pings, mentions or links what we did not put in.

The property test renders whole deployments full of hostile words and checks every message with
the emulator's Block Kit checker in-process (fast); the round trip posts one message of every kind
through the real slack-sdk client to the Slack emulator, as production would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import Clock, SlackEmulator, check_message_blocks
from bot.slack.outgoing import Outgoing
from tests.slack.scenario import (
    APPROVER,
    GRAFANA,
    JENKINS,
    PROMETHEUS,
    REQUESTER,
    Words,
    life,
    other_events,
    run,
)

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U0EVIL>",
    "<!subteam^S1>",
    "<https://evil.test|click>",
    "&",
    "&amp;",
    "&lt;",
    "```",
    "*bold*",
    "🚀🔥",
    "שלום עולם",
    "\u202eevil",
    "\n",
    "|",
    ">",
    "<",
    "`",
    "ü",
    "\x00",
]
hostile_text = st.lists(st.sampled_from(HOSTILE) | st.text(max_size=8), max_size=6).map("".join)
OURS = {f"<@{u}>" for u in (REQUESTER, APPROVER, "U0CAT")}
OUR_LINKS = (PROMETHEUS, JENKINS, GRAFANA)
TOKEN = "xoxb-sandbox"


@pytest.fixture
def slack_client() -> Iterator[AsyncWebClient]:
    """The real slack-sdk client against a Slack emulator (frozen clock, no rate limits)."""
    emulator = SlackEmulator(token=TOKEN, clock=Clock(scale=0), rate_limits=False)
    with ServerThread(emulator.app, name="slack") as thread:
        yield AsyncWebClient(token=TOKEN, base_url=f"{thread.url}/api/", timeout=10)


def all_texts(message: Outgoing) -> list[str]:
    found = [message.text]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list | tuple):
            for child in value:
                walk(child)

    walk(message.blocks)
    return found


def assert_harmless(message: Outgoing) -> None:
    assert check_message_blocks(list(message.blocks)) == [], message.key
    assert message.text.strip() and len(message.text) <= 40_000
    for text in all_texts(message):
        assert "<!" not in text, text
        for mention in re.findall(r"<@[^>]*>", text):
            assert mention in OURS, text
        for link in re.findall(r"<(?!@)[^>]*>", text):
            assert link[1:].startswith(OUR_LINKS), text


def messages(words: Words) -> list[Outgoing]:
    out: list[Outgoing] = []
    for gen in (life(words), other_events(words)):
        for _, p in run(gen):
            out += [*p.thread, *(c.message for c in p.channel)]
            out += [Outgoing("ephemeral", e.text, e.blocks) for e in p.ephemeral]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.builds(
        Words,
        service=hostile_text,
        env=hostile_text,
        version=hostile_text,
        previous=hostile_text,
        reason=hostile_text | st.just("x" * 5000),
        check=hostile_text,
        query=hostile_text,
        message=hostile_text,
        group=hostile_text,
        dep_id=hostile_text.filter(bool),
        console=st.one_of(hostile_text, st.just(("<!channel> &amp; é\n" * 600)[:10_000])),
    )
)
def test_hostile_words_never_break_a_message_or_ping_anyone(words: Words) -> None:
    for message in messages(words):
        assert_harmless(message)


async def test_every_kind_of_message_is_accepted_by_slack(slack_client: AsyncWebClient) -> None:
    words = Words(service="<!channel> & co", reason="<@U0EVIL> " + "é" * 4000, console="x\n" * 10_000)
    parent = await slack_client.chat_postMessage(channel="C0DEPLOYS", text="parent")
    kinds: dict[str, Outgoing] = {}
    for message in messages(words):
        kinds.setdefault(message.key.split(":")[0], message)
    assert set(kinds) >= {
        "card",
        "approval",
        "build",
        "rollout",
        "guard",
        "rollback",
        "lock",
        "approvals",
        "ephemeral",
    }
    for message in kinds.values():
        assert_harmless(message)
        answer = await slack_client.chat_postMessage(
            channel="C0DEPLOYS", thread_ts=parent["ts"], text=message.text, blocks=list(message.blocks)
        )
        assert answer["ok"]
        edited = await slack_client.chat_update(
            channel="C0DEPLOYS", ts=answer["ts"], text=message.text, blocks=list(message.blocks)
        )
        assert edited["ok"]
