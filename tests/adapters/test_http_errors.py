"""The one HTTP status → error mapping (``bot.adapters.http_errors``), as a table and through the adapters.

The table is checked status by status; then the Jenkins and Kubernetes adapters are driven over real
HTTP against their emulators, and the Prometheus adapter against a small HTTP stand-in, answering
statuses only the shared table makes transient (408), to show all three use it rather than copies of
their own. Jenkins' one exception, a 409 for a disabled job, is driven through python-jenkins too.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jenkins as python_jenkins
import pytest
from aiohttp import web

from bot.adapters.http_errors import error_class, error_for_status, is_transient
from bot.adapters.jenkins import JenkinsCI
from bot.adapters.kubernetes import KubernetesCluster
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.retrying import RetryPolicy, observe
from bot.domain.measurements import QueryFailed, Value
from bot.errors import Conflict, NotFound, PermanentError, ShipthreadError, TransientError
from bot.ports import Target
from bot.sandbox.jenkins import create_jenkins_app, parameterized_job_xml
from bot.sandbox.server import ServerThread
from tests.support.k8s_emulator import CLUSTER, NEW, NS, Emulator

FAST = RetryPolicy(attempts=4, total_s=5.0, initial_s=0.02, max_wait_s=0.1, jitter_s=0.01)


# --- the table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, PermanentError),
        (403, PermanentError),
        (404, NotFound),
        (405, PermanentError),
        (408, TransientError),
        (409, Conflict),
        (410, PermanentError),
        (422, PermanentError),
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
        (599, TransientError),
    ],
)
def test_each_status_has_one_error(status: int, kind: type[ShipthreadError]) -> None:
    assert error_class(status) is kind
    error = error_for_status(status, f"answered {status}")
    assert type(error) is kind
    assert str(error) == f"answered {status}"
    assert is_transient(status) == isinstance(error, TransientError)


def test_retry_after_sets_the_delay_of_transient_errors_only() -> None:
    busy = error_for_status(429, "slow down", "7")
    assert isinstance(busy, TransientError) and busy.retry_in == 7.0
    assert isinstance(later := error_for_status(503, "later", None), TransientError)
    assert later.retry_in == 1.0  # no header: the default pause
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    dated = error_for_status(503, "later", when)
    assert isinstance(dated, TransientError) and 25.0 <= dated.retry_in <= 30.0
    assert not isinstance(error_for_status(403, "no", "7"), TransientError)


def test_a_conflict_is_retried_at_once_unless_the_server_asks_otherwise() -> None:
    conflict = error_for_status(409, "changed")
    assert isinstance(conflict, Conflict) and conflict.retry_in == 0.0
    asked = error_for_status(409, "changed", "2")
    assert isinstance(asked, Conflict) and asked.retry_in == 2.0


# --- Jenkins, over HTTP ------------------------------------------------------------------------------

USER = "shipthread"
TOKEN = "s3cr3t-jenkins-api-token-4711"


class Jenkins:
    """A Jenkins emulator with one job, and the part of its control API these tests use."""

    def __init__(self) -> None:
        jobs = {"checkout-build": parameterized_job_xml("SHIPTHREAD_KEY", "VERSION", description="job")}
        app = create_jenkins_app(user=USER, token=TOKEN, time_scale=0.0, jobs=jobs)
        self.server = ServerThread(app, name="jenkins").start()
        self.url = self.server.url

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def fault(self, **fault: Any) -> None:
        self.control("POST", "faults", fault)


@pytest.fixture
def jenkins() -> Iterator[Jenkins]:
    emulator = Jenkins()
    try:
        yield emulator
    finally:
        emulator.server.stop()


@pytest.fixture
def ci(jenkins: Jenkins) -> Iterator[JenkinsCI]:
    adapter = JenkinsCI(jenkins.url, USER, TOKEN, timeout_s=2.0, policy=FAST)
    yield adapter
    adapter.close()


# 409 is not here: Jenkins answers it for a disabled job (next tests), never for a conflict.
@pytest.mark.parametrize("status", [408])
async def test_jenkins_retries_what_the_table_calls_transient(
    jenkins: Jenkins, ci: JenkinsCI, status: int
) -> None:
    jenkins.fault(status=status, method="POST", path="/buildWithParameters$", count=1)
    ref = await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    assert jenkins.control("GET", "faults")["faults"] == []  # the refusal was met, then retried
    assert ref.queue_item is not None


async def test_jenkins_gives_up_at_once_on_what_the_table_calls_permanent(
    jenkins: Jenkins, ci: JenkinsCI
) -> None:
    jenkins.fault(status=422, method="POST", path="/buildWithParameters$", count=2)
    with pytest.raises(PermanentError, match=r"refused .* \(HTTP 422\)"):
        await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    assert len(jenkins.control("GET", "faults")["faults"]) == 1  # one attempt, no retry


class Retries:
    """Records the retries the retry helper tells its observers of (``bot.adapters.retrying.observe``)."""

    def __init__(self) -> None:
        self.retried: list[str] = []
        self.failed: list[BaseException] = []

    def adapter_retried(self, system: str, what: str, error: BaseException) -> None:
        self.retried.append(what)

    def adapter_failed(self, system: str, what: str, error: BaseException) -> None:
        self.failed.append(error)


async def test_a_disabled_jenkins_job_is_a_permanent_error_after_one_attempt(
    jenkins: Jenkins, ci: JenkinsCI
) -> None:
    # Disabled the way an operator does it, through Jenkins' own API (python-jenkins' disable_job).
    python_jenkins.Jenkins(jenkins.url, USER, TOKEN, timeout=5).disable_job("checkout-build")
    retries = Retries()
    unobserve = observe(retries)
    try:
        with pytest.raises(PermanentError, match=r"HTTP 409\): the job is not buildable \(disabled\?\)"):
            await ci.trigger("checkout-build", {"VERSION": "1.4.2"}, key="dep-1:build")
    finally:
        unobserve()
    assert retries.retried == []  # one attempt: no retry enables a job
    assert len(retries.failed) == 1 and not isinstance(retries.failed[0], TransientError)
    assert jenkins.control("GET", "queue")["items"] == []  # nothing was queued


# --- Prometheus, over HTTP ---------------------------------------------------------------------------


class Answers:
    """A Prometheus stand-in over HTTP: the statuses to answer first, then one sample of ``vector(1)``."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.served: list[int] = []
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)
        self.server = ServerThread(app, name="prometheus-answers").start()

    async def _query(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        self.served.append(status)
        if status != 200:
            return web.json_response({"status": "error", "error": f"answered {status}"}, status=status)
        result = [{"metric": {}, "value": [1700000000.0, "1"]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})


@pytest.fixture
def answers(request: pytest.FixtureRequest) -> Iterator[Answers]:
    server = Answers(*request.param)
    try:
        yield server
    finally:
        server.server.stop()


@pytest.mark.parametrize("answers", [(408,), (429,), (503,)], indirect=True)
async def test_prometheus_retries_what_the_table_calls_transient(answers: Answers) -> None:
    adapter = PrometheusMetrics(answers.server.url, timeout_s=2.0, policy=FAST)
    try:
        result = await adapter.query("vector(1)")
    finally:
        adapter.close()
    assert result == Value(1.0)
    assert answers.served[-1] == 200 and len(answers.served) == 2


@pytest.mark.parametrize("answers", [(400, 400), (422, 422), (404, 404)], indirect=True)
async def test_prometheus_gives_up_at_once_on_what_the_table_calls_permanent(answers: Answers) -> None:
    adapter = PrometheusMetrics(answers.server.url, timeout_s=2.0, policy=FAST)
    try:
        result = await adapter.query("vector(1)")
    finally:
        adapter.close()
    assert isinstance(result, QueryFailed)
    assert result.message.startswith("Prometheus refused the query: HTTP Status Code")
    assert len(answers.served) == 1


# --- Kubernetes, over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def target() -> Target:
    return Target(CLUSTER, NS, "checkout", "app")


async def test_kubernetes_retries_a_request_timeout(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", method="GET", status=408, count=1)

    await cluster.set_image(target, NEW, "dep-1:deploy")

    assert emu.calls("GET", "/deployments/checkout") == [408, 200]
    assert emu.image("checkout") == NEW


async def test_kubernetes_names_what_a_422_refused_and_does_not_retry(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", method="GET", status=422, count=5)

    with pytest.raises(PermanentError, match=r"cluster prod-eu refused the request about .* \(422\)"):
        await cluster.set_image(target, NEW, "dep-1:deploy")

    assert emu.calls("GET", "/deployments/checkout") == [422]
