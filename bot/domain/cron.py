"""Five-field cron expressions, for the start times of freeze windows.

Freeze windows are written in config as a cron expression plus a duration ("0 16 * * fri" for
4 h), so the bot needs two answers: does a minute match, and when did the latest matching minute
at or before now fall (to know whether its window still covers now). Both are here, pure, in UTC;
no third-party cron library is needed for that.

The dialect is Vixie cron's (crontab(5)), the one operators know:

- fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 (or ``jan``..``dec``),
  day-of-week 0-7 (or ``sun``..``sat``; 0 and 7 are both Sunday), names case-insensitive;
- items: ``*``, ``n``, ``a-b``, ``*/n``, ``a-b/n``, ``a/n`` (from ``a`` to the field's end), joined
  by commas; the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``) and ``@hourly``;
- when both day-of-month and day-of-week are restricted, a day matches if EITHER does ("1,15 * fri"
  = the 1st, the 15th and every Friday). As in Vixie cron, a field that starts with ``*`` (including
  ``*/2``) counts as unrestricted, and then both fields must match.

Expressions that can never match (``0 0 31 2 *``) are refused, since a freeze that never starts is
a mistake in config.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any


class CronError(ValueError):
    """A cron expression that cannot be parsed, with a message naming the expression and field.

    What went wrong is kept too, for messages worded otherwise (the config's): ``fields`` is how many
    fields an expression with the wrong number of them has; ``field``/``value`` name a value that is
    not a number or name of its field, or out of its range (``low``-``high``).
    """

    def __init__(
        self,
        message: str,
        *,
        fields: int | None = None,
        field: str | None = None,
        value: str | None = None,
        low: int = 0,
        high: int = 0,
    ) -> None:
        super().__init__(message)
        self.fields = fields
        self.field = field
        self.value = value
        self.low, self.high = low, high


_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The longest each month can be, leap years included: Feb 29 exists (on every weekday, over the
# Gregorian cycle), so only days past these can never happen.
_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    names_hint: str = ""


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS, "a month name (jan..dec)"),
    _Field("day of week", 0, 7, _WEEKDAYS, "a day name (sun..sat)"),
)

FIELD_ORDER = ", ".join(field.name for field in _FIELDS)
"""The five fields in order, as every cron message names them ("minute, hour, day of month, ...")."""


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed cron expression; times are matched in UTC."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    """Days of the month, 1-31."""
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday .. 6 = Saturday (a 7 in the expression is stored as 0)."""
    days_restricted: bool
    """The day-of-month field does not start with ``*``."""
    weekdays_restricted: bool
    """The day-of-week field does not start with ``*``."""

    def matches_day(self, day: date) -> bool:
        """Does ``day`` match the month, day-of-month and day-of-week fields?"""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_date or by_weekday
        return by_date and by_weekday

    def matches(self, dt: datetime) -> bool:
        """Does the minute containing ``dt`` (timezone-aware, taken in UTC) match?"""
        at = _utc(dt)
        return at.minute in self.minutes and at.hour in self.hours and self.matches_day(at.date())


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"cron times must be timezone-aware (got naive {dt.isoformat()})")
    return dt.astimezone(UTC)


def _value(text: str, field: _Field, fail: _Fail) -> int:
    bad = {"field": field.name, "value": text, "low": field.low, "high": field.high}
    if text.isascii() and text.isdigit():
        number = int(text)
    elif text.lower() in field.names:
        return field.names[text.lower()]
    elif field.names:
        raise fail(f"{field.name} {text!r} is not a number or {field.names_hint}", **bad)
    else:
        raise fail(f"{field.name} {text!r} is not a number", **bad)
    if not field.low <= number <= field.high:
        raise fail(f"{field.name} {number} is out of range {field.low}-{field.high}", **bad)
    return number


class _Fail:
    """Builds ``CronError`` messages that start with the expression."""

    def __init__(self, expr: str) -> None:
        self.expr = expr

    def __call__(self, detail: str, **what: Any) -> CronError:
        return CronError(f"cron {self.expr!r}: {detail}", **what)


def _parse_field(text: str, field: _Field, fail: _Fail) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise fail(f"{field.name} {text!r} has an empty item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise fail(f"{field.name} step {step_text!r} is not a number")
            step = int(step_text)
            if step < 1:
                raise fail(f"{field.name} step {step} must be at least 1")
        if base == "*":
            first, last = field.low, field.high
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _value(start, field, fail), _value(end, field, fail)
            if first > last:
                raise fail(f"{field.name} range {base} is backwards ({first} > {last})")
        else:
            first = _value(base, field, fail)
            last = field.high if slash else first
        values.update(range(first, last + 1, step))
    if field.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@lru_cache(maxsize=256)
def parse_cron(expr: str) -> CronSpec:
    """Parse a five-field cron expression (or a macro such as ``@daily``); raise ``CronError``."""
    fail = _Fail(expr)
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise fail(f"unknown macro {text!r} (use one of {', '.join(sorted(_MACROS))})")
        text = _MACROS[text.lower()]
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise fail(
            f"expected 5 fields ({FIELD_ORDER}), got {len(parts)}",
            fields=len(parts),
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(part, field, fail) for part, field in zip(parts, _FIELDS, strict=True)
    )
    spec = CronSpec(
        expr=expr,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    # In the OR case any weekday will do, and every month has every weekday; in the AND case the
    # day of the month alone decides whether some date can ever match.
    either = spec.days_restricted and spec.weekdays_restricted
    if not either and not any(day <= _MONTH_DAYS[month] for month in months for day in days):
        raise fail(f"never matches: day of month {parts[2]} never occurs in month {parts[3]}")
    return spec


def last_start_at_or_before(spec: CronSpec, t: datetime, horizon: timedelta) -> datetime | None:
    """The latest matching minute ``s`` with ``t - horizon <= s <= t`` (UTC), or None.

    Walks back one day at a time and, within a matching day, jumps straight to the latest
    matching hour and minute, so a horizon of a year costs a few hundred steps, not 500k minutes.
    """
    moment = _utc(t)
    earliest = moment - horizon
    if earliest > moment:
        return None
    top = moment.replace(second=0, microsecond=0)
    hours = sorted(spec.hours, reverse=True)
    minutes = sorted(spec.minutes, reverse=True)
    day = top.date()
    while day >= earliest.date():
        if spec.matches_day(day):
            for hour in hours:
                if day == top.date() and hour > top.hour:
                    continue
                limit = top.minute if (day == top.date() and hour == top.hour) else 59
                minute = next((m for m in minutes if m <= limit), None)
                if minute is None:
                    continue
                found = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                return found if found >= earliest else None
        if day == date.min:
            break
        day -= timedelta(days=1)
    return None
