"""The Slack notifier through the real slack-sdk against the Slack emulator, with Slack's limits on.

Each test runs the emulator in its own thread and the notifier on a migrated SQLite file, and
reads what Slack holds back through slack-sdk (``conversations.history``/``replies`` with
metadata) or the emulator's call log.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.retrying import RetryPolicy
from bot.adapters.slack_notifier import NotifierOptions, SlackNotifier
from bot.adapters.slack_pacing import Pacer, Pacing
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import BuildQueued, BuildStarted, GuardTicked, RolloutCompleted, RolloutStarted
from bot.domain.measurements import TickOutcome
from bot.domain.message import Message, Text
from bot.domain.notifications import (
    DeploymentOpened,
    EnvLocked,
    EnvUnlocked,
    Notification,
    PhaseChanged,
    Refused,
)
from bot.domain.phases import Phase
from bot.metrics import Metrics
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator
from bot.slack.outgoing import Plan, Priority, RenderContext
from bot.store.threads import ThreadStore
from tests.adapters.slack_support import Thread, card_text, plan, read_thread, read_whole_thread
from tests.support.slack_fixtures import slack as slack  # the fixtures
from tests.support.slack_fixtures import store as store

TOKEN = "xoxb-sandbox"
NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
QUICK = NotifierOptions(
    timeout_s=1.0,
    retry=RetryPolicy(attempts=2, total_s=3.0, initial_s=0.05, max_wait_s=0.2, jitter_s=0.01),
    outage_backoff_s=0.1,
    outage_backoff_cap_s=0.5,
)


def emulator(server: ServerThread) -> SlackEmulator:
    from bot.sandbox.slack import emulator_of

    return emulator_of(server.app)


def control(server: ServerThread, verb: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{server.url}/_sandbox/{path}", data=data, method=verb, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)


def notifier(
    server: ServerThread, store: ThreadStore, options: NotifierOptions = QUICK, **kw: Any
) -> SlackNotifier:
    return SlackNotifier(
        store,
        kw.pop("planner", plan),
        token=TOKEN,
        base_url=f"{server.url}/api/",
        channel_for=lambda dep: "#deploys",
        options=options,
        channels=kw.pop("channels", ("#deploys",)),
        **kw,
    )


@pytest.fixture
async def client(slack: ServerThread) -> AsyncIterator[AsyncWebClient]:
    web = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
    yield web


def dep(did: str = "d1", phase: Phase = Phase.BUILDING, step: int = 0, **kw: Any) -> Deployment:
    return Deployment(
        did, "checkout", "production", "1.4.2", Strategy.CANARY, "U0ALICE", phase, NOW, NOW, step=step, **kw
    )


def posts(server: ServerThread, status: int | None = None) -> list[dict[str, Any]]:
    return [c for c in emulator(server).calls("chat.postMessage") if status is None or c["status"] == status]


async def test_a_thread_is_one_card_updated_in_place_with_replies_in_order(
    slack: ServerThread, store: ThreadStore, client: AsyncWebClient
) -> None:
    chat = notifier(slack, store)
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))
        await chat.notify(PhaseChanged(dep(), BuildStarted(number=1)))
        await chat.notify(PhaseChanged(dep(phase=Phase.DEPLOYING), RolloutStarted(step=0)))
        assert await chat.drain(10)
    finally:
        await chat.close()
    parents, keys = await read_thread(client, "C0DEPLOYS", "d1")
    assert len(parents) == 1
    assert parents[0]["text"] == card_text("checkout", "1.4.2", "deploying", 0)
    assert keys == ["BuildQueued:0", "BuildStarted:0", "RolloutStarted:0"]


async def test_the_same_notification_again_or_after_a_restart_edits_instead_of_posting(
    slack: ServerThread, store: ThreadStore, client: AsyncWebClient
) -> None:
    first = notifier(slack, store)
    await first.start()
    await first.notify(
        PhaseChanged(dep(), BuildQueued(queue_item=7))
    )  # no DeploymentOpened: opens the thread
    assert await first.drain(10)
    await first.close()
    again = notifier(slack, store)  # a restarted process on the same database
    await again.start()
    try:
        await again.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))  # the outbox's retry
        await again.notify(PhaseChanged(dep(phase=Phase.DEPLOYING), BuildQueued(queue_item=7)))
        assert await again.drain(10)
    finally:
        await again.close()
    assert len(posts(slack)) == 2  # the card and one reply, ever
    parents, keys = await read_thread(client, "C0DEPLOYS", "d1")
    assert len(parents) == 1 and keys == ["BuildQueued:0"]
    assert parents[0]["text"] == card_text("checkout", "1.4.2", "deploying", 0)
    assert [c["method"] for c in emulator(slack).calls() if c["method"].startswith("chat.")] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
    ]


async def test_a_post_slack_accepted_but_whose_answer_was_lost_is_adopted_not_repeated(
    slack: ServerThread, store: ThreadStore, client: AsyncWebClient
) -> None:
    # The first post is done by Slack, but its answer never arrives (the client times out).
    control(
        slack,
        "POST",
        "faults",
        {"mode": "accept_then_hang", "calls": 1, "methods": ["chat.postMessage"], "hang_s": 3},
    )
    chat = notifier(slack, store)
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))
        assert await chat.drain(15)
    finally:
        await chat.close()
    assert [c["method"] for c in emulator(slack).calls()].count("conversations.history") == 1  # looked up
    parents, keys = await read_thread(client, "C0DEPLOYS", "d1")
    assert len(parents) == 1, parents
    assert keys == ["BuildQueued:0"]
    assert parents[0]["text"] == card_text("checkout", "1.4.2", "building", 0)


async def test_edits_are_coalesced_while_slack_is_out_and_the_thread_catches_up_in_order(
    slack: ServerThread, store: ThreadStore, client: AsyncWebClient
) -> None:
    chat = notifier(slack, store)
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        assert await chat.drain(10)
        control(slack, "POST", "faults", {"mode": "error", "seconds": 1.5})
        control(slack, "POST", "faults", {"mode": "hang", "start_in": 1.5, "seconds": 1.5})
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))
        await chat.notify(PhaseChanged(dep(), BuildStarted(number=1)))
        for ticks in range(1, 6):  # five redraws of one message while Slack is out
            await chat.notify(
                PhaseChanged(
                    dep(phase=Phase.VERIFYING, guard_ticks=ticks), GuardTicked(outcome=TickOutcome.PASS)
                )
            )
        await chat.notify(PhaseChanged(dep(phase=Phase.SUCCEEDED, guard_ticks=5), RolloutCompleted(step=0)))
        assert await chat.drain(20)
    finally:
        await chat.close()
    parents, keys = await read_thread(client, "C0DEPLOYS", "d1")
    assert len(parents) == 1
    assert parents[0]["text"] == card_text("checkout", "1.4.2", "succeeded", 0)
    assert keys == ["BuildQueued:0", "BuildStarted:0", "guard:0"]
    failed = [c for c in emulator(slack).calls() if c["status"] >= 500]
    assert failed, "the outage never happened"
    ok_updates = [c for c in emulator(slack).calls("chat.update") if c["ok"]]
    assert len(ok_updates) <= 3  # coalesced: the card's and the guard reply's latest contents only


async def test_a_429_is_honoured_for_its_retry_after(slack: ServerThread, store: ThreadStore) -> None:
    control(slack, "POST", "config", {"rate_limits": {"methods": {"chat.update": 1}}})
    chat = notifier(slack, store)
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        assert await chat.drain(10)
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))  # an edit, and a post
        await asyncio.sleep(0.5)
        await chat.notify(PhaseChanged(dep(phase=Phase.DEPLOYING), BuildStarted(number=1)))  # 429
        await asyncio.sleep(0.5)
        for number in range(2, 6):
            await chat.notify(
                PhaseChanged(dep(phase=Phase.DEPLOYING, build_number=number), BuildStarted(number=number))
            )
            await asyncio.sleep(0.3)
        updates = emulator(slack).calls("chat.update")
        assert [c["status"] for c in updates] == [200, 429], updates  # and nothing until Retry-After
        assert len([c for c in posts(slack) if c["ok"]]) == 3  # posts are not held by the edits' 429
    finally:
        chat.options = replace(chat.options, drain_s=0.1)
        await chat.close()


async def test_a_channel_the_bot_is_not_in_is_said_plainly_and_not_retried(
    slack: ServerThread, store: ThreadStore
) -> None:
    control(slack, "POST", "channels", {"id": "C0PRIVATE", "name": "releases", "is_member": False})
    chat = notifier(slack, store, channels=("#releases", "#nope", "#deploys"))
    await chat.start()
    try:
        assert await chat.problems() == [
            "invite @Shipthread to #releases",
            "#nope does not exist (or is private and @Shipthread is not in it)",
        ]
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#releases"))
        assert await chat.drain(5)
        await asyncio.sleep(0.3)
    finally:
        await chat.close()
    assert [c["error"] for c in posts(slack)] == ["not_in_channel"]
    (card,) = await store.messages("d1")
    assert card.error == "Slack refused chat.postMessage: not_in_channel" and card.ts is None


async def test_locks_go_to_the_channel_and_refusals_to_the_person_only(
    slack: ServerThread, store: ThreadStore
) -> None:
    chat = notifier(slack, store)
    await chat.start()
    try:
        await chat.notify(EnvLocked("production", None, "manual", "freeze", "U0ALICE", "#deploys"))
        said = Message.of(Text("production is locked"))
        await chat.notify(Refused("U0ALICE", "C0DEPLOYS", said, "deploy", "checkout"))
        assert await chat.drain(5)
    finally:
        await chat.close()
    messages = emulator(slack).messages("C0DEPLOYS")
    assert [m["text"] for m in messages] == ["production locked: freeze"]
    assert [e["text"] for e in emulator(slack).ephemeral(user="U0ALICE")] == ["production is locked"]


def test_redraws_leave_a_reserve_of_edits_for_phase_changes() -> None:
    pacer = Pacer(Pacing(updates_per_minute=60.0, update_burst=3, redraw_reserve=2.0))
    assert pacer.update_wait(Priority.REDRAW, 0.0) == 0.0  # 3 tokens: a redraw may take one
    assert pacer.update_wait(Priority.REDRAW, 0.0) > 0  # 2 left: kept for what matters
    assert pacer.update_wait(Priority.URGENT, 0.0) == 0.0
    assert pacer.update_wait(Priority.NORMAL, 0.0) == 0.0
    assert pacer.update_wait(Priority.URGENT, 0.0) == pytest.approx(1.0)  # then one a second
    assert pacer.post_wait("C1", 0.0) == 0.0 and pacer.post_wait("C1", 0.5) == pytest.approx(0.5)
    assert pacer.post_wait("C2", 0.5) == 0.0  # per channel


def test_pending_redraws_go_after_phase_changes_of_other_threads() -> None:
    from bot.store.threads import OutMessage

    def message(mid: int, thread: str, priority: int, since: int, ts: str | None = "1.0") -> OutMessage:
        at = NOW.replace(second=since)
        return OutMessage(
            mid, thread, "C0", "k", mid, False, priority, "", (), 2, 1, ts, None, at, None, "1.0"
        )

    order = SlackNotifier._candidates(
        [
            message(1, "a", Priority.REDRAW, 1),
            message(2, "b", Priority.URGENT, 5),
            message(3, "c", Priority.NORMAL, 3),
        ]
    )
    assert [m.id for m in order] == [2, 3, 1]


def top_level(server: ServerThread) -> list[dict[str, Any]]:
    return [m for m in emulator(server).messages("C0DEPLOYS") if m.get("thread_ts", m["ts"]) == m["ts"]]


async def test_a_guard_lock_is_told_in_its_deployments_thread_and_its_unlock_edits_that_reply(
    slack: ServerThread, store: ThreadStore, client: AsyncWebClient
) -> None:
    # The real renderer: where a lock goes is its decision, given (or not) the thread's card state.
    from bot.slack.thread import plan as render

    def real(state: Any, n: Notification, ctx: RenderContext) -> Plan:
        return render(dict(state) if state is not None else None, n, ctx)

    chat = notifier(slack, store, planner=real)
    rolled_back = dep(phase=Phase.ROLLED_BACK, previous_version="1.4.1")
    lock = EnvLocked("production", "checkout", "guard", "error ratio 0.3", "shipthread", "#deploys", "d1", 7)
    unlock = EnvUnlocked("production", "checkout", "guard", "clean window", "shipthread", "#deploys", "d1", 7)

    def lock_reply(thread: Thread) -> dict[str, Any]:
        (reply,) = [m for m in thread.replies if m["metadata"]["event_payload"]["key"] == "lock:7"]
        return reply

    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        await chat.notify(PhaseChanged(rolled_back, RolloutCompleted(step=0)))
        await chat.notify(lock)
        assert await chat.drain(10)
        locked = await read_whole_thread(client, "C0DEPLOYS", "d1")
        assert len(top_level(slack)) == 1  # the card only: the lock is not posted in the channel
        assert "shipthread.unlock" in json.dumps(lock_reply(locked)["blocks"])  # its Unlock button
        assert "is locked (guard)" in json.dumps(locked.parents[0]["blocks"])  # the card's lock line
        posted = len(posts(slack))
        await chat.notify(unlock)
        assert await chat.drain(10)
    finally:
        await chat.close()
    unlocked = await read_whole_thread(client, "C0DEPLOYS", "d1")
    reply = lock_reply(unlocked)
    assert reply["ts"] == lock_reply(locked)["ts"] and "unlocked (guard)" in json.dumps(reply["blocks"])
    assert "shipthread.unlock" not in json.dumps(reply["blocks"])
    assert "is locked" not in json.dumps(unlocked.parents[0]["blocks"])
    assert len(posts(slack)) == posted and len(top_level(slack)) == 1  # edits, nothing posted


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_every_slack_call_and_429_of_the_notifier_is_counted_for_metrics(
    slack: ServerThread, store: ThreadStore
) -> None:
    control(slack, "POST", "config", {"rate_limits": {"methods": {"chat.update": 1}}})
    metrics = Metrics()
    # Paced 4x: a started notifier's first edit waits an edit interval, and both edits must go in time.
    chat = notifier(slack, store, replace(QUICK, pacing=Pacing().scaled(4)), on_call=metrics.slack_call)
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(dep(phase=Phase.REQUESTED), "#deploys"))
        assert await chat.drain(10)
        await chat.notify(PhaseChanged(dep(), BuildQueued(queue_item=7)))  # an edit, and a post
        await asyncio.sleep(0.5)
        await chat.notify(PhaseChanged(dep(phase=Phase.DEPLOYING), BuildStarted(number=1)))  # 429
        await asyncio.sleep(0.5)
    finally:
        chat.options = replace(chat.options, drain_s=0.1)
        await chat.close()
    calls = emulator(slack).calls()
    for method in ("chat.postMessage", "chat.update", "conversations.list"):
        ok = len([c for c in calls if c["method"] == method and c["ok"]])
        assert ok > 0 and sample(metrics, "shipthread_slack_calls_total", method=method, outcome="ok") == ok
    limited = len([c for c in calls if c["status"] == 429])
    assert limited == 1
    assert sample(metrics, "shipthread_slack_ratelimited_total", method="chat.update") == limited
    assert sample(metrics, "shipthread_slack_calls_total", method="chat.update", outcome="ratelimited") == 1


def test_a_restarted_pacer_assumes_its_predecessor_just_posted() -> None:
    # A crash loop restarts in a fraction of a second: the posts of successive processes together
    # must stay within one process's pace (the SIGKILL restart test saw 429s otherwise).
    pacer = Pacer(Pacing(posts_per_second=1.0), started_at=10.0)
    assert pacer.post_wait("C1", 10.2) == pytest.approx(0.8)  # one interval from the start
    assert pacer.post_wait("C2", 11.0) == 0.0
    assert pacer.post_wait("C1", 11.0) == 0.0 and pacer.post_wait("C1", 11.0) == pytest.approx(1.0)


def test_a_restarted_pacer_assumes_its_predecessor_just_spent_its_edits() -> None:
    # The same for edits: a process restarted right after a burst of edits must not send a burst
    # of its own at once, or successive processes together exceed Slack's chat.update rate.
    pacer = Pacer(Pacing(updates_per_minute=60.0, update_burst=5), started_at=10.0)
    assert pacer.update_wait(Priority.URGENT, 10.2) == pytest.approx(0.8)  # one edit interval from the start
    assert pacer.update_wait(Priority.URGENT, 11.0) == 0.0
    assert pacer.update_wait(Priority.URGENT, 11.0) == pytest.approx(1.0)  # then one a second
    fresh = Pacer(Pacing(updates_per_minute=60.0, update_burst=5))  # no start given: the full burst
    assert [fresh.update_wait(Priority.URGENT, 0.0) for _ in range(5)] == [0.0] * 5
