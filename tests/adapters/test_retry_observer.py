"""The adapters' retries and failures are counted where they happen, by the system they went to.

A real adapter (Prometheus, over real HTTP to a port nobody listens on) retried by the real retry
helper, observed by the bot's real ``Metrics``: one retry per extra attempt, one error when the
policy is spent, labelled by the system and never by free text. No log line is read.
"""

from __future__ import annotations

import socket

from bot.adapters import retrying
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.retrying import RetryPolicy
from bot.domain.measurements import QueryFailed
from bot.metrics import Metrics


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_retries_and_the_final_failure_are_counted_by_system() -> None:
    metrics = Metrics()
    unobserve = retrying.observe(metrics)
    policy = RetryPolicy(attempts=3, total_s=5.0, initial_s=0.01, max_wait_s=0.02, jitter_s=0.0)
    adapter = PrometheusMetrics(f"http://127.0.0.1:{_closed_port()}", timeout_s=1.0, policy=policy)
    try:
        # The adapter turns the spent policy into the guard's "query failed"; the retry helper saw it.
        assert isinstance(await adapter.query("up"), QueryFailed)
    finally:
        adapter.close()
        unobserve()
    assert _sample(metrics, "shipthread_adapter_retries_total") == 2
    assert _sample(metrics, "shipthread_adapter_errors_total", kind="prometheus") == 1

    # Taken off: later failures of the process are no longer told to this registry.
    adapter = PrometheusMetrics(f"http://127.0.0.1:{_closed_port()}", timeout_s=1.0, policy=policy)
    try:
        assert isinstance(await adapter.query("up"), QueryFailed)
    finally:
        adapter.close()
    assert _sample(metrics, "shipthread_adapter_retries_total") == 2
