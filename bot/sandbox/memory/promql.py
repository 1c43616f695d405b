"""Just enough PromQL for the in-memory metrics: a selector, optionally inside one aggregation.

``name{label="v", other=~"a|b"}``, wrapped or not in ``max|min|sum|avg|count(...)`` with an optional
``by (labels)`` — what the guard checks of the engine tests use. Anything else is refused with
``PromQLError``, which the stand-in reports as Prometheus reports a query it cannot parse (a
failed query), so a test that needs more PromQL finds out at once instead of passing on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PromQLError", "Query", "parse"]

Labels = Mapping[str, str]

_AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "max": max,
    "min": min,
    "sum": sum,
    "avg": lambda xs: sum(xs) / len(xs),
    "count": lambda xs: float(len(xs)),
}
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*({_NAME})?\s*(?:\{{(.*)\}})?\s*$", re.S)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_AGGREGATE = re.compile(
    rf"^\s*({'|'.join(_AGGREGATIONS)})\s*(?:by\s*\(([^)]*)\)\s*)?\((.*)\)\s*(?:by\s*\(([^)]*)\))?\s*$", re.S
)


class PromQLError(ValueError):
    """Not a query this small evaluator understands (nor, often, Prometheus)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: Labels) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class Query:
    matchers: tuple[Matcher, ...]
    aggregation: str | None = None
    by: tuple[str, ...] = ()

    def selects(self, labels: Labels) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def apply(self, rows: Sequence[tuple[Labels, float]]) -> list[tuple[dict[str, str], float]]:
        """The query's result from the samples its selector picked (labels without ``__name__``)."""
        if self.aggregation is None:
            return [({k: v for k, v in labels.items() if k != "__name__"}, value) for labels, value in rows]
        groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
        for labels, value in rows:
            key = tuple((name, labels.get(name, "")) for name in self.by if labels.get(name))
            groups.setdefault(key, []).append(value)
        fold = _AGGREGATIONS[self.aggregation]
        return [(dict(key), fold(values)) for key, values in groups.items()]


def parse(promql: str) -> Query:
    aggregate = _AGGREGATE.match(promql)
    if aggregate:
        name, by_before, inner, by_after = aggregate.groups()
        by = tuple(x.strip() for x in (by_before or by_after or "").split(",") if x.strip())
        return Query(_selector(inner), name, by)
    return Query(_selector(promql))


def _selector(text: str) -> tuple[Matcher, ...]:
    found = _SELECTOR.match(text)
    if not found or not (found.group(1) or found.group(2)):
        raise PromQLError(f"the in-memory metrics understand no query like {text.strip()[:80]!r}")
    name, body = found.group(1), found.group(2) or ""
    matchers = [Matcher("__name__", "=", name)] if name else []
    position = 0
    while body[position:].strip():
        matcher = _MATCHER.match(body, position)
        if matcher is None:
            raise PromQLError(f"bad label matcher in {text.strip()[:80]!r}")
        label, op, value = matcher.groups()
        matchers.append(Matcher(label, op, value.replace('\\"', '"').replace("\\\\", "\\")))
        position = matcher.end()
    return tuple(matchers)
