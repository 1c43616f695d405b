"""A chart of every guard verdict worth one, posted into the deployment's thread, best effort.

At a verdict (a breach, a hold, the end of a post-rollback watch; a clean pass too with
``charts: always``) the ticks hand this module what the window was; it asks Prometheus for each
check's values over the window (``Metrics.range_query``) and its baseline, and hands the chart
(``bot.domain.chart.VerdictChart``) to the ``ChartPoster`` port, which draws and uploads it.

All of that runs in a task of its own, after the verdict's notification and transition, under
``chart_timeout_s``, planning included (the window's queries read the store and the playbooks): a
chart that cannot be planned, fetched, drawn or uploaded is logged and counted (``failed``), and
never delays, blocks or changes the deployment, nor the rest of the guard's tick. Its queries go
through ``Context.chart_metrics`` (a metrics adapter of its own, one thread): a burst of range
queries on a slow Prometheus must never queue the guard's own queries behind it, where their retry
deadline would run out in the queue. Which ticks failed is kept in
memory per window (a restart loses the marks of the window it interrupted, not the chart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from bot.domain import guard, mrkdwn
from bot.domain.chart import CheckChart, Series, VerdictChart
from bot.domain.measurements import TickOutcome, Value
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch
from bot.engine.context import Context, GuardPlan
from bot.ports import GuardQuery, Metrics

log = logging.getLogger("shipthread.charts")

POINTS: Final = 240
"""Points per series: enough for a smooth line, far below Prometheus' 11,000 per query."""
MAX_WINDOWS: Final = 256
"""Windows whose failing ticks are remembered (the oldest are forgotten)."""
_WORDS: Final = {"fail": "breached", "inconclusive": "inconclusive", "pass": "passed"}


@dataclass(frozen=True, slots=True)
class Window:
    """What a verdict's chart is about: the deployment, its guard, and the window that was judged."""

    deployment_id: str
    service: str
    env: str
    version: str
    spec: GuardSpec
    plan: GuardPlan
    """The window's queries with every check settled (what the chart asks for over the window)."""
    verdict: str
    started_at: datetime
    """The change the window guards (a rollout, a switch; a rollback for a post-rollback watch)."""
    ended_at: datetime
    post_rollback: bool = False
    rollback_at: datetime | None = None
    """A breach that rolls back: when the rollback started."""


class VerdictCharts:
    """Starts one chart task per verdict; ``drain`` waits for them (tests, shutdown)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.posted = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing: dict[tuple[str, datetime], list[datetime]] = {}

    def tick(self, owner: str, started_at: datetime, at: datetime, outcome: TickOutcome) -> None:
        """Remember a failing tick of a window (``owner``: the deployment or the watch)."""
        if outcome is not TickOutcome.FAIL:
            return
        self._failing.setdefault((owner, started_at), []).append(at)
        while len(self._failing) > MAX_WINDOWS:
            del self._failing[next(iter(self._failing))]

    @property
    def metrics(self) -> Metrics:
        """The charts' own metrics adapter (the guard's when none is wired)."""
        return self.ctx.chart_metrics or self.ctx.metrics

    def at_verdict(
        self,
        owner: str,
        started_at: datetime,
        verdict: str,
        post_rollback: bool,
        window: Callable[[], Awaitable[Window]],
    ) -> None:
        """Chart the window ``window()`` plans if the policy wants a chart of ``verdict``, in a task of
        its own (planning included); returns at once and never raises."""
        failing = tuple(self._failing.pop((owner, started_at), ()))
        if self.ctx.charts is None or not self.ctx.policy.charts.wants(verdict, post_rollback):
            return
        task = asyncio.create_task(self._run(owner, window, failing), name=f"chart-{owner}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> bool:
        """Wait for the charts under way (True when none is left)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(
        self, owner: str, window: Callable[[], Awaitable[Window]], failing: tuple[datetime, ...]
    ) -> None:
        try:
            await asyncio.wait_for(self._post(window, failing), self.ctx.policy.chart_timeout_s)
        except Exception as exc:  # a chart is extra: whatever went wrong, the deployment goes on
            self.failed += 1
            log.warning("%s: the guard's chart was not posted: %s", owner, exc or type(exc))
        else:
            self.posted += 1

    async def _post(self, plan: Callable[[], Awaitable[Window]], failing: tuple[datetime, ...]) -> None:
        window = await plan()
        chart = await self.chart(window, failing)
        assert self.ctx.charts is not None
        await self.ctx.charts.post_chart(chart, _comment(window))

    async def chart(self, window: Window, failing: tuple[datetime, ...] = ()) -> VerdictChart:
        """The chart of ``window``: each check's values from before the change to the verdict."""
        settles = guard.settle_times(window.spec)
        reach = max(settles.values(), default=timedelta(0)) or window.spec.interval
        start = window.started_at - reach
        end = max(window.ended_at, window.started_at + window.spec.interval)
        step = max((end - start) / POINTS, timedelta(milliseconds=1))
        baselines = window.plan.baselines or {}
        before = [q for q in baselines.values() if q.at is not None]
        at_change = await self.metrics.evaluate(before) if before else {}
        checks = await asyncio.gather(
            *(
                self._check(
                    check.name,
                    window.plan.queries.get(check.name),
                    baselines.get(check.name),
                    at_change,
                    (start, end, step),
                    window.started_at + settles.get(check.name, timedelta(0)),
                    check.min,
                    check.max,
                    str(check.baseline) if check.baseline is not None else None,
                )
                for check in window.spec.checks
            )
        )
        what = f"{window.service} {window.version} in {window.env}"
        where = "after the rollback" if window.post_rollback else "guard"
        return VerdictChart(
            deployment_id=window.deployment_id,
            title=f"{what}: {where} {_WORDS.get(window.verdict, window.verdict)}",
            verdict=window.verdict,
            checks=tuple(checks),
            start=start,
            end=end,
            changed_at=None if window.post_rollback else window.started_at,
            rollback_at=window.started_at if window.post_rollback else window.rollback_at,
            failing_ticks=failing,
            post_rollback=window.post_rollback,
        )

    async def _check(
        self,
        name: str,
        query: GuardQuery | None,
        baseline: GuardQuery | None,
        at_change: Mapping[GuardQuery, object],
        span: tuple[datetime, datetime, timedelta],
        settles_at: datetime,
        low: float | None,
        high: float | None,
        label: str | None,
    ) -> CheckChart:
        start, end, step = span
        series, error = Series(), None
        if query is not None:
            try:
                series = await self.metrics.range_query(query.rendered(), start, end, step)
            except Exception as exc:  # drawn in the panel: the other checks still get theirs
                error = f"range query failed: {exc}"
        base: Series | None = None
        if baseline is not None and baseline.at is not None:
            measured = at_change.get(baseline)
            if isinstance(measured, Value):
                base = Series(((baseline.at.timestamp(), measured.value),))
        elif baseline is not None:
            with contextlib.suppress(Exception):  # the check's own values matter more than its baseline
                base = await self.metrics.range_query(baseline.rendered(), start, end, step)
        return CheckChart(name, series, low, high, base, label, settles_at, error)


def _comment(window: Window) -> str:
    what = (
        f"`{mrkdwn.escape(window.service)} {mrkdwn.escape(window.version)}` in `{mrkdwn.escape(window.env)}`"
    )
    if window.post_rollback:
        return f"📈 The post-rollback watch of {what} ended {_WORDS.get(window.verdict, window.verdict)}."
    return f"📈 The guard of {what} {_WORDS.get(window.verdict, window.verdict)}: its checks over the window."


def settled_at(spec: GuardSpec, changed_at: datetime) -> datetime:
    """A moment when every check of ``spec`` has settled (what the chart's queries are planned at)."""
    return changed_at + max(guard.settle_times(spec).values(), default=timedelta(0))


def watch_owner(watch: GuardWatch) -> str:
    return f"watch:{watch.id if watch.id is not None else watch.deployment_id}"
