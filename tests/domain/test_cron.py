"""Cron parsing, matching (Vixie's day OR rule) and the backwards search for the latest start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.cron import CronError, CronSpec, last_start_at_or_before, parse_cron

ALL_MIN = frozenset(range(60))
ALL_HOUR = frozenset(range(24))
ALL_DAY = frozenset(range(1, 32))
ALL_MONTH = frozenset(range(1, 13))
ALL_DOW = frozenset(range(7))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("* * * * *", (ALL_MIN, ALL_HOUR, ALL_DAY, ALL_MONTH, ALL_DOW)),
        ("0 16 * * fri", ({0}, {16}, ALL_DAY, ALL_MONTH, {5})),
        ("*/15 9-17 * * MON-FRI", ({0, 15, 30, 45}, set(range(9, 18)), ALL_DAY, ALL_MONTH, {1, 2, 3, 4, 5})),
        ("5,10-12,50-59/4 0 1 jan,Jul,DEC 0", ({5, 10, 11, 12, 50, 54, 58}, {0}, {1}, {1, 7, 12}, {0})),
        ("0 0 * * 7", ({0}, {0}, ALL_DAY, ALL_MONTH, {0})),
        ("0 0 * * 5-7", ({0}, {0}, ALL_DAY, ALL_MONTH, {0, 5, 6})),
        ("0 0 * * */2", ({0}, {0}, ALL_DAY, ALL_MONTH, {0, 2, 4, 6})),
        ("30/10 */6 1-31/10 */5 *", ({30, 40, 50}, {0, 6, 12, 18}, {1, 11, 21, 31}, {1, 6, 11}, ALL_DOW)),
        ("  0   22  *  *  sat  ", ({0}, {22}, ALL_DAY, ALL_MONTH, {6})),
        ("@daily", ({0}, {0}, ALL_DAY, ALL_MONTH, ALL_DOW)),
        ("@hourly", ({0}, ALL_HOUR, ALL_DAY, ALL_MONTH, ALL_DOW)),
        ("@weekly", ({0}, {0}, ALL_DAY, ALL_MONTH, {0})),
        ("@monthly", ({0}, {0}, {1}, ALL_MONTH, ALL_DOW)),
        ("@Yearly", ({0}, {0}, {1}, {1}, ALL_DOW)),
    ],
)
def test_parse(expr: str, fields: tuple[set[int], ...]) -> None:
    spec = parse_cron(expr)
    assert (spec.minutes, spec.hours, spec.days, spec.months, spec.weekdays) == tuple(
        frozenset(f) for f in fields
    )
    assert spec.expr == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "cron '61 * * * *': minute 61 is out of range 0-59"),
        ("* 24 * * *", "cron '* 24 * * *': hour 24 is out of range 0-23"),
        ("* * 0 * *", "cron '* * 0 * *': day of month 0 is out of range 1-31"),
        ("* * * 13 *", "cron '* * * 13 *': month 13 is out of range 1-12"),
        ("* * * * 8", "cron '* * * * 8': day of week 8 is out of range 0-7"),
        ("* * *", "cron '* * *': expected 5 fields (minute, hour, day of month, month, day of week), got 3"),
        ("", "cron '': expected 5 fields (minute, hour, day of month, month, day of week), got 0"),
        (
            "* * * * * *",
            "cron '* * * * * *': expected 5 fields (minute, hour, day of month, month, day of week), got 6",
        ),
        ("x * * * *", "cron 'x * * * *': minute 'x' is not a number"),
        ("* * * foo *", "cron '* * * foo *': month 'foo' is not a number or a month name (jan..dec)"),
        (
            "* * * * funday",
            "cron '* * * * funday': day of week 'funday' is not a number or a day name (sun..sat)",
        ),
        ("* * * * jan", "cron '* * * * jan': day of week 'jan' is not a number or a day name (sun..sat)"),
        ("*/0 * * * *", "cron '*/0 * * * *': minute step 0 must be at least 1"),
        ("*/x * * * *", "cron '*/x * * * *': minute step 'x' is not a number"),
        ("*/ * * * *", "cron '*/ * * * *': minute step '' is not a number"),
        ("30-10 * * * *", "cron '30-10 * * * *': minute range 30-10 is backwards (30 > 10)"),
        ("* * * * fri-mon", "cron '* * * * fri-mon': day of week range fri-mon is backwards (5 > 1)"),
        ("1,,2 * * * *", "cron '1,,2 * * * *': minute '1,,2' has an empty item"),
        ("-5 * * * *", "cron '-5 * * * *': minute '' is not a number"),
        ("1.5 * * * *", "cron '1.5 * * * *': minute '1.5' is not a number"),
        ("² * * * *", "cron '² * * * *': minute '²' is not a number"),
        (
            "@sometimes",
            "cron '@sometimes': unknown macro '@sometimes' (use one of @annually, @daily, @hourly, "
            "@midnight, @monthly, @weekly, @yearly)",
        ),
        ("0 0 31 2 *", "cron '0 0 31 2 *': never matches: day of month 31 never occurs in month 2"),
        (
            "0 0 31 apr,jun *",
            "cron '0 0 31 apr,jun *': never matches: day of month 31 never occurs in month apr,jun",
        ),
    ],
)
def test_parse_errors(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_feb_29_and_or_rule_are_not_never() -> None:
    assert parse_cron("0 0 29 2 *").months == {2}
    assert parse_cron("0 0 31 2 mon").days == {31}  # OR rule: every Monday in February


@pytest.mark.parametrize(
    ("expr", "moment", "matches"),
    [
        ("0 16 * * fri", "2024-01-05T16:00", True),
        ("0 16 * * fri", "2024-01-05T16:00:59.999", True),
        ("0 16 * * fri", "2024-01-05T16:01", False),
        ("0 16 * * fri", "2024-01-04T16:00", False),
        ("0 0 * * 7", "2024-01-07T00:00", True),
        ("0 0 * * 0", "2024-01-07T00:00", True),
        ("0 0 * * sun", "2024-01-08T00:00", False),
        # Both restricted: the 1st, the 15th and every Friday.
        ("0 0 1,15 * fri", "2024-01-05T00:00", True),
        ("0 0 1,15 * fri", "2024-01-15T00:00", True),
        ("0 0 1,15 * fri", "2024-01-01T00:00", True),
        ("0 0 1,15 * fri", "2024-01-08T00:00", False),
        # Only one restricted: that one decides.
        ("0 0 15 * *", "2024-01-15T00:00", True),
        ("0 0 15 * *", "2024-01-05T00:00", False),
        ("0 0 * * fri", "2024-01-15T00:00", False),
        # A field starting with * is unrestricted (Vixie): both must match.
        ("0 0 */2 * mon", "2024-01-01T00:00", True),
        ("0 0 */2 * mon", "2024-01-03T00:00", False),
        ("0 0 */2 * mon", "2024-01-08T00:00", False),
        ("0 0 13 * */7", "2024-09-13T00:00", False),
        ("0 0 13 * */7", "2024-10-13T00:00", True),
        ("0 0 13 * 5", "2024-09-13T00:00", True),
        ("0 0 13 * 5", "2024-09-20T00:00", True),
        ("0 0 13 * 5", "2024-09-14T00:00", False),
        ("0 0 29 2 *", "2024-02-29T00:00", True),
        ("0 12 * jul *", "2024-07-31T12:00", True),
        ("0 12 * jul *", "2024-08-01T12:00", False),
    ],
)
def test_matches(expr: str, moment: str, matches: bool) -> None:
    assert parse_cron(expr).matches(at(moment)) is matches


def test_matches_takes_any_timezone_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    spec = parse_cron("0 16 * * fri")
    assert spec.matches(datetime(2024, 1, 5, 17, 0, tzinfo=cet))
    assert not spec.matches(datetime(2024, 1, 5, 16, 0, tzinfo=cet))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_cron("* * * * *").matches(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        last_start_at_or_before(parse_cron("* * * * *"), datetime(2024, 1, 1), timedelta(hours=1))


@pytest.mark.parametrize(
    ("expr", "t", "horizon", "expected"),
    [
        ("0 16 * * fri", "2024-01-05T18:30", timedelta(hours=4), "2024-01-05T16:00"),
        ("0 16 * * fri", "2024-01-05T16:00", timedelta(0), "2024-01-05T16:00"),
        ("0 16 * * fri", "2024-01-05T15:59:59", timedelta(days=7), "2023-12-29T16:00"),
        ("0 16 * * fri", "2024-01-05T15:59:59", timedelta(days=6), None),
        ("0 16 * * fri", "2024-01-08T08:00", timedelta(hours=64), "2024-01-05T16:00"),
        ("0 16 * * fri", "2024-01-08T08:00:01", timedelta(hours=64), None),
        ("*/15 * * * *", "2024-01-05T10:44:59", timedelta(minutes=20), "2024-01-05T10:30"),
        ("*/15 * * * *", "2024-01-05T10:44:59", timedelta(minutes=14), None),
        ("30 22 * * *", "2024-01-01T01:00", timedelta(hours=4), "2023-12-31T22:30"),
        ("50 9 * * *", "2024-01-01T10:10", timedelta(hours=1), "2024-01-01T09:50"),
        ("50 9,10 * * *", "2024-01-01T10:10", timedelta(hours=1), "2024-01-01T09:50"),
        ("10,50 9,10 * * *", "2024-01-01T10:10", timedelta(hours=1), "2024-01-01T10:10"),
        ("@yearly", "2024-07-01T00:00", timedelta(days=366), "2024-01-01T00:00"),
        ("@yearly", "2024-07-01T00:00", timedelta(days=100), None),
        ("0 0 29 2 *", "2027-03-01T00:00", timedelta(days=4 * 366), "2024-02-29T00:00"),
        ("0 0 29 2 *", "2027-03-01T00:00", timedelta(days=365 * 3), None),
        ("* * * * *", "2024-01-01T00:00:30", timedelta(seconds=20), None),
        ("* * * * *", "2024-01-01T00:00:30", timedelta(seconds=30), "2024-01-01T00:00"),
        ("* * * * *", "2024-01-01T00:00:30", timedelta(seconds=-1), None),
    ],
)
def test_last_start_at_or_before(expr: str, t: str, horizon: timedelta, expected: str | None) -> None:
    found = last_start_at_or_before(parse_cron(expr), at(t), horizon)
    assert found == (None if expected is None else at(expected))
    if found is not None:
        assert found.tzinfo is UTC


def test_last_start_from_another_timezone() -> None:
    cet = timezone(timedelta(hours=1))
    found = last_start_at_or_before(
        parse_cron("0 16 * * fri"), datetime(2024, 1, 5, 17, 30, tzinfo=cet), timedelta(1)
    )
    assert found == at("2024-01-05T16:00")


def brute_force(spec: CronSpec, t: datetime, horizon: timedelta) -> datetime | None:
    candidate = t.replace(second=0, microsecond=0)
    while candidate >= t - horizon:
        if spec.matches(candidate):
            return candidate
        candidate -= timedelta(minutes=1)
    return None


def _item(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(1, high - low + 1).map(lambda n: f"*/{n}"),
        st.tuples(number, number, st.integers(1, 10)).map(lambda p: f"{min(p[:2])}-{max(p[:2])}/{p[2]}"),
    )


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    return st.lists(_item(low, high), min_size=1, max_size=3).map(",".join)


cron_strategy = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7)).map(
    " ".join
)


@settings(max_examples=150, deadline=None)
@given(
    expr=cron_strategy,
    t=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    horizon_minutes=st.integers(0, 3 * 24 * 60),
)
def test_last_start_agrees_with_brute_force(expr: str, t: datetime, horizon_minutes: int) -> None:
    try:
        spec = parse_cron(expr)
    except CronError as exc:
        assert "never matches" in str(exc)
        return
    horizon = timedelta(minutes=horizon_minutes)
    assert last_start_at_or_before(spec, t, horizon) == brute_force(spec, t, horizon)


@settings(max_examples=200, deadline=None)
@given(expr=cron_strategy, moment=st.datetimes(timezones=st.just(UTC)))
def test_matches_follows_the_fields(expr: str, moment: datetime) -> None:
    try:
        spec = parse_cron(expr)
    except CronError:
        return
    day_ok = spec.matches_day(moment.date())
    assert spec.matches(moment) == (moment.minute in spec.minutes and moment.hour in spec.hours and day_ok)
    dom = moment.day in spec.days
    dow = moment.isoweekday() % 7 in spec.weekdays
    expected_day = (dom or dow) if (spec.days_restricted and spec.weekdays_restricted) else (dom and dow)
    assert day_ok == (moment.month in spec.months and expected_day)
