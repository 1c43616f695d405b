"""What tests steer in the Jenkins emulator (scripted builds, injected faults) and what they read back.

Why it exists: tests, benchmarks and ``shipthread sandbox`` tell the emulator how its next builds
behave and which requests fail, and inspect the builds and queue items it made. These values are
its public control vocabulary, shared by the emulator's Python API and its ``/_sandbox/`` HTTP API.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.sandbox.jenkins.config import Json
from bot.sandbox.jenkins_results import check_result

INFINITY = math.inf


@dataclass(frozen=True)
class BuildScript:
    """What one build of a job does. Times are emulated seconds; None means the emulator default.

    ``duration=math.inf`` runs until stopped. ``console`` replaces the build's own output lines
    (Jenkins' header and ``Finished:`` line are added around it).
    """

    result: str = "SUCCESS"
    duration: float | None = None
    console: str | None = None
    queue_wait: float | None = None

    def __post_init__(self) -> None:
        check_result(self.result)
        for name in ("duration", "queue_wait"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> BuildScript:
        unknown = set(data) - {"result", "duration", "console", "queue_wait", "until_stopped", "count"}
        if unknown:
            raise ValueError(f"unknown build script fields: {sorted(unknown)}")
        duration = data.get("duration")
        if data.get("until_stopped"):
            duration = INFINITY
        console = data.get("console")
        if isinstance(console, list):
            console = "\n".join(str(line) for line in console)
        return cls(
            result=str(data.get("result", "SUCCESS")).upper(),
            duration=duration,
            console=console,
            queue_wait=data.get("queue_wait"),
        )

    def to_json(self) -> dict[str, Json]:
        return {
            "result": self.result,
            "duration": self.duration if self.duration is None or math.isfinite(self.duration) else None,
            "until_stopped": self.duration == INFINITY,
            "console": self.console,
            "queue_wait": self.queue_wait,
        }


@dataclass
class Fault:
    """The next ``count`` requests matching ``method`` and ``path`` (a regex searched in the path)
    are delayed by ``delay`` real seconds and then, if ``status`` is set, answered with it."""

    status: int | None = 503
    count: int = 1
    path: str | None = None
    method: str | None = None
    delay: float = 0.0
    body: str | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, not {self.status}")
        if self.status is None and self.delay == 0:
            raise ValueError("a fault needs a status, a delay, or both")
        if self.path is not None:
            re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> Fault:
        unknown = set(data) - {"status", "count", "path", "method", "delay", "body"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        status = data.get("status", 503 if not data.get("delay") else None)
        return cls(
            status=None if status is None else int(status),
            count=int(data.get("count", 1)),
            path=data.get("path"),
            method=data.get("method"),
            delay=float(data.get("delay", 0.0)),
            body=data.get("body"),
        )


@dataclass(frozen=True)
class BuildRecord:
    """One build as the control API reports it (tests count and inspect builds with it)."""

    job: str
    number: int
    queue_id: int
    parameters: dict[str, str | bool]
    result: str | None
    building: bool
    timestamp: int
    duration: int
    url: str


@dataclass(frozen=True)
class QueueRecord:
    """One queue item, waiting, cancelled or left for a build."""

    id: int
    job: str
    parameters: dict[str, str | bool]
    state: str
    build_number: int | None
