"""A guard round over many deployments gives the event loop turns (issue 13: no callback over 50 ms).

At 1,000 deployments one all-due guard round held the loop for 100-400 ms at a time (measured with
``bench/guard_scale.py --callback-cpu``): its loops over the deployments awaited only what finishes
without suspending. Milliseconds are not asserted here (a shared machine makes them flaky); the
structure is: a callback counts the loop's turns while the round runs, and each per-deployment
step the round exposes (the transition hook before and after each tick is stored, the chat told
of each tick) records the turn it ran in. No turn may hold more than ``TURN_ITEMS`` of a step.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import Event
from bot.domain.notifications import GuardTick, Notification
from bot.domain.phases import Phase
from bot.engine.turns import TURN_ITEMS
from bot.ports import Transition
from bot.sandbox.chat import RecordingChat
from tests.engine.fast_stack import MemoryStack, make_memory_stack
from tests.engine.stack import playbook

N = 4 * TURN_ITEMS
INTERVAL_S = 10.0


class Turns:
    """Counts the event loop's iterations: a callback that schedules itself for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._turn)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _turn(self) -> None:
        self.count += 1
        self._handle = asyncio.get_running_loop().call_soon(self._turn)


class TurnChat(RecordingChat):
    """The recording chat, noting the loop turn each guard tick is told in."""

    def __init__(self, turns: Turns) -> None:
        super().__init__()
        self.turns = turns
        self.tick_turns: list[int] = []

    async def notify(self, notification: Notification) -> None:
        if isinstance(notification, GuardTick):
            self.tick_turns.append(self.turns.count)
        await super().notify(notification)


async def _verifying(stack: MemoryStack, services: list[str]) -> None:
    """``services`` verifying, their guard window open one interval ago: all due now (as the
    deployments a restarted engine finds, or the bench's copies)."""
    now = stack.clock.now()
    started = now - timedelta(seconds=INTERVAL_S)
    for i, service in enumerate(services):
        dep = Deployment(
            id=f"d{i:04d}",
            service=service,
            env="production",
            version="1.1.0",
            strategy=Strategy.ROLLING,
            requester="U0ALICE",
            phase=Phase.VERIFYING,
            created_at=started,
            updated_at=started,
            guard_started_at=started,
        )
        await stack.store.create_deployment(dep, "Requested", {"by": dep.requester})
        stack.ratio(service, 0.01)
    ids = [f"d{i:04d}" for i in range(len(services))]
    stored = await stack.store.get_deployments(ids)
    await stack.store.save_transitions(
        [Transition(d, d.version_no, "GuardStarted", {}, started, (), now) for d in stored]
    )


def _most_in_one_turn(turns: list[int]) -> int:
    return max(Counter(turns).values(), default=0)


async def test_an_all_due_guard_round_gives_the_loop_a_turn_every_few_deployments(
    tmp_path: Path, run: str
) -> None:
    services = [f"svc{i:03d}" for i in range(N)]
    books = [playbook(s, run, interval=INTERVAL_S, window=3600.0, jenkins=False) for s in services]
    turns = Turns()
    hooked: dict[str, list[int]] = {"before": [], "after": []}

    def hook(when: str, deployment: Deployment, event: Event) -> None:
        hooked[when].append(turns.count)

    chat = TurnChat(turns)
    stack = await make_memory_stack(tmp_path, books, run=run, chat=chat, on_transition=hook)
    try:
        await _verifying(stack, services)
        turns.start()
        try:
            await stack.engine.rounds()
        finally:
            turns.stop()
        ticked = [d for d in await stack.store.get_deployments([f"d{i:04d}" for i in range(N)])]
        assert [d.guard_ticks for d in ticked] == [1] * N  # one round ticked every one of them
        assert len(chat.tick_turns) == len(hooked["before"]) == len(hooked["after"]) == N
        # Each per-deployment loop of the round hands the loop back at least every TURN_ITEMS.
        assert _most_in_one_turn(hooked["before"]) <= TURN_ITEMS, Counter(hooked["before"])
        assert _most_in_one_turn(hooked["after"]) <= TURN_ITEMS, Counter(hooked["after"])
        assert _most_in_one_turn(chat.tick_turns) <= TURN_ITEMS, Counter(chat.tick_turns)
    finally:
        await stack.runtime.close()
