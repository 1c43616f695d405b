"""Acks go first by design: background work waits while Slack requests are being answered.

``Background`` on the real event loop, with short quiet and defer times: work spawned while a
request is still open does not start (however long the burst), starts once the requests are
answered and the burst is quiet, and — so a steady stream never starves it — starts anyway after
``max_defer_s``, one piece at a time while requests are still open.
"""

from __future__ import annotations

import asyncio
import time

from bot.slack.work import Background


async def _work(started: list[float], hold: asyncio.Event | None = None) -> None:
    started.append(time.monotonic())
    if hold is not None:
        await hold.wait()


async def test_work_waits_while_a_request_is_answered_and_starts_when_the_burst_is_quiet() -> None:
    background = Background(quiet_s=0.02, max_defer_s=5.0)
    started: list[float] = []
    with background.answering():
        background.spawn(_work(started), "deploy")
        # Well past ``quiet_s``: before, the gate opened 20 ms after the last spawn, request or not.
        await asyncio.sleep(0.15)
        assert started == [], "work started while an ack was still pending"
        assert background.answering_now == 1
    answered = time.monotonic()
    await asyncio.sleep(0.1)
    assert len(started) == 1
    assert started[0] - answered >= 0.015, "work started before the burst was quiet"
    assert await background.drain(1.0) == 0


async def test_a_new_request_holds_back_work_not_yet_started() -> None:
    background = Background(quiet_s=0.05, max_defer_s=5.0)
    started: list[float] = []
    with background.answering():
        background.spawn(_work(started), "first")
    await asyncio.sleep(0.01)  # answered, still inside the quiet time
    with background.answering():  # the next request of the burst
        await asyncio.sleep(0.1)
        assert started == []
    await asyncio.sleep(0.15)
    assert len(started) == 1
    assert await background.drain(1.0) == 0


async def test_overdue_work_starts_one_piece_at_a_time_while_requests_keep_coming() -> None:
    background = Background(concurrency=4, quiet_s=0.01, max_defer_s=0.05)
    started: list[float] = []
    hold = asyncio.Event()
    with background.answering():  # a request that never ends: a steady stream of them
        spawned = time.monotonic()
        for n in range(3):
            background.spawn(_work(started, hold), f"deploy {n}")
        await asyncio.sleep(0.2)
        assert len(started) == 1, "overdue work must start, but only one piece while acks wait"
        assert started[0] - spawned >= 0.045
        hold.set()
        await asyncio.sleep(0.2)
        assert len(started) == 3  # each one after the one before it, still while the request is open
    assert await background.drain(1.0) == 0


async def test_drain_starts_what_waits_at_once() -> None:
    background = Background(quiet_s=10.0, max_defer_s=10.0)
    started: list[float] = []
    with background.answering():
        background.spawn(_work(started), "deploy")
        assert await background.drain(1.0) == 0
    assert len(started) == 1
