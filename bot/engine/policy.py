"""The engine's own settings, taken from config by the composition root.

Kept apart from ``bot.config`` so the engine depends on a handful of values, not on how the config
file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain.admission import Concurrency
from bot.domain.chart import ChartPolicy
from bot.domain.locks import FreezeWindow

__all__ = ["Concurrency", "EnginePolicy", "SystemClock"]


@dataclass(frozen=True, slots=True)
class EnginePolicy:
    break_glass_group: str | None = None
    freezes: tuple[FreezeWindow, ...] = ()
    concurrency: Concurrency = Concurrency.REFUSE
    approval_ttl: timedelta = timedelta(hours=4)
    poll_interval_s: float = 2.0
    """How often builds and rollouts are polled (guards tick at their own interval)."""
    rollback_guard: bool = True
    """Lock and watch after every rollback (the post-rollback guard window)."""
    id_prefix: str = "d"
    charts: ChartPolicy = ChartPolicy.PROBLEMS
    """Which guard verdicts get a chart in their thread (when a chart poster is wired)."""
    chart_timeout_s: float = 60.0
    """The longest one chart may take, range queries, drawing and upload together."""
    extra: dict[str, str] = field(default_factory=dict)


class SystemClock:
    """The real clock, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
