"""The playbook schema: what an operator writes in ``playbooks/<service>.yaml``.

Pydantic models (pydantic is allowed in the pure domain: it is validation, not I/O). The loader that
reads YAML and turns validation errors into ``file:line: field: message`` lives in
``bot.playbooks``; this module only says what a valid playbook is.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m)?\s*(?:(?P<s>\d+)s)?\s*$")


def _parse_duration(value: Any) -> Any:
    """Accept ``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` (and pass timedelta/ISO 8601 through)."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and any(match.group(k) for k in ("h", "m", "s")):
            return timedelta(
                hours=int(match.group("h") or 0),
                minutes=int(match.group("m") or 0),
                seconds=int(match.group("s") or 0),
            )
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h30m)")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
"""A duration written as seconds or ``30s`` / ``5m`` / ``1h30m``."""


class _Model(BaseModel):
    """Strict, frozen base: unknown keys are mistakes, and values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalStage(_Model):
    """One stage of approvals: ``count`` distinct members of ``group``, requester excluded."""

    group: str = Field(min_length=1)
    count: int = Field(default=1, ge=1)


class NoDataPolicy(StrEnum):
    """What a check that returns no samples means for the tick."""

    FAIL = "fail"
    """No data is a failing measurement (the service may be down)."""
    IGNORE = "ignore"
    """No data is neither pass nor fail: the check is left out of the tick."""
    INCONCLUSIVE = "inconclusive"
    """No data makes the tick inconclusive (counts against ``inconclusive_limit``)."""


class BreachAction(StrEnum):
    """What the guard does when the window breaches."""

    ROLLBACK = "rollback"
    """Roll back automatically, lock the environment, watch the restored version."""
    LOCK = "lock"
    """Leave the version in place, lock the environment and notify people."""


class CheckSpec(_Model):
    """One PromQL check. The value must be >= ``min`` and <= ``max`` where they are given.

    ``query`` may use ``{service}``, ``{env}``, ``{namespace}``, ``{version}`` placeholders.
    """

    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    no_data: NoDataPolicy | None = None
    """Overrides the guard's ``no_data`` policy for this check."""

    @model_validator(mode="after")
    def _has_threshold(self) -> CheckSpec:
        if self.min is None and self.max is None:
            raise ValueError("a check needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is larger than max")
        return self


class GuardSpec(_Model):
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

    @model_validator(mode="after")
    def _window_covers_interval(self) -> GuardSpec:
        if self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if self.window < self.interval:
            raise ValueError("window is shorter than interval")
        return self
