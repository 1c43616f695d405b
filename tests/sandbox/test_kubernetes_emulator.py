"""The Kubernetes emulator, driven by the real kubernetes client over HTTP.

One emulator runs for the module in its own thread (the client is synchronous); each test starts
from a reset cluster with time running fast, and steers it through ``/_sandbox/``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread

NS = "default"
FAST = 0.01  # real seconds per emulated second: a pod starts in 2.5 ms


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_kubernetes_app(time_scale=FAST), name="kubernetes") as srv:
        yield srv


def control(server: ServerThread, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}/_sandbox/{path}", data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def api(server: ServerThread) -> Iterator[client.ApiClient]:
    control(server, "reset", {})
    control(server, "time-scale", {"time_scale": FAST})
    api_client = client.ApiClient(client.Configuration(host=server.url))
    yield api_client
    api_client.close()


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def deployment(
    name: str = "web", image: str = "shop/web:1.0", replicas: int = 2, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image},
                        {"name": "sidecar", "image": "envoy:1.30"},
                    ]
                },
            },
            **spec,
        },
    }


def wait_for(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    """Poll until ``check()`` is truthy; the limit only bounds a broken emulator, it is not asserted on."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def rolled_out(apps: client.AppsV1Api, name: str) -> Callable[[], bool]:
    def check() -> bool:
        d = apps.read_namespaced_deployment(name, NS)
        want = d.spec.replicas
        return bool(
            d.status.observed_generation == d.metadata.generation
            and (d.status.updated_replicas or 0) == want
            and (d.status.available_replicas or 0) == want
            and (d.status.replicas or 0) == want
        )

    return check


def progressing(apps: client.AppsV1Api, name: str) -> Any:
    d = apps.read_namespaced_deployment(name, NS)
    return next(c for c in d.status.conditions if c.type == "Progressing")


def status_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


# discovery


def test_discovery_names_the_served_groups_and_resources(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    groups = [g.name for g in client.ApisApi(api).get_api_versions().groups]
    assert groups == ["apps", "rbac.authorization.k8s.io"]
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    apps_resources = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps_resources["deployments"].short_names == ["deploy"]
    assert apps_resources["deployments"].namespaced is True
    assert apps_resources["deployments/scale"].kind == "Scale"
    assert apps_resources["deployments/scale"].group == "autoscaling"
    assert "deployments/status" in apps_resources
    assert apps_resources["replicasets"].short_names == ["rs"]
    core_resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "services", "namespaces"} <= set(core_resources)
    assert core_resources["namespaces"].namespaced is False
    assert core_resources["services"].short_names == ["svc"]
    assert "watch" in core_resources["pods"].verbs


# deployments


def test_create_fills_metadata_and_the_api_server_defaults(apps: client.AppsV1Api) -> None:
    body = deployment()
    del body["spec"]["replicas"]
    created = apps.create_namespaced_deployment(NS, body)
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.generation == 1
    assert created.metadata.resource_version.isdigit()
    assert created.spec.replicas == 1
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.strategy.rolling_update.max_unavailable == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    container = created.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert created.spec.template.spec.restart_policy == "Always"


def test_a_rollout_moves_status_forward_to_available(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=3))
    wait_for(rolled_out(apps, "web"), "the first rollout")
    d = apps.read_namespaced_deployment("web", NS)
    assert d.status.ready_replicas == 3
    assert d.status.unavailable_replicas is None  # zero counters are omitted, as on a real server
    conditions = {c.type: c for c in d.status.conditions}
    assert conditions["Available"].status == "True"
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" for p in pods)
    assert all(c.status == "True" for p in pods for c in p.status.conditions if c.type == "Ready")
    assert {p.spec.containers[0].image for p in pods} == {"shop/web:1.0"}


def test_strategic_merge_patch_merges_containers_by_name(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"app": "shop/web:2.0", "sidecar": "envoy:1.30"}
    assert patched.metadata.generation == 2
    labelled = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"team": "shop"}}})
    assert labelled.metadata.generation == 2  # metadata is not spec
    assert int(labelled.metadata.resource_version) > int(patched.metadata.resource_version)


def test_strategic_merge_patch_directives_delete_and_replace(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    removed = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    )
    assert [c.name for c in removed.spec.template.spec.containers] == ["app"]
    recreate = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    )
    assert recreate.spec.strategy.type == "Recreate"
    assert recreate.spec.strategy.rolling_update is None


def test_json_patch_and_merge_patch(apps: client.AppsV1Api, server: ServerThread) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "envoy:1.31"}],
    )
    assert patched.spec.template.spec.containers[1].image == "envoy:1.31"
    merged = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert [c.name for c in merged.spec.template.spec.containers] == ["only"]  # merge patch replaces lists
    kinds = [c["content_type"] for c in control(server, "calls")["calls"] if c["method"] == "PATCH"]
    assert kinds == ["application/json-patch+json", "application/merge-patch+json"]
    with pytest.raises(ApiException) as failed:
        apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/nothing", "value": 1}])
    assert failed.value.status == 422


def test_each_template_gets_a_replicaset_with_an_increasing_revision(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment())
    for image in ("shop/web:2.0", "shop/web:3.0"):
        wait_for(rolled_out(apps, "web"), f"rollout before {image}")
        apps.patch_namespaced_deployment(
            "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        )
    wait_for(rolled_out(apps, "web"), "the third rollout")
    sets = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    by_revision = {int(rs.metadata.annotations["deployment.kubernetes.io/revision"]): rs for rs in sets}
    assert sorted(by_revision) == [1, 2, 3]
    for rev, image in ((1, "shop/web:1.0"), (2, "shop/web:2.0"), (3, "shop/web:3.0")):
        rs = by_revision[rev]
        assert rs.spec.template.spec.containers[0].image == image
        template_hash = rs.metadata.labels["pod-template-hash"]
        assert rs.metadata.name == f"web-{template_hash}"
        assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": template_hash}
        owner = rs.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Deployment",
            "web",
            created.metadata.uid,
            True,
        )
    assert by_revision[3].spec.replicas == 2
    assert by_revision[1].spec.replicas == by_revision[2].spec.replicas == 0
    # going back to the first template re-uses its ReplicaSet, which becomes the newest revision
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:1.0"}]}}}},
    )
    wait_for(rolled_out(apps, "web"), "the rollback")
    again = apps.read_namespaced_replica_set(by_revision[1].metadata.name, NS)
    assert again.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert again.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert again.spec.replicas == 2
    assert len(apps.list_namespaced_replica_set(NS, label_selector="app=web").items) == 3


def test_replace_with_a_stale_resource_version_is_a_conflict(apps: client.AppsV1Api) -> None:
    first = apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    first.spec.replicas = 5
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("web", NS, first)
    assert conflict.value.status == 409
    body = status_body(conflict.value)
    assert body["kind"] == "Status"
    assert body["reason"] == "Conflict"
    assert body["code"] == 409
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    with pytest.raises(ApiException) as stale_patch:
        apps.patch_namespaced_deployment(
            "web",
            NS,
            {"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"replicas": 6}},
        )
    assert stale_patch.value.status == 409
    fresh = apps.read_namespaced_deployment("web", NS)
    fresh.spec.replicas = 5
    assert apps.replace_namespaced_deployment("web", NS, fresh).spec.replicas == 5


def test_missing_existing_and_invalid_objects_answer_status_errors(
    server: ServerThread, apps: client.AppsV1Api
) -> None:
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", NS)
    assert missing.value.status == 404
    assert status_body(missing.value)["reason"] == "NotFound"
    assert status_body(missing.value)["message"] == 'deployments.apps "nope" not found'
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment(NS, deployment())
    assert exists.value.status == 409
    assert status_body(exists.value)["reason"] == "AlreadyExists"
    mismatched = deployment("other")
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "elsewhere"}}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment(NS, mismatched)
    assert invalid.value.status == 422
    body = status_body(invalid.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    no_selector = deployment("third")
    del no_selector["spec"]["selector"]  # the client refuses to send this; raw HTTP does not
    request = urllib.request.Request(
        f"{server.url}/apis/apps/v1/namespaces/{NS}/deployments",
        data=json.dumps(no_selector).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as required:
        urllib.request.urlopen(request, timeout=5)
    assert required.value.code == 422
    assert (
        json.load(required.value)["message"]
        == 'Deployment.apps "third" is invalid: spec.selector: Required value'
    )
    with pytest.raises(ApiException) as no_namespace:
        apps.create_namespaced_deployment("nowhere", deployment())
    assert no_namespace.value.status == 404
    assert status_body(no_namespace.value)["message"] == 'namespaces "nowhere" not found'


def test_namespaces_list_get_create(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert "default" in names
    created = core.create_namespace({"metadata": {"name": "staging"}})
    assert created.status.phase == "Active"
    assert core.read_namespace("staging").metadata.labels["kubernetes.io/metadata.name"] == "staging"
    apps.create_namespaced_deployment("staging", deployment())
    assert [d.metadata.name for d in apps.list_namespaced_deployment("staging").items] == ["web"]
    assert apps.list_namespaced_deployment(NS).items == []
    assert [d.metadata.name for d in apps.list_deployment_for_all_namespaces().items] == ["web"]


def test_list_by_label_and_field_selectors(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    apps.create_namespaced_deployment(NS, deployment("api"))
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS, label_selector="app=api").items] == [
        "api"
    ]
    assert [
        d.metadata.name for d in apps.list_namespaced_deployment(NS, label_selector="app in (web,x)").items
    ] == ["web"]
    by_name = apps.list_namespaced_deployment(NS, field_selector="metadata.name=web").items
    assert [d.metadata.name for d in by_name] == ["web"]
    page = apps.list_namespaced_deployment(NS, limit=1)
    assert len(page.items) == 1
    rest = apps.list_namespaced_deployment(NS, limit=1, _continue=page.metadata._continue)
    assert {page.items[0].metadata.name, rest.items[0].metadata.name} == {"web", "api"}


def test_scale_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert scale.kind == "Scale"
    assert scale.spec.replicas == 4
    assert scale.status.selector == "app=web"
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4
    wait_for(rolled_out(apps, "web"), "four replicas")
    read = apps.read_namespaced_deployment_scale("web", NS)
    assert read.status.replicas == 4
    read.spec.replicas = 0
    assert apps.replace_namespaced_deployment_scale("web", NS, read).spec.replicas == 0
    d = apps.read_namespaced_deployment("web", NS)  # scaling to zero completes at once
    assert (d.status.replicas or 0) == 0
    assert next(c for c in d.status.conditions if c.type == "Progressing").reason == "NewReplicaSetAvailable"


def test_watch_streams_added_and_modified_events(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment(replicas=2))
    seen: list[tuple[str, int]] = []
    stream = watch.Watch()
    for event in stream.stream(
        apps.list_namespaced_deployment,
        NS,
        field_selector="metadata.name=web",
        resource_version=created.metadata.resource_version,
        timeout_seconds=10,
    ):
        obj = event["object"]
        seen.append((event["type"], obj.status.available_replicas or 0))
        if (obj.status.available_replicas or 0) == 2:
            stream.stop()
    assert seen[0][0] == "MODIFIED"  # the create itself is before the resourceVersion we watched from
    assert {kind for kind, _ in seen} == {"MODIFIED"}
    assert seen[-1] == ("MODIFIED", 2)
    initial = [
        e["type"] for e in watch.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=1)
    ]
    assert initial == ["ADDED"]  # without a resourceVersion: the current state, then nothing more happened
    apps.delete_namespaced_deployment("web", NS)


def test_watch_from_a_compacted_resource_version_answers_gone(
    server: ServerThread, apps: client.AppsV1Api
) -> None:
    url = (
        f"{server.url}/apis/apps/v1/namespaces/{NS}/deployments?watch=true&resourceVersion=1&timeoutSeconds=1"
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        event = json.loads(response.readline())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


def test_delete_cascades_to_replicasets_and_pods(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    wait_for(rolled_out(apps, "web"), "the rollout")
    apps.delete_namespaced_deployment("web", NS)
    wait_for(lambda: not apps.list_namespaced_replica_set(NS).items, "ReplicaSets to be collected")
    wait_for(lambda: not core.list_namespaced_pod(NS).items, "pods to be collected")


def test_bad_image_never_becomes_ready_and_exceeds_the_progress_deadline(
    server: ServerThread, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    wait_for(rolled_out(apps, "web"), "the first rollout")
    control(server, "bad-images", {"patterns": ["shop/web:*-broken"]})
    control(server, "time-scale", {"time_scale": 1 / 3000})  # the 600 s deadline passes in 0.2 s
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2-broken"}]}}}},
    )
    wait_for(lambda: progressing(apps, "web").reason == "ProgressDeadlineExceeded", "the deadline")
    condition = progressing(apps, "web")
    assert condition.status == "False"
    assert "has timed out progressing" in condition.message
    d = apps.read_namespaced_deployment("web", NS)
    assert d.status.available_replicas == 2  # the old pods keep serving
    assert d.status.updated_replicas == 1
    new_pods = [
        p
        for p in core.list_namespaced_pod(NS, label_selector="app=web").items
        if p.spec.containers[0].image == "shop/web:2-broken"
    ]
    assert new_pods
    waiting = new_pods[0].status.container_statuses[0].state.waiting
    assert waiting.reason == "ImagePullBackOff"
    assert not any(c.status == "True" for c in new_pods[0].status.conditions if c.type == "Ready")


def test_services_selector_switch(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web", "color": "blue"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    assert created.spec.type == "ClusterIP"
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.spec.ports[0].protocol == "TCP"
    switched = core.patch_namespaced_service("web", NS, {"spec": {"selector": {"color": "green"}}})
    assert switched.spec.selector == {"app": "web", "color": "green"}
    assert switched.spec.cluster_ip == created.spec.cluster_ip
    fetched = core.read_namespaced_service("web", NS)
    fetched.spec.selector = {"app": "web", "color": "blue"}
    assert core.replace_namespaced_service("web", NS, fetched).spec.selector["color"] == "blue"
    assert [s.metadata.name for s in core.list_namespaced_service(NS).items] == ["web"]


def test_injected_faults_surface_as_api_exceptions(server: ServerThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    control(server, "faults", {"method": "GET", "path": "/deployments/web$", "status": 500, "count": 1})
    with pytest.raises(ApiException) as failed:
        apps.read_namespaced_deployment("web", NS)
    assert failed.value.status == 500
    assert status_body(failed.value)["reason"] == "InternalError"
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"  # only the next one
    control(server, "faults", {"path": "/replicasets", "status": 503, "count": 1})
    with pytest.raises(ApiException) as unavailable:
        apps.list_namespaced_replica_set(NS)
    assert unavailable.value.status == 503
    calls = control(server, "calls")["calls"]
    assert [c["status"] for c in calls if c["path"].endswith("/deployments/web")] == [500, 200]


def test_protobuf_bodies_are_refused_with_415(server: ServerThread) -> None:
    request = urllib.request.Request(
        f"{server.url}/apis/apps/v1/namespaces/{NS}/deployments",
        data=b"k8s\x00\n\x0f\n\x07apps/v1",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 415
    body = json.load(refused.value)
    assert body["reason"] == "UnsupportedMediaType"
    assert "JSON only" in body["message"]


def test_openapi_v3_describes_the_kinds(server: ServerThread) -> None:
    with urllib.request.urlopen(f"{server.url}/openapi/v3", timeout=5) as response:
        index = json.load(response)
    with urllib.request.urlopen(
        server.url + index["paths"]["apis/apps/v1"]["serverRelativeURL"], timeout=5
    ) as r:
        doc = json.load(r)
    schemas = doc["components"]["schemas"]
    gvk = schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
    assert gvk == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    with pytest.raises(urllib.error.HTTPError) as v2:
        urllib.request.urlopen(f"{server.url}/openapi/v2", timeout=5)
    assert v2.value.code == 404


def test_rolling_update_keeps_within_max_surge_and_max_unavailable(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment(replicas=4))  # 25 %: surge 1, unavailable 1
    wait_for(rolled_out(apps, "web"), "the first rollout")
    start = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    states = []
    stream = watch.Watch()
    for event in stream.stream(
        apps.list_namespaced_deployment,
        NS,
        resource_version=start,
        timeout_seconds=10,
        field_selector="metadata.name=web",
    ):
        status = event["object"].status
        states.append((status.replicas or 0, status.available_replicas or 0, status.updated_replicas or 0))
        if states[-1] == (4, 4, 4) and status.observed_generation == 2:
            stream.stop()
    assert states[-1] == (4, 4, 4)
    assert max(total for total, _, _ in states) == 5  # it did surge, by one
    assert min(available for _, available, _ in states) == 3  # and went down by one at most
    assert created.metadata.uid == apps.read_namespaced_deployment("web", NS).metadata.uid


def test_recreate_removes_old_pods_before_starting_new_ones(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=2, strategy={"type": "Recreate"}))
    wait_for(rolled_out(apps, "web"), "the first rollout")
    start = core.list_namespaced_pod(NS).metadata.resource_version
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    wait_for(rolled_out(apps, "web"), "the second rollout")
    events = [
        (e["type"], e["object"].spec.containers[0].image)
        for e in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=1)
    ]
    deleted = [i for i, (kind, image) in enumerate(events) if kind == "DELETED" and image == "shop/web:1.0"]
    added = [i for i, (kind, image) in enumerate(events) if kind == "ADDED" and image == "shop/web:2.0"]
    assert len(deleted) == len(added) == 2
    assert max(deleted) < min(added)


def test_lifting_a_bad_image_lets_its_pods_start(server: ServerThread, apps: client.AppsV1Api) -> None:
    control(server, "bad-images", {"patterns": ["shop/web:1.0"]})
    apps.create_namespaced_deployment(NS, deployment(replicas=1))
    wait_for(lambda: apps.read_namespaced_deployment("web", NS).status.updated_replicas == 1, "the pod")
    assert not apps.read_namespaced_deployment("web", NS).status.available_replicas
    control(server, "bad-images", {"patterns": []})
    wait_for(rolled_out(apps, "web"), "the rollout once the image exists")


def test_a_deleted_pod_is_replaced(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    wait_for(rolled_out(apps, "web"), "the rollout")
    first = core.list_namespaced_pod(NS, label_selector="app=web").items[0].metadata.name
    core.delete_namespaced_pod(first, NS)
    wait_for(
        lambda: (
            len(names := [p.metadata.name for p in core.list_namespaced_pod(NS).items]) == 2
            and first not in names
        ),
        "a replacement pod",
    )
    wait_for(rolled_out(apps, "web"), "the replacement to be ready")


def test_status_subresource_writes_status_only(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    wait_for(rolled_out(apps, "web"), "the rollout")
    read = apps.read_namespaced_deployment_status("web", NS)
    assert read.status.available_replicas == 2
    patched = apps.patch_namespaced_deployment_status(
        "web", NS, {"metadata": {"labels": {"ignored": "yes"}}, "status": {"collisionCount": 1}}
    )
    assert patched.status.collision_count == 1
    assert "ignored" not in (patched.metadata.labels or {})
    assert patched.metadata.generation == 1
    spec_via_main = apps.patch_namespaced_deployment("web", NS, {"status": {"collisionCount": 7}})
    assert spec_via_main.status.collision_count == 1  # the main resource ignores status


def test_delayed_requests_hit_the_client_timeout(server: ServerThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment())
    control(
        server,
        "faults",
        {"method": "GET", "path": "/deployments/web$", "status": None, "delay": 1, "count": 4},
    )
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="Read timed out"):  # urllib3 retried 3 times
        apps.read_namespaced_deployment("web", NS, _request_timeout=0.2)
    assert control(server, "faults")["faults"] == []
    assert apps.read_namespaced_deployment("web", NS, _request_timeout=5).metadata.name == "web"
