"""What undoing a deployment takes on the cluster, by strategy and step, and whether it ends at once.

A rolling deployment is undone by putting the previous pod template back and waiting for that
rollout. A canary that was never promoted only needs its canary Deployment scaled away, and a
blue-green deployment whose traffic never switched only needs the new colour dropped: both are over
as soon as the call returns, with nothing to wait for (the main Deployment never changed). Once a
canary was promoted or a blue-green switch happened, the main Deployment (or the Service) must be
undone too. The engine asks here and performs the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.deployment import Deployment, Strategy


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """The cluster calls a rollback makes, in order: abort the canary, then undo the main object."""

    abort_canary: bool
    """Scale the ``<name>-canary`` Deployment away."""
    undo: bool
    """Undo the main Deployment (rolling, a promoted canary) or switch the Service back (blue-green)."""
    undo_to_image: bool
    """``undo`` names the image to restore; False: the cluster's own previous revision or colour."""
    completes_at_once: bool
    """Nothing to wait for: the rollback is complete when the calls return (no rollout to poll)."""


def rollback_plan(dep: Deployment, canary_steps: int) -> RollbackPlan:
    """How to roll ``dep`` back, given its environment's number of canary steps (0 without one)."""
    match dep.strategy:
        case Strategy.CANARY:
            promoted = dep.step >= canary_steps
            return RollbackPlan(
                abort_canary=True, undo=promoted, undo_to_image=promoted, completes_at_once=not promoted
            )
        case Strategy.BLUE_GREEN:
            # Before the switch (step 0) the old colour never stopped serving: dropping the new one is all.
            return RollbackPlan(
                abort_canary=False, undo=dep.step >= 1, undo_to_image=False, completes_at_once=True
            )
        case Strategy.ROLLING | Strategy.RECREATE:
            return RollbackPlan(abort_canary=False, undo=True, undo_to_image=True, completes_at_once=False)
