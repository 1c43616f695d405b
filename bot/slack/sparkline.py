"""Tiny text charts for the guard's window reply: a check's recent values against its threshold.

A sparkline is scaled to include the threshold, so a line drawn entirely in low blocks reads as
"well under the limit" rather than being stretched to fill the height; the threshold's own level is
shown beside it. Tick marks say pass / fail / no data for each tick of the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

BARS: Final = "▁▂▃▄▅▆▇█"
GAP: Final = "·"
"""Drawn where a tick had no value (no data, or the query failed)."""

MARKS: Final = {"pass": "✓", "fail": "✗", "inconclusive": "·", "ignored": "·"}


def level(value: float, low: float, high: float) -> int:
    """Which bar (0..7) ``value`` is in a scale from ``low`` to ``high``."""
    if high <= low:
        return len(BARS) // 2
    share = (value - low) / (high - low)
    return max(0, min(len(BARS) - 1, int(share * (len(BARS) - 1) + 0.5)))


def sparkline(values: Sequence[float | None], thresholds: Sequence[float | None] = ()) -> str:
    """One character per value, ``·`` for no value; the scale includes every given threshold."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    bounds = finite + [t for t in thresholds if t is not None and math.isfinite(t)]
    if not bounds:
        return GAP * len(values)
    low, high = min(bounds), max(bounds)
    if low > 0 and not any(t is not None and t == low for t in thresholds):
        low = 0.0  # values that never dip near zero still read against a zero floor
    return "".join(BARS[level(v, low, high)] if v is not None and math.isfinite(v) else GAP for v in values)


def marks(statuses: Sequence[str]) -> str:
    """``✓ ✗ ·`` for each tick's check status (pass, fail, anything else)."""
    return "".join(MARKS.get(s, "·") for s in statuses)


def bar(done: float, width: int = 20) -> str:
    """A progress bar ``▓▓▓░░░`` for a share between 0 and 1."""
    share = 0.0 if not math.isfinite(done) else max(0.0, min(1.0, done))
    full = int(share * width + 0.5)
    return "▓" * full + "░" * (width - full)
