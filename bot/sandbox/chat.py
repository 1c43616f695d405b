"""A Chat port that records what it was told, for engine tests and headless sandbox runs.

It stands in for Slack (another system), never for our own code: the engine's tests read the
notifications a person would have seen, in order, and assert on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.domain.notifications import Notification


class RecordingChat:
    """Keeps every notification; ``wait_for`` lets a test await one that matches."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._changed = asyncio.Condition()

    async def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)
        async with self._changed:
            self._changed.notify_all()

    def of(self, kind: type) -> list[Notification]:
        return [n for n in self.notifications if isinstance(n, kind)]

    async def wait_for(self, matches: Callable[[Notification], bool], timeout: float = 10.0) -> Notification:
        async def found() -> Notification:
            async with self._changed:
                while True:
                    for n in self.notifications:
                        if matches(n):
                            return n
                    await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)
