"""The playbook schema: what an operator writes in ``playbooks/<service>.yaml``.

Pydantic models (pydantic is allowed in the pure domain: it is validation, not I/O). The loader that
reads YAML and turns validation errors into ``file:line: field: message`` lives in
``bot.playbooks``; this module says what a valid playbook is as a whole (environments, their
prerequisites, the references between its parts), and answers the questions the engine asks of one
(which image, which guard, which Jenkins parameters for this version and environment).

Its parts have modules of their own; the names callers use with a playbook are re-exported here
(``__all__``), everything else is imported from its own module: durations (``bot.domain.durations``),
locations and ``FieldErrors`` (``bot.domain.located``), names and the base model
(``bot.domain.spec_types``), templates (``bot.domain.template``), guards (``bot.domain.guard_spec``),
build, target and strategies (``bot.domain.rollout_spec``).

Cross-field mistakes (a guard that does not exist, "staging first" naming a later environment) are
raised as ``FieldErrors``: a ``ValueError`` that carries the location of each problem, so the loader
can point at the line of the offending key rather than at the top of the file.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from bot.domain.deployment import Strategy
from bot.domain.durations import Duration, LongDuration, format_duration
from bot.domain.guard_spec import (
    BASELINE_STRATEGIES,
    Baseline,
    BreachAction,
    CheckSpec,
    GuardRef,
    GuardSpec,
    NoDataPolicy,
)
from bot.domain.located import FieldErrors, Loc, SourceMap
from bot.domain.rollout_spec import BlueGreenSpec, CanarySpec, JenkinsSpec, KubernetesSpec
from bot.domain.spec_types import Channel, Name, Spec, check_version
from bot.domain.template import placeholders, render
from bot.errors import UnknownEnvironment

__all__ = [
    "ApprovalStage",
    "Baseline",
    "BreachAction",
    "CanarySpec",
    "CheckSpec",
    "Duration",
    "Environment",
    "GuardSpec",
    "NoDataPolicy",
    "Playbook",
    "Prerequisite",
    "check_version",
    "format_duration",
    "placeholders",
    "render",
]


class ApprovalStage(Spec):
    """One stage of approvals: ``count`` distinct members of ``group``, requester excluded."""

    group: str = Field(min_length=1)
    count: int = Field(default=1, ge=1)


# ---------------------------------------------------------------------------------------------------
# Environments and the playbook


class Prerequisite(Spec):
    """Something that must be true before deploying: ``{succeeded_in: staging}`` ("staging first")."""

    succeeded_in: Name
    """The same version must have succeeded in this (earlier) environment."""
    within: LongDuration | None = None
    """And not longer ago than this; None: at any time."""


class Environment(Spec):
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


class Playbook(Spec):
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
