"""In-memory Prometheus as the engine sees it through ``bot.ports.Metrics``: the fast tier's metrics.

A test pushes samples (labels with ``__name__``, a value, a time on the injected clock) as it would
remote-write them to a real Prometheus; queries are answered from them with Prometheus' rules that
the guard relies on: the newest sample within the 5-minute lookback of the evaluation time (``at``,
or now), an empty result or NaN is no data (never zero), more than one series for one check is a
mistake, and a query that cannot be answered is a ``QueryFailed`` (``range_query`` raises instead).
``fail_with`` makes every query fail, as a Prometheus that is down does. The contract suite
(``tests/contracts/test_metrics.py``) runs the same tests against this and against the adapter on a
real Prometheus server.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.domain.chart import Series
from bot.domain.measurements import Measurement, NoData, QueryFailed, Value
from bot.errors import PermanentError, TransientError
from bot.ports import Clock, GuardQuery
from bot.sandbox.memory.promql import PromQLError, Query, parse

__all__ = ["LOOKBACK_S", "MemoryMetrics"]

LOOKBACK_S = 300.0
"""Prometheus' default lookback delta: an instant query sees a series' newest sample this old at most."""

_Key = tuple[tuple[str, str], ...]


class MemoryMetrics:
    """``bot.ports.Metrics`` over series held in memory, on the clock it is given."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._series: dict[_Key, list[tuple[float, float]]] = {}
        self._failure: str | None = None
        self.requests = 0
        """Queries answered so far (a batch of the adapter would be one; here each query is one)."""

    # --- steering ---------------------------------------------------------------------------------

    def push(self, labels: Mapping[str, str], value: float, at: datetime | None = None) -> None:
        """One sample of the series ``labels`` (``__name__`` included) at ``at`` (None: now)."""
        when = (at or self._clock.now()).timestamp()
        samples = self._series.setdefault(tuple(sorted(labels.items())), [])
        if samples and when < samples[-1][0]:
            raise ValueError("out of order sample: a series only takes samples newer than its last")
        samples.append((when, float(value)))

    def fail_with(self, message: str | None) -> None:
        """Every query fails with ``message`` from now on (None: answers again)."""
        self._failure = message

    # --- the port ----------------------------------------------------------------------------------

    async def query(self, promql: str) -> Measurement:
        return self._measure(promql, None)

    async def evaluate(self, queries: Sequence[GuardQuery]) -> Mapping[GuardQuery, Measurement]:
        return {q: self._measure(q.rendered(), q.at) for q in dict.fromkeys(queries)}

    async def range_query(self, promql: str, start: datetime, end: datetime, step: timedelta) -> Series:
        if self._failure is not None:
            raise TransientError(f"Prometheus did not answer: {self._failure}")
        try:
            query = parse(promql)
        except PromQLError as exc:
            raise PermanentError(f"Prometheus refused the query: {exc}") from exc
        seconds = max(step.total_seconds(), 0.001)
        points: list[tuple[float, float]] = []
        labelled: set[tuple[tuple[str, str], ...]] = set()
        t = start.timestamp()
        while t <= end.timestamp() + 1e-9:
            rows = query.apply(self._at(query, t))
            labelled.update(tuple(sorted(labels.items())) for labels, _ in rows)
            if len(labelled) > 1:
                raise PermanentError(
                    f"range query returned {len(labelled)} series (a guard check must return one)"
                )
            points.extend((t, value) for _, value in rows)
            t += seconds
        return Series(tuple(points))

    # --- inside ----------------------------------------------------------------------------------

    def _measure(self, promql: str, at: datetime | None) -> Measurement:
        self.requests += 1
        if self._failure is not None:
            return QueryFailed(f"Prometheus did not answer: {self._failure}")
        try:
            query = parse(promql)
        except PromQLError as exc:
            return QueryFailed(f"Prometheus refused the query: {exc}")
        rows = query.apply(self._at(query, (at or self._clock.now()).timestamp()))
        if not rows:
            return NoData()
        if len(rows) > 1:
            labels = ", ".join(str(labels) for labels, _ in rows[:3])
            return QueryFailed(f"query returned {len(rows)} series (a guard check must return one): {labels}")
        value = rows[0][1]
        return NoData() if math.isnan(value) else Value(value)

    def _at(self, query: Query, t: float) -> list[tuple[dict[str, str], float]]:
        """Each selected series' newest sample at or before ``t`` within the lookback."""
        found: list[tuple[dict[str, str], float]] = []
        for key, samples in self._series.items():
            labels = dict(key)
            if not query.selects(labels):
                continue
            i = bisect.bisect_right(samples, (t, math.inf)) - 1
            if i >= 0 and t - samples[i][0] <= LOOKBACK_S:
                found.append((labels, samples[i][1]))
        return found
