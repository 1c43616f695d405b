"""Durations as playbooks and config write them: ``90``, ``30s``, ``5m``, ``1h30m`` (or ISO 8601).

Durations (``Duration``) go from 0s to 30 days: every timeout, interval and approval time fits, and
an infinite, not-a-number or absurd value (``.inf``, ``99999999999999``) is refused with the range
rather than overflowing ``timedelta``; a text longer than ``MAX_DURATION_TEXT`` is refused before
anything parses it. Spans that look back or cover a season (``LongDuration``: a prerequisite's
``within``, a freeze window) may reach 366 days. JSON output and the JSON Schema use the same notation.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

# Matched against the stripped text. Each optional part starts with digits and whitespace can only
# come right before them, so there is one way to match any string: no backtracking, however many
# spaces (a pattern with adjacent `\s*`s took seconds on a few hundred and hung on more).
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:\s*(?P<m>\d+)m)?(?:\s*(?P<s>\d+)s)?")
_DURATION_SCHEMA = r"^\d+(h(\s*\d+m)?(\s*\d+s)?|m(\s*\d+s)?|s)$|^P"
"""The same notation for editors (JSON Schema), deterministic too: an editor checks it on every key."""
MAX_DURATION_TEXT = 32
"""The longest duration text read: ``1h30m``, ``P1DT12H30M5S`` and their like fit many times over."""

MAX_DURATION = timedelta(days=30)
"""The longest timeout, interval, window or approval time."""
MAX_LONG_DURATION = timedelta(days=366)
"""The longest look-back (``within``) or freeze window."""


def _parse_duration(value: Any, limit: timedelta = MAX_DURATION) -> Any:
    """Accept ``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` (and pass timedelta/ISO 8601 through).

    Numbers and ``h``/``m``/``s`` strings are range-checked before a ``timedelta`` is built: one
    outside it would overflow (``OverflowError``, which validation does not catch) or never end.
    """
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number of seconds: {value}")
    if isinstance(value, int | float):
        return _in_range(value, f"{value} seconds", limit)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_DURATION_TEXT:
            # Refused before any pattern or ISO 8601 parser sees it (and never quoted back whole).
            raise ValueError(f"not a duration: {len(text)} characters is too long (use e.g. 30s, 5m, 1h30m)")
        match = _DURATION.fullmatch(text)
        if match and any(match.group(k) for k in ("h", "m", "s")):
            hours, minutes, seconds = (int(match.group(k) or 0) for k in ("h", "m", "s"))
            return _in_range(hours * 3600 + minutes * 60 + seconds, text, limit)
        if not text.upper().startswith("P"):
            raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m)")
        return text
    return value


def _in_range(seconds: float, shown: str, limit: timedelta) -> timedelta:
    # Compared as numbers first: ints of any size compare exactly, and timedelta is built only in range.
    if not 0 <= seconds <= limit.total_seconds():
        raise ValueError(
            f"{shown} is out of range (a duration is 0s to {format_duration(limit)}, {limit.days} days)"
        )
    return timedelta(seconds=seconds)


def _check_range(span: timedelta, limit: timedelta = MAX_DURATION) -> timedelta:
    """The range check again for what came through as ISO 8601 or as a ``timedelta``."""
    return _in_range(span.total_seconds(), format_duration(span), limit)


def _parse_long_duration(value: Any) -> Any:
    return _parse_duration(value, MAX_LONG_DURATION)


def _check_long_range(span: timedelta) -> timedelta:
    return _check_range(span, MAX_LONG_DURATION)


def _duration_schema(limit: timedelta) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": int(limit.total_seconds()),
                    "description": "seconds",
                },
                {
                    "type": "string",
                    "pattern": _DURATION_SCHEMA,
                    "maxLength": MAX_DURATION_TEXT,
                    "description": f"30s, 5m, 1h30m (or ISO 8601, e.g. PT5M), up to {format_duration(limit)}",
                },
            ]
        }
    )


def format_duration(span: timedelta) -> str:
    """``1h30m``, ``5m``, ``45s``: the notation playbooks are written in (whole seconds)."""
    seconds = int(span.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    parts += [f"{secs}s"] if secs or not parts else []
    return sign + "".join(parts)


# JSON output and the schema speak the notation people write, not ISO 8601 ("PT30S").
_AS_WRITTEN = PlainSerializer(format_duration, return_type=str, when_used="json")

Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_check_range),
    _AS_WRITTEN,
    _duration_schema(MAX_DURATION),
]
"""A duration written as seconds or ``30s`` / ``5m`` / ``1h30m``, from 0s to 30 days."""
LongDuration = Annotated[
    timedelta,
    BeforeValidator(_parse_long_duration),
    AfterValidator(_check_long_range),
    _AS_WRITTEN,
    _duration_schema(MAX_LONG_DURATION),
]
"""Like ``Duration``, up to 366 days: look-backs and freeze windows."""
