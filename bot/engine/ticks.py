"""Time-driven work: ticking the QoS guard (and, through ``bot.engine.polls``, polling the rest).

Everything here reads the stored deployment and decides from stored timestamps and counters, so a
tick after a restart continues exactly where the last one stopped. The guard tick evaluates every
guard that is due (deployments being verified and post-rollback watches) in one batch, so the
metrics adapter can send one query per check shape instead of one per deployment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import breach, guard
from bot.domain import watch_transitions as watch_rules
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import (
    GuardBreached,
    GuardTicked,
)
from bot.domain.measurements import Measurement, QueryFailed
from bot.domain.notifications import (
    SKIPPED,
    CheckResult,
    EnvUnlocked,
    GuardSettling,
    GuardTick,
    GuardVerdict,
)
from bot.domain.phases import Phase
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch
from bot.engine import due_times
from bot.engine.charts import VerdictCharts, Window, settled_at, watch_owner
from bot.engine.context import Context, GuardPlan
from bot.engine.orchestrator import BOT, Orchestrator
from bot.engine.polls import SAID_MEMORY, Notices, Polls
from bot.engine.turns import in_turns
from bot.errors import ShipthreadError
from bot.ports import GuardQuery

log = logging.getLogger("shipthread.ticks")

_COLOUR_MEMORY = SAID_MEMORY
"""How many blue-green deployments' colours ``_colour`` remembers."""


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
        self.notices = Notices(ctx)
        self.polls = Polls(ctx, orchestrator, self.notices)
        self._colours: dict[str, str] = {}
        self.charts = VerdictCharts(ctx)

    async def poll(self, deployment_id: str) -> None:
        """Move one deployment on from what the outside world says now (``bot.engine.polls``)."""
        await self.polls.poll(deployment_id)

    # -- the QoS guard --------------------------------------------------------------------------------

    async def guard_tick(
        self, deployments: Sequence[Deployment] | None = None, watches: Sequence[GuardWatch] | None = None
    ) -> None:
        """Evaluate every guard that is due, in one batch of queries.

        ``deployments`` and ``watches``: the ones the timer found due (default: every active one,
        which is what ``Engine.tick`` asks for); each is ticked only if its window's tick is due.
        """
        now = self.ctx.clock.now()
        if deployments is None:
            deployments = await self.ctx.store.active_deployments()
        if watches is None:
            watches = await self.ctx.store.active_watches()
        due = await self._windows_due(deployments, now) + await self._watches_due(watches, now)
        if not due:
            return
        wanted = [q for d in due for q in d.plan.wanted()]
        try:
            results = await self.ctx.metrics.evaluate(wanted)
        except ShipthreadError as exc:  # adapters answer QueryFailed, but never let a tick die silently
            results = {q: QueryFailed(str(exc)) for q in wanted}
        await self._act(due, results, now)

    async def _windows_due(self, deployments: Sequence[Deployment], now: datetime) -> list[_Due]:
        """The deployments' windows whose tick is due; the others are concluded or told they settle."""
        due: list[_Due] = []
        async for dep in in_turns(deployments):  # in turns: 1,000 of them were one 100 ms+ callback
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
        return due

    async def _watches_due(self, watches: Sequence[GuardWatch], now: datetime) -> list[_Due]:
        """The post-rollback watches whose tick is due; the others are told they settle."""
        due: list[_Due] = []
        async for watch in in_turns(watches):
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
        return due

    async def _act(self, due: list[_Due], results: Mapping[GuardQuery, Measurement], now: datetime) -> None:
        """Judge each window from the batch's answers, store the ticks, tell, and act on verdicts."""
        judged = [(item, _verdict(item, results)) async for item in in_turns(due)]
        # Every deployment's tick is stored in one transaction, then each is told and concluded.
        ticked = [(item, verdict) for item, verdict in judged if item.deployment is not None]
        stored = await self.orch.handle_all(
            [
                (item.deployment.id, GuardTicked(outcome=verdict.outcome))
                for item, verdict in ticked
                if item.deployment
            ]
        )
        async for (item, verdict), new in in_turns(zip(ticked, stored, strict=True)):
            if new is not None:
                await self._deployment_ticked(
                    new, item.spec, verdict, now, _results(item.spec, item.plan.queries, verdict)
                )
        async for item, verdict in in_turns(judged):
            if item.watch is not None:
                checked = _results(item.spec, item.plan.queries, verdict)
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
        await self.notices.say(dep, note, (post_rollback, started))

    async def _watch_settling(self, watch: GuardWatch, spec: GuardSpec) -> None:
        rolled_back = await self.ctx.store.get_deployment(watch.deployment_id)
        if rolled_back is not None:  # what its ranges still see is the version the rollback removed
            removed = rolled_back.previous_version if rolled_back.is_rollback else rolled_back.version
            await self._settling(rolled_back, spec, watch.started_at, removed, True)

    async def _deployment_ticked(
        self,
        new: Deployment,
        spec: GuardSpec,
        verdict: guard.TickVerdict,
        now: datetime,
        results: tuple[CheckResult, ...] = (),
    ) -> None:
        """After a deployment's tick was stored: chart it, tell the thread, act on the window."""
        if new.guard_started_at is None:
            return
        self.charts.tick(new.id, new.guard_started_at, now, verdict.outcome)
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
        reason = breach.with_checks(window.reason, verdict) if verdict is not None else window.reason
        canary = self.ctx.environment(dep).canary
        event = breach.window_event(dep, window, reason, spec.on_breach, canary, now)
        if event is None:
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

    async def _no_guard(self, dep: Deployment, now: datetime) -> None:
        canary = self.ctx.environment(dep).canary
        if not breach.pause_over(dep, canary, now):
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
        await self.orch.try_handle(dep.id, breach.next_step_event(dep, len(canary.steps) if canary else 0))

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
                while len(self._colours) > _COLOUR_MEMORY:
                    del self._colours[next(iter(self._colours))]
        return cached

    def _watch_spec(self, watch: GuardWatch) -> GuardSpec | None:
        return due_times.watch_spec(self.ctx, watch)

    async def _watch_tick(
        self,
        watch: GuardWatch,
        spec: GuardSpec,
        verdict: guard.TickVerdict,
        now: datetime,
        results: tuple[CheckResult, ...] = (),
    ) -> None:
        """A tick of the post-rollback window: a clean window lifts the guard lock by itself."""
        watch = watch_rules.apply(watch, watch_rules.WatchTicked(verdict.outcome), now).watch
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
        ending = watch_rules.window_event(watch, spec, now, verdict)
        if ending is None:
            await self.ctx.store.save_watch(watch, due_times.watch_due(self.ctx, watch, fresh=False))
            return
        decision = watch_rules.apply(watch, ending, now)
        if watch_rules.WatchAction.RELEASE_LOCK in decision.actions and watch.lock_id is not None:
            # Before the watch is stored as cleared: a crash in between leaves a watching watch
            # that lifts the lock again, never a cleared one whose lock nobody lifts.
            await self.ctx.store.release_lock(watch.lock_id, BOT, now)
        next_due = due_times.watch_due(self.ctx, decision.watch, fresh=True)
        await self.ctx.store.save_watch(decision.watch, next_due)
        status = ending.status.value
        for action in decision.actions:
            if action is watch_rules.WatchAction.TELL_VERDICT and dep is not None:
                reason = ending.reason
                if isinstance(ending, watch_rules.WindowFailing):
                    reason = f"{reason}; {watch.env} stays locked and the guard keeps watching"
                await self.ctx.tell(
                    GuardVerdict(dep, status, reason, post_rollback=True, window_started_at=watch.started_at)
                )
                self._chart_watch(watch, spec, dep, status, now)
            elif action is watch_rules.WatchAction.TELL_UNLOCKED:
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


def _verdict(item: _Due, results: Mapping[GuardQuery, Measurement]) -> guard.TickVerdict:
    """One window's tick verdict from the batch's answers."""
    measured: dict[str, Measurement] = {
        name: results.get(q, QueryFailed("not evaluated")) for name, q in item.plan.queries.items()
    }
    baselines = (
        None
        if item.plan.baselines is None
        else {name: results.get(q, QueryFailed("not evaluated")) for name, q in item.plan.baselines.items()}
    )
    return guard.tick_verdict(item.spec, measured, baselines, item.plan.elapsed, item.before)


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
