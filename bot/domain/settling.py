"""How far back a PromQL check looks: the time it must wait after a change before it judges it.

A check judges only the version under test. ``rate(x[5m])`` evaluated one minute after a rollout
still averages four minutes of the version before it, so the guard lets each check *settle*: it
waits until the check's own range selectors can no longer see data from before the change. That
wait is the check's longest look-back:

- a range selector ``x[1m]`` looks back 1 m;
- a subquery ``(...)[5m:30s]`` looks back 5 m plus whatever its inner expression looks back;
- ``offset 2m`` adds 2 m to the selector or subquery it modifies (an instant selector included);
- ``@ start()`` / ``@ end()`` are the evaluation time of an instant query: they add nothing. An
  ``@`` pinned to a fixed timestamp judges one moment forever, never the version under test, and
  is refused.

An instant query (no range, no offset) looks back nothing and waits for nothing. Strings (label
values) and ``#`` comments are ignored, so a ``"[5m]"`` inside a matcher counts for nothing.
The parse is lexical, not a full PromQL grammar: it finds every bracket and modifier and their
nesting by parentheses, which is all that look-back depends on.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.promql_text import blank_strings

_COMMENT = re.compile(r"#[^\n]*")
_DURATION = re.compile(r"^(?:\d+(?:ms|y|w|d|h|m|s))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_OFFSET = re.compile(r"(?<![\w:])offset\s+(-?)\s*([0-9][0-9a-z]*)", re.IGNORECASE)
_AT = re.compile(r"@\s*([^\s()]+(?:\(\s*\))?)")


class LookbackError(ValueError):
    """The query's ranges or modifiers cannot be read (or pin it to a fixed time)."""


def parse_duration(text: str) -> timedelta:
    """A PromQL duration (``90s``, ``1h30m``, ``500ms``, ``1d``) as a ``timedelta``."""
    text = text.strip()
    if not _DURATION.match(text):
        raise LookbackError(f"not a PromQL duration: {text!r}")
    return sum((int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text)), timedelta(0))


def _blank(text: str) -> str:
    """``text`` with strings' insides and comments blanked, positions kept."""
    return _COMMENT.sub(lambda m: " " * len(m.group(0)), blank_strings(text))


@dataclass(frozen=True, slots=True)
class _Reach:
    """One selector or subquery: where it stands, how far it looks back itself, what it spans."""

    at: int
    own: timedelta
    span: tuple[int, int] | None = None
    """For a subquery, the expression it re-evaluates (everything inside looks further back)."""


_GROUPING = re.compile(r"(?<![\w:])(?:by|without)\s*$", re.IGNORECASE)


def _subquery_start(code: str, close_at: int) -> int:
    """Where the expression a subquery re-evaluates begins, given its closing parenthesis.

    ``sum(rate(x[1m])) by (service)[5m:]`` re-evaluates the whole aggregation, not the label list
    ``(service)`` its last parenthesis closes: after a ``by``/``without`` group, the aggregation's
    own parentheses come before it. (``sum by (service) (...)`` ends with the argument's already.)
    """
    opening = _opening(code, close_at)
    if _GROUPING.search(code[:opening]):
        before = _GROUPING.sub("", code[:opening]).rstrip()
        if before.endswith(")"):
            return _opening(code, len(before) - 1)
    return opening


def _opening(code: str, close_at: int) -> int:
    depth = 0
    for i in range(close_at, -1, -1):
        if code[i] == ")":
            depth += 1
        elif code[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    raise LookbackError("unbalanced parentheses")


def _offset_after(code: str, pos: int) -> tuple[timedelta, int]:
    """The ``offset`` (and ``@``) modifiers right after ``pos``: the look-back they add, and the end."""
    added = timedelta(0)
    while True:
        rest = code[pos:]
        stripped = rest.lstrip()
        skip = len(rest) - len(stripped)
        offset = _OFFSET.match(stripped)
        if offset:
            span = parse_duration(offset.group(2))
            # A negative offset looks into the future of the evaluation time: no earlier data.
            added += timedelta(0) if offset.group(1) else span
            pos += skip + offset.end()
            continue
        if stripped.startswith("@"):
            at = _AT.match(stripped)
            modifier = at.group(1).replace(" ", "") if at else stripped[:20]
            if modifier not in ("start()", "end()"):
                raise LookbackError(
                    f"'@ {modifier}' pins the check to a fixed time: it would never judge the version "
                    "under test (use @ end(), or no @)"
                )
            pos += skip + (at.end() if at else 1)
            continue
        return added, pos


@functools.lru_cache(maxsize=4096)  # a pure function of the text, asked per check at every guard tick
def lookback(query: str) -> timedelta:
    """The longest time ``query`` looks back from its evaluation time; ``LookbackError`` if unreadable."""
    code = _blank(query)
    reaches: list[_Reach] = []
    ranged_ends: set[int] = set()
    i = 0
    while i < len(code):
        if code[i] == "]":
            raise LookbackError("']' without '['")
        if code[i] != "[":
            i += 1
            continue
        close = code.find("]", i)
        if close < 0:
            raise LookbackError("'[' without ']'")
        inside = code[i + 1 : close]
        if "[" in inside:
            raise LookbackError(f"cannot read the range [{inside}]")
        range_text, colon, step = inside.partition(":")
        own = parse_duration(range_text)
        if colon and step.strip():
            parse_duration(step)
        added, end = _offset_after(code, close + 1)
        ranged_ends.add(close + 1)
        span: tuple[int, int] | None = None
        if colon:
            before = code[:i].rstrip()
            if before.endswith(")"):
                span = (_subquery_start(code, len(before) - 1), len(before))
        reaches.append(_Reach(i, own + added, span))
        i = end
    # ``offset`` on an instant selector (not after a bracket, which the loop above consumed).
    for match in _OFFSET.finditer(code):
        if not any(code[end : match.start()].strip() == "" for end in ranged_ends if end <= match.start()):
            added, _ = _offset_after(code, match.start())
            reaches.append(_Reach(match.start(), added))
    for match in re.finditer(r"@", code):
        _offset_after(code, match.start())  # refuses a fixed timestamp wherever it stands
    subqueries = [r for r in reaches if r.span is not None]
    longest = timedelta(0)
    for reach in reaches:
        total = reach.own + sum(
            (s.own for s in subqueries if s is not reach and s.span and s.span[0] <= reach.at < s.span[1]),
            timedelta(0),
        )
        longest = max(longest, total)
    return longest
