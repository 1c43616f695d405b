"""The Jenkins adapter driving real python-jenkins over HTTP against the Jenkins emulator.

Each test gets its own emulator in a ServerThread. Most run on a frozen emulated clock (time_scale=0)
and move builds on by advancing it through the control API, so nothing depends on sleeping; the happy
path runs on scaled time. Build counts and parameters are read back through ``/_sandbox/``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.jenkins import JenkinsCI, tail
from bot.adapters.retrying import RetryPolicy
from bot.domain.redact import MASK, Redactor
from bot.errors import NotFound, PermanentError, TransientError
from bot.ports import BuildRef, BuildState
from bot.sandbox.jenkins import create_jenkins_app, emulator_of, parameterized_job_xml
from bot.sandbox.server import ServerThread

USER = "shipthread"
TOKEN = "s3cr3t-jenkins-api-token-4711"
FAST = RetryPolicy(attempts=4, total_s=5.0, initial_s=0.05, max_wait_s=0.2, jitter_s=0.02)


def _job_xml(*params: str, concurrent: bool = False) -> str:
    return parameterized_job_xml(*params, concurrent=concurrent, description="test job")


JOBS = {
    "checkout-build": _job_xml("SHIPTHREAD_KEY", "VERSION"),
    "team/payments-build": _job_xml("SHIPTHREAD_KEY", "VERSION"),
    "legacy-build": _job_xml("VERSION"),
}


class Emulator:
    """A running Jenkins emulator and its control API."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url
        self.clock = emulator_of(server.app).clock.now

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def builds(self, job: str | None = None) -> list[dict[str, Any]]:
        return list(self.control("GET", "builds" + (f"?job={job}" if job else ""))["builds"])

    def queue(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "queue")["items"])

    def fault(self, **fault: Any) -> None:
        self.control("POST", "faults", fault)

    def faults(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "faults")["faults"])

    def advance(self, seconds: float) -> None:
        self.control("POST", "clock/advance", {"seconds": seconds})

    def script(self, job: str, *builds: dict[str, Any]) -> None:
        self.control("POST", f"jobs/{job}/script", {"builds": list(builds)})


def _serve(time_scale: float, **options: Any) -> ServerThread:
    app = create_jenkins_app(user=USER, token=TOKEN, time_scale=time_scale, jobs=JOBS, **options)
    return ServerThread(app, name="jenkins").start()


@pytest.fixture
def jenkins() -> Iterator[Emulator]:
    """Frozen emulated time: builds move only when the test advances the clock."""
    server = _serve(0.0)
    try:
        yield Emulator(server)
    finally:
        server.stop()


@pytest.fixture
def ci(jenkins: Emulator) -> Iterator[JenkinsCI]:
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=2.0, policy=FAST, clock=jenkins.clock)
    yield adapter
    adapter.close()


# --- the happy path ----------------------------------------------------------------------------


async def test_trigger_then_status_until_succeeded_on_scaled_time() -> None:
    # 1 real second is 50 emulated ones: a 20 s build with a 5 s queue wait takes 0.5 s.
    server = _serve(0.02)
    jenkins = Emulator(server)
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=2.0, policy=FAST, clock=jenkins.clock)
    try:
        jenkins.script("checkout-build", {"result": "SUCCESS", "duration": 20, "queue_wait": 5})
        ref = await adapter.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
        assert ref.job == "checkout-build" and ref.queue_item is not None

        seen = []
        deadline = time.monotonic() + 15  # a guard against a hang, not a speed assertion
        status = await adapter.status(ref)
        while not status.state.finished and time.monotonic() < deadline:
            seen.append(status.state)
            await asyncio.sleep(0.02)
            status = await adapter.status(status.ref)
    finally:
        adapter.close()
        server.stop()

    assert status.state is BuildState.SUCCEEDED
    assert status.result == "SUCCESS"
    assert status.ref == BuildRef("checkout-build", queue_item=ref.queue_item, number=1)
    assert status.url is not None and status.url.endswith("/job/checkout-build/1/")
    assert status.elapsed_s == pytest.approx(20, abs=0.01)
    assert set(seen) <= {BuildState.QUEUED, BuildState.RUNNING}


async def test_parameters_and_key_reach_the_build(jenkins: Emulator, ci: JenkinsCI) -> None:
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-7:build")
    jenkins.advance(1)
    builds = jenkins.builds("checkout-build")
    assert len(builds) == 1
    assert builds[0]["parameters"] == {"SHIPTHREAD_KEY": "dep-7:build", "VERSION": "1.4.2"}
    assert builds[0]["queue_id"] == ref.queue_item


async def test_status_follows_queue_item_to_a_running_build_with_progress(
    jenkins: Emulator, ci: JenkinsCI
) -> None:
    jenkins.script(
        "checkout-build",
        {"result": "SUCCESS", "duration": 40, "queue_wait": 1},
        {"result": "SUCCESS", "duration": 100, "queue_wait": 1},
    )
    first = await ci.trigger("checkout-build", {"VERSION": "1.0.0"}, key="dep-1:build")
    queued = await ci.status(first)
    assert queued.state is BuildState.QUEUED
    assert queued.waiting_why
    assert queued.ref.number is None

    jenkins.advance(11)  # started 1 s after it was queued, 10 s ago
    running = await ci.status(first)
    assert running.state is BuildState.RUNNING
    assert running.ref.number == 1
    assert running.elapsed_s == pytest.approx(10, abs=0.01)
    assert running.estimated_s is None  # no build finished yet: Jenkins says -1

    jenkins.advance(40)
    done = await ci.status(running.ref)
    assert (done.state, done.result, done.elapsed_s) == (BuildState.SUCCEEDED, "SUCCESS", 40.0)

    second = await ci.trigger("checkout-build", {"VERSION": "1.0.1"}, key="dep-2:build")
    jenkins.advance(11)
    running = await ci.status(second)
    assert running.ref.number == 2
    assert running.estimated_s == pytest.approx(40)  # the last successful build's duration
    assert running.progress == pytest.approx(10 / 40, abs=0.01)


async def test_failure_with_console_tail_redacted(jenkins: Emulator, ci: JenkinsCI) -> None:
    console = [
        "+ ./gradlew test",
        f"+ curl -u {USER}:{TOKEN} https://artifacts.example.com/upload",
        "+ export DB_PASSWORD=hunter2-prod",
        "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig' https://api.example.com",
        "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE",
        "deploy --token=****",
        "FAILED: CheckoutTest > pays() expected <200> but was <500>",
    ]
    jenkins.script("checkout-build", {"result": "FAILURE", "duration": 5, "console": console})
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-9:build")
    jenkins.advance(10)
    status = await ci.status(ref)
    assert (status.state, status.result) == (BuildState.FAILED, "FAILURE")

    text = await ci.console_tail(status.ref, lines=8)
    lines = text.splitlines()
    assert len(lines) == 8
    assert lines[-1] == "Finished: FAILURE"
    assert "FAILED: CheckoutTest > pays() expected <200> but was <500>" in text
    for secret in (TOKEN, "hunter2-prod", "eyJhbGciOiJIUzI1NiJ9", "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in text
    assert f"DB_PASSWORD={MASK}" in text
    assert f"Authorization: Bearer {MASK}" in text
    assert "deploy --token=****" in text  # Jenkins' own mask is left as it was

    short = await ci.console_tail(status.ref, lines=2)
    assert short.splitlines() == lines[-2:]


async def test_console_tail_masks_every_secret_of_the_redactor_not_only_the_token(jenkins: Emulator) -> None:
    # Regression (issue 8): a console printing the Slack signing secret posted it into the thread.
    signing_secret = "8f2b6c0e4a1d9f7b3c5e8a2d6f0b4c9e"
    console = [f"+ ./notify.sh {signing_secret}", f"+ ./upload.sh {TOKEN}"]
    jenkins.script("checkout-build", {"result": "FAILURE", "duration": 5, "console": console})
    ci = JenkinsCI(
        jenkins.url, USER, TOKEN, timeout_s=2.0, policy=FAST, clock=jenkins.clock,
        redactor=Redactor([signing_secret]),
    )  # fmt: skip
    try:
        ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-10:build")
        jenkins.advance(10)
        text = await ci.console_tail((await ci.status(ref)).ref)
    finally:
        ci.close()
    assert signing_secret not in text and TOKEN not in text
    assert f"+ ./notify.sh {MASK}" in text and f"+ ./upload.sh {MASK}" in text


async def test_console_of_a_queued_build_is_empty(jenkins: Emulator, ci: JenkinsCI) -> None:
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-3:build")
    assert await ci.console_tail(ref) == ""


# --- idempotency ---------------------------------------------------------------------------------


async def test_same_key_twice_gives_the_same_build(jenkins: Emulator, ci: JenkinsCI) -> None:
    first = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    # Other parameters differ, so Jenkins' own folding of identical queued items cannot help:
    # only the key lookup in the queue finds the first item.
    again_queued = await ci.trigger("checkout-build", {"VERSION": "1.4.3"}, key="dep-1:build")
    assert again_queued == first
    assert len(jenkins.queue()) == 1

    jenkins.advance(1)  # the item became build #1: the key is now found among the builds
    again_built = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    assert again_built == BuildRef("checkout-build", queue_item=first.queue_item, number=1)

    jenkins.advance(10)  # and still after it finished
    assert await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build") == again_built
    assert len(jenkins.builds()) == 1
    assert len(jenkins.queue()) == 1


async def test_same_key_in_a_folder_job(jenkins: Emulator, ci: JenkinsCI) -> None:
    first = await ci.trigger("team/payments-build", {"VERSION": "2.0.0"}, key="dep-5:build")
    assert await ci.trigger("team/payments-build", {"VERSION": "2.0.0"}, key="dep-5:build") == first
    jenkins.advance(1)
    status = await ci.status(first)
    assert status.ref.number == 1
    assert await ci.trigger("team/payments-build", {"VERSION": "2.0.0"}, key="dep-5:build") == status.ref
    assert [b["job"] for b in jenkins.builds()] == ["team/payments-build"]


async def test_another_key_starts_another_build(jenkins: Emulator, ci: JenkinsCI) -> None:
    first = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    jenkins.advance(1)
    second = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-2:build")
    assert second.queue_item != first.queue_item
    jenkins.advance(10)
    builds = jenkins.builds("checkout-build")
    assert [b["parameters"]["SHIPTHREAD_KEY"] for b in builds] == ["dep-1:build", "dep-2:build"]


async def test_503_on_the_build_post_then_ok_starts_exactly_one_build(
    jenkins: Emulator, ci: JenkinsCI
) -> None:
    jenkins.fault(status=503, method="POST", path="/buildWithParameters$", count=1)
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    assert jenkins.faults() == []  # the 503 was met
    jenkins.advance(1)
    builds = jenkins.builds()
    assert len(builds) == 1
    assert builds[0]["queue_id"] == ref.queue_item


async def test_503_on_the_queue_lookup_then_ok_keeps_one_build(jenkins: Emulator, ci: JenkinsCI) -> None:
    jenkins.fault(status=503, method="GET", path="^/queue/api/json", count=1)
    first = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    jenkins.advance(1)
    # A retry after a crash, meeting 503s on its lookups before it finds its own build.
    jenkins.fault(status=503, method="GET", path="^/queue/api/json", count=2)
    jenkins.fault(status=503, method="GET", path="^/job/checkout-build/api/json", count=1)
    again = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    assert jenkins.faults() == []
    assert again == BuildRef("checkout-build", queue_item=first.queue_item, number=1)
    assert len(jenkins.builds()) == 1


async def test_a_post_that_timed_out_but_went_through_is_found_not_repeated(jenkins: Emulator) -> None:
    # The first POST is answered only after the client gave up (yet Jenkins queues the build);
    # any second POST would meet a 400. Finding the build is the only way to succeed.
    jenkins.script("checkout-build", {"result": "SUCCESS", "duration": 5, "queue_wait": 0})
    jenkins.fault(status=None, delay=0.6, method="POST", path="/buildWithParameters$", count=1)
    jenkins.fault(status=400, method="POST", path="/buildWithParameters$", count=1, body="second POST")
    policy = RetryPolicy(attempts=4, total_s=10.0, initial_s=0.7, max_wait_s=1.0, jitter_s=0.05)
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=0.3, policy=policy, clock=jenkins.clock)
    try:
        ref = await adapter.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    finally:
        adapter.close()
    assert ref.number == 1
    assert len(jenkins.builds()) == 1
    assert [f["status"] for f in jenkins.faults()] == [400]  # never POSTed again


# --- refusals and failures ----------------------------------------------------------------------


async def test_job_without_the_key_parameter_is_refused_clearly(jenkins: Emulator, ci: JenkinsCI) -> None:
    with pytest.raises(PermanentError) as caught:
        await ci.trigger("legacy-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    message = str(caught.value)
    assert "'legacy-build'" in message
    assert "Add a String Parameter named SHIPTHREAD_KEY" in message
    assert not isinstance(caught.value, NotFound)
    assert jenkins.queue() == []


async def test_wrong_token_is_permanent_and_never_shows_the_token(jenkins: Emulator) -> None:
    wrong = "wrong-token-0f9e8d7c"
    adapter = JenkinsCI(jenkins.url, USER, wrong, timeout_s=2.0, policy=FAST)
    try:
        with pytest.raises(PermanentError) as caught:
            await adapter.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    finally:
        adapter.close()
    message = str(caught.value)
    assert f"Jenkins refused our credentials for user '{USER}'" in message
    assert wrong not in message and TOKEN not in message
    assert jenkins.queue() == []


async def test_unknown_job_and_build_are_not_found(jenkins: Emulator, ci: JenkinsCI) -> None:
    with pytest.raises(NotFound, match="no-such-job"):
        await ci.trigger("no-such-job", {"VERSION": "1.4.2"}, key="dep-1:build")
    with pytest.raises(NotFound):
        await ci.status(BuildRef("checkout-build", number=42))


async def test_slow_answers_give_a_transient_error_after_bounded_retries(jenkins: Emulator) -> None:
    jenkins.fault(status=None, delay=1.0, count=50)
    policy = RetryPolicy(attempts=3, total_s=3.0, initial_s=0.05, max_wait_s=0.2, jitter_s=0.02)
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=0.3, policy=policy)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="did not answer") as caught:
            await adapter.status(BuildRef("checkout-build", number=1))
    finally:
        adapter.close()
    assert time.monotonic() - started < 10
    assert TOKEN not in str(caught.value)
    assert jenkins.faults()[0]["count"] == 47  # exactly three attempts, one request each
    jenkins.control("DELETE", "faults")


async def test_5xx_persisting_is_transient(jenkins: Emulator, ci: JenkinsCI) -> None:
    jenkins.fault(status=502, count=20)
    with pytest.raises(TransientError, match="HTTP 502"):
        await ci.status(BuildRef("checkout-build", queue_item=1))
    jenkins.control("DELETE", "faults")


# --- abort ---------------------------------------------------------------------------------------


async def test_abort_while_running_gives_aborted(jenkins: Emulator, ci: JenkinsCI) -> None:
    jenkins.script("checkout-build", {"until_stopped": True, "queue_wait": 0})
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    jenkins.advance(5)
    assert (await ci.status(ref)).state is BuildState.RUNNING

    await ci.abort(ref)
    status = await ci.status(ref)
    assert (status.state, status.result) == (BuildState.ABORTED, "ABORTED")
    await ci.abort(status.ref)  # a finished build: nothing to do, no error
    assert (await ci.status(status.ref)).state is BuildState.ABORTED
    assert "Build was aborted" in await ci.console_tail(status.ref)


async def test_abort_while_queued_cancels_the_item(jenkins: Emulator, ci: JenkinsCI) -> None:
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    await ci.abort(ref)
    status = await ci.status(ref)
    assert status.state is BuildState.CANCELLED
    await ci.abort(ref)  # idempotent
    jenkins.advance(30)
    assert jenkins.builds() == []
    assert (await ci.status(ref)).state is BuildState.CANCELLED


async def test_abort_of_a_finished_build_is_a_no_op(jenkins: Emulator, ci: JenkinsCI) -> None:
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    jenkins.advance(10)
    await ci.abort(ref)
    status = await ci.status(ref)
    assert (status.state, status.result) == (BuildState.SUCCEEDED, "SUCCESS")


async def test_status_after_jenkins_forgot_the_queue_item() -> None:
    server = _serve(0.0, queue_item_ttl=60)
    jenkins = Emulator(server)
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=2.0, policy=FAST, clock=jenkins.clock)
    try:
        ref = await adapter.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
        jenkins.advance(300)  # long finished, and its queue item is gone (404)
        status = await adapter.status(ref)
        assert status.ref.number == 1 and status.state is BuildState.SUCCEEDED
        with pytest.raises(NotFound, match="queue item 99"):
            await adapter.status(BuildRef("checkout-build", queue_item=99))
    finally:
        adapter.close()
        server.stop()


# --- console tails (redaction itself: tests/domain/test_redact.py) ------------------------------


def test_tail_is_bounded_and_strips_colour() -> None:
    text = "\n".join(f"\x1b[32mline {i}\x1b[0m " + "x" * 200 for i in range(100))
    out = tail(text, 50, max_chars=3000)
    assert len(out) <= 3000
    assert out.startswith("…")
    assert out.endswith("line 99 " + "x" * 200)
    assert "\x1b" not in out
    assert tail("a\nb\nc\n", 2) == "b\nc"
    assert tail("a\nb", 0) == ""


async def test_an_untrusted_certificate_is_permanent_and_hides_the_token(untrusted_tls_url: str) -> None:
    ci = JenkinsCI(untrusted_tls_url, USER, TOKEN, timeout_s=2, policy=FAST)
    try:
        with pytest.raises(PermanentError, match="certificate") as caught:
            await ci.status(BuildRef("checkout-build", number=1))
    finally:
        ci.close()
    assert not isinstance(caught.value, TransientError)
    assert TOKEN not in str(caught.value)
