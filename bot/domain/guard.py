"""The QoS guard's verdict maths: from query results to pass, fail or "ask a human".

The metrics adapter only fetches (``Value``, ``NoData``, ``QueryFailed``); everything that decides
what those mean lives here, as pure functions, so every verdict can be tested exhaustively.

Three levels, with the vocabulary of Argo Rollouts' analysis:

- a **check** at one tick is ``pass``, ``fail``, ``inconclusive`` or ``ignored``
  (``check_outcome``);
- a **tick** combines its checks (``tick_verdict``): any failing check fails the tick; otherwise any
  inconclusive check makes it inconclusive; a tick where every check was ignored is inconclusive
  too (nothing was measured, so it must never count as a pass); otherwise it passes;
- a **window** counts ticks (``window_verdict``), as Argo Rollouts counts measurements:

  - ``failure_limit`` is the number of failed ticks tolerated. The window FAILS (breach) as soon as
    failed ticks > ``failure_limit``; with 0, the first failing tick breaches. No need to wait for
    the end of the window.
  - ``inconclusive_limit`` likewise for inconclusive ticks: exceeding it makes the window
    INCONCLUSIVE, which pauses the deployment for a human to decide.
  - A whole window of ticks with neither limit exceeded PASSES (promote, or unlock).

A query that failed (Prometheus down, timeout, bad PromQL) is always inconclusive, never a pass: the
guard cannot vouch for what it could not see. "No data" is not zero either (the series may be gone
because the service is down); it counts as the check's ``no_data`` policy, else the guard's.
A NaN value (e.g. a ratio 0/0 with no traffic) is no data too: it compares false with every
threshold, which would otherwise read as a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.measurements import Measurement, NoData, QueryFailed, TickOutcome
from bot.domain.playbook import CheckSpec, GuardSpec, NoDataPolicy, format_duration


class CheckStatus(StrEnum):
    """What one check said at one tick."""

    PASS = "pass"
    """The value was within the thresholds."""
    FAIL = "fail"
    """The value was out of the thresholds, or no data under the ``fail`` policy."""
    INCONCLUSIVE = "inconclusive"
    """The query failed, or no data under the ``inconclusive`` policy."""
    IGNORED = "ignored"
    """No data under the ``ignore`` policy: left out of the tick."""


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    """One check's verdict at one tick, with a line a person can read."""

    check: str
    """The check's name."""
    status: CheckStatus
    message: str
    """E.g. ``error_ratio = 0.21 > max 0.05`` or ``error_ratio: no data (policy: fail)``."""
    value: float | None = None
    """The measured value, when there was one."""


def _fmt(number: float) -> str:
    """Short, exact-enough numbers for people: 0.05, 1234.5, 3, 1e-09."""
    if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"


def _no_data(check: CheckSpec, default: NoDataPolicy, what: str, value: float | None) -> CheckVerdict:
    policy = check.no_data or default
    status = {
        NoDataPolicy.FAIL: CheckStatus.FAIL,
        NoDataPolicy.INCONCLUSIVE: CheckStatus.INCONCLUSIVE,
        NoDataPolicy.IGNORE: CheckStatus.IGNORED,
    }[policy]
    return CheckVerdict(check.name, status, f"{check.name}: {what} (policy: {policy.value})", value)


def check_outcome(check: CheckSpec, measurement: Measurement, default_no_data: NoDataPolicy) -> CheckVerdict:
    """Judge one measurement against one check's thresholds (bounds are inclusive)."""
    if isinstance(measurement, QueryFailed):
        return CheckVerdict(
            check.name, CheckStatus.INCONCLUSIVE, f"{check.name}: query failed: {measurement.message}"
        )
    if isinstance(measurement, NoData):
        return _no_data(check, default_no_data, "no data", None)
    value = measurement.value
    if math.isnan(value):
        return _no_data(check, default_no_data, "NaN, counted as no data", value)
    shown = f"{check.name} = {_fmt(value)}"
    if check.max is not None and value > check.max:
        return CheckVerdict(check.name, CheckStatus.FAIL, f"{shown} > max {_fmt(check.max)}", value)
    if check.min is not None and value < check.min:
        return CheckVerdict(check.name, CheckStatus.FAIL, f"{shown} < min {_fmt(check.min)}", value)
    bounds = [f"min {_fmt(check.min)}"] if check.min is not None else []
    bounds += [f"max {_fmt(check.max)}"] if check.max is not None else []
    return CheckVerdict(check.name, CheckStatus.PASS, f"{shown} (ok: {', '.join(bounds)})", value)


@dataclass(frozen=True, slots=True)
class TickVerdict:
    """The guard's verdict for one tick, and how each check contributed."""

    outcome: TickOutcome
    checks: tuple[CheckVerdict, ...]

    @property
    def summary(self) -> str:
        """The lines that explain the outcome: the failing checks for a fail, and so on."""
        wanted = {
            TickOutcome.FAIL: {CheckStatus.FAIL},
            TickOutcome.INCONCLUSIVE: {CheckStatus.INCONCLUSIVE, CheckStatus.IGNORED},
            TickOutcome.PASS: {CheckStatus.PASS},
        }[self.outcome]
        return "; ".join(c.message for c in self.checks if c.status in wanted)


def tick_verdict(spec: GuardSpec, measurements: Mapping[str, Measurement]) -> TickVerdict:
    """Combine one tick's measurements (by check name) into the tick's outcome.

    A check with no entry in ``measurements`` was not measured: it counts as a failed query.
    """
    verdicts = tuple(
        check_outcome(
            check,
            measurements.get(check.name, QueryFailed("no measurement was taken for this check")),
            spec.no_data,
        )
        for check in spec.checks
    )
    statuses = {v.status for v in verdicts}
    if CheckStatus.FAIL in statuses:
        outcome = TickOutcome.FAIL
    elif CheckStatus.INCONCLUSIVE in statuses or CheckStatus.PASS not in statuses:
        # Either something could not be judged, or every check was ignored: never a silent pass.
        outcome = TickOutcome.INCONCLUSIVE
    else:
        outcome = TickOutcome.PASS
    return TickVerdict(outcome, verdicts)


@dataclass(frozen=True, slots=True)
class WindowState:
    """The guard's running count over one window; stored with the deployment so restarts resume."""

    ticks: int
    failed: int
    inconclusive: int
    started_at: datetime

    @classmethod
    def start(cls, at: datetime) -> WindowState:
        """A fresh window starting ``at``."""
        return cls(ticks=0, failed=0, inconclusive=0, started_at=at)


def apply_tick(state: WindowState, outcome: TickOutcome) -> WindowState:
    """The window after one more tick with ``outcome``."""
    return replace(
        state,
        ticks=state.ticks + 1,
        failed=state.failed + int(outcome is TickOutcome.FAIL),
        inconclusive=state.inconclusive + int(outcome is TickOutcome.INCONCLUSIVE),
    )


def expected_ticks(spec: GuardSpec) -> int:
    """Ticks a whole window must contain: ``floor(window / interval)``.

    Floor rather than ceiling because a scheduler's ticks drift late: a 5 m window at 30 s sees
    ticks at ~30 s, 60 s, ... 300 s, and the tenth may land a moment after the window's end.
    """
    return max(1, spec.window // spec.interval)


class WindowStatus(StrEnum):
    """Where a guard window stands."""

    RUNNING = "running"
    """Neither limit exceeded yet, and the window is not over (or not all its ticks are in)."""
    PASS = "pass"
    """A whole window of ticks with neither limit exceeded: promote, or unlock."""
    FAIL = "fail"
    """Failed ticks exceeded ``failure_limit``: a breach (roll back or lock, per the playbook)."""
    INCONCLUSIVE = "inconclusive"
    """Inconclusive ticks exceeded ``inconclusive_limit``: pause for a human."""


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """A window's status and why, in words for the deployment's thread."""

    status: WindowStatus
    reason: str


def _ticks(n: int) -> str:
    return f"{n} tick{'s' if n != 1 else ''}"


def window_verdict(spec: GuardSpec, state: WindowState, now: datetime) -> WindowVerdict:
    """Judge the window so far. FAIL and INCONCLUSIVE are decided at once, PASS only at the end.

    FAIL is checked first: a breach must never hide behind an inconclusive count.
    """
    if state.failed > spec.failure_limit:
        return WindowVerdict(
            WindowStatus.FAIL,
            f"{_ticks(state.failed)} failed, more than the failure limit of {spec.failure_limit}",
        )
    if state.inconclusive > spec.inconclusive_limit:
        return WindowVerdict(
            WindowStatus.INCONCLUSIVE,
            f"{_ticks(state.inconclusive)} inconclusive, more than the inconclusive limit of "
            f"{spec.inconclusive_limit}: a person must decide",
        )
    elapsed = now - state.started_at
    needed = expected_ticks(spec)
    if elapsed >= spec.window and state.ticks >= needed:
        return WindowVerdict(
            WindowStatus.PASS,
            f"clean window: {_ticks(state.ticks)} over {format_duration(spec.window)} "
            f"({state.failed} failed, {state.inconclusive} inconclusive)",
        )
    if elapsed >= spec.window:
        return WindowVerdict(
            WindowStatus.RUNNING,
            f"window elapsed, waiting for ticks: {state.ticks} of {needed} measured",
        )
    return WindowVerdict(
        WindowStatus.RUNNING,
        f"{state.ticks} of {needed} ticks, {format_duration(max(spec.window - elapsed, timedelta(0)))} to go",
    )
