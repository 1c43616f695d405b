"""The guard judges only the version under test, and may judge it against a baseline.

Real Prometheus, backdated history, a live feed (``tests.engine.feed``): each test writes what the
old version did before the change, then switches the feed's value when the new version takes over.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import pytest

from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.measurements import TickOutcome
from bot.domain.notifications import GuardTick, GuardVerdict
from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from tests.engine.feed import Feed
from tests.engine.stack import RATIO, Stack, create_k8s_deployment, k8s_image, playbook
from tests.engine.test_scenarios import IMAGE
from tests.engine.typed import deployment_of

SETTLE = 2.0
"""The checks' look-back: ``max_over_time(...[2s])`` settles for 2 s after each change."""

StackOfBook: TypeAlias = Callable[[dict[str, Any]], Awaitable[Stack]]
"""This module's ``stack_of``: a stack on the emulators for one playbook."""


@asynccontextmanager
async def emulator_stacks(request: pytest.FixtureRequest) -> AsyncIterator[StackOfBook]:
    """Builds stacks on the emulators and Prometheus for one playbook each (its Deployment at 1.0.0),
    closed on leaving: the ``stack_of`` of this module and of ``test_guard_settling_notice``."""
    from tests.engine.stack import make_stack

    tmp_path, prometheus, jenkins_server, k8s_server, run = (
        request.getfixturevalue(name)
        for name in ("tmp_path", "prometheus", "jenkins_server", "k8s_server", "run")
    )
    built: list[Stack] = []

    async def build(book: dict[str, Any]) -> Stack:
        stack = await make_stack(tmp_path, prometheus, jenkins_server, k8s_server, [book], run=run)
        built.append(stack)
        create_k8s_deployment(k8s_server.url, book["service"], IMAGE.format("1.0.0"))
        return stack

    yield build
    for stack in built:
        await stack.runtime.close()


@pytest.fixture
async def stack_of(request: pytest.FixtureRequest) -> AsyncIterator[StackOfBook]:
    async with emulator_stacks(request) as build:
        yield build


SLACK = 0.75
"""What the real clock adds to a computed bound on 2 shared cores: the feed's sample period (50 ms),
the drive loop's step, and each tick's own queries and writes (~0.1 s idle, several times that when
the other helpers' tests load the machine). Tick counts, not this, are what catch an off-by-one."""


def ranged(run: str, track: bool = False, over: str = "max_over_time") -> str:
    selector = f'service="{{service}}",run="{run}"' + (',track="{track}"' if track else "")
    return f"max({over}({RATIO}{{{selector}}}[{int(SETTLE)}s]))"


def feed_for(stack: Stack, tracks: tuple[str, ...] = ()) -> Feed:
    base = {"__name__": RATIO, "service": "checkout", "run": stack.run}
    labels = {t: {**base, "track": t} for t in tracks} if tracks else {"all": base}
    return Feed(stack.prometheus.url, labels)


async def test_a_fix_released_during_an_incident_is_not_rolled_back(run: str, stack_of: StackOfBook) -> None:
    book = playbook("checkout", run)
    book["guards"]["http"]["checks"][0]["query"] = ranged(run)
    stack = await stack_of(book)
    feed = feed_for(stack)
    feed.history(10, {"all": 0.25})  # 1.0.0 serves 25 % errors: the incident
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")

        def fixed(dep: Deployment) -> bool:
            if dep.phase in (Phase.DEPLOYING, Phase.VERIFYING):
                feed.values["all"] = 0.0  # 1.1.0 takes the traffic and is clean
            return dep.phase.terminal

        dep = await stack.drive(deployment_of(outcome).id, fixed)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    ticks = [n for n in stack.chat.notifications if isinstance(n, GuardTick)]
    assert ticks and all(t.outcome is TickOutcome.PASS for t in ticks)
    assert ticks[-1].tick == ticks[-1].expected_ticks == 3  # the whole window, after settling


async def test_a_regression_after_a_clean_history_is_caught_within_settle_and_the_limit(
    run: str, stack_of: StackOfBook
) -> None:
    interval, failure_limit = 0.2, 1
    book = playbook("checkout", run, interval=interval, window=3.0, failure_limit=failure_limit)
    book["guards"]["http"]["checks"][0]["query"] = ranged(run)
    stack = await stack_of(book)
    feed = feed_for(stack)
    feed.history(10, {"all": 0.0})
    switched: list[float] = []
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE")

        def regressed(dep: Deployment) -> bool:
            if dep.phase is Phase.VERIFYING and not switched:
                feed.values["all"] = 0.3
                switched.append(time.monotonic())
            return dep.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)

        dep = await stack.drive(deployment_of(outcome).id, regressed, step=0.02)
    caught = time.monotonic() - switched[0]
    assert "5xx ratio" in (dep.reason or "")
    # Exactly failure_limit + 1 failing ticks, none before: the first tick after settling fails.
    ticks = [n.outcome for n in stack.chat.notifications if isinstance(n, GuardTick) and not n.post_rollback]
    assert ticks == [TickOutcome.FAIL] * (failure_limit + 1), ticks
    # The bound: settle + interval x (failure_limit + 1), and one tick; plus the real clock's.
    assert caught <= SETTLE + interval * (failure_limit + 1) + interval + SLACK, caught
    assert caught >= SETTLE, "judged before its range could only see the new version"


async def test_a_before_baseline_sees_only_the_old_version_when_the_rollout_outlasts_its_range(
    k8s_server: ServerThread, run: str, stack_of: StackOfBook
) -> None:
    from bot.sandbox.kubernetes import kubernetes_sandbox

    book = playbook("checkout", run)
    # Relative: no max, so nothing but a baseline taken before the change can catch this (the
    # ceiling, far above, is the absolute bound a post-rollback watch needs).
    book["guards"]["http"]["checks"] = [
        {"name": "5xx ratio", "query": ranged(run), "baseline": "before", "max_ratio": 2},
        {"name": "5xx ceiling", "query": ranged(run), "max": 0.5},
    ]
    stack = await stack_of(book)
    cluster = kubernetes_sandbox(k8s_server.app)
    # Its pods wait (the cluster at real pace, so its 20 s progress deadline is not near): the
    # rollout lasts as long as the test says.
    cluster.set_time_scale(1.0)
    cluster.set_bad_images(["*:1.4.0"])
    feed = feed_for(stack)
    feed.history(10, {"all": 0.01})
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.4.0"), "U0ALICE")
        dep = await stack.drive(
            deployment_of(outcome).id,
            lambda d: (
                d.phase is Phase.DEPLOYING and k8s_image(stack.k8s_url, "checkout") == IMAGE.format("1.4.0")
            ),
        )
        feed.values["all"] = 0.10  # the patch landed: the new pods serve 10 % errors from here on
        await stack.tick_for(SETTLE + 1.0)  # longer than the check's range
        assert (await stack.get(dep.id)).phase is Phase.DEPLOYING
        cluster.set_bad_images([])
        cluster.set_time_scale(0.05)
        dep = await stack.finish(dep.id)
    assert dep.phase is Phase.ROLLED_BACK, dep.reason
    assert "vs before 0.01" in (dep.reason or ""), dep.reason


async def test_after_a_rollback_to_a_healthy_version_no_post_rollback_tick_fails(
    run: str, stack_of: StackOfBook
) -> None:
    book = playbook("checkout", run)
    book["guards"]["http"]["checks"][0]["query"] = ranged(run)
    stack = await stack_of(book)
    feed = feed_for(stack)
    feed.history(10, {"all": 0.0})
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "1.3.0"), "U0ALICE")

        def bad_then_back(dep: Deployment) -> bool:
            if dep.phase is Phase.VERIFYING:
                feed.values["all"] = 0.4  # 1.3.0 is broken
            if dep.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
                feed.values["all"] = 0.0  # 1.0.0 is back and healthy
            return dep.phase.terminal

        dep = await stack.drive(deployment_of(outcome).id, bad_then_back, step=0.02)
        assert dep.phase is Phase.ROLLED_BACK, dep.reason
        await stack.end_watches()
    after = [n for n in stack.chat.notifications if isinstance(n, GuardTick) and n.post_rollback]
    assert after and all(t.outcome is TickOutcome.PASS for t in after)
    verdicts = [n for n in stack.chat.notifications if isinstance(n, GuardVerdict) and n.post_rollback]
    assert [v.verdict for v in verdicts] == ["pass"]
    assert await stack.store.active_locks("production") == []


def canary_book(run: str) -> dict[str, Any]:
    book = playbook("checkout", run, strategy="canary", steps=(25, 50))
    book["guards"]["http"]["checks"] = [
        {
            "name": "5xx ratio",
            "query": ranged(run, track=True),
            "max": 0.06,  # alone, this would pass a canary at 5 %
            "baseline": "stable",
            "max_increase": 0.01,
        }
    ]
    return book


async def test_a_canary_worse_than_stable_breaches_a_stable_baseline(run: str, stack_of: StackOfBook) -> None:
    stack = await stack_of(canary_book(run))
    feed = feed_for(stack, ("canary", "stable"))
    feed.history(10, {"stable": 0.03, "canary": 0.05})
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "2.0.0"), "U0ALICE")
        dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.ROLLED_BACK, dep.reason
    assert "vs stable 0.03" in (dep.reason or "") and "max_increase 0.01" in (dep.reason or "")
    ticks = [n for n in stack.chat.notifications if isinstance(n, GuardTick) and not n.post_rollback]
    assert ticks[-1].step == 0 and ticks[-1].outcome is TickOutcome.FAIL


async def test_a_canary_as_good_as_a_noisy_stable_passes(run: str, stack_of: StackOfBook) -> None:
    # Each tick reads stable's last sample, which is 0.02 or 0.04 at random (2:1), so the ticks see the
    # noise itself (a max over a range of samples alternating faster than the range would flatten it
    # to 0.04). 0.03 is within max_increase of both.
    noisy = lambda n: random.Random(n).choice((0.02, 0.02, 0.04))  # noqa: E731
    book = canary_book(run)
    book["guards"]["http"]["window"] = 1.2
    book["guards"]["http"]["checks"][0]["query"] = ranged(run, track=True, over="last_over_time")
    stack = await stack_of(book)
    feed = feed_for(stack, ("canary", "stable"))
    feed.history(10, {"stable": noisy, "canary": 0.03})
    async with feed.running():
        outcome = await stack.engine.deploy(Deploy("checkout", "2.1.0"), "U0ALICE")

        def promoted(dep: Deployment) -> bool:
            if dep.step >= 2:
                feed.values["stable"] = 0.03  # promoted: the stable track runs 2.1.0 now
            return dep.phase.terminal

        dep = await stack.drive(deployment_of(outcome).id, promoted)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    passes = [n for n in stack.chat.notifications if isinstance(n, GuardVerdict) and n.verdict == "pass"]
    assert len(passes) == 3  # two canary steps and the promoted version
    seen = " ".join(m for n in stack.chat.notifications if isinstance(n, GuardTick) for m in n.checks)
    assert "vs stable 0.02" in seen, "the ticks never saw the noise: the test cannot catch mishandling it"
