"""A verdict's chart is extra: whatever goes wrong planning it never costs another deployment its tick.

Two deployments are verified in the same guard round; the first breaches (``on_breach: lock``), and
its playbook disappears from the engine's playbooks the moment its verdict is acted on, so planning
the chart's queries (which resolves the playbook) raises. The second deployment's tick in that same
round must still be taken.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.domain.chart import VerdictChart
from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.events import Event, GuardHeld
from bot.domain.notifications import GuardTick
from bot.domain.phases import Phase
from bot.domain.playbook import Playbook
from bot.sandbox.server import ServerThread
from tests.engine.stack import RATIO, Stack, create_k8s_deployment, make_stack, playbook
from tests.engine.typed import deployment_of
from tests.support.prometheus import PrometheusServer
from tests.support.promwrite import Series, push


class Charts:
    """``bot.ports.ChartPoster`` that keeps what it was given (the thread is not what is tested)."""

    def __init__(self) -> None:
        self.posted: list[VerdictChart] = []

    async def post_chart(self, chart: VerdictChart, comment: str) -> None:
        self.posted.append(chart)


def playbooks_of(stack: Stack) -> dict[str, Playbook]:
    """The engine's own table of playbooks, which this test changes under it on purpose."""
    playbooks = stack.engine.ctx.playbooks
    assert isinstance(playbooks, dict)
    return playbooks


async def test_a_chart_plan_that_raises_does_not_stop_the_other_deployments_ticks(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    books = []
    for service in ("checkout", "payments"):
        book = playbook(service, run, interval=0.5, window=5.0, on_breach="lock", jenkins=False)
        books.append(book)
    hidden: dict[str, Playbook] = {}
    held: list[str] = []

    def hook(when: str, dep: Deployment, event: Event) -> None:
        if when == "after" and isinstance(event, GuardHeld) and dep.service == "checkout":
            held.append(dep.id)
            hidden["checkout"] = playbooks_of(stack).pop("checkout")

    stack = await make_stack(
        tmp_path, prometheus, jenkins_server, k8s_server, books, run=run, charts=Charts(), on_transition=hook
    )
    try:
        for service in ("checkout", "payments"):
            create_k8s_deployment(k8s_server.url, service, f"registry.example.com/{service}:1.0.0")
        ratio = {"checkout": 0.0, "payments": 0.0}

        def write() -> None:
            now = int(time.time() * 1000)
            push(
                stack.prometheus.url,
                [Series({"__name__": RATIO, "service": s, "run": run}, [(now, v)]) for s, v in ratio.items()],
            )

        write()
        ids = [
            deployment_of(await stack.engine.deploy(Deploy(service, "1.1.0"), "U0ALICE")).id
            for service in ("checkout", "payments")
        ]
        deadline = time.monotonic() + 20
        while not all(d.phase is Phase.VERIFYING for d in [await stack.get(i) for i in ids]):
            assert time.monotonic() < deadline, "never verifying"
            await stack.engine.tick()
            write()
            await asyncio.sleep(0.05)
        ratio["checkout"] = 0.5  # checkout's 1.1.0 breaches at its first tick
        write()
        # Rounds far enough apart that both guards are due in each one.
        while not held:
            assert time.monotonic() < deadline, "checkout never breached"
            await asyncio.sleep(0.6)
            write()
            before = (await stack.get(ids[1])).guard_ticks
            await stack.engine.tick()
        after = (await stack.get(ids[1])).guard_ticks
        assert after == before + 1, (
            "payments lost its tick in the round checkout's chart could not be planned"
        )
        ticks = [
            n for n in stack.chat.notifications if isinstance(n, GuardTick) and n.deployment.id == ids[1]
        ]
        assert ticks and ticks[-1].tick == after
        await stack.engine.ticks.charts.drain(5.0)
        assert stack.engine.ticks.charts.failed == 1  # the chart was given up on, and counted
    finally:
        playbooks_of(stack).update(hidden)
        await stack.runtime.close()
