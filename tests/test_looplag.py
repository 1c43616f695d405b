"""The loop-lag monitor sees a callback that holds the event loop, and reports it to ``/metrics``."""

from __future__ import annotations

import asyncio
import time

from bot.looplag import LoopLag
from bot.metrics import Metrics


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a sync client called on the loop does


def _burn_the_loop(seconds: float) -> None:
    until = time.thread_time() + seconds  # what a heavy import or a full collection does
    while time.thread_time() < until:
        pass


async def test_a_blocking_callback_shows_as_lag_in_the_histogram_and_the_maximum() -> None:
    metrics = Metrics()
    lag = LoopLag(metrics.lag, interval_s=0.01)
    lag.start()
    try:
        await asyncio.sleep(0.1)
        quiet_max = lag.max_s
        asyncio.get_running_loop().call_soon(_hold_the_loop, 0.12)
        await asyncio.sleep(0.1)
    finally:
        lag.stop()
    assert quiet_max < 0.1
    assert lag.max_s >= 0.1
    registry = metrics.registry
    assert registry.get_sample_value("shipthread_event_loop_lag_max_seconds") == lag.max_s
    count = registry.get_sample_value("shipthread_event_loop_lag_seconds_count") or 0.0
    under_50ms = registry.get_sample_value("shipthread_event_loop_lag_seconds_bucket", {"le": "0.05"}) or 0.0
    over_50ms = count - under_50ms
    assert over_50ms >= 1
    assert lag.samples >= 5
    # Sleeping is no CPU: that lag is not one the process's code burnt (on a busy machine neither is
    # the time it waits for a core).
    assert lag.max_cpu_s < 0.1


async def test_a_callback_burning_cpu_shows_in_the_cpu_bound_part() -> None:
    metrics = Metrics()
    lag = LoopLag(metrics.lag, interval_s=0.01)
    lag.start()
    try:
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().call_soon(_burn_the_loop, 0.08)
        await asyncio.sleep(0.1)
    finally:
        lag.stop()
    assert lag.max_cpu_s >= 0.07
    registry = metrics.registry
    count = registry.get_sample_value("shipthread_event_loop_lag_cpu_seconds_count") or 0.0
    under_50ms = (
        registry.get_sample_value("shipthread_event_loop_lag_cpu_seconds_bucket", {"le": "0.05"}) or 0.0
    )
    assert count - under_50ms >= 1


async def test_stopped_it_measures_no_more() -> None:
    lag = LoopLag(interval_s=0.01)
    lag.start()
    await asyncio.sleep(0.05)
    lag.stop()
    seen = lag.samples
    await asyncio.sleep(0.05)
    assert lag.samples == seen > 0
