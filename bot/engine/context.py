"""What every part of the engine shares: the ports, the playbooks, the policy, and small lookups.

Resolving a deployment to its playbook environment, Kubernetes target, image and guard happens in
one place so the orchestrator, the effects and the ticks can never disagree about them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import guard as guard_domain
from bot.domain.deployment import Deployment, Strategy
from bot.domain.notifications import Notification
from bot.domain.playbook import Baseline, Environment, GuardSpec, Playbook, placeholders, render
from bot.domain.template import placeholders_in
from bot.domain.watch import GuardWatch
from bot.engine.policy import EnginePolicy
from bot.errors import UnknownService
from bot.ports import CI, ChartPoster, Chat, Clock, Cluster, Directory, GuardQuery, Metrics, Store, Target

log = logging.getLogger("shipthread.engine")


@dataclass(frozen=True, slots=True)
class Context:
    store: Store
    ci: CI
    cluster: Cluster
    metrics: Metrics
    chat: Chat
    directory: Directory
    clock: Clock
    playbooks: Mapping[str, Playbook]
    policy: EnginePolicy
    default_channel: str | None = None
    charts: ChartPoster | None = None
    """Where verdicts' charts go (``bot.engine.charts``); None: no charts."""
    chart_metrics: Metrics | None = None
    """The charts' own metrics adapter, so their range queries never queue the guard's; None: ``metrics``."""

    async def tell(self, notification: Notification) -> None:
        """Tell people, but never let a chat outage stop a deployment: failures are logged.

        (The state machine's own notices go through the outbox instead, and are retried.)
        """
        try:
            await self.chat.notify(notification)
        except Exception:
            log.exception("could not deliver %s", type(notification).__name__)

    def playbook(self, service: str) -> Playbook:
        try:
            return self.playbooks[service]
        except KeyError:
            known = ", ".join(sorted(self.playbooks)) or "none"
            raise UnknownService(f"no playbook for service {service!r} (known: {known})") from None

    def environment(self, dep: Deployment) -> Environment:
        return self.playbook(dep.service).environment(dep.env)

    def channel(self, dep: Deployment) -> str | None:
        return self.environment(dep).channel or self.default_channel

    def target(self, service: str, env: str, strategy: Strategy | None = None) -> Target:
        pb = self.playbook(service)
        spec = pb.target(env)
        settings = pb.environment(env)
        bg = settings.blue_green
        return Target(
            cluster=spec.cluster,
            namespace=spec.namespace,
            deployment=spec.deployment,
            container=spec.container,
            service=bg.service if bg else None,
            color_label=bg.colour_label if bg else "color",
            rollout_timeout_s=spec.rollout_timeout.total_seconds(),
            strategy=(strategy or settings.strategy).value,
            replicas=spec.replicas,
        )

    def target_of(self, dep: Deployment) -> Target:
        return self.target(dep.service, dep.env, dep.strategy)

    def image(self, dep: Deployment, version: str | None = None) -> str:
        return self.playbook(dep.service).image(version or dep.version, dep.env)

    def canary_steps(self, dep: Deployment) -> tuple[int, ...]:
        canary = self.environment(dep).canary
        return tuple(step.weight for step in canary.steps) if canary else ()

    def guard(self, dep: Deployment) -> GuardSpec | None:
        """The guard of the deployment's current step (canary steps may override the env's)."""
        pb = self.playbook(dep.service)
        steps = self.canary_steps(dep)
        step = dep.step if dep.strategy is Strategy.CANARY and dep.step < len(steps) else None
        return pb.guard_for(dep.env, step)

    def guard_queries(
        self, service: str, env: str, version: str, guard: GuardSpec, track: str | None = None
    ) -> dict[str, GuardQuery]:
        """Each check's query, by check name, for ``version`` of ``service`` in ``env``.

        ``track`` fills ``{track}`` (``canary``/``stable``, or a blue-green colour).
        """
        values = self.playbook(service).values(version, env)
        if track is not None:
            values["track"] = track
        # Only the placeholders a check uses go into its query: they are the metrics adapter's batch
        # key, and an unused ``{version}`` would split one shape into a request per version.
        return {
            check.name: GuardQuery.of(
                check.query, **{k: v for k, v in values.items() if k in placeholders_in(check.query)}
            )
            for check in guard.checks
        }

    def guard_plan(
        self, dep: Deployment, guard: GuardSpec, now: datetime, colour: str | None = None
    ) -> GuardPlan:
        """What one guard tick of ``dep`` asks Prometheus: the settled checks and their baselines.

        The version under test runs on the ``canary`` track (blue-green: its own ``colour``) while
        a canary step holds, and on ``stable`` once promoted. A check's baseline is the same query
        on the stable track (blue-green: the other colour): at this tick while the old version
        still runs alongside (``baseline: stable``), else when the step's change *started*, which
        is also what ``baseline: before`` always asks for. Not when the rollout completed (the
        window's start, which settling counts from): by then the range has seen the new pods
        serve for the whole rollout, and a promoted canary's stable track already runs the new
        version, so the baseline would be the version under test itself.
        """
        changed = dep.guard_started_at or now
        before = dep.change_started_at or changed  # rows stored before it was kept: the window's start
        waiting = guard_domain.settling_checks(guard, now - changed)
        settled = [c for c in guard.checks if c.name not in waiting]
        new_track, stable_track, alongside = _tracks(self, dep, colour)
        new = self.guard_queries(dep.service, dep.env, dep.version, guard, new_track)
        stable = self.guard_queries(dep.service, dep.env, dep.version, guard, stable_track)
        baselines: dict[str, GuardQuery] = {}
        for check in settled:
            if check.baseline is Baseline.STABLE and alongside:
                baselines[check.name] = stable[check.name]
            elif check.baseline is not None:
                baselines[check.name] = stable[check.name].evaluated_at(before)
        return GuardPlan({c.name: new[c.name] for c in settled}, baselines, now - changed)

    def watch_plan(self, watch: GuardWatch, guard: GuardSpec, now: datetime) -> GuardPlan:
        """A post-rollback watch: the restored version on the stable track, absolute bounds only.

        A baseline compares with the version the rollback removed, which says nothing about the
        restored one, so it does not apply; every window of the watch settles again.
        """
        waiting = guard_domain.settling_checks(guard, now - watch.started_at)
        track = "stable" if "track" in _placeholders(guard) else None
        queries = self.guard_queries(watch.service, watch.env, watch.version or "", guard, track)
        return GuardPlan({n: q for n, q in queries.items() if n not in waiting}, None, now - watch.started_at)


@dataclass(frozen=True, slots=True)
class GuardPlan:
    """One guard's queries at one tick (``bot.engine.ticks`` sends every plan's in one batch)."""

    queries: Mapping[str, GuardQuery]
    """The settled checks' queries, by check name (settling checks are not queried)."""
    baselines: Mapping[str, GuardQuery] | None
    """Baseline queries by check name; None where no baseline applies (post-rollback)."""
    elapsed: timedelta
    """Time since the change the window guards (what decides which checks have settled)."""

    def wanted(self) -> list[GuardQuery]:
        return [*self.queries.values(), *(self.baselines or {}).values()]


_OTHER_COLOUR = {"blue": "green", "green": "blue"}


def _placeholders(guard: GuardSpec) -> set[str]:
    return {name for check in guard.checks for name in placeholders(check.query)}


def _tracks(ctx: Context, dep: Deployment, colour: str | None) -> tuple[str | None, str | None, bool]:
    """The new version's track, the stable one, and whether the old version still runs alongside."""
    if dep.strategy is Strategy.CANARY:
        if dep.step < len(ctx.canary_steps(dep)):
            return "canary", "stable", True
        return "stable", "stable", False  # promoted: the stable track runs the new version now
    if dep.strategy is Strategy.BLUE_GREEN and colour is not None:
        # Step 0: the new colour is up beside the live one; step 1: traffic switched to it.
        return colour, _OTHER_COLOUR.get(colour, colour), dep.step == 0
    return None, None, False


def version_of_image(playbook: Playbook, env: str, image: str | None) -> str | None:
    """The version an image of this playbook carries (``…/checkout:1.4.1`` → ``1.4.1``), or None.

    Used to record what was live before a deployment in the playbook's own terms, so a rollback
    restores a version a person can read rather than guessing from revisions.
    """
    if not image:
        return None
    template = playbook.target(env).image
    values = {k: v for k, v in playbook.values("0", env).items() if k != "version"}
    marker = "\x00VERSION\x00"
    literal = render(template, {**values, "version": marker})
    pattern = re.escape(literal).replace(re.escape(marker), r"(?P<version>[A-Za-z0-9][A-Za-z0-9._+-]*)")
    match = re.fullmatch(pattern, image)
    return match.group("version") if match else None


async def approvals_opened_at(ctx: Context, dep: Deployment) -> datetime:
    """When the deployment started waiting for approvals: the approval time limit counts from here.

    Not ``created_at``: a request queued behind a busy environment must not expire the moment its
    approvals open.
    """
    for event in reversed(await ctx.store.events_for(dep.id)):
        if event.type == "ApprovalsRequired":
            return event.at
    return dep.created_at
