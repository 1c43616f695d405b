"""A progress bar for the sandbox's long waits: redrawn in place on a TTY, printed at milestones otherwise.

The story waits on guard windows and rollouts; a bar says that it is waiting, and on what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, TextIO


def progress_bar(done: float, width: int = 10) -> str:
    """``█████░░░░░`` for a share between 0 and 1."""
    share = 0.0 if not math.isfinite(done) else max(0.0, min(1.0, done))
    full = int(share * width + 0.5)
    return "█" * full + "░" * (width - full)


def progress_line(done: float, label: str, width: int = 10) -> str:
    """``[█████░░░░░] 50% waiting for the guard window``."""
    share = 0.0 if not math.isfinite(done) else max(0.0, min(1.0, done))
    return f"[{progress_bar(share, width)}] {int(share * 100)}% {label}"


MILESTONES: Final = (0.0, 0.25, 0.5, 0.75, 1.0)


class Progress:
    """A progress bar on ``stream``: redrawn in place on a TTY, one line per milestone otherwise.

    ``tty`` defaults to ``stream.isatty()``; the caller may force it (tests, ``--no-tty``).
    """

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        width: int = 10,
        milestones: Sequence[float] = MILESTONES,
    ) -> None:
        self.label = label
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = width
        self._milestones = sorted(milestones)
        self._passed = -1  # index of the last milestone printed
        self._drawn = ""
        self._open = False

    def update(self, done: float, label: str | None = None) -> None:
        if label is not None:
            self.label = label
        line = progress_line(done, self.label, self._width)
        if self._tty:
            if line != self._drawn:
                pad = " " * max(0, len(self._drawn) - len(line))
                self._stream.write(f"\r{line}{pad}")
                self._stream.flush()
                self._drawn, self._open = line, True
            return
        reached = max((i for i, m in enumerate(self._milestones) if done >= m), default=-1)
        if reached > self._passed:
            self._passed = reached
            self._stream.write(line + "\n")
            self._stream.flush()

    def finish(self, label: str | None = None) -> None:
        """Draw 100 % and end the line."""
        self.update(1.0, label)
        if self._tty and self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
