"""While its checks settle a guard window has no tick: the thread says what it waits for. And a
``baseline: before`` check compares with what the query said at the change time (``time=``).

Real Prometheus with backdated history and a live feed (``tests.engine.feed``), as in
``tests.engine.test_guard_settling``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.notifications import GuardSettling, GuardTick
from bot.domain.phases import Phase
from bot.slack.outgoing import RenderContext
from bot.slack.thread import plan
from tests.engine.stack import playbook
from tests.engine.test_guard_settling import SETTLE, StackOfBook, emulator_stacks, feed_for, ranged
from tests.engine.typed import deployment_of


@pytest.fixture
async def stack_of(request: pytest.FixtureRequest) -> AsyncIterator[StackOfBook]:
    async with emulator_stacks(request) as build:
        yield build


async def test_a_settling_window_says_what_it_waits_for_once_before_its_first_tick(
    run: str, stack_of: StackOfBook
) -> None:
    book = playbook("checkout", run)
    book["guards"]["http"]["checks"][0]["query"] = ranged(run)
    stack = await stack_of(book)
    feed = feed_for(stack)
    feed.history(10, {"all": 0.0})
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
        dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    said = stack.chat.notifications
    notices = [n for n in said if isinstance(n, GuardSettling)]
    assert len(notices) == 1, notices
    first_tick = next(i for i, n in enumerate(said) if isinstance(n, GuardTick))
    assert said.index(notices[0]) < first_tick
    notice = notices[0]
    assert notice.checks == (
        f"5xx ratio settling for {int(SETTLE)}s: its {int(SETTLE)}s window still sees 1.0.0",
    )
    assert notice.window_started_at is not None
    assert (notice.judges_at - notice.window_started_at).total_seconds() == SETTLE

    # The thread's window reply shows it until the first tick, then the ticks take over.
    ctx = RenderContext(notice.judges_at)
    state = None
    for n in said[: said.index(notice) + 1]:
        state = plan(state, n, ctx).card_state
    shown = plan(state, notice, ctx)
    window = next(o for o in shown.thread if o.key.startswith("guard:"))
    text = " ".join(b["text"]["text"] for b in window.blocks if b.get("type") == "section")
    assert "⏳ 5xx ratio settling for 2s: its 2s window still sees 1.0.0" in text
    after = plan(plan(state, notice, ctx).card_state, said[first_tick], ctx)
    window = next(o for o in after.thread if o.key.startswith("guard:"))
    assert "⏳" not in " ".join(b["text"]["text"] for b in window.blocks if b.get("type") == "section")


async def test_a_before_baseline_compares_with_the_value_at_the_change_time(
    run: str, stack_of: StackOfBook
) -> None:
    book = playbook("checkout", run, interval=0.2, window=1.0)
    book["guards"]["http"]["checks"] = [
        {"name": "5xx ratio", "query": ranged(run), "max": 0.5, "baseline": "before", "max_ratio": 2}
    ]
    stack = await stack_of(book)
    feed = feed_for(stack)
    feed.history(10, {"all": 0.01})  # 1.0.0: 1 % errors, up to the change
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE")

        def worse(dep: Deployment) -> bool:
            if dep.phase in (Phase.DEPLOYING, Phase.VERIFYING):
                feed.values["all"] = 0.03  # 1.2.0: three times as many, far below the absolute max
            return dep.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK) or dep.phase.terminal

        dep = await stack.drive(deployment_of(outcome).id, worse, step=0.02)
    # Evaluated now, the baseline would be 1.2.0's own 0.03 (x1, a pass): only the value at the
    # change time, 1.0.0's 0.01, makes this a breach.
    assert dep.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK), dep.reason
    assert "5xx ratio = 0.03 vs before 0.01" in (dep.reason or ""), dep.reason
    assert "max_ratio 2" in (dep.reason or "")
