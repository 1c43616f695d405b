"""A clock that moves only when a test moves it: the ``bot.ports.Clock`` of the fast tier.

The in-memory stand-ins and the engine share one of these, so a build "runs for 2 s", a rollout
"waits for its pods" and a guard window "passes" the moment a test calls ``advance`` — no test of
the fast tier ever sleeps on the real clock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Where a manual clock starts unless told otherwise (a Monday morning, outside any freeze)."""


class ManualClock:
    """Timezone-aware UTC time that stands still until ``advance`` moves it forward."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("a manual clock starts at a timezone-aware time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def seconds(self) -> float:
        """Now as epoch seconds (what the stand-ins keep their timestamps in)."""
        return self._now.timestamp()

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds``; returns the new now."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the clock only moves forward by a finite amount, not {seconds!r}")
        self._now += timedelta(seconds=seconds)
        return self._now
