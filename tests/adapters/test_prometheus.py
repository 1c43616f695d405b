"""The Prometheus adapter against a real Prometheus server: values, no data, errors, batching."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator

import pytest

from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.promql import batch_template
from bot.adapters.retrying import RetryPolicy
from bot.domain.measurements import NoData, QueryFailed, Value
from bot.ports import GuardQuery
from tests.support.prometheus import PrometheusServer, free_port
from tests.support.promwrite import Series, push
from tests.support.silent_server import silent_server

ERROR_RATIO = (
    'sum(rate(http_requests_total{service="{service}",run="{env}",code=~"5.."}[2m]))'
    ' / sum(rate(http_requests_total{service="{service}",run="{env}"}[2m]))'
)
P99 = (
    "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket"
    '{service="{service}",run="{env}"}[2m])) by (le))'
)


def _run_id() -> str:
    return uuid.uuid4().hex[:12]


def _traffic(run: str, service: str, ok_per_s: float, err_per_s: float) -> list[Series]:
    """Two minutes of counters at 15 s steps ending now: a known request and error rate."""
    now = int(time.time() * 1000)
    steps = [now - 120_000 + i * 15_000 for i in range(9)]
    ok = Series({"__name__": "http_requests_total", "service": service, "run": run, "code": "200"})
    err = Series({"__name__": "http_requests_total", "service": service, "run": run, "code": "500"})
    for i, t in enumerate(steps):
        ok.samples.append((t, ok_per_s * 15 * i))
        err.samples.append((t, err_per_s * 15 * i))
    buckets = []
    for le, share in (("0.1", 0.9), ("0.5", 0.99), ("+Inf", 1.0)):
        b = Series(
            {"__name__": "http_request_duration_seconds_bucket", "service": service, "run": run, "le": le}
        )
        b.samples.extend((t, (ok_per_s + err_per_s) * 15 * i * share) for i, t in enumerate(steps))
        buckets.append(b)
    return [ok, err, *buckets]


@pytest.fixture
async def metrics(prometheus: PrometheusServer) -> AsyncIterator[PrometheusMetrics]:
    adapter = PrometheusMetrics(prometheus.url, timeout_s=2.0)
    yield adapter
    adapter.close()


def _query_requests(prometheus: PrometheusServer) -> int:
    """How many instant queries the server has answered, read from its own /metrics (not a query)."""
    text = urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=5).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_value_is_read_back(prometheus: PrometheusServer, metrics: PrometheusMetrics) -> None:
    run = _run_id()
    push(prometheus.url, _traffic(run, "checkout", ok_per_s=8, err_per_s=2))
    result = await metrics.query(GuardQuery.of(ERROR_RATIO, service="checkout", env=run).rendered())
    assert isinstance(result, Value)
    assert result.value == pytest.approx(0.2, abs=0.01)


async def test_zero_errors_is_a_value_not_no_data(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    push(prometheus.url, _traffic(run, "checkout", ok_per_s=10, err_per_s=0))
    result = await metrics.query(GuardQuery.of(ERROR_RATIO, service="checkout", env=run).rendered())
    assert result == Value(0.0)


async def test_missing_series_is_no_data(metrics: PrometheusMetrics) -> None:
    result = await metrics.query(GuardQuery.of(ERROR_RATIO, service="ghost", env=_run_id()).rendered())
    assert result == NoData()


async def test_no_traffic_nan_is_no_data_not_zero(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    push(prometheus.url, _traffic(run, "idle", ok_per_s=0, err_per_s=0))
    result = await metrics.query(GuardQuery.of(ERROR_RATIO, service="idle", env=run).rendered())
    assert result == NoData()


async def test_bad_promql_is_query_failed(metrics: PrometheusMetrics) -> None:
    result = await metrics.query("sum(rate(http_requests_total[2m]")
    assert isinstance(result, QueryFailed)
    assert "refused" in result.message


async def test_several_series_is_query_failed(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    push(prometheus.url, _traffic(run, "checkout", ok_per_s=1, err_per_s=1))
    result = await metrics.query(f'http_requests_total{{run="{run}"}}')
    assert isinstance(result, QueryFailed)
    assert "2 series" in result.message


async def test_prometheus_down_is_an_error_never_a_pass() -> None:
    port = free_port()  # nothing listens here
    adapter = PrometheusMetrics(
        f"http://127.0.0.1:{port}", timeout_s=0.5, policy=RetryPolicy(attempts=2, total_s=2, initial_s=0.05)
    )
    try:
        result = await adapter.query("vector(1)")
        batch = await adapter.evaluate(
            [GuardQuery.of(ERROR_RATIO, service=s, env="x") for s in ("a", "b", "c")]
        )
    finally:
        adapter.close()
    assert isinstance(result, QueryFailed)
    assert all(isinstance(m, QueryFailed) for m in batch.values())
    assert len(batch) == 3


async def test_a_server_that_never_answers_times_out() -> None:
    with silent_server() as port:
        adapter = PrometheusMetrics(
            f"http://127.0.0.1:{port}",
            timeout_s=0.3,
            policy=RetryPolicy(attempts=2, total_s=2, initial_s=0.05),
        )
        try:
            started = time.monotonic()
            result = await adapter.query("vector(1)")
            elapsed = time.monotonic() - started
        finally:
            adapter.close()
    assert isinstance(result, QueryFailed)
    assert "did not answer" in result.message
    assert elapsed < 5  # bounded by timeout x attempts, not hanging


async def test_batched_answers_equal_one_by_one(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    services = [f"svc{i}" for i in range(6)]
    series = []
    for i, service in enumerate(services[:-1]):  # the last one has no traffic at all
        series += _traffic(run, service, ok_per_s=10 - i, err_per_s=i)
    push(prometheus.url, series)
    queries = [GuardQuery.of(t, service=s, env=run) for s in services for t in (ERROR_RATIO, P99)]
    batched = await metrics.evaluate(queries)
    single = PrometheusMetrics(prometheus.url, batch=False)
    try:
        one_by_one = await single.evaluate(queries)
    finally:
        single.close()
    assert set(batched) == set(queries)
    for q in queries:
        a, b = batched[q], one_by_one[q]
        if isinstance(b, Value):
            assert isinstance(a, Value) and a.value == pytest.approx(b.value), q
        else:
            assert a == b, q
    assert batched[GuardQuery.of(ERROR_RATIO, service="svc5", env=run)] == NoData()
    svc3 = batched[GuardQuery.of(ERROR_RATIO, service="svc3", env=run)]
    assert isinstance(svc3, Value) and svc3.value == pytest.approx(0.3)


async def test_requests_per_tick_grow_with_shapes_not_deployments(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    counts = {}
    for n in (1, 5, 20):
        services = [f"app{i}" for i in range(n)]
        queries = [GuardQuery.of(t, service=s, env=run) for s in services for t in (ERROR_RATIO, P99)]
        before = _query_requests(prometheus)
        result = await metrics.evaluate(queries)
        counts[n] = _query_requests(prometheus) - before
        assert len(result) == 2 * n
    assert counts == {1: 2, 5: 2, 20: 2}


async def test_unbatchable_shapes_still_answer_one_each(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    run = _run_id()
    push(prometheus.url, _traffic(run, "a", 1, 1) + _traffic(run, "b", 1, 0))
    template = 'sum without (code) (rate(http_requests_total{service="{service}",run="{env}"}[2m]))'
    queries = [GuardQuery.of(template, service=s, env=run) for s in ("a", "b")]
    before = _query_requests(prometheus)
    result = await metrics.evaluate(queries)
    assert _query_requests(prometheus) - before == 2
    assert all(isinstance(v, Value) for v in result.values())


def test_label_values_are_escaped_in_queries() -> None:
    q = GuardQuery.of('up{service="{service}"}', service='x"} or vector(1) or {a="')
    assert re.fullmatch(r'up\{service="x\\"\} or vector\(1\) or \{a=\\""\}', q.rendered())


async def test_a_share_of_unfiltered_traffic_is_not_split_by_service(
    prometheus: PrometheusServer, metrics: PrometheusMetrics
) -> None:
    """A selector without the service matcher spans every service in the single query; grouping it
    ``by (service)`` in a batch would silently change what the check measures."""
    run = _run_id()
    push(
        prometheus.url,
        _traffic(run, "a", ok_per_s=8, err_per_s=2) + _traffic(run, "b", ok_per_s=10, err_per_s=0),
    )
    share = (
        'sum(rate(http_requests_total{service="{service}",run="{env}",code=~"5.."}[2m]))'
        ' / sum(rate(http_requests_total{run="{env}"}[2m]))'
    )
    queries = [GuardQuery.of(share, service=s, env=run) for s in ("a", "b")]

    result = await metrics.evaluate(queries)

    share_of_a = result[queries[0]]  # 2 errors/s of 20 requests/s in all
    assert isinstance(share_of_a, Value) and share_of_a.value == pytest.approx(0.1, abs=0.01)
    assert result[queries[1]] == Value(0.0)


@pytest.mark.parametrize(
    "template",
    [
        'sum(rate(errors_total{service="{service}"}[2m])) / sum(rate(requests_total[2m]))',
        'sum(rate(errors_total{service="{service}"}[2m])) / sum(rate(requests_total{run="x"}[2m]))',
        'sum(rate(errors_total{service="{service}"}[2m])) / cluster:requests:rate2m',
    ],
)
def test_selectors_without_the_service_matcher_are_not_batched(template: str) -> None:
    assert batch_template(template) is None


def test_filtered_shapes_still_batch() -> None:
    assert batch_template(ERROR_RATIO) is not None
    assert batch_template(P99) is not None
    shifted = 'sum(rate(job:errors:total{service="{service}"}[5m] offset 1m)) > bool 0.5'
    assert batch_template(shifted) is not None
