"""The Jenkins emulator, driven by the real python-jenkins client over real HTTP.

Each test starts its own emulator in a thread of its own (python-jenkins is synchronous, so it is
called straight from the test thread). Most tests freeze the emulator's clock (``time_scale=0``)
and move it with ``POST /_sandbox/clock/advance``, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import jenkins
import pytest
import requests

from bot.sandbox.jenkins import BuildScript, create_jenkins_app, emulator_of, parse_tree
from bot.sandbox.server import ServerThread

USER = "shipthread"
TOKEN = "sandbox-token"

DEPLOY_XML = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description>Deploys a service</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>VERSION</name>
          <description>What to deploy</description>
          <defaultValue>latest</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.ChoiceParameterDefinition>
          <name>ENV</name>
          <description></description>
          <choices class="java.util.Arrays$ArrayList">
            <a class="string-array"><string>staging</string><string>production</string></a>
          </choices>
        </hudson.model.ChoiceParameterDefinition>
        <hudson.model.BooleanParameterDefinition>
          <name>DRY_RUN</name>
          <defaultValue>false</defaultValue>
        </hudson.model.BooleanParameterDefinition>
        <hudson.model.PasswordParameterDefinition>
          <name>SECRET</name>
          <defaultValue>hunter2</defaultValue>
        </hudson.model.PasswordParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <scm class="hudson.scm.NullSCM"/>
  <disabled>false</disabled>
  <concurrentBuild>false</concurrentBuild>
  <builders><hudson.tasks.Shell><command>./deploy.sh</command></hudson.tasks.Shell></builders>
</project>"""


class Sandbox:
    """One running emulator plus the small helpers the tests need to steer it."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url
        self.emulator = emulator_of(server.app)

    def client(self, password: str = TOKEN, timeout: float = 5) -> jenkins.Jenkins:
        return jenkins.Jenkins(self.url, username=USER, password=password, timeout=timeout)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def advance(self, seconds: float) -> None:
        self.control("POST", "/_sandbox/clock/advance", {"seconds": seconds})

    def raw(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            token = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def crumb(self) -> str:
        status, _, body = self.raw("GET", "/crumbIssuer/api/json")
        assert status == 200
        return str(json.loads(body)["crumb"])


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    servers: list[ServerThread] = []

    def make(**options: Any) -> Sandbox:
        options.setdefault("time_scale", 0)
        server = ServerThread(create_jenkins_app(**options), name="jenkins").start()
        servers.append(server)
        return Sandbox(server)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``check`` returns something truthy (a bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout}s; last value {value!r}")
        time.sleep(0.01)


def params_of(build: dict[str, Any]) -> dict[str, Any]:
    for action in build["actions"]:
        if action.get("_class") == "hudson.model.ParametersAction":
            return {p["name"]: p.get("value") for p in action["parameters"]}
    return {}


# -- identity and security ----------------------------------------------------------------------


def test_whoami_then_version(sandbox: Sandbox) -> None:
    client = sandbox.client()
    me = client.get_whoami()
    assert me["id"] == USER
    assert me["_class"] == "hudson.model.User"
    assert client.get_version() == "2.479.3"
    status, _, body = sandbox.raw("GET", "/whoAmI/api/json")
    assert status == 200
    assert json.loads(body)["authenticated"] is True


def test_get_version_as_first_call_is_refused_like_a_locked_down_jenkins(sandbox: Sandbox) -> None:
    # python-jenkins sends no credentials in get_version() until another call resolved its auth.
    with pytest.raises(jenkins.BadHTTPException):
        sandbox.client().get_version()


def test_anonymous_read_lets_get_version_through(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(anonymous_read=True)
    assert sandbox.client().get_version() == "2.479.3"
    assert jenkins.Jenkins(sandbox.url, timeout=5).get_info()["_class"] == "hudson.model.Hudson"


def test_wrong_token_is_401_with_a_challenge(sandbox: Sandbox) -> None:
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        sandbox.client(password="not-the-token").get_whoami()
    request = urllib.request.Request(sandbox.url + "/api/json")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"shipthread:wrong").decode())
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'
    assert caught.value.headers["X-Jenkins"] == "2.479.3"


def test_anonymous_is_403_authentication_required(sandbox: Sandbox) -> None:
    status, headers, body = sandbox.raw("GET", "/api/json", auth=False)
    assert status == 403
    assert headers["X-You-Are-Authenticated-As"] == "anonymous"
    assert b"Authentication required" in body


def test_post_without_crumb_is_403_and_with_it_works(sandbox: Sandbox) -> None:
    sandbox.emulator.create_job("plain")
    status, _, body = sandbox.raw("POST", "/job/plain/build")
    assert status == 403
    assert b"No valid crumb was included in the request" in body
    status, headers, _ = sandbox.raw("POST", "/job/plain/build", headers={"Jenkins-Crumb": "forged"})
    assert status == 403
    status, headers, _ = sandbox.raw("POST", "/job/plain/build", headers={"Jenkins-Crumb": sandbox.crumb()})
    assert status == 201
    assert headers["Location"] == f"{sandbox.url}/queue/item/1/"


def test_api_token_can_be_exempt_from_the_crumb_like_real_jenkins(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(crumb_exempt_api_token=True)
    sandbox.emulator.create_job("plain")
    status, _, _ = sandbox.raw("POST", "/job/plain/build")
    assert status == 201


# -- jobs and folders ---------------------------------------------------------------------------


def test_parameterized_job_in_a_folder(sandbox: Sandbox) -> None:
    client = sandbox.client()
    client.create_folder("team")
    client.create_job("team/deploy", DEPLOY_XML)
    assert client.is_folder("team")
    assert client.job_exists("team/deploy")
    assert not client.job_exists("team/missing")
    assert client.get_job_config("team/deploy") == DEPLOY_XML

    info = client.get_job_info("team/deploy")
    assert info["fullName"] == "team/deploy"
    assert info["url"] == f"{sandbox.url}/job/team/job/deploy/"
    assert info["buildable"] is True
    assert info["builds"] == [] and info["lastBuild"] is None and info["nextBuildNumber"] == 1
    definitions = info["property"][0]["parameterDefinitions"]
    assert [d["name"] for d in definitions] == ["VERSION", "ENV", "DRY_RUN", "SECRET"]
    assert definitions[0]["defaultParameterValue"]["value"] == "latest"
    assert definitions[1]["choices"] == ["staging", "production"]
    assert definitions[2]["defaultParameterValue"]["value"] is False
    assert "value" not in definitions[3]["defaultParameterValue"]

    jobs = client.get_all_jobs()
    assert {j["fullname"] for j in jobs} == {"team", "team/deploy"}
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        client.create_job("team/deploy", DEPLOY_XML)
    with pytest.raises(jenkins.JenkinsException, match="folder for the job does not exist"):
        client.create_job("nowhere/deploy", DEPLOY_XML)

    client.delete_job("team/deploy")
    assert not client.job_exists("team/deploy")


def test_job_in_nested_folders(sandbox: Sandbox) -> None:
    client = sandbox.client()
    client.create_folder("a")
    client.create_folder("a/b")
    client.create_job("a/b/svc", DEPLOY_XML)
    assert {j["fullname"] for j in client.get_all_jobs()} == {"a", "a/b", "a/b/svc"}
    # a tree shallower than the folders: python-jenkins fetches the rest folder by folder
    assert {j["fullname"] for j in client.get_all_jobs(folder_depth_per_request=1)} == {"a", "a/b", "a/b/svc"}

    number = client.build_job("a/b/svc", {"VERSION": "2.0"})
    sandbox.advance(10)
    item = client.get_queue_item(number)
    assert item["executable"]["url"] == f"{sandbox.url}/job/a/job/b/job/svc/1/"
    build = client.get_build_info("a/b/svc", 1)
    assert build["result"] == "SUCCESS"
    assert build["fullDisplayName"] == "a » b » svc #1"


def test_reconfigure_and_check_job_name(sandbox: Sandbox) -> None:
    client = sandbox.client()
    client.create_job("svc", jenkins.EMPTY_CONFIG_XML)
    assert client.get_job_info("svc")["property"] == []
    client.reconfig_job("svc", DEPLOY_XML)
    assert client.get_job_info("svc")["property"][0]["parameterDefinitions"][0]["name"] == "VERSION"
    status, _, body = sandbox.raw("GET", "/checkJobName?value=svc")
    assert status == 200 and b"already exists" in body
    status, _, body = sandbox.raw("GET", "/checkJobName?value=fresh")
    assert body == b"<div/>"


def test_unknown_items_are_404(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("svc")
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        client.get_job_info("missing")
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        client.get_build_info("svc", 7)
    with pytest.raises(jenkins.NotFoundException):
        client.jenkins_open(requests.Request("GET", f"{sandbox.url}/job/svc/lastBuild/api/json"))
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        client.get_queue_item(99)


def test_tree_filter_keeps_class_and_slices() -> None:
    assert parse_tree("jobs[name,builds[number]{0,2}],url") == {
        "jobs": ({"name": (None, None), "builds": ({"number": (None, None)}, slice(0, 2))}, None),
        "url": (None, None),
    }


# -- builds -------------------------------------------------------------------------------------


def test_build_with_parameters_from_queue_to_result(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    number = client.build_job("deploy", {"VERSION": " 1.4.2 ", "ENV": "production", "UNDEFINED": "x"})

    waiting = client.get_queue_item(number)
    assert waiting["why"] == "Waiting for next available executor"
    assert waiting["buildable"] is True and waiting["blocked"] is False
    assert "executable" not in waiting
    assert client.get_job_info("deploy")["inQueue"] is True
    assert [i["id"] for i in client.get_queue_info()] == [number]

    sandbox.advance(1)  # the default queue wait is 0.5 s
    left = client.get_queue_item(number)
    assert left["_class"] == "hudson.model.Queue$LeftItem"
    assert left["why"] is None and left["cancelled"] is False
    assert left["executable"] == {
        "_class": "hudson.model.FreeStyleBuild",
        "number": 1,
        "url": f"{sandbox.url}/job/deploy/1/",
    }
    running = client.get_build_info("deploy", 1)
    assert running["building"] is True and running["result"] is None
    assert running["estimatedDuration"] == -1
    assert running["queueId"] == number

    sandbox.advance(5)  # the default build takes 2 s
    build = client.get_build_info("deploy", 1)
    assert build["building"] is False
    assert build["result"] == "SUCCESS"
    assert build["duration"] == 2000
    assert build["displayName"] == "#1" and build["number"] == 1
    # trimmed, defaulted, the undefined one dropped, the password not shown
    assert params_of(build) == {"VERSION": "1.4.2", "ENV": "production", "DRY_RUN": False, "SECRET": None}
    causes = next(a for a in build["actions"] if a.get("_class") == "hudson.model.CauseAction")["causes"]
    assert causes[0]["userId"] == USER

    console = client.get_build_console_output("deploy", 1)
    assert console.startswith(f"Started by user {USER}\n")
    assert console.endswith("Finished: SUCCESS\n")
    assert "hunter2" not in console

    number2 = client.build_job("deploy", {"VERSION": "1.4.3"})
    sandbox.advance(5)
    assert client.get_queue_item(number2)["executable"]["number"] == 2
    assert client.get_build_info("deploy", 2)["estimatedDuration"] == 2000
    info = client.get_job_info("deploy")
    assert info["lastSuccessfulBuild"]["number"] == 2 and info["color"] == "blue"
    assert client.get_build_info("deploy", "lastBuild")["number"] == 2

    records = sandbox.control("GET", "/_sandbox/builds?job=deploy")["builds"]
    assert [(r["number"], r["parameters"]["VERSION"]) for r in records] == [(1, "1.4.2"), (2, "1.4.3")]


def test_real_time_scaled_flow(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(time_scale=0.01)  # 2 s builds take 20 ms
    client = sandbox.client()
    sandbox.emulator.create_job("quick")
    number = client.build_job("quick")
    executable = wait_for(lambda: client.get_queue_item(number).get("executable"))
    build = wait_for(lambda: (b := client.get_build_info("quick", executable["number"]))["result"] and b)
    assert build["result"] == "SUCCESS"


def test_scripted_failure_with_console_text(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    reply = sandbox.control(
        "POST",
        "/_sandbox/jobs/deploy/script",
        {"builds": [{"result": "FAILURE", "duration": 3, "console": "compiling\nerror: tests failed"}]},
    )
    assert reply["pending"] == 1
    number = client.build_job("deploy", {"VERSION": "9.9.9"})
    sandbox.advance(10)
    n = client.get_queue_item(number)["executable"]["number"]
    build = client.get_build_info("deploy", n)
    assert build["result"] == "FAILURE"
    assert build["duration"] == 3000
    console = client.get_build_console_output("deploy", n)
    assert "compiling\nerror: tests failed\n" in console
    assert console.endswith("Finished: FAILURE\n")
    info = client.get_job_info("deploy")
    assert info["lastFailedBuild"]["number"] == n and info["lastSuccessfulBuild"] is None
    assert info["color"] == "red"
    # the script is used up: the next build succeeds again
    client.build_job("deploy", {"VERSION": "9.9.10"})
    sandbox.advance(10)
    assert client.get_build_info("deploy", "lastBuild")["result"] == "SUCCESS"


def test_stop_build_aborts_it(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    sandbox.emulator.script("deploy", BuildScript(duration=float("inf"), console="step 1\nstep 2\nstep 3"))
    number = client.build_job("deploy", {"VERSION": "1"})
    sandbox.advance(200)
    n = client.get_queue_item(number)["executable"]["number"]
    assert client.get_build_info("deploy", n)["building"] is True
    client.stop_build("deploy", n)
    build = client.get_build_info("deploy", n)
    assert build["building"] is False
    assert build["result"] == "ABORTED"
    assert client.get_build_console_output("deploy", n).endswith(f"Aborted by {USER}\nFinished: ABORTED\n")


def test_cancel_queue_item(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    number = client.build_job("deploy", {"VERSION": "1"})
    client.cancel_queue(number)
    item = client.get_queue_item(number)
    assert item["cancelled"] is True
    assert item["executable"] is None
    sandbox.advance(60)
    assert sandbox.control("GET", "/_sandbox/builds")["builds"] == []
    # cancelling again: Jenkins answers 500, which python-jenkins raises
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        client.cancel_queue(number)
    client.cancel_queue(12345)  # 404: python-jenkins ignores it


def test_same_parameters_fold_into_the_waiting_item(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    first = client.build_job("deploy", {"VERSION": "1"})
    assert client.build_job("deploy", {"VERSION": "1"}) == first
    other = client.build_job("deploy", {"VERSION": "2"})
    assert other != first


def test_one_build_at_a_time_blocks_the_next_item(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    sandbox.emulator.script("deploy", BuildScript(duration=100), BuildScript(duration=1))
    first = client.build_job("deploy", {"VERSION": "1"})
    sandbox.advance(1)
    second = client.build_job("deploy", {"VERSION": "2"})
    sandbox.advance(1)
    blocked = client.get_queue_item(second)
    assert blocked["_class"] == "hudson.model.Queue$BlockedItem"
    assert blocked["blocked"] is True and blocked["why"].startswith("Build #1 is already in progress")
    sandbox.advance(100)
    assert client.get_queue_item(first)["executable"]["number"] == 1
    assert client.get_queue_item(second)["executable"]["number"] == 2
    one, two = client.get_build_info("deploy", 1), client.get_build_info("deploy", 2)
    assert two["timestamp"] == one["timestamp"] + one["duration"]


def test_concurrent_job_runs_builds_side_by_side_and_shows_them_on_the_node(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job(
        "batch", DEPLOY_XML.replace("<concurrentBuild>false", "<concurrentBuild>true")
    )
    sandbox.emulator.script("batch", BuildScript(duration=50), BuildScript(duration=50))
    client.build_job("batch", {"VERSION": "1"})
    client.build_job("batch", {"VERSION": "2"})
    sandbox.advance(1)
    running = client.get_running_builds()
    assert sorted((b["name"], b["number"]) for b in running) == [("batch", 1), ("batch", 2)]
    assert client.get_nodes() == [{"name": "Built-In Node", "offline": False}]
    client.delete_job("batch")  # deleting a job aborts its builds
    assert client.get_running_builds() == []


def test_build_form_post_carries_parameters_as_json(sandbox: Sandbox) -> None:
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    form = {
        "json": json.dumps(
            {"parameter": [{"name": "VERSION", "value": "7.0"}, {"name": "DRY_RUN", "value": True}]}
        )
    }
    status, headers, _ = sandbox.raw(
        "POST",
        "/job/deploy/build",
        headers={"Jenkins-Crumb": sandbox.crumb(), "Content-Type": "application/x-www-form-urlencoded"},
        data=urllib.parse.urlencode(form).encode(),
    )
    assert status == 201 and headers["Location"].endswith("/queue/item/1/")
    [item] = sandbox.control("GET", "/_sandbox/queue")["items"]
    assert item["parameters"] == {"VERSION": "7.0", "ENV": "staging", "DRY_RUN": True, "SECRET": "hunter2"}


def test_job_info_lists_100_builds_and_all_of_them_on_request(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    for version in range(105):
        client.build_job("deploy", {"VERSION": str(version)})
    sandbox.advance(1000)  # one at a time, 2 s each
    info = client.get_job_info("deploy")
    assert len(info["builds"]) == 100 and info["builds"][0]["number"] == 105
    assert info["firstBuild"]["number"] == 1
    assert len(client.get_job_info("deploy", fetch_all_builds=True)["builds"]) == 105
    assert len(sandbox.emulator.builds("deploy")) == 105


def test_build_refusals_match_jenkins(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    sandbox.emulator.create_job("plain")
    with pytest.raises(requests.HTTPError) as caught:
        client.build_job("deploy")  # POST build on a parameterized job
    assert caught.value.response is not None
    assert caught.value.response.status_code == 400
    assert "Nothing is submitted" in caught.value.response.text
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        client.build_job("plain", {"X": "1"})
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        client.build_job("deploy", {"ENV": "moon"})
    client.disable_job("plain")
    assert client.get_job_info("plain")["buildable"] is False
    with pytest.raises(requests.HTTPError) as caught:
        client.build_job("plain")
    assert caught.value.response is not None
    assert caught.value.response.status_code == 409
    assert sandbox.control("GET", "/_sandbox/queue")["items"] == []


def test_queue_item_expires_five_minutes_after_leaving(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("plain")
    number = client.build_job("plain")
    sandbox.advance(10)
    assert client.get_queue_item(number)["executable"]["number"] == 1
    sandbox.advance(301)
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        client.get_queue_item(number)


# -- console ------------------------------------------------------------------------------------


def test_progressive_text_pages_with_size_and_more_data(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("deploy", DEPLOY_XML)
    lines = [f"line {i}" for i in range(9)]
    sandbox.emulator.script("deploy", BuildScript(duration=10, queue_wait=0, console="\n".join(lines)))
    client.build_job("deploy", {"VERSION": "1"})
    sandbox.advance(0)

    collected = b""
    offset = 0
    more_seen = 0
    for _ in range(30):
        status, headers, chunk = sandbox.raw("GET", f"/job/deploy/1/logText/progressiveText?start={offset}")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        collected += chunk
        offset = int(headers["X-Text-Size"])
        assert offset == len(collected)
        if headers.get("X-More-Data") != "true":
            break
        more_seen += 1
        sandbox.advance(1)
    else:
        raise AssertionError("the build never finished")
    assert more_seen >= 5  # it really came in pieces
    assert collected.decode() == client.get_build_console_output("deploy", 1)
    assert all(f"{line}\n" in collected.decode() for line in lines)
    status, headers, chunk = sandbox.raw("GET", f"/job/deploy/1/logText/progressiveText?start={offset}")
    assert chunk == b"" and headers["X-Text-Size"] == str(offset) and "X-More-Data" not in headers


# -- faults, control API, time ------------------------------------------------------------------


def test_a_503_fault_then_the_retry_works(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("plain")
    client.get_whoami()  # auth and crumb resolved
    sandbox.control(
        "POST", "/_sandbox/faults", {"status": 503, "count": 1, "path": "/build$", "method": "POST"}
    )
    with pytest.raises(requests.HTTPError) as caught:
        client.build_job("plain")
    assert caught.value.response is not None
    assert caught.value.response.status_code == 503
    assert client.build_job("plain") == 1
    assert sandbox.control("GET", "/_sandbox/faults")["faults"] == []


def test_a_503_fault_on_reads_is_a_jenkins_exception(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("plain")
    client.get_whoami()
    sandbox.control("POST", "/_sandbox/faults", {"count": 2, "path": "/job/plain/api/json"})
    for _ in range(2):
        with pytest.raises(jenkins.JenkinsException):
            client.get_job_info("plain")
    assert client.get_job_info("plain")["name"] == "plain"


def test_a_slow_answer_times_the_client_out(sandbox: Sandbox) -> None:
    client = sandbox.client(timeout=0.2)
    client.get_whoami()
    sandbox.control("POST", "/_sandbox/faults", {"delay": 0.6, "path": "^/api/json"})
    with pytest.raises(jenkins.TimeoutException):
        client.get_info()
    assert client.get_info()["_class"] == "hudson.model.Hudson"


def test_control_api_scripts_creates_and_resets(sandbox: Sandbox) -> None:
    client = sandbox.client()
    request = urllib.request.Request(
        sandbox.url + "/_sandbox/jobs/ops/deploy", data=DEPLOY_XML.encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    assert client.job_exists("ops/deploy") and client.is_folder("ops")
    reply = sandbox.control("POST", "/_sandbox/jobs/ops/deploy/script", {"result": "UNSTABLE", "count": 2})
    assert reply["pending"] == 2
    for version in ("1", "2", "3"):
        client.build_job("ops/deploy", {"VERSION": version})
        sandbox.advance(10)
    results = [b["result"] for b in sandbox.control("GET", "/_sandbox/builds")["builds"]]
    assert results == ["UNSTABLE", "UNSTABLE", "SUCCESS"]

    with pytest.raises(urllib.error.HTTPError) as caught:
        sandbox.control("POST", "/_sandbox/jobs/ops/deploy/script", {"result": "GREEN"})
    assert caught.value.code == 400

    sandbox.control("POST", "/_sandbox/reset")
    assert sandbox.control("GET", "/_sandbox/builds")["builds"] == []
    assert not client.job_exists("ops/deploy")


def test_frozen_clock_only_moves_when_advanced(sandbox: Sandbox) -> None:
    client = sandbox.client()
    sandbox.emulator.create_job("plain")
    number = client.build_job("plain")
    time.sleep(0.05)
    assert "executable" not in client.get_queue_item(number)
    before = sandbox.control("GET", "/_sandbox/clock")["now"]
    sandbox.advance(0.5)
    assert sandbox.control("GET", "/_sandbox/clock")["now"] == pytest.approx(before + 0.5)
    assert client.get_queue_item(number)["executable"]["number"] == 1
