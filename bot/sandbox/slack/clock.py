"""The Slack emulator's clock, kept apart so anything that needs emulator time can share it.

Trigger expiry, response_url lifetimes and rate-limit windows all read this clock; a test runs it
scaled, frozen (scale 0) or moves it forward, so nothing in the sandbox has to sleep. The time
itself is kept by the sandbox-wide :class:`~bot.sandbox.clock.EmulatedClock`; this adapter only
keeps the Slack emulator's own vocabulary, where ``scale`` is a speed rather than a time scale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.sandbox.clock import EmulatedClock


def _time_scale_for(scale: float) -> float:
    """Speed (emulated seconds per real second) → time scale (real seconds per emulated second)."""
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"clock scale must be a finite number >= 0, not {scale!r}")
    return 0.0 if scale == 0 else 1.0 / scale


class Clock:
    """The emulator's sense of time: wall-clock time, optionally scaled, frozen or moved forward.

    ``scale`` 1 follows real time, 10 runs ten times faster, 0 stands still until ``advance``.
    """

    def __init__(
        self,
        start: float | None = None,
        scale: float = 1.0,
        source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = EmulatedClock(_time_scale_for(scale), start=start, source=source)
        # Kept as given: 1 / (1 / scale) need not give back the same float.
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return self._clock.now()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new now."""
        return self._clock.advance(seconds)

    def set_scale(self, scale: float) -> None:
        self._clock.set_time_scale(_time_scale_for(scale))
        self._scale = scale
