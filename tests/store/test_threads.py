"""The Slack thread store on SQLite and PostgreSQL: priorities, what ``pending`` offers, parking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.slack.outgoing import CARD, Priority
from bot.store.db import create_engine
from bot.store.migrate import upgrade
from bot.store.threads import NO_CHANNEL, Desired, ThreadStore

AT = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ThreadStore]:
    await upgrade(database_url)
    engine = create_engine(database_url)
    yield ThreadStore(engine)
    await engine.dispose()


def card(text: str, priority: Priority) -> Desired:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return Desired(CARD, text, (section,), priority, True)


async def test_a_redraw_does_not_downgrade_a_pending_phase_change(store: ThreadStore) -> None:
    await store.record("d1", "#deploys", None, [card("building", Priority.URGENT)], AT)
    (posted,) = await store.pending()
    await store.sent(posted.id, posted.revision, "1.0", AT, "C0DEPLOYS")
    await store.record("d1", "#deploys", None, [card("rolled back", Priority.URGENT)], AT)
    await store.record("d1", "#deploys", None, [card("rolled back, 3 s ago", Priority.REDRAW)], AT)
    (pending,) = await store.pending()
    assert pending.text == "rolled back, 3 s ago" and pending.priority == Priority.URGENT
    await store.sent(pending.id, pending.revision, "1.0", AT)
    # Once shown, the next content takes its own priority.
    await store.record("d1", "#deploys", None, [card("rolled back, 6 s ago", Priority.REDRAW)], AT)
    (pending,) = await store.pending()
    assert pending.priority == Priority.REDRAW


async def test_replies_under_a_refused_card_never_crowd_out_a_fresh_card(store: ThreadStore) -> None:
    replies = [Desired(f"r{i}", f"reply {i}", (), Priority.NORMAL) for i in range(1100)]
    await store.record("stuck", "#releases", None, [card("card", Priority.URGENT), *replies], AT)
    (stuck_card,) = [m for m in await store.pending() if m.key == CARD]
    refusal = "Slack refused chat.postMessage: not_in_channel"
    await store.failed(stuck_card.id, stuck_card.revision, refusal, AT)
    await store.record("fresh", "#deploys", None, [card("fresh", Priority.URGENT)], AT + timedelta(hours=1))
    assert [(m.thread_id, m.key) for m in await store.pending()] == [("fresh", CARD)]

    # The channel is fixed: the refused card comes back, then (once posted) its replies.
    assert await store.parked_channels(["not_in_channel"]) == ["#releases"]
    assert await store.rearm("#releases", ["not_in_channel"], AT) == 1
    again = [m for m in await store.pending() if m.thread_id == "stuck"]
    assert [m.key for m in again] == [CARD] and again[0].error is None
    await store.sent(again[0].id, again[0].revision, "2.0", AT, "C0RELEASES")
    assert len([m for m in await store.pending(limit=2000) if m.thread_id == "stuck"]) == 1100


async def test_a_thread_without_a_channel_is_kept_and_sent_once_it_has_one(store: ThreadStore) -> None:
    await store.record("d1", NO_CHANNEL, {"phase": "building"}, [card("building", Priority.URGENT)], AT)
    assert await store.pending() == []
    thread = await store.thread("d1")
    assert thread is not None and thread.card_state == {"phase": "building"}
    await store.record("d1", "#deploys", None, [], AT)
    assert [(m.key, m.channel) for m in await store.pending()] == [(CARD, "#deploys")]
