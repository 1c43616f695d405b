"""What a guard window's verdict means for a deployment: breach, hold, or the next step.

The guard (``bot.domain.guard``) judges a window; this module turns that judgment into the event the
state machine takes, so the rule "a breach rolls back or locks, as the playbook says; an inconclusive
window holds for a person; a clean one goes to the next canary step or finishes" lives in one place
and the engine only gathers the facts (the window, the step count, the clock) and acts.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from bot.domain import guard
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import Event, GuardBreached, GuardHeld, GuardPassed, Promoted
from bot.domain.playbook import BreachAction, CanarySpec


def next_step_event(dep: Deployment, canary_steps: int, user: str | None = None) -> Event:
    """What a clean window (or a person's promote) means for the step ``dep`` is at.

    ``canary_steps`` is the number of steps of its environment's canary (0 without one): a canary
    goes on to the next step (``final`` into the last, the promotion), a blue-green deployment
    switches once, and everything else has passed.
    """
    if dep.strategy is Strategy.CANARY:
        if dep.step < canary_steps:
            return Promoted(user=user, final=dep.step + 1 == canary_steps)
    elif dep.strategy is Strategy.BLUE_GREEN and dep.step == 0:
        return Promoted(user=user)
    return GuardPassed(user=user)


def pause_over(dep: Deployment, canary: CanarySpec | None, now: datetime) -> bool:
    """Has the current canary step held for its ``pause``? (Always, for anything but a canary step.)"""
    if dep.strategy is not Strategy.CANARY or canary is None or dep.step >= len(canary.steps):
        return True
    started = dep.guard_started_at or now
    return now >= started + canary.steps[dep.step].pause


def window_event(
    dep: Deployment,
    window: guard.WindowVerdict,
    reason: str,
    on_breach: BreachAction,
    canary: CanarySpec | None,
    now: datetime,
) -> Event | None:
    """The event a deployment's guard ``window`` leads to at ``now``; None while there is none yet.

    ``reason`` is the window's reason as the thread should read it (with the failing checks). A pass
    waits for the canary step's pause before it moves on.
    """
    match window.status:
        case guard.WindowStatus.FAIL:
            if on_breach is BreachAction.ROLLBACK:
                return GuardBreached(reason=reason)
            return GuardHeld(reason=reason, lock=True)
        case guard.WindowStatus.INCONCLUSIVE:
            return GuardHeld(reason=reason)
        case guard.WindowStatus.PASS:
            if not pause_over(dep, canary, now):
                return None
            return next_step_event(dep, len(canary.steps) if canary else 0)
        case guard.WindowStatus.RUNNING:
            return None
        case _:
            assert_never(window.status)


def with_checks(reason: str, verdict: guard.TickVerdict) -> str:
    """The window's reason with the checks that were not clean at the last tick (what a person needs)."""
    bad = [c.message for c in verdict.checks if c.status is not guard.CheckStatus.PASS]
    return f"{reason}: {'; '.join(bad)}" if bad else reason
