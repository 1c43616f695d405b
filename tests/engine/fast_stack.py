"""The engine on the in-memory stand-ins and a manual clock: the fast tier's stack.

Everything but the CI, the cluster, the metrics and the clock is what ``shipthread serve`` builds:
the config and playbook files are written and read the same way, the store is the SQLite
repository, the engine is the one ``bot.container.build`` wires (its context then carries the
stand-ins of ``bot.sandbox.memory`` instead of the adapters, which are built but never called).
Time moves only when the stack moves it: ``drive`` ticks the engine and advances the clock by
``step`` emulated seconds, so a guard window of 0.6 s costs three ticks and no waiting at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.container import Runtime
from bot.engine.engine import Engine
from bot.sandbox.chat import RecordingChat
from bot.sandbox.memory import BuildPlan, ManualClock, MemoryBuild, MemoryCI, MemoryCluster, MemoryMetrics
from tests.engine.stack import RATIO, Driving, build_from_files, write_config_files

NOWHERE = "http://127.0.0.1:9"
"""The adapters' endpoints in a memory stack: built, never called (a call would fail at once)."""

# The emulator stack runs the emulators at 1/20 of real time (``tests/engine/conftest.py``): a build
# waits 0.5 s in the queue and runs 2 s, a pod starts in 0.25 s, the workloads' progress deadline is
# 20 s, all emulated. The memory stack keeps the same times as the engine sees them (real seconds
# there, its clock's seconds here), so a scenario takes as many ticks on either stack.
BUILD = BuildPlan(queue_wait=0.5 * 0.05, duration=2.0 * 0.05)
POD_STARTUP_S = 0.25 * 0.05
PROGRESS_DEADLINE_S = 20 * 0.05


@dataclass
class MemoryStack(Driving):
    runtime: Runtime
    chat: RecordingChat
    ci: MemoryCI
    cluster: MemoryCluster
    metrics: MemoryMetrics
    clock: ManualClock
    run: str
    folder: Path

    # One tick per guard interval of the test playbooks (0.2 s), as the timer ticks a guard on its
    # interval's beat. (On the real clock a tick takes time of its own, so the emulator stack's ticks
    # come about as far apart under load.) The clock is manual, so a run is the same every time.
    step = 0.2

    def elapsed(self) -> float:
        return self.clock.seconds()

    async def pause(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)  # whatever the tick started in the background gets its turn

    async def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- the systems around the engine, as the emulator stack answers for them -----------------------

    def ratio(self, service: str, value: float) -> None:
        self.metrics.push({"__name__": RATIO, "service": service, "run": self.run}, value)

    def add_workload(self, service: str, image: str) -> None:
        labels = {"app": service}
        self.cluster.add_deployment(service, image, labels=labels, progress_deadline_s=PROGRESS_DEADLINE_S)

    def image(self, name: str) -> str:
        return self.cluster.deployment(name).images["app"]

    def replicas(self, name: str) -> int:
        return self.cluster.deployment(name).replicas

    def selector(self, service: str) -> dict[str, str]:
        return self.cluster.selector(service)

    def blue_green(self, service: str) -> None:
        self.cluster.deployment(service).labels["color"] = "blue"
        self.cluster.add_service(service, {"app": service, "color": "blue"})

    def set_bad_images(self, patterns: list[str]) -> None:
        self.cluster.set_bad_images(patterns)

    def builds(self, job: str | None = None) -> list[MemoryBuild]:
        return self.ci.builds(job)

    def script_build(self, job: str, *, result: str, console: str) -> None:
        self.ci.script(job, dataclasses.replace(BUILD, result=result, console=console))


async def make_memory_stack(
    folder: Path,
    books: list[dict[str, Any]],
    *,
    run: str,
    config: dict[str, Any] | None = None,
    chat: RecordingChat | None = None,
    **build_options: Any,
) -> MemoryStack:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    ci, metrics = MemoryCI(clock, BUILD), MemoryMetrics(clock)
    cluster = MemoryCluster(clock, pod_startup_s=POD_STARTUP_S)
    for book in books:
        if "jenkins" in book:
            ci.add_job(book["jenkins"]["job"])
    environ = write_config_files(folder, NOWHERE, NOWHERE, NOWHERE, books, config)
    chat = chat or RecordingChat()
    runtime = await build_from_files(environ, chat, clock=clock, **build_options)
    ctx = dataclasses.replace(runtime.engine.ctx, ci=ci, cluster=cluster, metrics=metrics)
    # The engine ``build`` wired, again, on the context that carries the stand-ins (``build`` takes
    # no ports of its own; a ``ports=`` argument there would make this one line go).
    engine = Engine(
        ctx,
        use_scheduler=False,
        new_id=build_options.get("new_id"),
        on_transition=build_options.get("on_transition"),
    )
    runtime = dataclasses.replace(runtime, engine=engine)
    return MemoryStack(runtime, chat, ci, cluster, metrics, clock, run, folder)
