"""The due time of a deployment or a watch, from the playbook: ``bot.domain.due`` with its inputs.

The rule is pure and lives in the domain; this module only looks up what it needs (the poll
interval, the step's guard and canary pause, when approvals expire) so the orchestrator, storing a
transition, and the timer, storing the next due time of work that did not change, ask one place.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain import due
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import ApprovalsRequired, Event
from bot.domain.phases import Phase
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch
from bot.engine.context import Context, approvals_opened_at

FIRST_POLL_FRACTION = 0.1
"""The first poll after a deployment begins waiting on Jenkins or the cluster comes after this share
of the poll interval (0.2 s at the default 2 s), then ever less often up to the interval
(``bot.domain.due.poll_delay``): short builds and rollouts are seen done at once, and the engine's
lifecycles are not paced by a fixed 2 s per step."""


def poll_interval(ctx: Context) -> timedelta:
    return timedelta(seconds=ctx.policy.poll_interval_s)


def first_poll(ctx: Context) -> timedelta:
    return poll_interval(ctx) * FIRST_POLL_FRACTION


async def deployment_due(
    ctx: Context, dep: Deployment, now: datetime, *, fresh: bool, event: Event | None = None
) -> datetime | None:
    """When ``dep`` next needs the timer. ``fresh``: it was just stored by ``event``."""
    poll = poll_interval(ctx)
    if dep.phase.terminal or dep.phase is Phase.REQUESTED:
        return None
    try:
        env = ctx.environment(dep)
        spec = ctx.guard(dep) if dep.phase is Phase.VERIFYING else None
    except LookupError:  # its playbook went away: keep looking, the poll says what is wrong
        return now + poll
    expires: datetime | None = None
    if dep.phase is Phase.AWAITING_APPROVAL:
        opened = now if isinstance(event, ApprovalsRequired) else await approvals_opened_at(ctx, dep)
        expires = opened + ctx.playbook(dep.service).approval_ttl(dep.env, ctx.policy.approval_ttl)
    pause: timedelta | None = None
    canary = env.canary
    if dep.strategy is Strategy.CANARY and canary is not None and dep.step < len(canary.steps):
        pause = canary.steps[dep.step].pause
    return due.next_due(
        dep,
        now,
        poll=poll,
        spec=spec,
        pause=pause,
        approval_expires_at=expires,
        fresh=fresh,
        first_poll=first_poll(ctx),
    )


def watch_spec(ctx: Context, watch: GuardWatch) -> GuardSpec | None:
    """The guard a post-rollback watch applies (None once its playbook or guard is gone)."""
    try:
        return ctx.playbook(watch.service).guard_for(watch.env)
    except LookupError:
        return None


def watch_due(ctx: Context, watch: GuardWatch, *, fresh: bool) -> datetime | None:
    return due.watch_due(watch, watch_spec(ctx, watch), fresh=fresh)
