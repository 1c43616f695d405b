"""A live metric feed for engine tests: backdated history, then a sample every few milliseconds.

Settling is about what a check's ranges see, so the guard tests need series that look like scraped
ones: a history written in the past (remote write accepts backdated samples on a fresh series), then
fresh samples while the test runs, whose value the test switches when "the new version" takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping

from tests.support.promwrite import Series, push

Value = float | Callable[[int], float]
"""A constant, or a function of the sample's number (for a noisy series)."""


class Feed:
    """Pushes one sample per series every ``every`` seconds; ``values`` may change at any time."""

    def __init__(self, url: str, labels: Mapping[str, Mapping[str, str]], every: float = 0.05) -> None:
        self.url = url
        self.labels = labels
        self.values: dict[str, Value] = {}
        self.every = every
        self._count = itertools.count()

    def _value(self, name: str, n: int) -> float:
        value = self.values[name]
        return value(n) if callable(value) else value

    def history(self, seconds: float, values: Mapping[str, Value]) -> None:
        """Backdated samples for the last ``seconds`` (what ran before the test's change)."""
        self.values.update(values)
        now = int(time.time() * 1000)
        step = int(self.every * 1000)
        series = [
            Series(
                labels,
                [
                    (t, self._value(name, i))
                    for i, t in enumerate(range(now - int(seconds * 1000), now, step))
                ],
            )
            for name, labels in self.labels.items()
        ]
        push(self.url, series)

    def _push_now(self) -> None:
        now = int(time.time() * 1000)
        n = next(self._count)
        push(
            self.url, [Series(labels, [(now, self._value(name, n))]) for name, labels in self.labels.items()]
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Feed]:
        async def loop() -> None:
            while True:
                await asyncio.to_thread(self._push_now)
                await asyncio.sleep(self.every)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
