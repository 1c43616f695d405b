"""The Jenkins emulator's state: its folders, jobs, builds and queue items.

Why it exists: these plain records are what the emulator's routes read and change. Keeping them
apart from the routes keeps each small; how a build's result, duration and console follow from the
emulated time lives here, next to the data it is computed from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from bot.sandbox.jenkins.config import JobConfig, ParamValue
from bot.sandbox.jenkins.steering import INFINITY, BuildScript

PERMALINKS = (
    "lastBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastFailedBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
    "lastCompletedBuild",
)


@dataclass(eq=False)
class Item:
    name: str
    parent: Folder | None
    config: JobConfig

    @property
    def full_name(self) -> str:
        parts: list[str] = []
        item: Item | None = self
        while item is not None and item.parent is not None:
            parts.append(item.name)
            item = item.parent
        return "/".join(reversed(parts))

    @property
    def path(self) -> str:
        """URL path below the root, e.g. ``job/a/job/b/`` ('' for the root)."""
        full = self.full_name
        return "".join(f"job/{quote(part, safe='')}/" for part in full.split("/")) if full else ""

    @property
    def full_display_name(self) -> str:
        return " » ".join(self.full_name.split("/"))


@dataclass(eq=False)
class Folder(Item):
    children: dict[str, Item] = field(default_factory=dict)

    def walk(self) -> Iterable[Item]:
        for child in self.children.values():
            yield child
            if isinstance(child, Folder):
                yield from child.walk()


@dataclass(eq=False)
class Job(Item):
    builds: dict[int, Build] = field(default_factory=dict)
    next_build_number: int = 1


@dataclass(eq=False)
class Build:
    job: Job
    number: int
    queue_id: int
    params: tuple[ParamValue, ...]
    started_at: float
    script: BuildScript
    duration: float
    user: str
    aborted_at: float | None = None
    aborted_by: str | None = None

    @property
    def planned_end(self) -> float:
        return self.started_at + self.duration

    @property
    def end(self) -> float:
        """When the build stops (inf while it runs until stopped)."""
        return self.aborted_at if self.aborted_at is not None else self.planned_end

    def building(self, now: float) -> bool:
        return now < self.end

    def result(self, now: float) -> str | None:
        if self.building(now):
            return None
        return "ABORTED" if self.aborted_at is not None else self.script.result

    def duration_ms(self, now: float) -> int:
        return 0 if self.building(now) else round((self.end - self.started_at) * 1000)

    def url(self, base: str) -> str:
        return f"{base}{self.job.path}{self.number}/"

    def console(self, now: float) -> str:
        job = self.job
        lines = [
            f"Started by user {self.user}",
            "Running as SYSTEM",
            f"Building in workspace /var/jenkins_home/workspace/{job.full_name}",
            f"[{job.full_name.replace('/', '_')}] $ /bin/sh -xe /tmp/jenkins{self.queue_id}.sh",
        ]
        body = self._body_lines()
        at = min(now, self.end)
        elapsed = max(0.0, at - self.started_at)
        if not self.building(now) and self.aborted_at is None:
            shown = len(body)
        elif self.duration == INFINITY:
            shown = min(len(body), int(elapsed))  # one line per emulated second
        elif self.duration <= 0:
            shown = len(body)
        else:
            shown = min(len(body), int(elapsed * (len(body) + 1) / self.duration))
        lines.extend(body[:shown])
        result = self.result(now)
        if result is not None:
            if result == "ABORTED":
                lines.append("Build was aborted")
                if self.aborted_by:
                    lines.append(f"Aborted by {self.aborted_by}")
            elif result == "FAILURE":
                lines.append("Build step 'Execute shell' marked build as failure")
            elif result == "UNSTABLE":
                lines.append("Build step 'Execute shell' changed build result to UNSTABLE")
            lines.append(f"Finished: {result}")
        return "".join(line + "\n" for line in lines)

    def _body_lines(self) -> list[str]:
        if self.script.console is not None:
            return self.script.console.splitlines()
        lines = ["+ ./build.sh", f"[sandbox] building {self.job.full_name}"]
        lines.extend(f"[sandbox] {p.name}={p.text}" for p in self.params if not p.secret)
        lines.append(f"[sandbox] {self.job.full_name} done")
        return lines


@dataclass(eq=False)
class QueueItem:
    id: int
    job: Job
    params: tuple[ParamValue, ...]
    user: str
    enqueued_at: float
    ready_at: float
    script: BuildScript
    cancelled_at: float | None = None
    build: Build | None = None

    @property
    def waiting(self) -> bool:
        return self.cancelled_at is None and self.build is None

    @property
    def left_at(self) -> float | None:
        if self.cancelled_at is not None:
            return self.cancelled_at
        return None if self.build is None else self.build.started_at


def start_time(item: QueueItem) -> float | None:
    """When a queue item can start (None: behind a build that runs until stopped)."""
    start = item.ready_at
    job = item.job
    if not job.config.concurrent and job.builds:
        last = job.builds[max(job.builds)]
        end = last.end
        if end == INFINITY:
            return None
        start = max(start, end)
    return start


def permalink(job: Job, ref: str, now: float) -> Build | None:
    """The build a permalink such as ``lastSuccessfulBuild`` names, if any."""

    def ok(build: Build) -> bool:
        result = build.result(now)
        if ref == "lastBuild":
            return True
        if result is None:
            return False
        return {
            "lastCompletedBuild": True,
            "lastStableBuild": result == "SUCCESS",
            "lastSuccessfulBuild": result in ("SUCCESS", "UNSTABLE"),
            "lastFailedBuild": result == "FAILURE",
            "lastUnstableBuild": result == "UNSTABLE",
            "lastUnsuccessfulBuild": result != "SUCCESS",
        }[ref]

    for number in sorted(job.builds, reverse=True):
        if ok(job.builds[number]):
            return job.builds[number]
    return None
