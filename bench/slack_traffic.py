"""The Slack traffic of N concurrent deployments, for the budget bench and the notifier's burst test.

Each deployment tells its whole life (``lifecycle``: open, build, one canary step's rollout, three
guard ticks, the verdict) to the chat, all of them at once (``run_deployments``); rendered by the
real planner (``bot.slack.thread.plan``), so the card is redrawn at ``REDRAW`` on every guard
tick and re-rendered urgently on a phase change, as in production. ``FINAL_CARD`` is the card's
fallback text once a deployment has succeeded.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import BuildStarted, GuardPassed, GuardTicked, RolloutCompleted, RolloutStarted
from bot.domain.measurements import TickOutcome
from bot.domain.notifications import DeploymentOpened, Notification, PhaseChanged
from bot.domain.phases import Phase
from bot.slack.card import phase_label
from bot.slack.outgoing import CARD

FINAL_CARD = f"checkout 1.4.2 to production: {phase_label(Phase.SUCCEEDED)}"
"""The card's text once a ``lifecycle`` has ended."""


def lifecycle(did: str, service: str = "checkout") -> list[Notification]:
    """What the engine says over one canary step's deployment, in order: the thread's whole life."""
    at = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)

    def dep(phase: Phase, ticks: int = 0) -> Deployment:
        return Deployment(
            did, service, "production", "1.4.2", Strategy.CANARY, "U0ALICE", phase, at, at,
            guard_ticks=ticks, guard_started_at=at if ticks else None,
        )  # fmt: skip

    return [
        DeploymentOpened(dep(Phase.REQUESTED), "#deploys"),
        PhaseChanged(dep(Phase.BUILDING), BuildStarted(number=1)),
        PhaseChanged(dep(Phase.DEPLOYING), RolloutStarted(step=0)),
        PhaseChanged(dep(Phase.VERIFYING), RolloutCompleted(step=0)),
        *(PhaseChanged(dep(Phase.VERIFYING, t), GuardTicked(outcome=TickOutcome.PASS)) for t in (1, 2, 3)),
        PhaseChanged(dep(Phase.SUCCEEDED, 3), GuardPassed()),
    ]


async def run_deployments(
    chat: Any, count: int, *, gap_s: float = 0.2, spread_s: float = 1.0
) -> dict[str, list[tuple[int, float]]]:
    """``count`` deployments' lifecycles told concurrently to ``chat`` (a ``SlackNotifier``: its
    ``stage``), started over ``spread_s``, one notification every ``gap_s``; returns per deployment
    each phase change's card revision and the monotonic time it was told (what lag is measured from)."""
    told: dict[str, list[tuple[int, float]]] = {}

    async def one(index: int) -> None:
        did = f"b{index:03d}"
        await asyncio.sleep(spread_s * index / max(1, count))
        told[did] = []
        for n in lifecycle(did):
            revisions = await chat.stage(n)
            redraw = isinstance(n, PhaseChanged) and isinstance(n.event, GuardTicked)
            if CARD in revisions and not redraw:
                told[did].append((revisions[CARD], time.monotonic()))
            await asyncio.sleep(gap_s)

    await asyncio.gather(*(one(i) for i in range(count)))
    return told
