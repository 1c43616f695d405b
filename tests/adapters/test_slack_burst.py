"""100 deployments' threads in one channel against Slack's limits: no 429, every card final.

Slack's real limits would make this run for minutes (100 cards and 400 replies in one channel at
one post a second), so the emulator's limits and the notifier's pacing are scaled by the same
factor (``SCALE``): the traffic has Slack's shape, compressed in time. Each deployment tells its
whole lifecycle (``bench.slack_traffic``), all of them at once, rendered by the real planner
(guard ticks redraw the card at ``REDRAW``, phase changes re-render it urgently).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.slack_traffic import FINAL_CARD, run_deployments
from bot.adapters.slack_notifier import NotifierOptions, SlackNotifier
from bot.adapters.slack_pacing import Pacing
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import DEFAULT_PER_MINUTE, RateLimits, SlackEmulator, check_message_blocks, emulator_of
from bot.store.db import create_engine
from bot.store.migrate import upgrade
from bot.store.threads import ThreadStore
from tests.support.renderer import planner

SCALE = 25.0
TOKEN = "xoxb-sandbox"


@pytest.mark.timeout(120)
async def test_a_burst_of_100_deployments_in_one_channel_gets_no_429_and_every_final_card(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade(url)
    database = create_engine(url)
    limits = RateLimits(
        per_minute={tier: int(n * SCALE) for tier, n in DEFAULT_PER_MINUTE.items()}, post_per_second=SCALE
    )
    with ServerThread(SlackEmulator(rate_limits=limits).app, name="slack") as slack:
        chat = SlackNotifier(
            ThreadStore(database),
            planner,
            token=TOKEN,
            base_url=f"{slack.url}/api/",
            channel_for=lambda dep: "#deploys",
            options=NotifierOptions(
                pacing=Pacing().scaled(SCALE), timeout_s=5.0, drain_s=60.0, max_in_flight=8
            ),
        )
        await chat.start()
        started = time.monotonic()
        try:
            told = await run_deployments(chat, 100, gap_s=0.1, spread_s=0.5)
            assert await chat.drain(90)
        finally:
            await chat.close()
            await database.dispose()
        took = time.monotonic() - started
        calls = emulator_of(slack.app).calls()
        messages = emulator_of(slack.app).messages("C0DEPLOYS")
    assert [c for c in calls if c["status"] == 429] == []
    cards = [m for m in messages if "thread_ts" not in m or m["thread_ts"] == m["ts"]]
    assert len(cards) == len(told) == 100
    assert {m["text"] for m in cards} == {FINAL_CARD}
    replies = [m for m in messages if m.get("thread_ts") not in (None, m["ts"])]
    per_thread = len(replies) / 100
    assert per_thread == int(per_thread) and per_thread >= 2, len(replies)  # build, rollout + guard window
    assert all(check_message_blocks(m["blocks"]) == [] for m in messages)
    print(f"burst: 100 deployments in {took:.1f}s at x{SCALE:g} ({took * SCALE:.0f} Slack seconds), 0 x 429")
