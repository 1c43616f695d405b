"""The Slack emulator's clock, kept apart so anything that needs emulator time can share it.

Trigger expiry, response_url lifetimes and rate-limit windows all read this clock; a test runs it
scaled, frozen (scale 0) or moves it forward, so nothing in the sandbox has to sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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
        if scale < 0:
            raise ValueError("clock scale must be >= 0")
        self._source = source
        self._lock = threading.Lock()
        self._origin = time.time() if start is None else start
        self._origin_real = source()
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        with self._lock:
            return self._origin + (self._source() - self._origin_real) * self._scale

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._origin += seconds

    def set_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError("clock scale must be >= 0")
        now = self.now()
        with self._lock:
            self._origin, self._origin_real, self._scale = now, self._source(), scale
