"""Time-driven work: polling builds and rollouts, expiring approvals, ticking the QoS guard.

Everything here reads the stored deployment and decides from stored timestamps and counters, so a
tick after a restart continues exactly where the last one stopped. The guard tick evaluates every
guard that is due (deployments being verified and post-rollback watches) in one batch, so the
metrics adapter can send one query per check shape instead of one per deployment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain import approvals, guard
from bot.domain.deployment import Deployment, Strategy
from bot.domain.effects import PromoteCanary, StartRollback, StartRollout, SwitchTraffic, TriggerBuild
from bot.domain.events import (
    ApprovalExpired,
    BuildFailed,
    BuildStarted,
    BuildSucceeded,
    Event,
    GuardBreached,
    GuardHeld,
    GuardTicked,
    RollbackCompleted,
    RollbackFailed,
    RolloutCompleted,
    RolloutFailed,
)
from bot.domain.measurements import Measurement, QueryFailed
from bot.domain.notifications import (
    SKIPPED,
    BuildProgress,
    CheckResult,
    EnvUnlocked,
    GuardSettling,
    GuardTick,
    GuardVerdict,
    Notification,
    RolloutProgress,
)
from bot.domain.phases import Phase
from bot.domain.playbook import BreachAction, GuardSpec
from bot.domain.watch import GuardWatch, WatchStatus
from bot.engine.charts import VerdictCharts, Window, settled_at, watch_owner
from bot.engine.context import Context, GuardPlan, approvals_opened_at
from bot.engine.orchestrator import BOT, Orchestrator
from bot.errors import ShipthreadError
from bot.ports import BuildRef, BuildState, GuardQuery, RolloutPhase

log = logging.getLogger("shipthread.ticks")

_SAID_MEMORY = 4096
"""How many (deployment, notice kind) pairs ``_say`` remembers to avoid repeating itself."""

STEP_EFFECTS = frozenset(
    t.__name__ for t in (TriggerBuild, StartRollout, PromoteCanary, SwitchTraffic, StartRollback)
)
"""Effects whose result the next step waits for. A pending notice (a Slack outage) never stalls a
deployment: only a pending change to Jenkins or the cluster does."""


@dataclass(frozen=True, slots=True)
class _Due:
    """One guard evaluation due now: a deployment's window or a post-rollback watch."""

    spec: GuardSpec
    plan: GuardPlan
    deployment: Deployment | None = None
    watch: GuardWatch | None = None
    before: str | None = None
    """The version the change replaced (what a settling check's ranges still see)."""


class Ticks:
    def __init__(self, ctx: Context, orchestrator: Orchestrator) -> None:
        self.ctx = ctx
        self.orch = orchestrator
        self._last_said: dict[str, object] = {}
        self._colours: dict[str, str] = {}
        self.charts = VerdictCharts(ctx)

    # -- one deployment: approvals, build, rollout -------------------------------------------------

    async def poll(self, deployment_id: str) -> None:
        """Move one deployment on from what the outside world says now."""
        await self.orch.run_effects(deployment_id)
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None or dep.phase.terminal:
            self.orch.timer.forget(deployment_id)
            return
        if any(p.effect_type in STEP_EFFECTS for p in await self.ctx.store.pending_effects(deployment_id)):
            return  # a CI or cluster change is still being retried: its result decides what comes next
        try:
            if dep.phase is Phase.AWAITING_APPROVAL:
                settled = await self.orch.settle_votes(dep.id)
                if settled is not None and settled.phase is Phase.AWAITING_APPROVAL:
                    await self._expire(settled)
            elif dep.phase is Phase.BUILDING:
                await self._poll_build(dep)
            elif dep.phase is Phase.DEPLOYING:
                await self._poll_rollout(dep)
            elif dep.phase is Phase.ROLLING_BACK:
                await self._poll_rollback(dep)
        except ShipthreadError as exc:
            log.warning("%s: poll failed, next tick retries: %s", dep.id, exc)

    async def _expire(self, dep: Deployment) -> None:
        ttl = self.ctx.playbook(dep.service).approval_ttl(dep.env, self.ctx.policy.approval_ttl)
        if approvals.is_expired(await approvals_opened_at(self.ctx, dep), ttl, self.ctx.clock.now()):
            await self.orch.try_handle(dep.id, ApprovalExpired())

    async def _poll_build(self, dep: Deployment) -> None:
        pb = self.ctx.playbook(dep.service)
        job = pb.job_path(dep.version, dep.env)
        if job is None or dep.build_queue_item is None:
            return
        status = await self.ctx.ci.status(BuildRef(job, dep.build_queue_item, dep.build_number))
        number = status.ref.number
        if number is not None and number != dep.build_number:
            dep = await self.orch.try_handle(dep.id, BuildStarted(number=number)) or dep
        if status.state is BuildState.SUCCEEDED:
            await self._say(
                dep, BuildProgress(dep, status.state.value, status.url, 1.0, None, number, status.result)
            )
            await self.orch.try_handle(dep.id, BuildSucceeded(number=number))
        elif status.state.finished:
            tail = await self._console_tail(status.ref) if number is not None else None
            what = f"build #{number}" if number is not None else "the queued build"
            await self._say(
                dep, BuildProgress(dep, status.state.value, status.url, None, tail, number, status.result)
            )
            await self.orch.try_handle(
                dep.id, BuildFailed(reason=f"{what} {status.result or status.state.value}")
            )
        else:
            limit = pb.jenkins.build_timeout.total_seconds() if pb.jenkins else None
            if limit is not None and status.elapsed_s > limit:
                await self.ctx.ci.abort(status.ref)
                await self.orch.try_handle(
                    dep.id,
                    BuildFailed(reason=f"build #{number} ran longer than {int(limit)}s and was aborted"),
                )
                return
            progress = status.progress
            bucket = (status.state.value, None if progress is None else int(progress * 10))
            note = BuildProgress(dep, status.state.value, status.url, progress, None, number)
            await self._say(dep, note, bucket)

    async def _console_tail(self, ref: BuildRef) -> str | None:
        try:
            return await self.ctx.ci.console_tail(ref)
        except ShipthreadError as exc:
            return f"(console unavailable: {exc})"

    async def _poll_rollout(self, dep: Deployment) -> None:
        status = await self.ctx.cluster.rollout(self.ctx.target_of(dep))
        weights = self.ctx.canary_steps(dep)
        weight = weights[dep.step] if dep.strategy is Strategy.CANARY and dep.step < len(weights) else None
        if status.phase is RolloutPhase.DONE:
            await self.orch.try_handle(dep.id, RolloutCompleted(step=dep.step))
        elif status.phase is RolloutPhase.FAILED:
            await self.orch.try_handle(dep.id, RolloutFailed(reason=status.message or "the rollout failed"))
        else:
            note = RolloutProgress(dep, dep.step, weight, status.message, status.ready, status.desired)
            await self._say(dep, note, (dep.step, status.ready, status.desired))

    async def _poll_rollback(self, dep: Deployment) -> None:
        status = await self.ctx.cluster.rollout(self.ctx.target_of(dep))
        restored = dep.version if dep.is_rollback else dep.previous_version
        if status.phase is RolloutPhase.DONE:
            await self.orch.try_handle(dep.id, RollbackCompleted(version=restored or "the previous revision"))
        elif status.phase is RolloutPhase.FAILED:
            await self.orch.try_handle(
                dep.id, RollbackFailed(reason=f"the rollback's rollout failed: {status.message}")
            )

    async def _say(self, dep: Deployment, note: Notification, bucket: object = None) -> None:
        """Tell the chat, but only when something a person would notice changed."""
        key = f"{dep.id}:{type(note).__name__}"
        marker = (dep.phase, dep.step, bucket if bucket is not None else repr(note))
        if self._last_said.get(key) == marker:
            return
        self._last_said[key] = marker
        while len(self._last_said) > _SAID_MEMORY:  # forget the oldest; a repeat notice is harmless
            del self._last_said[next(iter(self._last_said))]
        await self.ctx.tell(note)

    # -- the QoS guard --------------------------------------------------------------------------------

    async def guard_tick(self) -> None:
        """Evaluate every guard that is due, in one batch of queries."""
        now = self.ctx.clock.now()
        due: list[_Due] = []
        for dep in await self.ctx.store.active_deployments():
            if dep.phase is not Phase.VERIFYING or dep.paused or dep.guard_started_at is None:
                continue
            spec = self.ctx.guard(dep)
            if spec is None:
                await self._no_guard(dep, now)
            elif await self._concluded(dep, spec, None, now):
                # The stored counters already decide the window (its last tick was stored, then
                # the process stopped before acting on it, or the window's time ran out).
                continue
            elif guard.tick_is_due(spec, dep.guard_started_at, dep.guard_ticks, now):
                plan = self.ctx.guard_plan(dep, spec, now, await self._colour(dep))
                due.append(_Due(spec, plan, deployment=dep, before=dep.previous_version))
            elif dep.guard_ticks == 0:
                await self._settling(dep, spec, dep.guard_started_at, dep.previous_version, False)
        for watch in await self.ctx.store.active_watches():
            spec = self._watch_spec(watch)
            if (
                spec is not None
                and watch.version
                and watch.ticks == 0
                and not guard.tick_is_due(spec, watch.started_at, watch.ticks, now)
            ):
                await self._watch_settling(watch, spec)
            if (
                spec is not None
                and watch.version
                and guard.tick_is_due(spec, watch.started_at, watch.ticks, now)
            ):
                rolled_back = await self.ctx.store.get_deployment(watch.deployment_id)
                removed = None
                if rolled_back is not None:  # a /rollback's own version is the restored one
                    removed = rolled_back.previous_version if rolled_back.is_rollback else rolled_back.version
                due.append(_Due(spec, self.ctx.watch_plan(watch, spec, now), watch=watch, before=removed))
        if not due:
            return
        wanted = [q for d in due for q in d.plan.wanted()]
        try:
            results = await self.ctx.metrics.evaluate(wanted)
        except ShipthreadError as exc:  # adapters answer QueryFailed, but never let a tick die silently
            results = {q: QueryFailed(str(exc)) for q in wanted}
        for item in due:
            measured: dict[str, Measurement] = {
                name: results.get(q, QueryFailed("not evaluated")) for name, q in item.plan.queries.items()
            }
            baselines = (
                None
                if item.plan.baselines is None
                else {
                    name: results.get(q, QueryFailed("not evaluated"))
                    for name, q in item.plan.baselines.items()
                }
            )
            verdict = guard.tick_verdict(item.spec, measured, baselines, item.plan.elapsed, item.before)
            checked = _results(item.spec, item.plan.queries, verdict)
            if item.deployment is not None:
                await self._deployment_tick(item.deployment, item.spec, verdict, now, checked)
            elif item.watch is not None:
                await self._watch_tick(item.watch, item.spec, verdict, now, checked)

    async def _settling(
        self, dep: Deployment, spec: GuardSpec, started: datetime, before: str | None, post_rollback: bool
    ) -> None:
        """Say once per window what the guard waits for while its checks settle (no tick yet)."""
        settle = guard.first_settled(spec)
        if not settle:
            return
        opening = guard.tick_verdict(spec, {}, None, timedelta(0), before)
        lines = tuple(c.message for c in opening.checks if c.status is guard.CheckStatus.SETTLING)
        note = GuardSettling(
            dep,
            lines,
            started + settle,
            guard.expected_ticks(spec),
            post_rollback=post_rollback,
            step=None if post_rollback else dep.step,
            window_started_at=started,
        )
        await self._say(dep, note, (post_rollback, started))

    async def _watch_settling(self, watch: GuardWatch, spec: GuardSpec) -> None:
        rolled_back = await self.ctx.store.get_deployment(watch.deployment_id)
        if rolled_back is not None:  # what its ranges still see is the version the rollback removed
            removed = rolled_back.previous_version if rolled_back.is_rollback else rolled_back.version
            await self._settling(rolled_back, spec, watch.started_at, removed, True)

    async def _deployment_tick(
        self,
        dep: Deployment,
        spec: GuardSpec,
        verdict: guard.TickVerdict,
        now: datetime,
        results: tuple[CheckResult, ...] = (),
    ) -> None:
        new = await self.orch.try_handle(dep.id, GuardTicked(outcome=verdict.outcome))
        if new is None or new.guard_started_at is None:
            return
        self.charts.tick(dep.id, new.guard_started_at, now, verdict.outcome)
        await self.ctx.tell(
            GuardTick(
                new,
                verdict.outcome,
                tuple(c.message for c in verdict.checks),
                new.guard_ticks,
                guard.expected_ticks(spec),
                results=results,
                step=new.step,
                window_started_at=new.guard_started_at,
            )
        )
        await self._concluded(new, spec, verdict, now)

    async def _concluded(
        self, dep: Deployment, spec: GuardSpec, verdict: guard.TickVerdict | None, now: datetime
    ) -> bool:
        """Act on the window's verdict from the stored counters; False while it is still running."""
        if dep.guard_started_at is None:
            return False
        state = guard.WindowState(
            dep.guard_ticks, dep.guard_failed_ticks, dep.guard_inconclusive_ticks, dep.guard_started_at
        )
        window = guard.window_verdict(spec, state, now)
        reason = _with_checks(window.reason, verdict) if verdict is not None else window.reason
        event: Event
        if window.status is guard.WindowStatus.FAIL:
            if spec.on_breach is BreachAction.ROLLBACK:
                event = GuardBreached(reason=reason)
            else:
                event = GuardHeld(reason=reason, lock=True)
        elif window.status is guard.WindowStatus.INCONCLUSIVE:
            event = GuardHeld(reason=reason)
        elif window.status is guard.WindowStatus.PASS:
            if not self._pause_over(dep, now):
                return False
            event = self.orch.next_step_event(dep)
        else:
            return False
        await self.ctx.tell(
            GuardVerdict(
                dep, window.status.value, reason, step=dep.step, window_started_at=dep.guard_started_at
            )
        )
        await self.orch.try_handle(dep.id, event)
        # After the verdict is told and acted on: the chart never comes between. Its plan is made
        # in the chart's own task, so a chart that cannot be planned never stops this tick.
        changed = dep.guard_started_at
        status = window.status.value
        rollback_at = now if isinstance(event, GuardBreached) else None

        async def planned() -> Window:
            plan = self.ctx.guard_plan(dep, spec, settled_at(spec, changed), await self._colour(dep))
            return Window(
                dep.id,
                dep.service,
                dep.env,
                dep.version,
                spec,
                plan,
                status,
                changed,
                now,
                rollback_at=rollback_at,
            )

        self.charts.at_verdict(dep.id, changed, status, False, planned)
        return True

    def _pause_over(self, dep: Deployment, now: datetime) -> bool:
        canary = self.ctx.environment(dep).canary
        if dep.strategy is not Strategy.CANARY or canary is None or dep.step >= len(canary.steps):
            return True
        started = dep.guard_started_at or now
        return now >= started + canary.steps[dep.step].pause

    async def _no_guard(self, dep: Deployment, now: datetime) -> None:
        if not self._pause_over(dep, now):
            return
        # The step moves on as after a pass, but nothing judged it: say "skipped", never "passed".
        await self.ctx.tell(
            GuardVerdict(
                dep,
                SKIPPED,
                "no guard for this step",
                step=dep.step,
                window_started_at=dep.guard_started_at,
            )
        )
        await self.orch.try_handle(dep.id, self.orch.next_step_event(dep))

    async def _colour(self, dep: Deployment) -> str | None:
        """The colour a blue-green deployment brought up (what ``{track}`` means for it)."""
        if dep.strategy is not Strategy.BLUE_GREEN:
            return None
        cached = self._colours.get(dep.id)
        if cached is None:
            # The rollout effect of step 0 recorded it (``bot.engine.effects``, under this key).
            record = await self.ctx.store.get_key(f"{dep.id}:rollout:0")
            colour = (record.result or {}).get("color") if record else None
            if isinstance(colour, str):
                self._colours[dep.id] = cached = colour
                while len(self._colours) > _SAID_MEMORY:
                    del self._colours[next(iter(self._colours))]
        return cached

    def _watch_spec(self, watch: GuardWatch) -> GuardSpec | None:
        try:
            return self.ctx.playbook(watch.service).guard_for(watch.env)
        except LookupError:
            return None

    async def _watch_tick(
        self,
        watch: GuardWatch,
        spec: GuardSpec,
        verdict: guard.TickVerdict,
        now: datetime,
        results: tuple[CheckResult, ...] = (),
    ) -> None:
        """A tick of the post-rollback window: a clean window lifts the guard lock by itself."""
        watch = watch.ticked(verdict.outcome)
        self.charts.tick(watch_owner(watch), watch.started_at, now, verdict.outcome)
        dep = await self.ctx.store.get_deployment(watch.deployment_id)
        if dep is not None:
            await self.ctx.tell(
                GuardTick(
                    dep,
                    verdict.outcome,
                    tuple(c.message for c in verdict.checks),
                    watch.ticks,
                    guard.expected_ticks(spec),
                    post_rollback=True,
                    results=results,
                    window_started_at=watch.started_at,
                )
            )
        state = guard.WindowState(watch.ticks, watch.failed, watch.inconclusive, watch.started_at)
        window = guard.window_verdict(spec, state, now)
        if window.status is guard.WindowStatus.RUNNING:
            await self.ctx.store.save_watch(watch)
            return
        if window.status is guard.WindowStatus.PASS:
            if watch.lock_id is not None:
                await self.ctx.store.release_lock(watch.lock_id, BOT, now)
            await self.ctx.store.save_watch(
                replace(watch, status=WatchStatus.CLEARED, last_reason=window.reason)
            )
            if dep is not None:
                await self.ctx.tell(
                    GuardVerdict(
                        dep, "pass", window.reason, post_rollback=True, window_started_at=watch.started_at
                    )
                )
                self._chart_watch(watch, spec, dep, "pass", now)
            await self.ctx.tell(
                EnvUnlocked(
                    watch.env,
                    watch.service,
                    "guard",
                    f"{watch.version} stayed clean for the post-rollback window",
                    BOT,
                    self.ctx.channel(dep) if dep else None,
                    watch.deployment_id,
                    watch.lock_id,
                )
            )
            return
        # Still failing (or not measurable): keep the lock, say why once, and watch another window.
        first = watch.windows == 1 or watch.last_reason is None
        why = _with_checks(window.reason, verdict)
        await self.ctx.store.save_watch(watch.next_window(now, why))
        if dep is not None and first:
            reason = f"{why}; {watch.env} stays locked and the guard keeps watching"
            await self.ctx.tell(
                GuardVerdict(
                    dep, window.status.value, reason, post_rollback=True, window_started_at=watch.started_at
                )
            )
            self._chart_watch(watch, spec, dep, window.status.value, now)

    def _chart_watch(
        self, watch: GuardWatch, spec: GuardSpec, dep: Deployment, verdict: str, now: datetime
    ) -> None:
        version = watch.version or dep.version

        async def planned() -> Window:  # in the chart's task: a plan that raises never stops a tick
            plan = self.ctx.watch_plan(watch, spec, settled_at(spec, watch.started_at))
            return Window(
                dep.id, dep.service, dep.env, version, spec, plan, verdict, watch.started_at, now, True
            )

        self.charts.at_verdict(watch_owner(watch), watch.started_at, verdict, True, planned)


def _with_checks(reason: str, verdict: guard.TickVerdict) -> str:
    """The window's reason with the checks that were not clean at the last tick (what a person needs)."""
    bad = [c.message for c in verdict.checks if c.status is not guard.CheckStatus.PASS]
    return f"{reason}: {'; '.join(bad)}" if bad else reason


def _results(
    spec: GuardSpec, queries: Mapping[str, GuardQuery], verdict: guard.TickVerdict
) -> tuple[CheckResult, ...]:
    """Each check's verdict with its thresholds and rendered query, for the thread's window reply."""
    specs = {check.name: check for check in spec.checks}
    out: list[CheckResult] = []
    for v in verdict.checks:
        check = specs.get(v.check)
        query = queries.get(v.check)
        out.append(
            CheckResult(
                v,
                check.min if check else None,
                check.max if check else None,
                query.rendered() if query else None,
            )
        )
    return tuple(out)
