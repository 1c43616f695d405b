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

Only the version under test is judged. After the change a window guards (a rollout step, a switch,
a rollback), each check *settles* for its longest look-back (``bot.domain.settling``; the guard's
``initial_delay`` replaces it for every check): while it settles it is ``settling``, which is
neither a pass, a failure nor "no data", and it is not queried. The window's clock starts when
the first check has settled and runs until the last one has been judged for the whole ``window``:
its span is ``window + (longest settle - shortest settle)``, so every check is judged for at least
the configured window, and ``expected_ticks`` counts the ticks of that span.

A check with a ``baseline`` is judged against the same query on the stable track (``stable``) or at
the change time (``before``) as well as against its absolute ``min``/``max``: it fails when the
new value is worse (higher) than the baseline by more than every tolerance given (``max_increase``
absolute, ``max_ratio`` relative; with both, both must be exceeded, so a tiny baseline's noise
cannot fail a ratio alone). No data on either side is "no data" for the check's policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.measurements import Measurement, NoData, QueryFailed, TickOutcome
from bot.domain.playbook import CheckSpec, GuardSpec, NoDataPolicy, format_duration

_NO_TIME = timedelta(0)


class CheckStatus(StrEnum):
    """What one check said at one tick."""

    PASS = "pass"
    """The value was within the thresholds."""
    FAIL = "fail"
    """The value was out of the thresholds, or no data under the ``fail`` policy."""
    INCONCLUSIVE = "inconclusive"
    """The query failed, or no data under the ``inconclusive`` policy."""
    IGNORED = "ignored"
    """No data under the ``ignore`` policy (or nothing that applies here): left out of the tick."""
    SETTLING = "settling"
    """Its ranges still see data from before the change: not judged yet, not queried, left out."""


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


def check_outcome(
    check: CheckSpec,
    measurement: Measurement,
    default_no_data: NoDataPolicy,
    baseline: Measurement | None = None,
) -> CheckVerdict:
    """Judge one measurement against one check's thresholds (bounds are inclusive).

    ``baseline`` is the check's baseline measurement; None when its baseline does not apply here
    (a post-rollback watch): then only the absolute bounds judge, and a check without any is ignored.
    """
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
    if check.baseline is not None and baseline is not None:
        relative = _relative(check, value, baseline, default_no_data)
        if relative.status is not CheckStatus.PASS or not bounds:
            return relative
        return replace(relative, message=f"{relative.message}, {', '.join(bounds)}")
    if not bounds:
        return CheckVerdict(
            check.name,
            CheckStatus.IGNORED,
            f"{shown}: its {check.baseline} baseline does not apply here and it has no min/max",
            value,
        )
    return CheckVerdict(check.name, CheckStatus.PASS, f"{shown} (ok: {', '.join(bounds)})", value)


def _relative(check: CheckSpec, value: float, baseline: Measurement, default: NoDataPolicy) -> CheckVerdict:
    """The new value against its baseline: worse (higher) by more than every tolerance fails."""
    side = str(check.baseline)
    if isinstance(baseline, QueryFailed):
        return CheckVerdict(
            check.name,
            CheckStatus.INCONCLUSIVE,
            f"{check.name}: {side} baseline query failed: {baseline.message}",
            value,
        )
    if isinstance(baseline, NoData) or math.isnan(baseline.value):
        return _no_data(check, default, f"no data for the {side} baseline", value)
    base = baseline.value
    shown = f"{check.name} = {_fmt(value)} vs {side} {_fmt(base)}"
    over: list[str] = []
    within: list[str] = []
    if check.max_increase is not None:
        text = f"+{_fmt(value - base)}" if value >= base else _fmt(value - base)
        limit = f"max_increase {_fmt(check.max_increase)}"
        (over if value - base > check.max_increase else within).append(
            f"{text} {'>' if value - base > check.max_increase else '<='} {limit}"
        )
    if check.max_ratio is not None:
        exceeded = value > base * check.max_ratio
        ratio = "inf" if base == 0 and value > 0 else _fmt(value / base) if base else "1"
        within_or_over = over if exceeded else within
        within_or_over.append(f"x{ratio} {'>' if exceeded else '<='} max_ratio {_fmt(check.max_ratio)}")
    if over and not within:
        return CheckVerdict(check.name, CheckStatus.FAIL, f"{shown}: {', '.join(over)}", value)
    return CheckVerdict(check.name, CheckStatus.PASS, f"{shown} (ok: {', '.join(within)})", value)


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


def tick_verdict(
    spec: GuardSpec,
    measurements: Mapping[str, Measurement],
    baselines: Mapping[str, Measurement] | None = None,
    elapsed: timedelta | None = None,
    before: str | None = None,
) -> TickVerdict:
    """Combine one tick's measurements (by check name) into the tick's outcome.

    A check with no entry in ``measurements`` was not measured: it counts as a failed query.
    ``baselines`` holds the baseline measurements of checks whose baseline applies (a missing one
    is a failed query too). ``elapsed`` is the time since the change: checks that have not settled
    yet are ``settling`` (``before`` names what their ranges still see, for the message).
    """
    waiting = settling_checks(spec, elapsed) if elapsed is not None else {}
    applies = baselines if baselines is not None else {}
    verdicts = tuple(
        _settling(check, spec, waiting[check.name], before)
        if check.name in waiting
        else check_outcome(
            check,
            measurements.get(check.name, QueryFailed("no measurement was taken for this check")),
            spec.no_data,
            applies.get(check.name, QueryFailed("no baseline was measured for this check"))
            if check.baseline is not None and baselines is not None
            else None,
        )
        for check in spec.checks
    )
    statuses = {v.status for v in verdicts} - {CheckStatus.SETTLING}
    if CheckStatus.FAIL in statuses:
        outcome = TickOutcome.FAIL
    elif CheckStatus.INCONCLUSIVE in statuses or CheckStatus.PASS not in statuses:
        # Either something could not be judged, or every check was ignored: never a silent pass.
        outcome = TickOutcome.INCONCLUSIVE
    else:
        outcome = TickOutcome.PASS
    return TickVerdict(outcome, verdicts)


def _settling(check: CheckSpec, spec: GuardSpec, remaining: timedelta, before: str | None) -> CheckVerdict:
    what = before or "the version before the change"
    if spec.initial_delay is not None:
        why = f"the guard's initial_delay of {format_duration(spec.initial_delay)}"
    else:
        why = f"its {format_duration(check.lookback)} window still sees {what}"
    return CheckVerdict(
        check.name, CheckStatus.SETTLING, f"{check.name} settling for {format_duration(remaining)}: {why}"
    )


# -- settling and the window's clock ------------------------------------------------------------------


def settle_times(spec: GuardSpec) -> dict[str, timedelta]:
    """How long after the change each check waits before it judges (by check name)."""
    if spec.initial_delay is not None:
        return {check.name: spec.initial_delay for check in spec.checks}
    return {check.name: check.lookback for check in spec.checks}


def settling_checks(spec: GuardSpec, elapsed: timedelta) -> dict[str, timedelta]:
    """The checks still settling ``elapsed`` after the change, with the time each has left."""
    return {name: settle - elapsed for name, settle in settle_times(spec).items() if elapsed < settle}


def first_settled(spec: GuardSpec) -> timedelta:
    """When (after the change) the first check has settled: the window's clock starts there."""
    return min(settle_times(spec).values(), default=_NO_TIME)


def judged_span(spec: GuardSpec) -> timedelta:
    """How long the window's clock runs: ``window`` plus the spread of the checks' settling times,
    so the check that settles last is still judged for a whole ``window``."""
    times = settle_times(spec).values()
    return spec.window + (max(times, default=_NO_TIME) - min(times, default=_NO_TIME))


def tick_is_due(spec: GuardSpec, changed_at: datetime, ticks: int, now: datetime) -> bool:
    """Tick ``ticks + 1`` of a window is due one interval after the previous one, counted from
    the moment the first check settled."""
    return now >= changed_at + first_settled(spec) + spec.interval * (ticks + 1)


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
    """Ticks a whole window must contain: ``floor(span / interval)``, the span being ``window``
    plus the spread of the checks' settling times (``judged_span``; for checks that settle
    together, just ``window``).

    Floor rather than ceiling because a scheduler's ticks drift late: a 5 m window at 30 s sees
    ticks at ~30 s, 60 s, ... 300 s, and the tenth may land a moment after the window's end.
    """
    return max(1, judged_span(spec) // spec.interval)


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

    FAIL is checked first: a breach must never hide behind an inconclusive count. ``state.started_at``
    is the change; the window's clock starts once the first check has settled (``first_settled``).
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
    settle = first_settled(spec)
    elapsed = now - state.started_at - settle
    span = judged_span(spec)
    needed = expected_ticks(spec)
    if elapsed < _NO_TIME:
        return WindowVerdict(
            WindowStatus.RUNNING, f"settling: the first check judges in {format_duration(-elapsed)}"
        )
    if elapsed >= span and state.ticks >= needed:
        settled = f" after settling {format_duration(settle)}" if settle else ""
        return WindowVerdict(
            WindowStatus.PASS,
            f"clean window: {_ticks(state.ticks)} over {format_duration(span)}{settled} "
            f"({state.failed} failed, {state.inconclusive} inconclusive)",
        )
    if elapsed >= span:
        return WindowVerdict(
            WindowStatus.RUNNING,
            f"window elapsed, waiting for ticks: {state.ticks} of {needed} measured",
        )
    return WindowVerdict(
        WindowStatus.RUNNING,
        f"{state.ticks} of {needed} ticks, {format_duration(max(span - elapsed, _NO_TIME))} to go",
    )
