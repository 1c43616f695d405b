"""How far back a check looks (its settling time), and the guard's window around settling checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.domain.guard import (
    CheckStatus,
    WindowState,
    WindowStatus,
    check_outcome,
    expected_ticks,
    judged_span,
    tick_is_due,
    tick_verdict,
    window_verdict,
)
from bot.domain.measurements import NoData, QueryFailed, TickOutcome, Value
from bot.domain.playbook import Baseline, CheckSpec, GuardSpec, NoDataPolicy
from bot.domain.settling import LookbackError, lookback

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("query", "seconds"),
    [
        ('max(ratio{service="web"})', 0),
        ("rate(x[1m])", 60),
        ("sum(rate(a[5m])) / sum(rate(b[1m]))", 300),
        ("max_over_time(rate(x[1m])[5m:30s])", 360),
        ("max_over_time(x[5m:])", 300),
        ("x offset 2m", 120),
        ("rate(x[1m] offset 2m)", 180),
        ("rate(x[1m] @ end())", 60),
        ("rate(x[1m] @ start() offset 30s)", 90),
        ("avg_over_time((sum(rate(x[30s] offset 10s)))[2m:15s] offset 1m)", 220),
        ('rate(x{path="/a[1h]"}[1m])', 60),  # a bracket inside a label value is no range
        ("rate(x{path='[1h]'}[1m])", 60),
        ("rate(x[1m]) # was [1h]", 60),
        ("x offset -5m", 0),
        ("rate(x[1h30m])", 5400),
        ("rate(x[1d])", 86400),
        # A subquery over an aggregation re-evaluates all of it, not just its label list.
        ("max_over_time(sum(rate(x[1m])) by (service)[5m:])", 360),
        ("max_over_time(sum(rate(x[1m])) without (pod)[5m:])", 360),
        ("max_over_time(sum(rate(x[1m])) BY(service, env)[5m:30s])", 360),
        ("sum by (service) (rate(x[1m]))[5m:]", 360),
        ("max_over_time(sum without (pod) (rate(x[1m]))[5m:])", 360),
        ("max_over_time(sum(rate(x[1m])) by (service)[5m:] offset 1m)", 420),
        ("max_over_time((sum(rate(x[1m])) by (service))[5m:])", 360),
        ("max_over_time(topk(3, rate(x[2m])) by (pod)[5m:])", 420),
        # The subquery binds tighter than '/': only the right-hand aggregation is re-evaluated.
        ("avg_over_time(sum(rate(x[2m])) by (a) / sum(rate(y[1m])) by (a)[5m:])", 360),
    ],
)
def test_lookback(query: str, seconds: float) -> None:
    assert lookback(query) == timedelta(seconds=seconds)


def test_lookback_below_a_second() -> None:
    assert lookback("rate(x[500ms])") == timedelta(milliseconds=500)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("x @ 1609746000", "pins the check to a fixed time"),
        ("rate(x[5x])", "not a PromQL duration"),
        ("rate(x[1m)", "'[' without ']'"),
        ("x]", "']' without '['"),
    ],
)
def test_unreadable_lookbacks_are_refused(query: str, message: str) -> None:
    with pytest.raises(LookbackError, match=message.replace("[", r"\[").replace("]", r"\]")):
        lookback(query)


FAST = CheckSpec(name="errors", query="max(ratio)", max=0.05)
SLOW = CheckSpec(name="p99", query="histogram_quantile(0.99, sum(rate(h[2m])) by (le))", max=0.5)


def spec(*checks: CheckSpec, **overrides: object) -> GuardSpec:
    return GuardSpec.model_validate({"checks": checks, "interval": 30, "window": 300, **overrides})


def test_a_settling_check_is_neither_pass_fail_nor_no_data() -> None:
    g = spec(FAST, SLOW)
    verdict = tick_verdict(g, {"errors": Value(0.01)}, elapsed=timedelta(seconds=45), before="1.1.0")
    assert verdict.outcome is TickOutcome.PASS
    slow = verdict.checks[1]
    assert slow.status is CheckStatus.SETTLING
    assert slow.message == "p99 settling for 1m15s: its 2m window still sees 1.1.0"
    # Settled: judged (here: not measured, which is a failed query, never a pass).
    later = tick_verdict(g, {"errors": Value(0.01)}, elapsed=timedelta(minutes=2))
    assert later.outcome is TickOutcome.INCONCLUSIVE


def test_initial_delay_overrides_every_checks_settling() -> None:
    g = spec(FAST, SLOW, initial_delay=10)
    verdict = tick_verdict(g, {}, elapsed=timedelta(seconds=4))
    assert [c.status for c in verdict.checks] == [CheckStatus.SETTLING] * 2
    assert "initial_delay of 10s" in verdict.checks[0].message
    assert judged_span(g) == timedelta(minutes=5)


def test_the_window_starts_when_the_first_check_settles_and_judges_the_last_for_a_whole_window() -> None:
    g = spec(FAST, SLOW)  # settles at 0 s and 2 m
    assert judged_span(g) == timedelta(minutes=7)
    assert expected_ticks(g) == 14
    one = spec(SLOW)
    assert judged_span(one) == timedelta(minutes=5) and expected_ticks(one) == 10
    assert not tick_is_due(one, T0, 0, T0 + timedelta(minutes=2, seconds=29))
    assert tick_is_due(one, T0, 0, T0 + timedelta(minutes=2, seconds=30))
    state = WindowState(ticks=10, failed=0, inconclusive=0, started_at=T0)
    assert window_verdict(one, state, T0 + timedelta(minutes=6, seconds=59)).status is WindowStatus.RUNNING
    done = window_verdict(one, state, T0 + timedelta(minutes=7))
    assert done.status is WindowStatus.PASS and "after settling 2m" in done.reason
    early = window_verdict(one, WindowState.start(T0), T0 + timedelta(seconds=20))
    assert early.status is WindowStatus.RUNNING and "settling" in early.reason


RELATIVE = CheckSpec(
    name="5xx", query='max(r{track="{track}"})', max=0.06, baseline=Baseline.STABLE, max_increase=0.01
)


@pytest.mark.parametrize(
    ("value", "base", "status", "message"),
    [
        (0.05, 0.03, CheckStatus.FAIL, "5xx = 0.05 vs stable 0.03: +0.02 > max_increase 0.01"),
        (
            0.035,
            0.03,
            CheckStatus.PASS,
            "5xx = 0.035 vs stable 0.03 (ok: +0.005 <= max_increase 0.01), max 0.06",
        ),
        (
            0.02,
            0.03,
            CheckStatus.PASS,
            "5xx = 0.02 vs stable 0.03 (ok: -0.01 <= max_increase 0.01), max 0.06",
        ),
        (0.07, 0.07, CheckStatus.FAIL, "5xx = 0.07 > max 0.06"),  # the absolute bound still holds
    ],
)
def test_stable_baseline(value: float, base: float, status: CheckStatus, message: str) -> None:
    verdict = check_outcome(RELATIVE, Value(value), NoDataPolicy.FAIL, Value(base))
    assert (verdict.status, verdict.message) == (status, message)


def test_a_ratio_and_an_increase_must_both_be_exceeded() -> None:
    both = CheckSpec(name="p99", query="q", baseline=Baseline.BEFORE, max_ratio=1.5, max_increase=0.05)
    # Doubled, but by 0.002 s: a tiny baseline's noise does not fail the ratio alone.
    assert check_outcome(both, Value(0.004), NoDataPolicy.FAIL, Value(0.002)).status is CheckStatus.PASS
    failed = check_outcome(both, Value(0.4), NoDataPolicy.FAIL, Value(0.2))
    assert failed.status is CheckStatus.FAIL
    assert failed.message == "p99 = 0.4 vs before 0.2: +0.2 > max_increase 0.05, x2 > max_ratio 1.5"
    ratio = CheckSpec(name="p99", query="q", baseline=Baseline.BEFORE, max_ratio=1.5)
    assert check_outcome(ratio, Value(0.004), NoDataPolicy.FAIL, Value(0.002)).status is CheckStatus.FAIL


def test_a_baseline_on_a_check_bounded_only_below_is_refused() -> None:
    # A success ratio: lower is worse, but the relative maths take higher as worse, so it would
    # fail a better canary (0.99 vs 0.95: +0.04) and pass a worse one (0.91 vs 0.95).
    with pytest.raises(ValidationError, match="a baseline judges higher values as worse"):
        CheckSpec(name="ok", query="q{track}", min=0.9, baseline=Baseline.STABLE, max_increase=0.005)


def test_a_baseline_on_a_check_with_a_max_judges_higher_as_worse() -> None:
    bounded = CheckSpec(name="5xx", query="q", min=0, max=0.5, baseline=Baseline.BEFORE, max_increase=0.005)
    assert check_outcome(bounded, Value(0.02), NoDataPolicy.FAIL, Value(0.01)).status is CheckStatus.FAIL
    assert check_outcome(bounded, Value(0.001), NoDataPolicy.FAIL, Value(0.01)).status is CheckStatus.PASS


def test_no_data_on_either_side_is_no_data_for_the_policy() -> None:
    missing = check_outcome(RELATIVE, Value(0.01), NoDataPolicy.FAIL, NoData())
    assert missing.status is CheckStatus.FAIL and "no data for the stable baseline" in missing.message
    nan = check_outcome(RELATIVE, Value(0.01), NoDataPolicy.INCONCLUSIVE, Value(float("nan")))
    assert nan.status is CheckStatus.INCONCLUSIVE
    assert check_outcome(RELATIVE, NoData(), NoDataPolicy.IGNORE, Value(0.01)).status is CheckStatus.IGNORED
    failed = check_outcome(RELATIVE, Value(0.01), NoDataPolicy.FAIL, QueryFailed("timeout"))
    assert failed.status is CheckStatus.INCONCLUSIVE


def test_where_no_baseline_applies_only_absolute_bounds_judge() -> None:
    assert check_outcome(RELATIVE, Value(0.05), NoDataPolicy.FAIL, None).status is CheckStatus.PASS
    only = CheckSpec(name="5xx", query="q", baseline=Baseline.BEFORE, max_increase=0.01)
    ignored = check_outcome(only, Value(0.05), NoDataPolicy.FAIL, None)
    assert ignored.status is CheckStatus.IGNORED
    # A tick with only such checks measured nothing: never a silent pass.
    assert tick_verdict(spec(only), {"5xx": Value(0.05)}).outcome is TickOutcome.INCONCLUSIVE
    # A baseline that applies but was not measured is a failed query.
    assert tick_verdict(spec(only), {"5xx": Value(0.05)}, {}).outcome is TickOutcome.INCONCLUSIVE
