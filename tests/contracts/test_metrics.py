"""What the engine relies on from ``bot.ports.Metrics``, checked on the Prometheus adapter (against a
real Prometheus) and the stand-in.

A value, no data (never zero), NaN as no data, a tick's batch of queries answered per query, a check
that yields several series or does not parse as a failed query (never an exception), evaluation at
an earlier time, range queries for charts, and a Prometheus that cannot be reached.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.measurements import NoData, QueryFailed, Value
from bot.errors import TransientError
from bot.ports import GuardQuery
from tests.contracts.worlds import MetricsWorld


def check(series: str) -> str:
    return f'max({series}{{service="{{service}}",env="{{env}}"}})'


async def test_a_value_and_no_data_which_is_not_zero(metrics_world: MetricsWorld, series: str) -> None:
    now = metrics_world.now()
    metrics_world.push({"__name__": series, "service": "checkout", "env": "prod"}, [(now, 0.25)])
    metrics_world.push({"__name__": series, "service": "idle", "env": "prod"}, [(now, float("nan"))])
    assert await metrics_world.metrics.query(f'max({series}{{service="checkout"}})') == Value(0.25)
    assert await metrics_world.metrics.query(f'max({series}{{service="nobody"}})') == NoData()
    assert await metrics_world.metrics.query(f'max({series}{{service="idle"}})') == NoData()


async def test_a_batch_is_answered_per_query(metrics_world: MetricsWorld, series: str) -> None:
    now = metrics_world.now()
    for service, value in (("checkout", 0.01), ("payments", 0.2), ("search", 0.0)):
        metrics_world.push({"__name__": series, "service": service, "env": "prod"}, [(now, value)])
    queries = [
        GuardQuery.of(check(series), service=s, env="prod")
        for s in ("checkout", "payments", "search", "cart")
    ]
    staging = GuardQuery.of(check(series), service="checkout", env="staging")
    answers = await metrics_world.metrics.evaluate([*queries, staging, queries[0]])
    assert set(answers) == {*queries, staging}
    assert [answers[q] for q in queries] == [Value(0.01), Value(0.2), Value(0.0), NoData()]
    assert answers[staging] == NoData()


async def test_a_check_with_several_series_or_bad_promql_fails_without_raising(
    metrics_world: MetricsWorld, series: str
) -> None:
    now = metrics_world.now()
    for env in ("prod", "staging"):
        metrics_world.push({"__name__": series, "service": "checkout", "env": env}, [(now, 1.0)])
    several = await metrics_world.metrics.query(f'{series}{{service="checkout"}}')
    assert isinstance(several, QueryFailed) and "2 series" in several.message
    assert isinstance(await metrics_world.metrics.query(f"max({series}{{service="), QueryFailed)
    bad = GuardQuery.of("max(" + series + "{service=", service="checkout")
    assert isinstance((await metrics_world.metrics.evaluate([bad]))[bad], QueryFailed)


async def test_a_query_evaluated_at_an_earlier_time_sees_what_was_then(
    metrics_world: MetricsWorld, series: str
) -> None:
    now = metrics_world.now()
    labels = {"__name__": series, "service": "checkout", "env": "prod"}
    metrics_world.push(labels, [(now - timedelta(seconds=120), 0.5), (now - timedelta(seconds=10), 0.02)])
    q = GuardQuery.of(check(series), service="checkout", env="prod")
    before = q.evaluated_at(now - timedelta(seconds=60))
    answers = await metrics_world.metrics.evaluate([q, before])
    assert answers[q] == Value(0.02) and answers[before] == Value(0.5)
    long_ago = q.evaluated_at(now - timedelta(hours=1))
    assert (await metrics_world.metrics.evaluate([long_ago]))[long_ago] == NoData()


async def test_a_range_query_yields_the_one_series(metrics_world: MetricsWorld, series: str) -> None:
    now = metrics_world.now()
    labels = {"__name__": series, "service": "checkout", "env": "prod"}
    metrics_world.push(labels, [(now - timedelta(seconds=s), 0.1 * s) for s in (40, 30, 20, 10)])
    got = await metrics_world.metrics.range_query(
        f'max({series}{{service="checkout"}})', now - timedelta(seconds=40), now - timedelta(seconds=10),
        timedelta(seconds=10),
    )  # fmt: skip
    assert [round(v, 6) for _, v in got.points] == [4.0, 3.0, 2.0, 1.0]
    nothing = await metrics_world.metrics.range_query(
        f'max({series}{{service="nobody"}})', now - timedelta(seconds=40), now, timedelta(seconds=10)
    )
    assert nothing.points == ()


async def test_an_unreachable_prometheus_is_a_failed_query_and_a_raised_range(
    metrics_world: MetricsWorld, series: str
) -> None:
    down = metrics_world.down()
    assert isinstance(await down.query(f"max({series})"), QueryFailed)
    q = GuardQuery.of(check(series), service="checkout", env="prod")
    assert isinstance((await down.evaluate([q]))[q], QueryFailed)
    now = metrics_world.now()
    with pytest.raises(TransientError):
        await down.range_query(f"max({series})", now - timedelta(seconds=60), now, timedelta(seconds=10))
