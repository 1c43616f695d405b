"""Prometheus adapter: instant queries for the QoS guard, batched by shape, never a false pass;
range queries for the charts of its verdicts.

"No data" (an empty result, or NaN from 0/0 when there is no traffic) is kept distinct from zero and
from an error; every failure to get an answer becomes ``QueryFailed``, which the guard treats as
inconclusive. The client library is synchronous and runs in a bounded thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from bot.adapters.blocking import BlockingRunner
from bot.adapters.http_errors import error_for_status, is_transient
from bot.adapters.promql import batch_template, services_regex
from bot.adapters.retrying import RetryPolicy, retry
from bot.domain.chart import Series
from bot.domain.measurements import Measurement, NoData, QueryFailed, Value
from bot.domain.template import render_promql
from bot.errors import PermanentError, ShipthreadError, TransientError
from bot.ports import GuardQuery

log = logging.getLogger("shipthread.prometheus")

Row = Mapping[str, Any]
Shape = tuple[str, tuple[tuple[str, str], ...], datetime | None]
"""What one batched query shares: template, values other than the service, evaluation time."""


class PrometheusMetrics:
    """The ``Metrics`` port over a Prometheus HTTP API."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        policy: RetryPolicy | None = None,
        workers: int = 4,
        batch: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_s
        # Retries are ours (tenacity, logged, bounded); the library's own urllib3 retries are off.
        self._client = PrometheusConnect(
            url=self.url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_s
        )
        self._policy = policy or RetryPolicy(attempts=3, total_s=max(2 * timeout_s, 5.0), max_wait_s=1.0)
        self._runner = BlockingRunner("prometheus", workers)
        self._batch = batch

    def close(self) -> None:
        self._runner.close()

    async def query(self, promql: str, at: datetime | None = None) -> Measurement:
        try:
            rows = await self._rows(promql, at)
        except ShipthreadError as exc:
            return QueryFailed(str(exc))
        return _single(rows)

    async def evaluate(self, queries: Sequence[GuardQuery]) -> Mapping[GuardQuery, Measurement]:
        # One batch per shape: the template, every value but the service (``{track}`` included), and
        # the evaluation time (a ``baseline: before`` query is asked about the change time).
        groups: dict[Shape, list[GuardQuery]] = defaultdict(list)
        for q in dict.fromkeys(queries):
            others = tuple(p for p in q.params if p[0] != "service")
            groups[(q.template, others, q.at)].append(q)
        jobs: list[Coroutine[Any, Any, dict[GuardQuery, Measurement]]] = []
        for (template, others, at), members in groups.items():
            batched = batch_template(template) if self._batch and len(members) > 1 else None
            if batched is None:
                jobs.extend(self._one(q) for q in members)
            else:
                jobs.append(self._many(batched, others, at, members))
        results: dict[GuardQuery, Measurement] = {}
        for part in await asyncio.gather(*jobs):
            results.update(part)
        return results

    async def _one(self, q: GuardQuery) -> dict[GuardQuery, Measurement]:
        return {q: await self.query(q.rendered(), q.at)}

    async def _many(
        self,
        batched: str,
        others: tuple[tuple[str, str], ...],
        at: datetime | None,
        members: list[GuardQuery],
    ) -> dict[GuardQuery, Measurement]:
        promql = render_promql(batched, dict(others), keep_missing=True)
        promql = promql.replace("{services}", services_regex([q.param("service") or "" for q in members]))
        try:
            rows = await self._rows(promql, at)
        except ShipthreadError as exc:
            return {q: QueryFailed(str(exc)) for q in members}
        by_service: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_service[str(row.get("metric", {}).get("service", ""))].append(row)
        return {q: _single(by_service.get(q.param("service") or "", [])) for q in members}

    async def range_query(self, promql: str, start: datetime, end: datetime, step: timedelta) -> Series:
        rows = await retry(
            self._policy,
            f"prometheus range query {promql[:80]!r}",
            lambda: self._attempt_range(promql, start, end, step),
            system="prometheus",
        )
        if not rows:
            return Series()
        if len(rows) > 1:
            raise PermanentError(f"range query returned {len(rows)} series (a guard check must return one)")
        points: list[tuple[float, float]] = []
        for pair in rows[0].get("values", []):
            try:
                points.append((float(pair[0]), float(pair[1])))
            except (IndexError, TypeError, ValueError):
                raise PermanentError("range query returned a sample that is not a number") from None
        return Series(tuple(points))

    async def _attempt_range(self, promql: str, start: datetime, end: datetime, step: timedelta) -> list[Row]:
        # The library rounds start and end to whole seconds; our own (exact) values override its.
        params = {
            "timeout": f"{max(1, int(self._timeout * 1000))}ms",
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
        }
        return await self._call(
            self._client.custom_query_range,
            promql,
            start_time=start,
            end_time=end,
            step=f"{max(step.total_seconds(), 0.001):.3f}",
            params=params,
            timeout=self._timeout,
        )

    async def _rows(self, promql: str, at: datetime | None = None) -> list[Row]:
        return await retry(
            self._policy,
            f"prometheus query {promql[:80]!r}",
            lambda: self._attempt(promql, at),
            system="prometheus",
        )

    async def _attempt(self, promql: str, at: datetime | None) -> list[Row]:
        params: dict[str, str] = {"timeout": f"{max(1, int(self._timeout * 1000))}ms"}
        if at is not None:
            # Prometheus' own evaluation time: what the query said then, not a value we stored.
            params["time"] = f"{at.timestamp():.3f}"
        return await self._call(self._client.custom_query, promql, params=params, timeout=self._timeout)

    async def _call(self, method: Callable[..., Any], promql: str, **kwargs: Any) -> list[Row]:
        """One call of the client library, its failures mapped onto our error tree."""
        try:
            data = await self._runner.run(method, promql, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"Prometheus at {self.url} did not answer: {type(exc).__name__}") from exc
        except PrometheusApiClientException as exc:
            raise _refusal(exc) from exc
        except (requests.RequestException, ValueError) as exc:
            raise TransientError(f"Prometheus answer unreadable: {exc}") from exc
        if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
            # A scalar result comes back as [timestamp, "value"], not a list of series.
            return [{"metric": {}, "value": data}]
        if not isinstance(data, list):
            raise PermanentError(f"Prometheus answered an unexpected result type: {type(data).__name__}")
        return data


_STATUS = re.compile(r"HTTP Status Code (\d{3})")
"""How the client library reports the status of an answer it refused (in the message only)."""


def _refusal(exc: PrometheusApiClientException) -> ShipthreadError:
    """The client's exception for a non-2xx answer, classed by its status (``http_errors``)."""
    text = str(exc)
    found = _STATUS.search(text)
    status = int(found.group(1)) if found else 400  # no status: the client refused the request itself
    said = "Prometheus error" if is_transient(status) else "Prometheus refused the query"
    message = f"{said}: {text[:300]}"
    return error_for_status(status, message)


def _single(rows: Sequence[Row]) -> Measurement:
    """One check must yield one number; zero series is no data, several is a mistake in the check."""
    if not rows:
        return NoData()
    if len(rows) > 1:
        labels = ", ".join(str(dict(r.get("metric", {}))) for r in rows[:3])
        return QueryFailed(f"query returned {len(rows)} series (a guard check must return one): {labels}")
    try:
        value = float(rows[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return QueryFailed("query returned a sample that is not a number")
    if math.isnan(value):
        return NoData()  # 0/0: no traffic to judge, which is not "0 % errors"
    return Value(value)
