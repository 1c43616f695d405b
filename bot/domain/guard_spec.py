"""What a playbook says about guarding a version: PromQL checks, their thresholds and baselines, the
window they are judged over, and what a breach does.

``query`` templates may use ``{service}``, ``{env}``, ``{namespace}``, ``{version}`` and ``{track}``
(``bot.domain.template``); unreadable look-back ranges are refused when the playbook is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from bot.domain import settling
from bot.domain.deployment import Strategy
from bot.domain.durations import Duration
from bot.domain.located import FieldErrors, Loc
from bot.domain.spec_types import Spec
from bot.domain.template import QUERY_FIELDS, check_template, placeholders, render_promql


class NoDataPolicy(StrEnum):
    """What a check that returns no samples means for the tick."""

    FAIL = "fail"
    """No data is a failing measurement (the service may be down)."""
    IGNORE = "ignore"
    """No data is neither pass nor fail: the check is left out of the tick."""
    INCONCLUSIVE = "inconclusive"
    """No data makes the tick inconclusive (counts against ``inconclusive_limit``)."""


class Baseline(StrEnum):
    """What a relative check compares the version under test with (``max_increase``/``max_ratio``)."""

    STABLE = "stable"
    """The same query on the stable track (canary) or the live colour (blue-green), at the same tick."""
    BEFORE = "before"
    """The same query evaluated at the change time: what the service did just before it (any strategy)."""


BASELINE_STRATEGIES: Mapping[Baseline, frozenset[Strategy]] = {
    Baseline.STABLE: frozenset({Strategy.CANARY, Strategy.BLUE_GREEN}),
    Baseline.BEFORE: frozenset(Strategy),
}
"""Which strategies allow which baseline: ``stable`` needs the old version running alongside."""


class BreachAction(StrEnum):
    """What the guard does when the window breaches."""

    ROLLBACK = "rollback"
    """Roll back automatically, lock the environment, watch the restored version."""
    LOCK = "lock"
    """Leave the version in place, lock the environment and notify people."""


class CheckSpec(Spec):
    """One PromQL check. The value must be >= ``min`` and <= ``max`` where they are given.

    ``query`` may use ``{service}``, ``{env}``, ``{namespace}``, ``{version}`` placeholders.
    """

    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    no_data: NoDataPolicy | None = None
    """Overrides the guard's ``no_data`` policy for this check."""
    baseline: Baseline | None = None
    """Judge the value relative to a baseline too: ``stable`` (canary, blue-green) or ``before``."""
    max_increase: float | None = Field(default=None, ge=0)
    """With ``baseline``: the value may exceed the baseline's by at most this much (absolute)."""
    max_ratio: float | None = Field(default=None, gt=0)
    """With ``baseline``: the value may be at most this many times the baseline's (relative)."""

    @field_validator("query")
    @classmethod
    def _known_placeholders(cls, query: str) -> str:
        check_template(query, QUERY_FIELDS)
        settling.lookback(query)  # unreadable ranges or a fixed '@' are refused at load time
        return query

    @model_validator(mode="after")
    def _has_threshold(self) -> CheckSpec:
        tolerance = self.max_increase is not None or self.max_ratio is not None
        if self.min is None and self.max is None and not tolerance:
            raise ValueError("a check needs min, max or both (or a baseline with max_increase/max_ratio)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is larger than max")
        problems: list[tuple[Loc, str]] = []
        if self.baseline is not None and not tolerance:
            problems.append((("baseline",), "a baseline needs max_increase, max_ratio or both"))
        if self.baseline is None:
            for name in ("max_increase", "max_ratio"):
                if getattr(self, name) is not None:
                    problems.append(((name,), f"{name} needs a baseline (stable or before)"))
        if self.baseline is not None and self.min is not None and self.max is None:
            # The relative maths (max_increase/max_ratio) take higher as worse; a check bounded
            # only below says lower is worse, so it would fail a better version and pass a worse one.
            problems.append(
                (
                    ("baseline",),
                    "a baseline judges higher values as worse, but this check has only a min (lower is "
                    "worse): give it a max, or turn the query around (e.g. the error ratio, not the "
                    "success ratio)",
                )
            )
        if self.baseline is Baseline.STABLE and "track" not in placeholders(self.query):
            problems.append(
                (("query",), "baseline: stable needs a {track} placeholder to tell canary from stable")
            )
        if problems:
            raise FieldErrors(problems)
        return self

    @property
    def lookback(self) -> timedelta:
        """How far back the query looks (its settling time; see ``bot.domain.settling``)."""
        return settling.lookback(self.query)

    def render_query(self, values: Mapping[str, str]) -> str:
        """The PromQL to run, placeholders filled (see ``Playbook.values``)."""
        return render_promql(self.query, values)


class GuardSpec(Spec):
    """A QoS guard: checks evaluated every ``interval`` for ``window``.

    ``failure_limit`` and ``inconclusive_limit`` follow Argo Rollouts: the window breaches when the
    number of failing ticks exceeds ``failure_limit`` (0: the first failing tick breaches), and
    becomes inconclusive when inconclusive ticks exceed ``inconclusive_limit``.
    """

    checks: tuple[CheckSpec, ...] = Field(min_length=1)
    interval: Duration = timedelta(seconds=30)
    window: Duration = timedelta(minutes=5)
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=0, ge=0)
    no_data: NoDataPolicy = NoDataPolicy.INCONCLUSIVE
    on_breach: BreachAction = BreachAction.ROLLBACK
    initial_delay: Duration | None = None
    """Wait this long after the change before judging (Argo Rollouts' ``initialDelay``); it replaces
    every check's own settling time (its longest look-back). None: each check settles by itself."""

    @model_validator(mode="after")
    def _window_covers_interval(self) -> GuardSpec:
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if self.window < self.interval:
            raise ValueError("window is shorter than interval")
        # Measurements and rendered queries are keyed by check name: a repeated name would have one
        # check judged against the other's query.
        seen: set[str] = set()
        problems: list[tuple[Loc, str]] = []
        for i, check in enumerate(self.checks):
            if check.name in seen:
                problems.append((("checks", i, "name"), f"check name {check.name!r} is used twice"))
            seen.add(check.name)
        if problems:
            raise FieldErrors(problems)
        return self


def _guard_kind(value: Any) -> str:
    return "inline" if isinstance(value, Mapping | GuardSpec) else "name"


GuardRef = Annotated[
    Annotated[str, Field(min_length=1), Tag("name")] | Annotated[GuardSpec, Tag("inline")],
    Discriminator(_guard_kind),
]
"""A guard: the name of one in the playbook's ``guards``, or a guard written in place."""
