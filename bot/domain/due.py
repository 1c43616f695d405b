"""When a deployment or a post-rollback watch next needs the engine's attention: time as data.

The engine stores this instant with each deployment and watch (``due_at``) and one timer wakes at
the earliest of them, so nothing is polled that is only waiting. Deciding the instant is a rule of
the domain, kept here as pure functions of the stored progress:

- a build, a rollout or a rollback is polled every ``poll`` interval (the outside world moves by
  itself and tells nobody); with ``first_poll`` it is polled sooner just after it began waiting and
  less often as the wait goes on (``poll_delay``), so a 40 ms build is not seen 2 s late and a
  10-minute one costs a handful of extra polls;
- an approval needs attention when it expires (votes arrive as events of their own);
- a guard window needs attention at its next tick, at the end of its window once all its ticks are
  in, or at once when its stored counters already decide it (a crash between a tick and its verdict);
- a queued request, a paused deployment and a finished one need none (an event moves them).

Guard ticks fall **on the beat** of their interval: at whole multiples of it since the epoch, so
every window with the same interval ticks at the same instants and one Prometheus query per shape
serves them all. A window's ticks keep their spacing, so each window still gets all its ticks; they
merely land up to one interval after the moment ``guard.tick_is_due`` first allows them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain import guard
from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch, WatchStatus

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_POLLED = frozenset({Phase.BUILDING, Phase.DEPLOYING, Phase.ROLLING_BACK})
"""Phases that wait for Jenkins or the cluster, which answer only when asked."""


def on_beat(at: datetime, interval: timedelta) -> datetime:
    """The first multiple of ``interval`` since the epoch at or after ``at``."""
    if interval <= timedelta(0):
        return at
    beats, rest = divmod(at - EPOCH, interval)
    return EPOCH + interval * (beats + (1 if rest else 0))


def guard_tick_at(spec: GuardSpec, changed_at: datetime, ticks: int) -> datetime:
    """When tick ``ticks + 1`` of a window that began at ``changed_at`` runs: on the beat, never
    before ``guard.tick_is_due`` allows it."""
    return on_beat(changed_at + guard.first_settled(spec) + spec.interval * (ticks + 1), spec.interval)


def poll_delay(waited: timedelta, *, poll: timedelta, first_poll: timedelta | None) -> timedelta:
    """How long until the next poll of something that has waited ``waited`` since it last moved.

    Half the wait so far, between ``first_poll`` and ``poll``: a result that comes soon is seen
    soon, and a long wait settles at ``poll`` after about log1.5(poll / first_poll) + 2 polls. Without
    ``first_poll``, always ``poll``.
    """
    if first_poll is None or first_poll >= poll:
        return poll
    return max(first_poll, min(poll, waited / 2))


def window_due(
    spec: GuardSpec,
    state: guard.WindowState,
    *,
    fresh: bool,
    pause_end: datetime | None = None,
    judged_between_ticks: bool = True,
) -> datetime:
    """The next instant a running guard window needs attention.

    ``fresh``: the window was just stored (a transition, a new watch window), so a window that
    settles first is due at its start, when the thread is told what it waits for. ``pause_end``: a
    canary step's pause, before which a clean window does not promote. ``judged_between_ticks``:
    the window's verdict is also taken from its stored counters between ticks (a deployment's is;
    a post-rollback watch is judged at its ticks only).
    """
    start = state.started_at
    if not judged_between_ticks:
        if fresh and state.ticks == 0 and guard.first_settled(spec):
            return start
        return guard_tick_at(spec, start, state.ticks)
    if state.failed > spec.failure_limit or state.inconclusive > spec.inconclusive_limit:
        return start  # the stored counters decide it already: act at once
    settle = guard.first_settled(spec)
    if fresh and state.ticks == 0 and settle:
        return start
    tick = guard_tick_at(spec, start, state.ticks)
    if state.ticks < guard.expected_ticks(spec):
        return tick
    end = start + settle + guard.judged_span(spec)
    return min(tick, max(end, pause_end or end))


def next_due(
    dep: Deployment,
    now: datetime,
    *,
    poll: timedelta,
    spec: GuardSpec | None = None,
    pause: timedelta | None = None,
    approval_expires_at: datetime | None = None,
    fresh: bool = False,
    first_poll: timedelta | None = None,
) -> datetime | None:
    """When ``dep`` next needs attention, None when only an event can move it.

    ``spec`` is the guard of the deployment's current step (None: no guard), ``pause`` that step's
    canary pause, ``approval_expires_at`` when its approvals run out (None: polled instead),
    ``first_poll`` the shortest poll delay (``poll_delay``; None: every ``poll``).
    """
    if dep.phase in _POLLED:
        return now + poll_delay(now - dep.updated_at, poll=poll, first_poll=first_poll)
    if dep.phase is Phase.AWAITING_APPROVAL:
        return approval_expires_at if approval_expires_at is not None else now + poll
    if dep.phase is not Phase.VERIFYING or dep.paused or dep.guard_started_at is None:
        return None
    start = dep.guard_started_at
    pause_end = start + pause if pause else None
    if spec is None:
        return pause_end or start  # nothing to judge: the step moves on once its pause is over
    state = guard.WindowState(dep.guard_ticks, dep.guard_failed_ticks, dep.guard_inconclusive_ticks, start)
    return window_due(spec, state, fresh=fresh, pause_end=pause_end)


def watch_due(watch: GuardWatch, spec: GuardSpec | None, *, fresh: bool) -> datetime | None:
    """When a post-rollback watch next needs attention (None once it ended, or with no guard)."""
    if watch.status is not WatchStatus.WATCHING or spec is None or not watch.version:
        return None
    state = guard.WindowState(watch.ticks, watch.failed, watch.inconclusive, watch.started_at)
    return window_due(spec, state, fresh=fresh, judged_between_ticks=False)
