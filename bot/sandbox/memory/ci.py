"""An in-memory Jenkins as the engine sees it through ``bot.ports.CI``: the fast tier's CI.

It keeps what the Jenkins adapter reads off a real server and nothing more: a job must declare
``SHIPTHREAD_KEY`` (or triggering it is refused, as the adapter refuses), a trigger carrying a key
already used returns the build it started, a queue item waits ``queue_wait`` seconds on the clock,
becomes build N, runs ``duration`` seconds and ends with the result its script says. The contract
suite (``tests/contracts/test_ci.py``) runs the same tests against this and against the adapter over
HTTP against the Jenkins emulator, so the two stay alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import NotFound, PermanentError
from bot.ports import BuildRef, BuildState, BuildStatus, Clock
from bot.sandbox.jenkins_results import ABORTED, SUCCESS, check_result

__all__ = ["KEY_PARAM", "BuildPlan", "MemoryBuild", "MemoryCI"]

KEY_PARAM = "SHIPTHREAD_KEY"


def _state_of(result: str) -> BuildState:
    """What a finished build's word means, by the Jenkins adapter's rule: only SUCCESS releases a
    version, ABORTED was stopped, any other word is a failure."""
    if result == SUCCESS:
        return BuildState.SUCCEEDED
    return BuildState.ABORTED if result == ABORTED else BuildState.FAILED


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What one build of a job does (``math.inf`` duration: runs until aborted)."""

    result: str = "SUCCESS"
    duration: float = 2.0
    console: str = ""
    queue_wait: float = 0.5

    def __post_init__(self) -> None:
        check_result(self.result)


@dataclass(slots=True)
class MemoryBuild:
    """One queue item and, once it left the queue, the build it became."""

    job: str
    queue_item: int
    parameters: dict[str, str]
    plan: BuildPlan
    queued_at: float
    number: int | None = None
    cancelled: bool = False
    aborted_at: float | None = None

    @property
    def started_at(self) -> float:
        return self.queued_at + self.plan.queue_wait

    @property
    def ends_at(self) -> float:
        end = self.started_at + self.plan.duration
        return end if self.aborted_at is None else min(end, self.aborted_at)


@dataclass(slots=True)
class _Job:
    keyed: bool
    plans: list[BuildPlan] = field(default_factory=list)
    next_number: int = 1


class MemoryCI:
    """``bot.ports.CI`` over jobs held in memory, on the clock it is given."""

    def __init__(self, clock: Clock, default: BuildPlan | None = None) -> None:
        self._clock = clock
        self._default = default or BuildPlan()
        self._jobs: dict[str, _Job] = {}
        self._items: dict[int, MemoryBuild] = {}
        self._next_item = 1

    # --- steering (what a test does through the emulator's /_sandbox/ API) ----------------------

    def add_job(self, name: str, *, keyed: bool = True) -> None:
        """A job; ``keyed=False`` for one that does not declare ``SHIPTHREAD_KEY``."""
        self._jobs[name] = _Job(keyed=keyed)

    def script(self, job: str, *plans: BuildPlan) -> None:
        """The next builds of ``job`` do these, in order (then the default plan)."""
        self._jobs[job].plans.extend(plans)

    def builds(self, job: str | None = None) -> list[MemoryBuild]:
        """Every build so far (of one job, if named), oldest first: queue items not yet built excluded."""
        self._advance()
        return [b for b in self._items.values() if b.number is not None and job in (None, b.job)]

    # --- the port ----------------------------------------------------------------------------------

    async def trigger(self, job: str, params: Mapping[str, str], key: str) -> BuildRef:
        spec = self._job(job)
        if not spec.keyed:
            raise PermanentError(
                f"Jenkins job {job!r} does not declare the parameter {KEY_PARAM}: add a String Parameter "
                f"named {KEY_PARAM} to the job"
            )
        self._advance()
        for item in self._items.values():
            if item.job == job and item.parameters.get(KEY_PARAM) == key and not item.cancelled:
                return self._ref(item)
        plan = spec.plans.pop(0) if spec.plans else self._default
        item = MemoryBuild(
            job,
            self._next_item,
            {**{k: str(v) for k, v in params.items()}, KEY_PARAM: key},
            plan,
            queued_at=self._clock.now().timestamp(),
        )
        self._next_item += 1
        self._items[item.queue_item] = item
        return BuildRef(job, queue_item=item.queue_item)

    async def status(self, ref: BuildRef) -> BuildStatus:
        item = self._item(ref)
        ref = self._ref(item)
        url = f"memory://jenkins/job/{item.job}/" + (f"{item.number}/" if item.number else "")
        if item.cancelled:
            return BuildStatus(ref, BuildState.CANCELLED, url=url)
        if item.number is None:
            return BuildStatus(
                ref, BuildState.QUEUED, url=url, waiting_why="Waiting for next available executor"
            )
        now = self._clock.now().timestamp()
        estimated = None if math.isinf(item.plan.duration) else item.plan.duration
        if now < item.ends_at:
            elapsed = now - item.started_at
            return BuildStatus(ref, BuildState.RUNNING, url=url, elapsed_s=elapsed, estimated_s=estimated)
        result = (
            "ABORTED" if item.aborted_at is not None and item.aborted_at <= item.ends_at else item.plan.result
        )
        elapsed = item.ends_at - item.started_at
        return BuildStatus(
            ref, _state_of(result), url=url, result=result, elapsed_s=elapsed, estimated_s=estimated
        )

    async def console_tail(self, ref: BuildRef, lines: int = 20) -> str:
        item = self._item(ref)
        if item.number is None or item.cancelled:
            return ""
        text = item.plan.console
        if (await self.status(ref)).state.finished:
            text = (text + "\n" if text else "") + f"Finished: {(await self.status(ref)).result}"
        shown = text.splitlines()[-lines:] if lines > 0 else []
        return "\n".join(shown)

    async def abort(self, ref: BuildRef) -> None:
        item = self._item(ref)
        if item.number is None:
            item.cancelled = True
            return
        now = self._clock.now().timestamp()
        if item.aborted_at is None and now < item.ends_at:
            item.aborted_at = now

    # --- inside ------------------------------------------------------------------------------------

    def _job(self, name: str) -> _Job:
        job = self._jobs.get(name)
        if job is None:
            raise NotFound(f"job {name!r} not found on the in-memory Jenkins")
        return job

    def _advance(self) -> None:
        """Give every queue item whose wait is over its build number (in the order they queued)."""
        now = self._clock.now().timestamp()
        for item in self._items.values():
            if item.number is None and not item.cancelled and now >= item.started_at:
                job = self._jobs[item.job]
                item.number, job.next_number = job.next_number, job.next_number + 1

    def _item(self, ref: BuildRef) -> MemoryBuild:
        self._job(ref.job)
        self._advance()
        if ref.queue_item is not None and ref.queue_item in self._items:
            return self._items[ref.queue_item]
        for item in self._items.values():
            if item.job == ref.job and item.number is not None and item.number == ref.number:
                return item
        raise NotFound(f"no build {ref.number or ref.queue_item} of job {ref.job!r} on the in-memory Jenkins")

    @staticmethod
    def _ref(item: MemoryBuild) -> BuildRef:
        return BuildRef(item.job, queue_item=item.queue_item, number=item.number)
