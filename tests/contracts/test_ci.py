"""What the engine relies on from ``bot.ports.CI``, checked on the Jenkins adapter and the stand-in.

A build's lifecycle on the clock (queued → running with progress → finished with Jenkins' word), an
idempotent trigger, abort of a queued item and of a running build, the console's tail, and failures
raised as ``bot.errors``.
"""

from __future__ import annotations

import pytest

from bot.errors import NotFound, PermanentError
from bot.ports import BuildState
from tests.contracts.worlds import CIWorld

JOB = "checkout-build"


@pytest.fixture
def world(ci_world: CIWorld) -> CIWorld:
    ci_world.add_job(JOB)
    return ci_world


async def test_a_build_is_queued_runs_on_the_clock_and_succeeds(world: CIWorld) -> None:
    world.script(JOB, duration=4.0, queue_wait=1.0)
    ref = await world.ci.trigger(JOB, {"VERSION": "1.2.0"}, "d1:build:1")
    assert ref.job == JOB and ref.queue_item is not None
    queued = await world.ci.status(ref)
    assert queued.state is BuildState.QUEUED and not queued.state.finished
    world.advance(2.0)
    running = await world.ci.status(ref)
    assert running.state is BuildState.RUNNING
    assert running.ref.number is not None
    assert running.progress is None or 0.0 <= running.progress < 1.0
    world.advance(4.0)
    done = await world.ci.status(running.ref)
    assert done.state is BuildState.SUCCEEDED and done.state.finished
    assert done.result == "SUCCESS"
    assert done.elapsed_s == pytest.approx(4.0, abs=0.5)
    (params,) = world.build_parameters(JOB)
    assert params["VERSION"] == "1.2.0" and params["SHIPTHREAD_KEY"] == "d1:build:1"


@pytest.mark.parametrize(
    ("result", "state"), [("FAILURE", BuildState.FAILED), ("UNSTABLE", BuildState.FAILED)]
)
async def test_a_failed_build_keeps_jenkins_word(world: CIWorld, result: str, state: BuildState) -> None:
    world.script(JOB, result=result, duration=1.0, queue_wait=0.0)
    ref = await world.ci.trigger(JOB, {"VERSION": "1.2.0"}, "d1:build:1")
    world.advance(2.0)
    status = await world.ci.status(ref)
    assert status.state is state and status.result == result


async def test_a_trigger_with_a_used_key_returns_the_build_it_started(world: CIWorld) -> None:
    world.script(JOB, duration=5.0, queue_wait=1.0)
    first = await world.ci.trigger(JOB, {"VERSION": "1.2.0"}, "d1:build:1")
    again = await world.ci.trigger(JOB, {"VERSION": "1.2.0"}, "d1:build:1")
    assert again.queue_item == first.queue_item
    world.advance(2.0)
    running = await world.ci.trigger(JOB, {"VERSION": "1.2.0"}, "d1:build:1")
    assert running.number == (await world.ci.status(first)).ref.number
    other = await world.ci.trigger(JOB, {"VERSION": "1.3.0"}, "d2:build:1")
    assert other.queue_item != first.queue_item
    world.advance(10.0)
    assert [p["SHIPTHREAD_KEY"] for p in world.build_parameters(JOB)] == ["d1:build:1", "d2:build:1"]


async def test_abort_cancels_a_queued_item_and_stops_a_running_build(world: CIWorld) -> None:
    world.script(JOB, duration=60.0, queue_wait=5.0)
    world.script(JOB, duration=60.0, queue_wait=0.0)
    queued = await world.ci.trigger(JOB, {"VERSION": "1"}, "d1:build:1")
    await world.ci.abort(queued)
    assert (await world.ci.status(queued)).state is BuildState.CANCELLED
    running = await world.ci.trigger(JOB, {"VERSION": "2"}, "d2:build:1")
    world.advance(1.0)
    assert (await world.ci.status(running)).state is BuildState.RUNNING
    await world.ci.abort(running)
    world.advance(1.0)
    stopped = await world.ci.status(running)
    assert stopped.state is BuildState.ABORTED and stopped.result == "ABORTED"
    await world.ci.abort(running)  # aborting a finished build changes nothing
    assert (await world.ci.status(running)).state is BuildState.ABORTED


async def test_the_console_tail_is_the_last_lines_of_the_build(world: CIWorld) -> None:
    console = "\n".join(f"step {i}" for i in range(1, 31))
    world.script(JOB, result="FAILURE", duration=1.0, queue_wait=0.0, console=console)
    ref = await world.ci.trigger(JOB, {"VERSION": "1"}, "d1:build:1")
    world.advance(2.0)
    tail = await world.ci.console_tail(ref, lines=5)
    lines = tail.splitlines()
    assert 1 <= len(lines) <= 5
    assert "step 30" in lines and "step 25" not in lines
    assert lines[-1] == "Finished: FAILURE"


async def test_no_console_while_queued(world: CIWorld) -> None:
    world.script(JOB, queue_wait=5.0)
    ref = await world.ci.trigger(JOB, {"VERSION": "1"}, "d1:build:1")
    assert await world.ci.console_tail(ref) == ""


async def test_an_unknown_job_is_not_found_and_an_unkeyed_job_is_refused(ci_world: CIWorld) -> None:
    with pytest.raises(NotFound):
        await ci_world.ci.trigger("no-such-job", {"VERSION": "1"}, "d1:build:1")
    ci_world.add_job("legacy-build", keyed=False)
    with pytest.raises(PermanentError, match="SHIPTHREAD_KEY"):
        await ci_world.ci.trigger("legacy-build", {"VERSION": "1"}, "d1:build:1")
    assert ci_world.build_parameters("legacy-build") == []
