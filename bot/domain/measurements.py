"""What one check measured at one guard tick: a value, no data, or an error.

Three distinct outcomes on purpose: "no samples" is not zero (the series may be gone because the
service is down), and an error fetching is not data at all. The guard's verdict maths
(``bot.domain.guard``) decides what each means; the metrics adapter only produces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Value:
    """The query returned a number."""

    value: float


@dataclass(frozen=True, slots=True)
class NoData:
    """The query ran and returned no samples."""


@dataclass(frozen=True, slots=True)
class QueryFailed:
    """The query could not be run or answered (server down, timeout, bad PromQL)."""

    message: str


Measurement = Value | NoData | QueryFailed


class TickOutcome(StrEnum):
    """The guard's verdict for one tick, over all of its checks."""

    PASS = "pass"
    """Every counted check was within its thresholds."""
    FAIL = "fail"
    """At least one check was out of its thresholds (or no data under the ``fail`` policy)."""
    INCONCLUSIVE = "inconclusive"
    """No check failed, but at least one could not be judged (error, or no data under that policy)."""
