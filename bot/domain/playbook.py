"""The playbook schema: what an operator writes in ``playbooks/<service>.yaml``.

Pydantic models (pydantic is allowed in the pure domain: it is validation, not I/O). The loader that
reads YAML and turns validation errors into ``file:line: field: message`` lives in
``bot.playbooks``; this module only says what a valid playbook is, and answers the questions the
engine asks of one (which image, which guard, which Jenkins parameters for this version and
environment).

Cross-field mistakes (a guard that does not exist, "staging first" naming a later environment) are
raised as ``FieldErrors``: a ``ValueError`` that carries the location of each problem, so the loader
can point at the line of the offending key rather than at the top of the file.

Templates (Jenkins job and parameters, the image, PromQL queries) use ``{service}``, ``{env}``,
``{version}`` and ``{namespace}``. Only ``{identifier}`` is a placeholder: any other brace is left
alone, because PromQL label matchers (``{code=~"5.."}``) are braces too. An unknown placeholder is a
validation error when the playbook is loaded, never a surprise at deploy time.

Durations (``Duration``) go from 0s to 30 days: every timeout, interval and approval time fits, and
an infinite, not-a-number or absurd value (``.inf``, ``99999999999999``) is refused with the range
rather than overflowing ``timedelta``; a text longer than ``MAX_DURATION_TEXT`` is refused before
anything parses it. Spans that look back or cover a season (``LongDuration``: a
prerequisite's ``within``, a freeze window) may reach 366 days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bot.domain import settling
from bot.domain.channels import is_channel_ref
from bot.domain.deployment import Strategy

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


Loc = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the root."""


class FieldErrors(ValueError):
    """Cross-field mistakes, each with its location relative to the model that found it."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        self.problems: tuple[tuple[Loc, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{dotted(loc) or '(top)'}: {message}" for loc, message in self.problems))


def dotted(loc: Iterable[str | int]) -> str:
    """``environments.production.guard.checks[0].max``: a location as people read it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each key and list item of a loaded file was written (1-based lines).

    Filled by the loader, read when a message must name a line; not part of any value's meaning.
    """

    path: str
    lines: Mapping[Loc, int] = field(default_factory=dict)
    """Every location present in the file, the root ``()`` included."""

    def locate(self, loc: Iterable[str | int]) -> tuple[int, Loc]:
        """The line of the deepest part of ``loc`` present in the file, and that part.

        Parts absent from the file are skipped: a missing field's name, or the tags pydantic adds
        for union members, which the person never wrote.
        """
        found: Loc = ()
        for part in loc:
            if (*found, part) in self.lines:
                found = (*found, part)
        return self.lines.get(found, self.lines.get((), 1)), found


class _Model(BaseModel):
    """Strict, frozen base: unknown keys are mistakes, and values never change after loading."""

    # Attribute docstrings become the JSON Schema's descriptions: editors show them on hover.
    # Numbers are finite: a `.nan` threshold would pass every check (any comparison with NaN is
    # False), and `.inf` is no bound at all (leave the bound out instead).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


# ---------------------------------------------------------------------------------------------------
# Templates and names

TEMPLATE_FIELDS: tuple[str, ...] = ("service", "env", "version", "namespace")
"""The placeholders a template may use."""
QUERY_FIELDS: tuple[str, ...] = (*TEMPLATE_FIELDS, "track")
"""A guard check's placeholders: ``{track}`` is the canary/stable track (or blue-green colour)."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def placeholders(template: str) -> list[str]:
    """The ``{identifier}`` placeholders of ``template``, in order."""
    return _PLACEHOLDER.findall(template)


def check_template(template: str, fields: tuple[str, ...] = TEMPLATE_FIELDS) -> str:
    """``template`` itself, or ``ValueError`` naming the first placeholder that is not allowed."""
    for name in placeholders(template):
        if name not in fields:
            allowed = ", ".join("{" + f + "}" for f in fields)
            raise ValueError(f"unknown placeholder {{{name}}} (allowed: {allowed})")
    return template


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{name}`` placeholders from ``values``; other braces stay as written."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"no value for placeholder {{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(one, template)


def check_version(version: str) -> str:
    """``version`` if it can be an image tag (what every template ends up in), else ``ValueError``."""
    if not _VERSION.match(version):
        raise ValueError(
            f"not a valid version: {version!r} (letters, digits, '.', '_', '-'; at most 128 characters)"
        )
    return version


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"not a valid name: {value!r} (lowercase letters, digits and '-', at most 63 characters)"
        )
    return value


def _dns_subdomain(value: str) -> str:
    # 7 characters are kept for the "-canary" / "-green" Deployments the strategies derive from it.
    if len(value) > 246 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"not a valid Kubernetes name: {value!r} (lowercase letters, digits, '-' and '.')")
    return value


def _channel(value: str) -> str:
    if not is_channel_ref(value):
        raise ValueError(f"not a Slack channel: {value!r} (a channel id like C0123ABCD, or #name)")
    return value


def _label_key(value: str) -> str:
    if not _LABEL_KEY.match(value):
        raise ValueError(f"not a Kubernetes label key: {value!r}")
    return value


def _param_value(value: Any) -> Any:
    # Jenkins parameters are strings on the wire; YAML reads `true` and `3` as other types.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"quote this value ({value!r}): YAML reads it as a number and may change it")
    return value


Name = Annotated[str, AfterValidator(_dns_label)]
"""A service, environment, guard, namespace or container name: a DNS label."""
KubeName = Annotated[str, AfterValidator(_dns_subdomain)]
"""A Kubernetes object name (DNS subdomain)."""
Channel = Annotated[str, AfterValidator(_channel)]
"""A Slack channel: an id (``C0123ABCD``) or ``#name``."""
Template = Annotated[str, Field(min_length=1), AfterValidator(check_template)]
"""A string with ``{service}``, ``{env}``, ``{version}``, ``{namespace}`` placeholders."""
ParamValue = Annotated[
    str,
    BeforeValidator(_param_value, json_schema_input_type=str | int | bool),
    AfterValidator(check_template),
]


# ---------------------------------------------------------------------------------------------------
# Approvals and guards (the shapes other modules build on)


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
        return render(self.query, values)


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


# ---------------------------------------------------------------------------------------------------
# Build and target


class JenkinsSpec(_Model):
    """The Jenkins job that builds (or verifies) the version before it is deployed."""

    job: Template
    """Job path with folders, e.g. ``team/checkout-build``."""
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    """Build parameters; values may use placeholders (``VERSION: "{version}"``)."""
    build_timeout: Duration = timedelta(minutes=30)
    """How long the build may queue and run before the deployment fails."""

    @field_validator("job")
    @classmethod
    def _job_path(cls, job: str) -> str:
        if job.startswith("/") or job.endswith("/") or "//" in job or job != job.strip():
            raise ValueError(f"not a job path: {job!r} (folders separated by '/', e.g. team/checkout-build)")
        return job

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, parameters: dict[str, str]) -> dict[str, str]:
        for name in parameters:
            if not name.strip() or name != name.strip():
                raise FieldErrors([((name,), f"not a parameter name: {name!r}")])
        return parameters


class KubernetesSpec(_Model):
    """The Deployment a version is rolled out to."""

    cluster: str = Field(min_length=1)
    """A cluster named in the bot's config (``clusters``)."""
    namespace: Name
    deployment: KubeName
    container: Name
    """The container of the Deployment's pod template whose image changes."""
    image: Template
    """Image template, e.g. ``registry.example.com/checkout:{version}``."""
    replicas: int | None = Field(default=None, ge=1)
    """Replicas to keep; None leaves the Deployment's own count (and any autoscaler) alone."""
    rollout_timeout: Duration = timedelta(minutes=10)
    """How long a rollout may take before it counts as failed."""

    @field_validator("image")
    @classmethod
    def _image_has_version(cls, image: str) -> str:
        if "version" not in placeholders(image):
            raise ValueError(f"the image template must contain {{version}}: {image!r}")
        return image


# ---------------------------------------------------------------------------------------------------
# Strategies


class CanaryStep(_Model):
    """One canary step: the share of traffic (pods) the new version gets, then a hold."""

    weight: int = Field(ge=1, le=100)
    """Percent of replicas running the new version at this step."""
    pause: Duration = timedelta(0)
    """Minimum time to hold this step. With a guard, the step also holds for a clean guard window."""
    guard: GuardRef | None = None
    """Overrides the environment's guard for this step."""

    @field_validator("pause")
    @classmethod
    def _not_negative(cls, pause: timedelta) -> timedelta:
        if pause < timedelta(0):
            raise ValueError("pause must not be negative")
        return pause


def _step_shorthand(value: Any) -> Any:
    # `steps: [10, 50, 100]` is the common case; a mapping is for a step with its own pause/guard.
    if isinstance(value, int) and not isinstance(value, bool):
        return {"weight": value}
    return value


StepItem = Annotated[CanaryStep, BeforeValidator(_step_shorthand, json_schema_input_type=int | CanaryStep)]


class CanarySpec(_Model):
    """Canary settings: weights in increasing order. After the last step the version is promoted."""

    steps: tuple[StepItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> CanarySpec:
        problems: list[tuple[Loc, str]] = []
        for i, (before, after) in enumerate(zip(self.steps, self.steps[1:], strict=False), start=1):
            if after.weight <= before.weight:
                problems.append(
                    (("steps", i), f"weights must increase: {after.weight} after {before.weight}")
                )
        if problems:
            raise FieldErrors(problems)
        return self


class BlueGreenSpec(_Model):
    """Blue-green settings: the Service whose selector switches to the new colour once it is ready."""

    service: KubeName
    """The Kubernetes Service that carries the traffic."""
    colour_label: Annotated[str, AfterValidator(_label_key)] = "shipthread.io/colour"
    """The label key whose value (``blue`` or ``green``) the Service's selector switches."""


# ---------------------------------------------------------------------------------------------------
# Environments and the playbook


class Prerequisite(_Model):
    """Something that must be true before deploying: ``{succeeded_in: staging}`` ("staging first")."""

    succeeded_in: Name
    """The same version must have succeeded in this (earlier) environment."""
    within: LongDuration | None = None
    """And not longer ago than this; None: at any time."""


class Environment(_Model):
    """One environment of a service: where to talk, who approves, how to roll out, what to watch."""

    channel: Channel | None = None
    """Where the deployment's thread goes; None: the config's ``slack.default_channel``."""
    approvals: tuple[ApprovalStage, ...] = ()
    """Stages collected in order; empty: no approval needed."""
    strategy: Strategy = Strategy.ROLLING
    canary: CanarySpec | None = None
    blue_green: BlueGreenSpec | None = None
    requires: tuple[Prerequisite, ...] = ()
    guard: GuardRef | None = None
    """Watches the new version after the rollout (and each canary step)."""
    approval_ttl: Duration | None = None
    """How long approvals may take; None: the config's ``approval_ttl``."""
    namespace: Name | None = None
    """Overrides ``kubernetes.namespace`` for this environment."""
    cluster: str | None = Field(default=None, min_length=1)
    """Overrides ``kubernetes.cluster`` for this environment."""

    @model_validator(mode="after")
    def _strategy_settings(self) -> Environment:
        problems: list[tuple[Loc, str]] = []
        if self.canary is not None and self.strategy is not Strategy.CANARY:
            problems.append((("canary",), f"canary settings need strategy: canary (not {self.strategy})"))
        if self.blue_green is not None and self.strategy is not Strategy.BLUE_GREEN:
            problems.append(
                (("blue_green",), f"blue_green settings need strategy: blue-green (not {self.strategy})")
            )
        if self.strategy is Strategy.CANARY and self.canary is None:
            problems.append((("strategy",), "strategy canary needs a 'canary' section with steps"))
        if self.strategy is Strategy.BLUE_GREEN and self.blue_green is None:
            problems.append(
                (("strategy",), "strategy blue-green needs a 'blue_green' section naming the Service")
            )
        if self.approval_ttl is not None and self.approval_ttl <= timedelta(0):
            problems.append((("approval_ttl",), "approval_ttl must be positive"))
        if problems:
            raise FieldErrors(problems)
        return self


class UnknownEnvironment(LookupError):
    """A playbook was asked about an environment it does not define."""

    def __init__(self, service: str, env: str, known: Sequence[str]) -> None:
        self.service, self.env = service, env
        super().__init__(f"{service} has no environment {env!r} (known: {', '.join(known)})")


class Playbook(_Model):
    """Everything Shipthread needs to know to deploy one service."""

    model_config = ConfigDict(title="Shipthread playbook")

    service: Name
    """The service's name: also the file's name (``playbooks/<service>.yaml``)."""
    description: str | None = None
    jenkins: JenkinsSpec | None = None
    """The build to run first; without it, the deployment goes straight to the rollout."""
    kubernetes: KubernetesSpec
    environments: dict[Name, Environment] = Field(min_length=1)
    """In promotion order: an environment may require only those before it."""
    guards: dict[Name, GuardSpec] = Field(default_factory=dict)
    """Named guards that environments and canary steps refer to."""
    default_env: Name | None = None
    """The environment of ``/deploy <service> <version>`` without ``to``; None: the first one."""

    _source: SourceMap | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self) -> Playbook:
        problems: list[tuple[Loc, str]] = []
        names = list(self.environments)
        if self.default_env is not None and self.default_env not in self.environments:
            problems.append((("default_env",), self._unknown_env(self.default_env)))
        for position, (name, env) in enumerate(self.environments.items()):
            at: Loc = ("environments", name)
            problems += self._guard_problems((*at, "guard"), env.guard)
            problems += self._strategy_problems(name, env.strategy, (*at, "guard"), env.guard)
            problems += self._watch_problems(name, (*at, "guard"), env.guard)
            steps = env.canary.steps if env.canary else ()
            for i, step in enumerate(steps):
                problems += self._guard_problems((*at, "canary", "steps", i, "guard"), step.guard)
                problems += self._strategy_problems(
                    name, env.strategy, (*at, "canary", "steps", i, "guard"), step.guard
                )
            for i, prerequisite in enumerate(env.requires):
                other = prerequisite.succeeded_in
                where = (*at, "requires", i, "succeeded_in")
                if other == name:
                    problems.append((where, f"environment {name!r} cannot require itself"))
                elif other not in self.environments:
                    problems.append((where, self._unknown_env(other)))
                elif names.index(other) > position:
                    problems.append(
                        (where, f"{other!r} comes after {name!r}: list {other!r} first in environments")
                    )
            if env.canary and env.guard is None and all(s.guard is None and not s.pause for s in steps):
                problems.append(
                    (
                        (*at, "canary"),
                        "canary steps never wait: give the environment a guard or the steps a pause",
                    )
                )
        if problems:
            raise FieldErrors(problems)
        return self

    def _guard_problems(self, loc: Loc, guard: str | GuardSpec | None) -> list[tuple[Loc, str]]:
        if isinstance(guard, str) and guard not in self.guards:
            known = ", ".join(self.guards) or "none"
            return [(loc, f"unknown guard {guard!r} (defined in guards: {known})")]
        return []

    def _strategy_problems(
        self, env: str, strategy: Strategy, loc: Loc, guard: str | GuardSpec | None
    ) -> list[tuple[Loc, str]]:
        """Baselines and ``{track}`` the environment's strategy cannot give (``BASELINE_STRATEGIES``).

        A named guard's mistake is reported at the check in ``guards``, naming the environment.
        """
        base: Loc = loc
        if isinstance(guard, str):
            spec, base, used = self.guards.get(guard), ("guards", guard), f" (used by {env!r})"
        else:
            spec, used = guard, ""
        if spec is None:
            return []
        problems: list[tuple[Loc, str]] = []
        tracked = BASELINE_STRATEGIES[Baseline.STABLE]  # the strategies that run two tracks
        for i, check in enumerate(spec.checks):
            where: Loc = (*base, "checks", i)
            if check.baseline is not None and strategy not in BASELINE_STRATEGIES[check.baseline]:
                allowed = " or ".join(sorted(s.value for s in BASELINE_STRATEGIES[check.baseline]))
                problems.append(
                    (
                        (*where, "baseline"),
                        f"baseline: {check.baseline} needs strategy {allowed}, not {strategy}{used}",
                    )
                )
            elif "track" in placeholders(check.query) and strategy not in tracked:
                why = f"{{track}} needs strategy canary or blue-green, not {strategy}{used}"
                problems.append(((*where, "query"), why))
        return problems

    def _watch_problems(self, env: str, loc: Loc, guard: str | GuardSpec | None) -> list[tuple[Loc, str]]:
        """The environment's guard also watches a restored version after a rollback (``guard_for``
        without a step), where baselines do not apply (they would compare with the version the
        rollback removed): only ``min``/``max`` judge there. A guard with none would make every
        tick inconclusive and keep the environment guard-locked on a healthy version forever."""
        where: Loc = loc
        if isinstance(guard, str):
            spec, where, used = self.guards.get(guard), ("guards", guard), f" (used by {env!r})"
        else:
            spec, used = guard, ""
        if spec is None or any(c.min is not None or c.max is not None for c in spec.checks):
            return []
        why = (
            "no check has a min or max: after a rollback this guard watches the restored version with "
            f"its absolute bounds only (baselines do not apply), so it could never unlock{used}; "
            "give at least one check a min or max"
        )
        return [((*where, "checks"), why)]

    def _unknown_env(self, env: str) -> str:
        return f"unknown environment {env!r} (defined: {', '.join(self.environments)})"

    # -- where it came from -------------------------------------------------------------------------

    @property
    def source(self) -> SourceMap | None:
        """Where the loader read this playbook, for messages naming file and line."""
        return self._source

    def with_source(self, source: SourceMap) -> Playbook:
        """A copy that remembers where it was read (the loader's business)."""
        copy = self.model_copy()
        copy._source = source
        return copy

    # -- questions the engine asks ------------------------------------------------------------------

    @property
    def default_environment(self) -> str:
        """``default_env``, or the first environment."""
        return self.default_env or next(iter(self.environments))

    def environment(self, env: str) -> Environment:
        """The environment called ``env``, or ``UnknownEnvironment``."""
        try:
            return self.environments[env]
        except KeyError:
            raise UnknownEnvironment(self.service, env, list(self.environments)) from None

    def target(self, env: str) -> KubernetesSpec:
        """The Kubernetes target for ``env``, with its namespace and cluster overrides applied."""
        settings = self.environment(env)
        update: dict[str, str] = {}
        if settings.namespace:
            update["namespace"] = settings.namespace
        if settings.cluster:
            update["cluster"] = settings.cluster
        return self.kubernetes.model_copy(update=update)

    def values(self, version: str, env: str) -> dict[str, str]:
        """What the placeholders stand for when deploying ``version`` to ``env``."""
        return {
            "service": self.service,
            "env": env,
            "version": check_version(version),
            "namespace": self.target(env).namespace,
        }

    def template_params(self, version: str, env: str) -> dict[str, str]:
        """The Jenkins build parameters for ``version`` in ``env`` (empty without a job)."""
        if self.jenkins is None:
            return {}
        values = self.values(version, env)
        return {name: render(value, values) for name, value in self.jenkins.parameters.items()}

    def job_path(self, version: str, env: str) -> str | None:
        """The Jenkins job to run, or None when the playbook has no build."""
        if self.jenkins is None:
            return None
        return render(self.jenkins.job, self.values(version, env))

    def image(self, version: str, env: str) -> str:
        """The container image of ``version``."""
        return render(self.kubernetes.image, self.values(version, env))

    def guard_for(self, env: str, step: int | None = None) -> GuardSpec | None:
        """The guard watching ``env`` (at canary ``step`` when given), names resolved."""
        settings = self.environment(env)
        ref = settings.guard
        if step is not None and settings.canary is not None and step < len(settings.canary.steps):
            ref = settings.canary.steps[step].guard or ref
        if isinstance(ref, str):
            return self.guards[ref]
        return ref

    def queries(self, guard: GuardSpec, version: str, env: str) -> dict[str, str]:
        """Each check's PromQL for ``version`` in ``env``, by check name."""
        values = self.values(version, env)
        return {check.name: check.render_query(values) for check in guard.checks}

    def approval_ttl(self, env: str, default: timedelta) -> timedelta:
        """How long approvals for ``env`` may take (``default``: the config's)."""
        return self.environment(env).approval_ttl or default
