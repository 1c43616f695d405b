"""Guard verdicts: every check outcome, every tick rule, and the window's Argo Rollouts counting."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.guard import (
    CheckStatus,
    CheckVerdict,
    WindowState,
    WindowStatus,
    apply_tick,
    check_outcome,
    expected_ticks,
    tick_verdict,
    window_verdict,
)
from bot.domain.measurements import Measurement, NoData, QueryFailed, TickOutcome, Value
from bot.domain.playbook import CheckSpec, GuardSpec, NoDataPolicy

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
ERRORS = CheckSpec(name="error_ratio", query="q1", max=0.05)
LATENCY = CheckSpec(name="p99", query="q2", min=0.0, max=0.5, no_data=NoDataPolicy.IGNORE)
THROUGHPUT = CheckSpec(name="rps", query="q3", min=10)


def guard(**overrides: object) -> GuardSpec:
    values: dict[str, object] = {"checks": (ERRORS, LATENCY, THROUGHPUT)}
    values.update(overrides)
    return GuardSpec.model_validate(values)


@pytest.mark.parametrize(
    ("check", "measurement", "default", "status", "message"),
    [
        pytest.param(
            ERRORS, Value(0.21), NoDataPolicy.FAIL, CheckStatus.FAIL, "error_ratio = 0.21 > max 0.05"
        ),
        pytest.param(
            ERRORS, Value(0.01), NoDataPolicy.FAIL, CheckStatus.PASS, "error_ratio = 0.01 (ok: max 0.05)"
        ),
        pytest.param(
            ERRORS, Value(0.05), NoDataPolicy.FAIL, CheckStatus.PASS, "error_ratio = 0.05 (ok: max 0.05)"
        ),
        pytest.param(ERRORS, Value(0), NoDataPolicy.FAIL, CheckStatus.PASS, "error_ratio = 0 (ok: max 0.05)"),
        pytest.param(
            ERRORS, Value(math.inf), NoDataPolicy.FAIL, CheckStatus.FAIL, "error_ratio = inf > max 0.05"
        ),
        pytest.param(THROUGHPUT, Value(3), NoDataPolicy.FAIL, CheckStatus.FAIL, "rps = 3 < min 10"),
        pytest.param(THROUGHPUT, Value(10), NoDataPolicy.FAIL, CheckStatus.PASS, "rps = 10 (ok: min 10)"),
        pytest.param(
            THROUGHPUT, Value(-math.inf), NoDataPolicy.FAIL, CheckStatus.FAIL, "rps = -inf < min 10"
        ),
        pytest.param(LATENCY, Value(0.75), NoDataPolicy.FAIL, CheckStatus.FAIL, "p99 = 0.75 > max 0.5"),
        pytest.param(LATENCY, Value(-1), NoDataPolicy.FAIL, CheckStatus.FAIL, "p99 = -1 < min 0"),
        pytest.param(
            LATENCY, Value(0.25), NoDataPolicy.FAIL, CheckStatus.PASS, "p99 = 0.25 (ok: min 0, max 0.5)"
        ),
        pytest.param(
            THROUGHPUT, Value(1234.5), NoDataPolicy.FAIL, CheckStatus.PASS, "rps = 1234.5 (ok: min 10)"
        ),
        pytest.param(
            ERRORS, NoData(), NoDataPolicy.FAIL, CheckStatus.FAIL, "error_ratio: no data (policy: fail)"
        ),
        pytest.param(
            ERRORS,
            NoData(),
            NoDataPolicy.INCONCLUSIVE,
            CheckStatus.INCONCLUSIVE,
            "error_ratio: no data (policy: inconclusive)",
        ),
        pytest.param(
            ERRORS,
            NoData(),
            NoDataPolicy.IGNORE,
            CheckStatus.IGNORED,
            "error_ratio: no data (policy: ignore)",
        ),
        pytest.param(
            LATENCY,
            NoData(),
            NoDataPolicy.FAIL,
            CheckStatus.IGNORED,
            "p99: no data (policy: ignore)",
            id="the check's policy overrides the guard's",
        ),
        pytest.param(
            ERRORS,
            Value(math.nan),
            NoDataPolicy.FAIL,
            CheckStatus.FAIL,
            "error_ratio: NaN, counted as no data (policy: fail)",
            id="NaN is no data, not a pass",
        ),
        pytest.param(
            ERRORS,
            QueryFailed("timeout after 10s"),
            NoDataPolicy.FAIL,
            CheckStatus.INCONCLUSIVE,
            "error_ratio: query failed: timeout after 10s",
        ),
        pytest.param(
            LATENCY,
            QueryFailed("bad_data: parse error"),
            NoDataPolicy.IGNORE,
            CheckStatus.INCONCLUSIVE,
            "p99: query failed: bad_data: parse error",
            id="query failed is inconclusive even under ignore",
        ),
    ],
)
def test_check_outcome(
    check: CheckSpec, measurement: Measurement, default: NoDataPolicy, status: CheckStatus, message: str
) -> None:
    verdict = check_outcome(check, measurement, default)
    assert verdict.check == check.name
    assert verdict.status is status
    assert verdict.message == message
    if isinstance(measurement, Value) and not math.isnan(measurement.value):
        assert verdict.value == measurement.value


PASSING: dict[str, Measurement] = {"error_ratio": Value(0.0), "p99": Value(0.1), "rps": Value(50)}


@pytest.mark.parametrize(
    ("changes", "no_data", "outcome"),
    [
        pytest.param({}, NoDataPolicy.INCONCLUSIVE, TickOutcome.PASS, id="all pass"),
        pytest.param(
            {"error_ratio": Value(0.3)}, NoDataPolicy.INCONCLUSIVE, TickOutcome.FAIL, id="one fails"
        ),
        pytest.param(
            {"error_ratio": Value(0.3), "rps": QueryFailed("down")},
            NoDataPolicy.INCONCLUSIVE,
            TickOutcome.FAIL,
            id="fail wins over inconclusive",
        ),
        pytest.param(
            {"rps": QueryFailed("down")}, NoDataPolicy.IGNORE, TickOutcome.INCONCLUSIVE, id="query failed"
        ),
        pytest.param(
            {"rps": NoData()}, NoDataPolicy.INCONCLUSIVE, TickOutcome.INCONCLUSIVE, id="no data inconcl."
        ),
        pytest.param({"rps": NoData()}, NoDataPolicy.FAIL, TickOutcome.FAIL, id="no data fails"),
        pytest.param(
            {"rps": NoData()}, NoDataPolicy.IGNORE, TickOutcome.PASS, id="no data ignored, others pass"
        ),
        pytest.param({"p99": NoData()}, NoDataPolicy.FAIL, TickOutcome.PASS, id="check policy ignore wins"),
        pytest.param(
            {"error_ratio": NoData(), "p99": NoData(), "rps": NoData()},
            NoDataPolicy.IGNORE,
            TickOutcome.INCONCLUSIVE,
            id="everything ignored is never a pass",
        ),
    ],
)
def test_tick_verdict(changes: dict[str, Measurement], no_data: NoDataPolicy, outcome: TickOutcome) -> None:
    verdict = tick_verdict(guard(no_data=no_data), {**PASSING, **changes})
    assert verdict.outcome is outcome
    assert [v.check for v in verdict.checks] == ["error_ratio", "p99", "rps"]


def test_missing_measurement_is_a_failed_query() -> None:
    verdict = tick_verdict(guard(), {"error_ratio": Value(0.0), "p99": Value(0.1)})
    assert verdict.outcome is TickOutcome.INCONCLUSIVE
    assert verdict.checks[2] == CheckVerdict(
        "rps", CheckStatus.INCONCLUSIVE, "rps: query failed: no measurement was taken for this check"
    )


def test_tick_summary_explains_the_outcome() -> None:
    failing = tick_verdict(guard(), {**PASSING, "error_ratio": Value(0.21), "rps": Value(2)})
    assert failing.summary == "error_ratio = 0.21 > max 0.05; rps = 2 < min 10"
    unsure = tick_verdict(guard(), {**PASSING, "rps": QueryFailed("connection refused")})
    assert unsure.summary == "rps: query failed: connection refused"


measurement_strategy = st.one_of(
    st.builds(Value, st.floats(allow_nan=True, allow_infinity=True)),
    st.just(NoData()),
    st.builds(QueryFailed, st.text(max_size=10)),
)
policy_strategy = st.sampled_from(list(NoDataPolicy))
checks_strategy = st.lists(
    st.builds(
        lambda i, lo, span, policy: CheckSpec(
            name=f"c{i}", query="q", min=lo, max=None if span is None else lo + span, no_data=policy
        ),
        st.integers(0, 1000),
        st.floats(-1e6, 1e6),
        st.none() | st.floats(0, 1e6),
        st.none() | policy_strategy,
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda c: c.name,
)


@settings(max_examples=400, deadline=None)
@given(checks=checks_strategy, default=policy_strategy, data=st.data())
def test_tick_verdict_properties(checks: list[CheckSpec], default: NoDataPolicy, data: st.DataObject) -> None:
    spec = GuardSpec(checks=tuple(checks), no_data=default)
    measurements = {c.name: data.draw(measurement_strategy) for c in checks}
    verdict = tick_verdict(spec, measurements)
    statuses = [v.status for v in verdict.checks]
    if any(isinstance(m, QueryFailed) for m in measurements.values()):
        assert verdict.outcome is not TickOutcome.PASS
    if any(isinstance(m, Value) and math.isnan(m.value) for m in measurements.values()):
        assert verdict.outcome is not TickOutcome.PASS or all(
            c.no_data is NoDataPolicy.IGNORE or (c.no_data is None and default is NoDataPolicy.IGNORE)
            for c, m in zip(checks, measurements.values(), strict=True)
            if isinstance(m, Value) and math.isnan(m.value)
        )
    assert (verdict.outcome is TickOutcome.FAIL) == (CheckStatus.FAIL in statuses)
    assert (verdict.outcome is TickOutcome.PASS) == (
        CheckStatus.PASS in statuses and set(statuses) <= {CheckStatus.PASS, CheckStatus.IGNORED}
    )
    for check, v in zip(checks, verdict.checks, strict=True):
        m = measurements[check.name]
        if v.status is CheckStatus.PASS:
            assert isinstance(m, Value)
            assert (check.min is None or m.value >= check.min) and (check.max is None or m.value <= check.max)


@pytest.mark.parametrize(
    ("interval", "window", "ticks"),
    [
        (timedelta(seconds=30), timedelta(minutes=5), 10),
        (timedelta(seconds=45), timedelta(minutes=5), 6),
        (timedelta(minutes=1), timedelta(minutes=1), 1),
        (timedelta(seconds=7), timedelta(seconds=20), 2),
    ],
)
def test_expected_ticks(interval: timedelta, window: timedelta, ticks: int) -> None:
    assert expected_ticks(guard(interval=interval, window=window)) == ticks


def state(ticks: int, failed: int = 0, inconclusive: int = 0) -> WindowState:
    return WindowState(ticks=ticks, failed=failed, inconclusive=inconclusive, started_at=T0)


@pytest.mark.parametrize(
    ("limits", "window_state", "elapsed", "status", "reason"),
    [
        pytest.param(
            {}, state(0), timedelta(0), WindowStatus.RUNNING, "0 of 10 ticks, 5m to go", id="just started"
        ),
        pytest.param(
            {},
            state(4),
            timedelta(seconds=125),
            WindowStatus.RUNNING,
            "4 of 10 ticks, 2m55s to go",
            id="clean so far",
        ),
        pytest.param(
            {},
            state(1, failed=1),
            timedelta(seconds=30),
            WindowStatus.FAIL,
            "1 tick failed, more than the failure limit of 0",
            id="limit 0: first failing tick breaches",
        ),
        pytest.param(
            {"failure_limit": 2},
            state(5, failed=2),
            timedelta(seconds=150),
            WindowStatus.RUNNING,
            "5 of 10 ticks, 2m30s to go",
            id="failures within the limit",
        ),
        pytest.param(
            {"failure_limit": 2},
            state(6, failed=3),
            timedelta(seconds=180),
            WindowStatus.FAIL,
            "3 ticks failed, more than the failure limit of 2",
            id="failures beyond the limit",
        ),
        pytest.param(
            {},
            state(2, inconclusive=1),
            timedelta(seconds=60),
            WindowStatus.INCONCLUSIVE,
            "1 tick inconclusive, more than the inconclusive limit of 0: a person must decide",
            id="inconclusive beyond limit",
        ),
        pytest.param(
            {"inconclusive_limit": 3},
            state(10, inconclusive=3),
            timedelta(minutes=5),
            WindowStatus.PASS,
            "clean window: 10 ticks over 5m (0 failed, 3 inconclusive)",
            id="inconclusive within limit still passes",
        ),
        pytest.param(
            {},
            state(3, failed=1, inconclusive=2),
            timedelta(seconds=90),
            WindowStatus.FAIL,
            "1 tick failed, more than the failure limit of 0",
            id="fail is reported before inconclusive",
        ),
        pytest.param(
            {},
            state(10),
            timedelta(minutes=5),
            WindowStatus.PASS,
            "clean window: 10 ticks over 5m (0 failed, 0 inconclusive)",
            id="whole clean window",
        ),
        pytest.param(
            {},
            state(10),
            timedelta(minutes=4, seconds=59),
            WindowStatus.RUNNING,
            "10 of 10 ticks, 1s to go",
            id="enough ticks but the window is not over",
        ),
        pytest.param(
            {},
            state(8),
            timedelta(minutes=6),
            WindowStatus.RUNNING,
            "window elapsed, waiting for ticks: 8 of 10 measured",
            id="window over but ticks missing",
        ),
        pytest.param(
            {"failure_limit": 1},
            state(10, failed=1),
            timedelta(minutes=5, seconds=2),
            WindowStatus.PASS,
            "clean window: 10 ticks over 5m (1 failed, 0 inconclusive)",
            id="tolerated failure passes",
        ),
    ],
)
def test_window_verdict(
    limits: dict[str, int], window_state: WindowState, elapsed: timedelta, status: WindowStatus, reason: str
) -> None:
    verdict = window_verdict(guard(**limits), window_state, T0 + elapsed)
    assert verdict.status is status
    assert verdict.reason == reason


def test_late_ticks_still_pass_a_window() -> None:
    """Ticks 1 s late each: the tenth lands after the window's end and the window passes then."""
    spec = guard()
    current = WindowState.start(T0)
    verdicts = []
    for n in range(1, 11):
        now = T0 + n * spec.interval + timedelta(seconds=1)
        current = apply_tick(current, TickOutcome.PASS)
        verdicts.append(window_verdict(spec, current, now).status)
    assert verdicts == [WindowStatus.RUNNING] * 9 + [WindowStatus.PASS]


def test_apply_tick_counts_and_copies() -> None:
    start = WindowState.start(T0)
    assert start == WindowState(0, 0, 0, T0)
    after = apply_tick(
        apply_tick(apply_tick(start, TickOutcome.FAIL), TickOutcome.INCONCLUSIVE), TickOutcome.PASS
    )
    assert after == WindowState(ticks=3, failed=1, inconclusive=1, started_at=T0)
    assert start == WindowState(0, 0, 0, T0)


@settings(max_examples=400, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(list(TickOutcome)), max_size=30),
    failure_limit=st.integers(0, 5),
    inconclusive_limit=st.integers(0, 5),
    interval_s=st.integers(1, 120),
    ticks_per_window=st.integers(1, 20),
    elapsed_s=st.integers(0, 5000),
)
def test_window_verdict_properties(
    outcomes: list[TickOutcome],
    failure_limit: int,
    inconclusive_limit: int,
    interval_s: int,
    ticks_per_window: int,
    elapsed_s: int,
) -> None:
    spec = guard(
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        interval=timedelta(seconds=interval_s),
        window=timedelta(seconds=interval_s * ticks_per_window),
    )
    current = WindowState.start(T0)
    for outcome in outcomes:
        current = apply_tick(current, outcome)
    assert current.ticks == len(outcomes)
    assert current.failed == outcomes.count(TickOutcome.FAIL)
    assert current.inconclusive == outcomes.count(TickOutcome.INCONCLUSIVE)
    status = window_verdict(spec, current, T0 + timedelta(seconds=elapsed_s)).status
    assert (status is WindowStatus.FAIL) == (current.failed > failure_limit)
    if current.failed <= failure_limit:
        assert (status is WindowStatus.INCONCLUSIVE) == (current.inconclusive > inconclusive_limit)
    whole_window = elapsed_s >= interval_s * ticks_per_window and current.ticks >= ticks_per_window
    within_limits = current.failed <= failure_limit and current.inconclusive <= inconclusive_limit
    assert (status is WindowStatus.PASS) == (whole_window and within_limits)
    assert (status is WindowStatus.RUNNING) == (not whole_window and within_limits)


def test_check_names_are_unique_within_a_guard() -> None:
    # Measurements and rendered queries are keyed by check name: a second check of the same name
    # would silently be judged against the other one's query.
    with pytest.raises(ValueError, match="check name 'errors' is used twice"):
        GuardSpec(
            checks=(
                CheckSpec(name="errors", query="sum(rate(errors[1m]))", max=1),
                CheckSpec(name="errors", query="histogram_quantile(0.99, latency)", max=0.5),
            )
        )
