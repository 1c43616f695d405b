"""EmulatedClock, the scaled clock the Slack, Jenkins and Kubernetes emulators share.

Real time is an injected counter the test moves by hand, so every expectation is exact.
"""

from __future__ import annotations

import math
import time

import pytest

from bot.sandbox.clock import EmulatedClock


class Real:
    """A hand-moved monotonic source."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_time_scale_is_real_seconds_per_emulated_second() -> None:
    real = Real()
    clock = EmulatedClock(0.5, start=100.0, source=real)

    assert clock.now() == 100.0
    real.t += 3
    assert clock.now() == 106.0
    assert clock.time_scale == 0.5
    assert clock.real_seconds(10) == 5.0


def test_a_frozen_clock_moves_only_when_advanced() -> None:
    real = Real()
    clock = EmulatedClock(0, start=10.0, source=real)

    real.t += 500
    assert clock.now() == 10.0
    assert clock.advance(2.5) == 12.5
    assert clock.now() == 12.5
    assert clock.real_seconds(1) == math.inf
    assert clock.real_seconds(0) == 0.0


def test_advance_adds_to_scaled_time_and_returns_the_new_now() -> None:
    real = Real()
    clock = EmulatedClock(1, start=0.0, source=real)

    real.t += 4
    assert clock.advance(6) == 10.0
    real.t += 1
    assert clock.now() == 11.0


def test_changing_the_time_scale_keeps_now_continuous() -> None:
    real = Real()
    clock = EmulatedClock(1, start=0.0, source=real)

    real.t += 10
    clock.set_time_scale(0.25)
    assert clock.now() == 10.0
    real.t += 1
    assert clock.now() == 14.0
    clock.set_time_scale(0)
    real.t += 100
    assert clock.now() == 14.0
    clock.set_time_scale(2)
    assert clock.now() == 14.0
    real.t += 2
    assert clock.now() == 15.0


def test_without_a_start_the_clock_starts_at_epoch_time() -> None:
    before = time.time()
    now = EmulatedClock(0).now()
    assert before <= now <= time.time()


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_bad_time_scales_and_advances_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="time_scale must be a finite number >= 0"):
        EmulatedClock(bad)
    clock = EmulatedClock(1)
    with pytest.raises(ValueError, match="time_scale must be a finite number >= 0"):
        clock.set_time_scale(bad)
    assert clock.time_scale == 1
    with pytest.raises(ValueError, match="only moves forward by a finite amount"):
        clock.advance(bad)


def test_the_clock_cannot_start_at_a_non_finite_time() -> None:
    with pytest.raises(ValueError, match="finite time"):
        EmulatedClock(1, start=math.inf)
