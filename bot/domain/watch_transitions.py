"""The post-rollback watch as a state machine: one table of legal transitions, and ``apply``.

A watch (``bot.domain.watch.GuardWatch``) lives behind a guard lock after a rollback. Its life is
short but it is a second state machine beside the deployment's, so it gets the same treatment: the
events it takes are values, ``TRANSITIONS`` says which status takes which, anything else is refused
with ``InvalidWatchTransition`` and changes nothing, and ``apply`` returns the new watch with what
the engine must now do. ``window_event`` judges a window from the watch's counters (what a tick ends
with); nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from bot.domain import guard
from bot.domain.breach import with_checks
from bot.domain.measurements import TickOutcome
from bot.domain.playbook import GuardSpec
from bot.domain.watch import GuardWatch, WatchStatus
from bot.errors import InvalidWatchTransition as InvalidWatchTransition  # its tests import it from here


@dataclass(frozen=True, slots=True)
class WatchTicked:
    """One guard tick over the restored version: counted in the current window."""

    outcome: TickOutcome


@dataclass(frozen=True, slots=True)
class WindowClean:
    """The window passed clean: the guard lock goes."""

    reason: str

    @property
    def status(self) -> guard.WindowStatus:
        """Always ``PASS`` (what the thread is told, like ``WindowFailing.status``)."""
        return guard.WindowStatus.PASS


@dataclass(frozen=True, slots=True)
class WindowFailing:
    """The window ended failing (or not measurable): the lock stays and another window starts."""

    status: guard.WindowStatus
    """``FAIL`` or ``INCONCLUSIVE``: what the thread is told."""
    reason: str
    """Why, with the checks that were not clean at the last tick."""


@dataclass(frozen=True, slots=True)
class LiftedByPerson:
    """Someone lifted the guard lock (``/deploy unlock``): the watch ends without a verdict."""

    user: str


WatchEvent = WatchTicked | WindowClean | WindowFailing | LiftedByPerson

# fmt: off
TRANSITIONS: Mapping[tuple[WatchStatus, type[WatchEvent]], WatchStatus] = types.MappingProxyType({
    (WatchStatus.WATCHING, WatchTicked):    WatchStatus.WATCHING,
    (WatchStatus.WATCHING, WindowClean):    WatchStatus.CLEARED,
    (WatchStatus.WATCHING, WindowFailing):  WatchStatus.WATCHING,   # a fresh window, lock kept
    (WatchStatus.WATCHING, LiftedByPerson): WatchStatus.STOPPED,
})
# fmt: on
"""Every legal transition. ``cleared`` and ``stopped`` are final: they accept nothing."""

FINAL: frozenset[WatchStatus] = frozenset(WatchStatus) - {source for (source, _) in TRANSITIONS}
"""Statuses with no way out, read off the table."""


class WatchAction(StrEnum):
    """What the engine does for a watch's transition."""

    RELEASE_LOCK = "release_lock"
    """Lift the guard lock the watch holds (the bot lifts it: a clean window). Done *before* the
    cleared watch is stored, so a crash in between never strands a lock that nothing watches."""
    TELL_VERDICT = "tell_verdict"
    """Post the window's verdict (and its chart) in the rolled-back deployment's thread."""
    TELL_UNLOCKED = "tell_unlocked"
    """Say that the environment is unlocked again, and why."""


@dataclass(frozen=True, slots=True)
class WatchDecision:
    """The watch to store, and what to do for it (``RELEASE_LOCK`` before storing, the rest after)."""

    watch: GuardWatch
    actions: tuple[WatchAction, ...] = ()


def refusal(watch: GuardWatch, event_type: type[WatchEvent]) -> InvalidWatchTransition:
    """The ``InvalidWatchTransition`` for ``event_type`` at ``watch``'s status (``bot.errors`` holds the
    class), its message naming what the status accepts instead."""
    accepted = sorted(kind.__name__ for (source, kind) in TRANSITIONS if source is watch.status)
    took = f"accepts {', '.join(accepted)}" if accepted else f"{watch.status} is final"
    message = (
        f"guard watch {watch.id} of {watch.deployment_id} is {watch.status}; "
        f"cannot apply {event_type.__name__} ({took})"
    )
    return InvalidWatchTransition(
        message,
        watch_id=watch.id,
        deployment_id=watch.deployment_id,
        status=watch.status,
        event_type=event_type,
    )


def apply(watch: GuardWatch, event: WatchEvent, now: datetime) -> WatchDecision:
    """The watch after ``event`` at ``now`` and what to do; ``InvalidWatchTransition`` if refused."""
    target = TRANSITIONS.get((watch.status, type(event)))
    if target is None:
        raise refusal(watch, type(event))
    moved = replace(watch, status=target)
    match event:
        case WatchTicked():
            return WatchDecision(moved.ticked(event.outcome))
        case WindowClean():
            actions: tuple[WatchAction, ...] = (WatchAction.TELL_VERDICT, WatchAction.TELL_UNLOCKED)
            if watch.lock_id is not None:
                actions = (WatchAction.RELEASE_LOCK, *actions)
            return WatchDecision(replace(moved, last_reason=event.reason), actions)
        case WindowFailing():
            # Said once: the first window that ends failing explains the lock; later ones only
            # keep watching (a thread that repeats "still failing" every window helps nobody).
            first = watch.windows == 1 or watch.last_reason is None
            return WatchDecision(
                moved.next_window(now, event.reason), (WatchAction.TELL_VERDICT,) if first else ()
            )
        case LiftedByPerson():
            return WatchDecision(moved)
        case _:
            assert_never(event)


def window_event(
    watch: GuardWatch, spec: GuardSpec, now: datetime, last: guard.TickVerdict
) -> WindowClean | WindowFailing | None:
    """How the watch's current window ends after the tick judged ``last``: None while it runs."""
    state = guard.WindowState(watch.ticks, watch.failed, watch.inconclusive, watch.started_at)
    window = guard.window_verdict(spec, state, now)
    match window.status:
        case guard.WindowStatus.RUNNING:
            return None
        case guard.WindowStatus.PASS:
            return WindowClean(window.reason)
        case guard.WindowStatus.FAIL | guard.WindowStatus.INCONCLUSIVE:
            return WindowFailing(window.status, with_checks(window.reason, last))
        case _:
            assert_never(window.status)
