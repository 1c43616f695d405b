"""The exactly-once gate of Slack deliveries (``bot.slack.work.Once``) on the real store.

A claim is given back when the work fails or is refused without effect, a claim whose claimer
died is taken over, a repeat of completed work gets its answer, and a delivery with no key is
never deduplicated. On a migrated SQLite file, as ``shipthread serve`` runs by default.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import TransientError
from bot.slack import answers
from bot.slack.answers import Answer
from bot.slack.work import TAKEOVER_AFTER, Once
from bot.store import migrate
from bot.store.db import create_engine
from bot.store.repository import Repository

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "slack-click:C1:1.2:shipthread.approve:U0BOB:v3"


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[Repository]:
    url = f"sqlite+aiosqlite:///{tmp_path}/shipthread.db"
    await migrate.upgrade(url)
    engine = create_engine(url)
    try:
        yield Repository(engine)
    finally:
        await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class Work:
    """A decide function that counts its calls and answers what it is told to, in turn."""

    def __init__(self, *outcomes: Answer | Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> Answer | None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


APPROVED = answers.outcome(True, "approved d1")


async def test_work_that_raises_gives_the_key_back_and_the_same_delivery_then_acts(repo: Repository) -> None:
    once, work = Once(repo, Clock().now), Work(RuntimeError("store down"), APPROVED)
    with pytest.raises(RuntimeError):
        await once.run(KEY, work)
    ran = await once.run(KEY, work)
    assert work.calls == 2 and not ran.repeat and ran.answer == APPROVED
    assert (await repo.get_key(KEY)) is not None and (await once.run(KEY, work)).repeat


async def test_a_refusal_that_changed_nothing_gives_the_key_back(repo: Repository) -> None:
    refused_here = answers.outcome(False, "not an approver of production")
    once, work = Once(repo, Clock().now), Work(None, refused_here, APPROVED)
    assert (await once.run(KEY, work)).answer is None  # refused, told by the engine in the channel
    assert (await once.run(KEY, work)).answer == refused_here  # the group was fixed meanwhile: asks again
    assert (await once.run(KEY, work)).answer == APPROVED
    assert work.calls == 3


async def test_a_transient_failure_says_try_again_and_keeps_the_key_free(repo: Repository) -> None:
    once = Once(repo, Clock().now)
    work = Work(TransientError("cannot check the approver group sre now (<!channel>)"), APPROVED)
    said = (await once.run(KEY, work)).answer
    assert said is not None and "try again" in said.text and not said.acted
    assert "<!channel>" not in said.text and "&lt;!channel&gt;" in said.text
    assert (await once.run(KEY, work)).answer == APPROVED


async def test_a_repeat_of_completed_work_gets_the_answer_it_got(repo: Repository) -> None:
    once, work = Once(repo, Clock().now), Work(APPROVED)
    await once.run(KEY, work)
    again = await once.run(KEY, work)
    assert again.repeat and work.calls == 1
    assert again.answer is not None and "Already handled" in again.answer.text
    assert "approved d1" in again.answer.text


async def test_a_claim_left_by_a_dead_process_is_taken_over_after_a_while(repo: Repository) -> None:
    clock = Clock()
    once, work = Once(repo, clock.now), Work(APPROVED)
    assert await once.claim(KEY)  # ... and the process died before completing it
    clock.at = T0 + timedelta(seconds=5)
    early = await once.run(KEY, work)
    assert early.repeat and early.answer is None and work.calls == 0  # its claimer may still answer
    clock.at = T0 + TAKEOVER_AFTER + timedelta(seconds=1)
    assert (await once.run(KEY, work)).answer == APPROVED and work.calls == 1
    # A completed key is never taken over, however old.
    clock.at = T0 + timedelta(days=1)
    assert (await once.run(KEY, work)).repeat and work.calls == 1


async def test_concurrent_takers_of_an_abandoned_claim_let_one_win(repo: Repository) -> None:
    assert await repo.claim_key(KEY, T0)
    later = T0 + timedelta(minutes=1)
    won = await asyncio.gather(
        *(repo.claim_key(KEY, later, takeover_before=later - TAKEOVER_AFTER) for _ in range(8))
    )
    assert won.count(True) == 1


async def test_a_delivery_without_a_key_is_never_deduplicated(repo: Repository) -> None:
    once, work = Once(repo, Clock().now), Work(APPROVED, APPROVED)
    assert not (await once.run(None, work)).repeat
    assert not (await once.run(None, work)).repeat
    assert work.calls == 2
