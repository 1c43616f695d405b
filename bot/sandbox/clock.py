"""The one scaled clock every emulator in the sandbox keeps its time on.

Why it exists: the Slack, Jenkins and Kubernetes emulators each need time that runs faster than
real time, stands still, or is moved forward by a test, so nothing in the sandbox has to sleep.
They used to carry three copies of that logic with three meanings of "scale"; this module holds
it once. ``time_scale`` is real seconds per emulated second everywhere (0.01 makes a minute pass
in 0.6 s; 0 freezes the clock until :meth:`EmulatedClock.advance`); the emulators keep their own
names and constructors as thin layers over it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["EmulatedClock"]


def _check_time_scale(time_scale: float) -> float:
    if isinstance(time_scale, bool) or not math.isfinite(time_scale) or time_scale < 0:
        raise ValueError(f"time_scale must be a finite number >= 0, not {time_scale!r}")
    return float(time_scale)


class EmulatedClock:
    """Emulated seconds: scaled real time plus whatever was advanced by hand.

    ``now()`` starts at ``start`` (``None``: the current epoch time) and runs ``1 / time_scale``
    times as fast as ``source`` (a monotonic real-time source, injectable for tests). Thread-safe.
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        start: float | None = None,
        source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._time_scale = _check_time_scale(time_scale)
        if start is not None and not math.isfinite(start):
            raise ValueError(f"the clock must start at a finite time, not {start!r}")
        self._source = source
        self._lock = threading.Lock()
        # now() = _base_emulated + (source() - _base_real) / time_scale; rebased on every change of pace.
        self._base_emulated = time.time() if start is None else float(start)
        self._base_real = source()

    @property
    def time_scale(self) -> float:
        """Real seconds per emulated second (0: frozen)."""
        return self._time_scale

    def _now_locked(self) -> float:
        if self._time_scale == 0:
            return self._base_emulated
        return self._base_emulated + (self._source() - self._base_real) / self._time_scale

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (emulated); returns the new now."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the clock only moves forward by a finite amount, not {seconds!r}")
        with self._lock:
            self._base_emulated += seconds
            return self._now_locked()

    def set_time_scale(self, time_scale: float) -> None:
        """Change the pace from now on; ``now()`` carries on from where it is, without a jump."""
        scale = _check_time_scale(time_scale)
        with self._lock:
            self._base_emulated = self._now_locked()
            self._base_real = self._source()
            self._time_scale = scale

    def real_seconds(self, emulated: float) -> float:
        """How much real time ``emulated`` seconds take at the current pace (inf when frozen)."""
        scale = self._time_scale
        if scale == 0:
            return math.inf if emulated > 0 else 0.0
        return emulated * scale
