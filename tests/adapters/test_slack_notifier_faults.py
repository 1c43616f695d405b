"""The notifier when the workspace is the problem: a refused token, a channel fixed later, a
workspace with thousands of channels under Slack's Tier 2 — real slack-sdk against the emulator."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from bot.adapters.slack_notifier import SlackNotifier
from bot.adapters.slack_pacing import Pacing
from bot.domain.events import BuildQueued
from bot.domain.notifications import DeploymentOpened, PhaseChanged
from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import DEFAULT_CHANNELS, Channel, SlackEmulator, emulator_of
from bot.store.threads import ThreadStore
from tests.adapters.slack_support import plan
from tests.adapters.test_slack_notifier import QUICK, control, dep, notifier, posts
from tests.adapters.test_slack_notifier import slack as slack  # the fixtures
from tests.adapters.test_slack_notifier import store as store


async def test_a_refused_token_gives_no_message_up_and_all_is_sent_once_it_is_fixed(
    slack: ServerThread, store: ThreadStore
) -> None:
    broken = SlackNotifier(
        store,
        plan,
        token="xoxb-rotated-away",
        base_url=f"{slack.url}/api/",
        channel_for=lambda dep: "#deploys",
        options=QUICK,
    )
    await broken.start()
    try:
        await broken.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        await broken.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))
        await asyncio.sleep(1.0)
    finally:
        broken.options = replace(broken.options, drain_s=0.1)
        await broken.close()
    errors = {c["error"] for c in emulator_of(slack.app).calls()}
    assert errors == {"invalid_auth"}, errors
    assert all(m.error is None for m in await store.messages("d1"))
    fixed = notifier(slack, store)  # the operator put the right token back and restarted
    await fixed.start()
    try:
        assert await fixed.drain(10)
    finally:
        await fixed.close()
    assert len([c for c in posts(slack) if c["ok"]]) == 2  # the card and its reply


async def test_a_card_refused_for_its_channel_is_sent_once_the_bot_is_invited(
    slack: ServerThread, store: ThreadStore
) -> None:
    control(slack, "POST", "channels", {"id": "C0PRIVATE", "name": "releases", "is_member": False})
    relisting = replace(QUICK, channels_refresh_s=0.3, pacing=Pacing(listings_per_minute=600))
    chat = notifier(slack, store, options=relisting, channels=("#releases",))
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#releases"))
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))
        assert await chat.drain(5)  # nothing left it may send: the reply waits for its card
        refused = len(posts(slack))  # each new content of the card is tried once
        assert refused >= 1 and {c["error"] for c in posts(slack)} == {"not_in_channel"}
        control(slack, "POST", "channels", {"id": "C0PRIVATE", "name": "releases", "is_member": True})
        await asyncio.sleep(1.0)
        assert await chat.drain(5)
    finally:
        await chat.close()
    assert [c["ok"] for c in posts(slack)] == [False] * refused + [True, True]
    assert all(m.ts is not None for m in await store.messages("d1"))


async def test_a_name_resolves_in_a_workspace_of_5000_channels_without_a_429(store: ThreadStore) -> None:
    many = [Channel(f"C1{i:07d}", f"team-{i}", is_member=False) for i in range(5000)]
    with ServerThread(SlackEmulator(channels=[*DEFAULT_CHANNELS, *many]).app, name="slack") as slack:
        # Slack's Tier 2 (20 a minute): listing 200 at a time would take 26 calls at once.
        chat = notifier(slack, store, options=replace(QUICK, pacing=Pacing(read_burst=6)))
        await chat.start()
        try:
            await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
            assert await chat.drain(20)
            assert await chat.problems() == []
        finally:
            await chat.close()
        calls: list[dict[str, Any]] = emulator_of(slack.app).calls()
    listing = [c for c in calls if c["method"] == "conversations.list"]
    assert [c["status"] for c in calls if c["status"] == 429] == []
    assert 1 <= len(listing) <= 6, len(listing)
    assert [c["ok"] for c in calls if c["method"] == "chat.postMessage"] == [True]
