"""What a verdict's chart shows, as plain data, and when a verdict gets one.

The engine gathers it at a guard verdict (each check's values over the window from a Prometheus
range query, its bounds or baseline, the settling span, the change and rollback marks, the failing
ticks); an adapter draws it and posts it into the deployment's thread. Keeping the chart a value
means the drawing is a pure function of it and the engine never knows how (or whether) it is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ChartPolicy(StrEnum):
    """Which verdicts get a chart (``slack.charts`` in config)."""

    ALWAYS = "always"
    """Every verdict, a clean pass included."""
    PROBLEMS = "problems"
    """A breach, a hold (inconclusive) and the end of a post-rollback watch; not a clean pass."""
    NEVER = "never"

    def wants(self, verdict: str, post_rollback: bool) -> bool:
        """Whether a verdict (``pass``/``fail``/``inconclusive``) gets a chart under this policy."""
        if self is ChartPolicy.NEVER:
            return False
        if self is ChartPolicy.ALWAYS:
            return True
        # The end of a post-rollback watch closes an incident: worth a picture even when clean.
        return post_rollback or verdict != "pass"


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: (unix seconds, value) points in time order; empty when Prometheus had none."""

    points: tuple[tuple[float, float], ...] = ()

    @property
    def times(self) -> tuple[float, ...]:
        return tuple(t for t, _ in self.points)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(v for _, v in self.points)


@dataclass(frozen=True, slots=True)
class CheckChart:
    """One check's panel: its values, its bounds, its baseline, and why values are missing."""

    name: str
    series: Series
    min: float | None = None
    max: float | None = None
    baseline: Series | None = None
    """The baseline's values (the stable track over the window, or the value at the change time)."""
    baseline_label: str | None = None
    """``stable`` or ``before``."""
    settles_at: datetime | None = None
    """When this check stopped settling (its ranges saw only the version under test)."""
    error: str | None = None
    """Why the series could not be fetched (plain text), drawn in the panel instead of values."""


@dataclass(frozen=True, slots=True)
class VerdictChart:
    """A whole chart: one panel per check over ``start``..``end``, with the window's marks."""

    deployment_id: str
    title: str
    """Plain text (service, version, environment, verdict)."""
    verdict: str
    """``pass``, ``fail`` or ``inconclusive``."""
    checks: tuple[CheckChart, ...]
    start: datetime
    end: datetime
    changed_at: datetime | None = None
    """The change the window guards (a rollout step, a switch)."""
    rollback_at: datetime | None = None
    """When the rollback started (a breach) or completed (a post-rollback watch)."""
    failing_ticks: tuple[datetime, ...] = ()
    post_rollback: bool = False

    @property
    def filename(self) -> str:
        stamp = self.end.strftime("%Y%m%dT%H%M%SZ")
        return f"guard-{self.deployment_id}-{self.verdict}-{stamp}.png"
