"""The Kubernetes emulator's clock: a frozen clock, and jumps of it, read through the real kubernetes client.

A test that moves the emulated clock forward in one step must read what a controller that had been
running all along would report: every rollout wave at the instant it would have happened, not one
wave per request with the rest timed at the end of the jump (where the progress deadline has passed).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from bot.sandbox.kubernetes import KubernetesSandbox, create_kubernetes_app, kubernetes_sandbox
from bot.sandbox.server import ServerThread
from tests.support import k8s_models as k8s
from tests.support.k8s_emulator import deployment_body

NS = "default"
STILL = 1e9  # real seconds per emulated second: the clock moves only when a test advances it
STARTUP_S = 0.25  # the emulator's default pod startup, in emulated seconds


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_kubernetes_app(time_scale=STILL), name="kubernetes") as srv:
        yield srv


@pytest.fixture
def apps(server: ServerThread) -> Iterator[client.AppsV1Api]:
    control(server, "reset", {})
    api = client.ApiClient(client.Configuration(host=server.url))
    yield client.AppsV1Api(api)
    api.close()  # type: ignore[no-untyped-call]


def control(server: ServerThread, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{server.url}/_sandbox/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def sandbox(server: ServerThread) -> KubernetesSandbox:
    return kubernetes_sandbox(server.app)


def deployment(image: str, *, replicas: int = 3, deadline_s: int = 30) -> client.V1Deployment:
    body = deployment_body("web", image, replicas=replicas, deadline_s=deadline_s)
    return client.V1Deployment.model_validate(body)


def set_image(apps: client.AppsV1Api, image: str) -> None:
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    )


def summary(apps: client.AppsV1Api) -> tuple[int, int, int, str]:
    """updated, available and total replicas, and the reason of the Progressing condition."""
    d = apps.read_namespaced_deployment("web", NS)
    status = k8s.status(d)
    reason = next(c.reason for c in k8s.conditions(d) if c.type == "Progressing")
    return status.updated_replicas or 0, status.available_replicas or 0, status.replicas or 0, str(reason)


def rolled_out_step_by_step(server: ServerThread, apps: client.AppsV1Api) -> None:
    """The first rollout, with a request every half pod startup (so only the test's own jump is one)."""
    apps.create_namespaced_deployment(NS, deployment("shop/web:1"))
    for _ in range(4):
        sandbox(server).clock.advance(STARTUP_S / 2)
        summary(apps)
    assert summary(apps) == (3, 3, 3, "NewReplicaSetAvailable")


# jumps of the clock


def test_a_new_deployment_is_available_after_one_jump(server: ServerThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("shop/web:1"))
    sandbox(server).clock.advance(60)
    assert summary(apps) == (3, 3, 3, "NewReplicaSetAvailable")


def test_one_jump_far_past_the_rollout_reads_as_a_finished_rollout(
    server: ServerThread, apps: client.AppsV1Api
) -> None:
    rolled_out_step_by_step(server, apps)
    set_image(apps, "shop/web:2")
    sandbox(server).clock.advance(600)  # twenty progress deadlines; the rollout needs under a second
    assert summary(apps) == (3, 3, 3, "NewReplicaSetAvailable")


def test_each_wave_of_a_jump_happens_at_its_own_instant(server: ServerThread, apps: client.AppsV1Api) -> None:
    rolled_out_step_by_step(server, apps)
    set_image(apps, "shop/web:2")
    # maxSurge 1, maxUnavailable 0: three waves, one new pod starting per wave, STARTUP_S each
    sandbox(server).clock.advance(3 * STARTUP_S - 0.05)
    # three new and one old, the last new pod still starting
    assert summary(apps) == (3, 3, 4, "ReplicaSetUpdated")
    sandbox(server).clock.advance(0.1)
    assert summary(apps) == (3, 3, 3, "NewReplicaSetAvailable")


def test_a_rollout_that_stalls_exceeds_its_deadline_within_one_jump(
    server: ServerThread, apps: client.AppsV1Api
) -> None:
    rolled_out_step_by_step(server, apps)
    control(server, "bad-images", {"patterns": ["*:broken"]})
    set_image(apps, "shop/web:broken")
    sandbox(server).clock.advance(600)
    updated, available, _, reason = summary(apps)
    assert (updated, available, reason) == (1, 3, "ProgressDeadlineExceeded")


# a frozen clock


def test_time_scale_zero_freezes_the_cluster_until_the_clock_is_advanced() -> None:
    with ServerThread(create_kubernetes_app(time_scale=0), name="kubernetes") as frozen:
        api = client.ApiClient(client.Configuration(host=frozen.url))
        try:
            apps = client.AppsV1Api(api)
            apps.create_namespaced_deployment(NS, deployment("shop/web:1"))
            for _ in range(3):  # requests reconcile, but no time passes between them
                assert summary(apps)[1] == 0
            assert sandbox(frozen).clock.time_scale == 0
            sandbox(frozen).clock.advance(STARTUP_S)
            assert summary(apps) == (3, 3, 3, "NewReplicaSetAvailable")
        finally:
            api.close()  # type: ignore[no-untyped-call]


def test_the_control_api_freezes_the_clock_and_refuses_a_negative_scale(server: ServerThread) -> None:
    try:
        assert control(server, "time-scale", {"time_scale": 0}) == {"time_scale": 0}
        with pytest.raises(urllib.error.HTTPError) as refused:
            control(server, "time-scale", {"time_scale": -1})
        assert refused.value.code == 400
        assert sandbox(server).clock.time_scale == 0
    finally:
        control(server, "time-scale", {"time_scale": STILL})


# the resources' times


def _age_column(server: ServerThread, name: str) -> str:
    """The AGE cell kubectl prints for a Deployment (the server renders tables)."""
    request = urllib.request.Request(
        f"{server.url}/apis/apps/v1/namespaces/{NS}/deployments/{name}",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        table = json.load(response)
    names = [c["name"] for c in table["columnDefinitions"]]
    return str(table["rows"][0]["cells"][names.index("Age")])


def test_resource_times_are_read_from_the_emulated_clock(
    server: ServerThread, apps: client.AppsV1Api
) -> None:
    # The cluster's timestamps must agree with its own clock: a test that jumps an hour must see
    # objects an hour old and conditions stamped when the controller acted, not at the wall time.
    apps.create_namespaced_deployment(NS, deployment("shop/web:1"))
    before = apps.read_namespaced_deployment("web", NS)
    sandbox(server).clock.advance(3600)
    body = deployment_body("api", "shop/api:1", replicas=1, deadline_s=30)
    apps.create_namespaced_deployment(NS, client.V1Deployment.model_validate(body))
    created = k8s.meta(before).creation_timestamp
    later = k8s.meta(apps.read_namespaced_deployment("api", NS)).creation_timestamp
    assert created is not None and later is not None
    assert abs((later - created).total_seconds() - 3600) <= 1
    # the rollout finished a pod startup after the creation, replayed at that instant by the jump
    web = apps.read_namespaced_deployment("web", NS)
    available = next(c for c in k8s.conditions(web) if c.type == "Available" and c.status == "True")
    assert available.last_update_time is not None
    assert abs((available.last_update_time - created).total_seconds()) <= 1
    assert _age_column(server, "web") == "60m"
