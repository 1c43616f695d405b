"""The timer: APScheduler 3.x calling the engine's ticks, and nothing more.

The truth stays in our tables; the scheduler only decides *when* to look. Its jobs live in memory
and are rebuilt from the store at start-up (``Engine.start``), so there is no second source of truth
to drift or corrupt (APScheduler's own SQLAlchemy job store is synchronous and would block the
loop). ``coalesce`` and ``max_instances=1`` keep a slow tick from piling up copies of itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine.orchestrator import Timer

log = logging.getLogger("shipthread.scheduler")
# A tick still running when its next turn comes is skipped on purpose (max_instances=1, coalesce):
# APScheduler logs each skip as a warning, which here is noise, not news.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
logging.getLogger("apscheduler.executors.default").setLevel(logging.ERROR)


class Scheduler(Timer):
    """One poll job per active deployment, plus one guard job for every guard at once."""

    def __init__(
        self,
        poll: Callable[[str], Awaitable[None]],
        guard_tick: Callable[[], Awaitable[None]],
        *,
        poll_interval_s: float,
        guard_resolution_s: float,
    ) -> None:
        self._poll = poll
        self._guard_tick = guard_tick
        self._poll_interval_s = poll_interval_s
        self._guard_resolution_s = guard_resolution_s
        self._scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        self._followed: set[str] = set()

    def start(self) -> None:
        """Start the timer (needs a running event loop) with the guard job."""
        self._scheduler.add_job(
            self._guard_tick,
            "interval",
            seconds=self._guard_resolution_s,
            id="guard",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def follow(self, deployment_id: str) -> None:
        if deployment_id in self._followed:
            return
        self._followed.add(deployment_id)
        self._scheduler.add_job(
            self._poll,
            "interval",
            args=[deployment_id],
            seconds=self._poll_interval_s,
            id=f"poll:{deployment_id}",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )

    def forget(self, deployment_id: str) -> None:
        if deployment_id not in self._followed:
            return
        self._followed.discard(deployment_id)
        job = self._scheduler.get_job(f"poll:{deployment_id}")
        if job is not None:
            job.remove()

    @property
    def followed(self) -> frozenset[str]:
        return frozenset(self._followed)
