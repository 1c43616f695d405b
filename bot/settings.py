"""Shipthread's own settings: what the bot needs besides playbooks, as validated models.

``bot.config.load_settings`` builds them from ``config/shipthread.yaml`` and the environment; secrets
come from the environment only and are kept as ``SecretStr``, so no repr or log line shows them, and
a database URL is shown with its password masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from bot.domain.chart import ChartPolicy
from bot.domain.cron import FIELD_ORDER, CronError, parse_cron
from bot.domain.durations import Duration, LongDuration
from bot.domain.located import FieldErrors, Loc, SourceMap
from bot.domain.locks import FreezeWindow
from bot.domain.message import is_user_id
from bot.domain.redact import masked_url
from bot.domain.spec_types import Channel, Name
from bot.secret_scan import SECRET_VARIABLES

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./shipthread.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {masked_url(value)!r}")
    if parts.password:
        raise ValueError("credentials in a URL: set JENKINS_USER and JENKINS_TOKEN in the environment")
    return value


def _api_base(value: str) -> str:
    # slack-sdk joins method names onto the base URL: without the trailing slash "/api" is lost.
    return value if value.endswith("/") else value + "/"


HttpUrl = Annotated[str, AfterValidator(_http_url)]

_SUBTEAM_ID = re.compile(r"S[A-Z0-9]{2,}")
_HANDLE = re.compile(r"@[a-z0-9][a-z0-9._-]*")


def _member(value: str) -> str:
    # A person (``is_user_id``: U…/W…), or a user group by id or handle.
    if not (is_user_id(value) or _SUBTEAM_ID.fullmatch(value) or _HANDLE.fullmatch(value)):
        raise ValueError(
            f"not a Slack user or user group: {value!r} "
            "(a user id like U0123ABCD, a user-group id like S0123ABCD, or @handle)"
        )
    return value


Member = Annotated[str, AfterValidator(_member)]


def _cron(expression: str) -> str:
    """A freeze window's cron, checked by the parser that runs it (``bot.domain.cron``)."""
    try:
        parse_cron(expression)
    except CronError as exc:
        raise ValueError(_cron_problem(expression, exc)) from None
    return expression


def _cron_problem(expression: str, exc: CronError) -> str:
    """The config's wording of a cron mistake: the field count; a number or word its field has no
    place for, with the field's range; anything else in a field ("?", "²", "") as a bad value."""
    if exc.fields is not None:
        return f"cron {expression!r} has {exc.fields} fields, needs 5 ({FIELD_ORDER})"
    if exc.field is not None and exc.value is not None:
        if exc.value.isascii() and exc.value.isalnum():
            return f"cron {expression!r}: {exc.field} {exc.value!r} is not in {exc.low}-{exc.high}"
        return f"cron {expression!r}: bad {exc.field} {exc.value!r}"
    return str(exc)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Settings):
    """Where the Slack Web API is, and where threads go by default."""

    api_url: Annotated[HttpUrl, AfterValidator(_api_base)] = DEFAULT_SLACK_API_URL
    """Web API base URL (an emulator or proxy in tests); env ``SLACK_API_URL``."""
    default_channel: Channel | None = None
    """Channel for environments whose playbook names none."""
    timeout: Duration = timedelta(seconds=10)
    posts_per_second: float = Field(default=1.0, gt=0)
    """The notifier's pace of chat.postMessage per channel (Slack allows about 1/s)."""
    updates_per_minute: float = Field(default=45.0, gt=0)
    """The notifier's budget of chat.update per workspace (Slack's Tier 3 is about 50/min)."""
    charts: ChartPolicy = ChartPolicy.PROBLEMS
    """Which guard verdicts get a chart in their thread: ``always``, ``problems`` (a breach, a hold,
    the end of a post-rollback watch) or ``never``."""


class JenkinsSettings(_Settings):
    """The Jenkins server; user and API token come from ``JENKINS_USER``/``JENKINS_TOKEN``."""

    url: HttpUrl | None = None
    """env ``JENKINS_URL``."""
    timeout: Duration = timedelta(seconds=10)


class PrometheusSettings(_Settings):
    """The Prometheus server the QoS guard queries."""

    url: HttpUrl | None = None
    """env ``PROMETHEUS_URL``."""
    timeout: Duration = timedelta(seconds=10)


class ClusterSettings(_Settings):
    """How to reach one Kubernetes cluster: a kubeconfig context, an API server URL, or the
    service account of the pod the bot runs in."""

    context: str | None = Field(default=None, min_length=1)
    """A context of the kubeconfig (``KUBECONFIG`` or ``kubeconfig``)."""
    server: HttpUrl | None = None
    """An API server URL, for clusters (or emulators) reached without a kubeconfig."""
    insecure: bool = False
    """Skip TLS verification of ``server`` (labs and emulators only)."""
    in_cluster: bool = False
    """The cluster the bot runs in, with its pod's service account token (``deploy/kubernetes``)."""

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if (self.context is not None) + (self.server is not None) + self.in_cluster != 1:
            raise ValueError(
                "give either context (a kubeconfig context), server (an API server URL) "
                "or in_cluster: true (the pod's service account)"
            )
        if self.insecure and self.server is None:
            raise FieldErrors([(("insecure",), "insecure applies only to server")])
        return self


class FreezeWindowSpec(_Settings):
    """A recurring freeze as written in config; ``to_domain()`` gives the domain's ``FreezeWindow``."""

    name: str = Field(min_length=1)
    cron: Annotated[str, AfterValidator(_cron)]
    """When it starts (UTC), five-field cron: ``0 16 * * fri`` is Friday 16:00."""
    duration: LongDuration
    envs: tuple[Name, ...] = ()
    """Environments it freezes; empty: all."""
    reason: str = ""

    @model_validator(mode="after")
    def _positive(self) -> FreezeWindowSpec:
        if self.duration <= timedelta(0):
            raise FieldErrors([(("duration",), "duration must be positive")])
        return self

    def to_domain(self) -> FreezeWindow:
        return FreezeWindow(self.name, self.cron, self.duration, self.envs, self.reason)


class ConcurrencyPolicy(StrEnum):
    """What a second request for a service and environment gets while one is in flight."""

    QUEUE = "queue"
    """It waits, and starts when the first one ends."""
    REFUSE = "refuse"
    """It is refused, with a message naming the deployment in flight."""


class Secrets(BaseModel):
    """Credentials, from the environment only. ``SecretStr`` keeps them out of repr and logs."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    jenkins_user: SecretStr | None = None
    jenkins_token: SecretStr | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Secrets:
        """The secrets set (non-empty) in ``environ``."""
        return cls(**{name.lower(): environ[name] for name in SECRET_VARIABLES if environ.get(name)})


class Settings(_Settings):
    """Everything the bot needs besides playbooks. Build with ``load_settings``."""

    database_url: str = Field(default=DEFAULT_DATABASE_URL, min_length=1)
    """SQLAlchemy async URL; env ``SHIPTHREAD_DATABASE_URL`` (the place for one with a password)."""
    playbooks_dir: str = Field(default="playbooks", min_length=1)
    """env ``SHIPTHREAD_PLAYBOOKS``."""
    kubeconfig: str | None = None
    """Path of the kubeconfig holding the clusters' contexts; env ``KUBECONFIG``."""
    slack: SlackSettings = SlackSettings()
    jenkins: JenkinsSettings = JenkinsSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    clusters: dict[Name, ClusterSettings] = Field(default_factory=dict)
    approver_groups: dict[Name, tuple[Member, ...]] = Field(default_factory=dict)
    """Group name → Slack user ids (``U…``) and/or user groups (``S…`` ids or ``@handles``)."""
    break_glass: Name | None = None
    """The group whose members may deploy with ``--emergency`` (skipping approvals and freezes)."""
    freeze_windows: tuple[FreezeWindowSpec, ...] = ()
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.REFUSE
    approval_ttl: Duration = timedelta(hours=1)
    """How long approvals may take, unless the environment says otherwise."""
    secrets: Secrets = Secrets()
    """From the environment only (``load_settings`` refuses them in files)."""

    _source: SourceMap | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems: list[tuple[Loc, str]] = []
        for name, members in self.approver_groups.items():
            if not members:
                problems.append((("approver_groups", name), "a group needs at least one member"))
            for index, member in enumerate(members):
                if member in members[:index]:
                    problems.append((("approver_groups", name, index), f"{member} is listed twice"))
        if self.break_glass is not None and self.break_glass not in self.approver_groups:
            known = ", ".join(self.approver_groups) or "none"
            problems.append(
                (("break_glass",), f"unknown group {self.break_glass!r} (approver_groups: {known})")
            )
        seen: set[str] = set()
        for index, window in enumerate(self.freeze_windows):
            if window.name in seen:
                problems.append((("freeze_windows", index, "name"), f"freeze window {window.name!r} twice"))
            seen.add(window.name)
        if self.approval_ttl <= timedelta(0):
            problems.append((("approval_ttl",), "approval_ttl must be positive"))
        if problems:
            raise FieldErrors(problems)
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # database_url may carry a password (from the environment): never show it.
        for name, value in super().__repr_args__():
            yield name, masked_url(value) if name == "database_url" else value

    @property
    def source(self) -> SourceMap | None:
        """Where the settings were read (None: defaults and environment only)."""
        return self._source

    def with_source(self, source: SourceMap) -> Settings:
        """A copy that remembers where it was read (the loader's business)."""
        copy = self.model_copy()
        copy._source = source
        return copy

    def group_size(self, group: str) -> int | None:
        """How many people ``group`` has, or None when it includes user groups (size unknown here)."""
        members = self.approver_groups.get(group)
        if members is None or not all(is_user_id(m) for m in members):
            return None
        return len(members)

    def freezes(self) -> tuple[FreezeWindow, ...]:
        """The freeze windows as domain values."""
        return tuple(window.to_domain() for window in self.freeze_windows)
