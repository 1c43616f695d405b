"""The Kubernetes emulator, driven by the real kubernetes client over HTTP.

One emulator runs for the module in its own thread (the client is synchronous); each test starts
from a reset cluster with time running fast, and steers it through ``/_sandbox/``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from tests.support import k8s_models as k8s

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
    api_client.close()  # type: ignore[no-untyped-call]


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


def as_deployment(body: dict[str, Any]) -> client.V1Deployment:
    """The manifest as the client's model: what the client itself makes of a dict body before sending."""
    return client.V1Deployment.model_validate(body)


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
            k8s.status(d).observed_generation == k8s.meta(d).generation
            and (k8s.status(d).updated_replicas or 0) == want
            and (k8s.status(d).available_replicas or 0) == want
            and (k8s.status(d).replicas or 0) == want
        )

    return check


def progressing(apps: client.AppsV1Api, name: str) -> Any:
    d = apps.read_namespaced_deployment(name, NS)
    return next(c for c in k8s.conditions(d) if c.type == "Progressing")


def status_body(exc: ApiException) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(k8s.present(exc.body, "the error's body")))  # a Status, as JSON


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
    created = apps.create_namespaced_deployment(NS, as_deployment(body))
    assert k8s.meta(created).uid
    assert k8s.meta(created).creation_timestamp is not None
    assert k8s.meta(created).generation == 1
    assert k8s.present(k8s.meta(created).resource_version, "resourceVersion").isdigit()
    assert created.spec.replicas == 1
    assert k8s.strategy(created).type == "RollingUpdate"
    rolling_update = k8s.present(k8s.strategy(created).rolling_update, "rollingUpdate")
    assert rolling_update.max_surge == "25%"
    assert rolling_update.max_unavailable == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    container = k8s.template_spec(created).containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert k8s.template_spec(created).restart_policy == "Always"


def test_a_rollout_moves_status_forward_to_available(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=3)))
    wait_for(rolled_out(apps, "web"), "the first rollout")
    d = apps.read_namespaced_deployment("web", NS)
    assert k8s.status(d).ready_replicas == 3
    assert k8s.status(d).unavailable_replicas is None  # zero counters are omitted, as on a real server
    conditions = {c.type: c for c in k8s.conditions(d)}
    assert conditions["Available"].status == "True"
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    assert k8s.annotations_of(d)["deployment.kubernetes.io/revision"] == "1"
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert len(pods) == 3
    assert all(k8s.pod_status(p).phase == "Running" for p in pods)
    assert all(c.status == "True" for p in pods for c in k8s.pod_conditions(p) if c.type == "Ready")
    assert {k8s.pod_spec(p).containers[0].image for p in pods} == {"shop/web:1.0"}


def test_strategic_merge_patch_merges_containers_by_name(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    images = {c.name: c.image for c in k8s.template_spec(patched).containers}
    assert images == {"app": "shop/web:2.0", "sidecar": "envoy:1.30"}
    assert k8s.meta(patched).generation == 2
    labelled = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"team": "shop"}}})
    assert k8s.meta(labelled).generation == 2  # metadata is not spec
    assert int(k8s.present(k8s.meta(labelled).resource_version, "resourceVersion")) > int(
        k8s.present(k8s.meta(patched).resource_version, "resourceVersion")
    )


def test_strategic_merge_patch_directives_delete_and_replace(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    removed = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    )
    assert [c.name for c in k8s.template_spec(removed).containers] == ["app"]
    recreate = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    )
    assert k8s.strategy(recreate).type == "Recreate"
    assert k8s.strategy(recreate).rolling_update is None


def test_json_patch_and_merge_patch(apps: client.AppsV1Api, server: ServerThread) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "envoy:1.31"}],
    )
    assert k8s.template_spec(patched).containers[1].image == "envoy:1.31"
    merged = apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert [c.name for c in k8s.template_spec(merged).containers] == ["only"]  # merge patch replaces lists
    kinds = [c["content_type"] for c in control(server, "calls")["calls"] if c["method"] == "PATCH"]
    assert kinds == ["application/json-patch+json", "application/merge-patch+json"]
    with pytest.raises(ApiException) as failed:
        apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/nothing", "value": 1}])
    assert failed.value.status == 422


def test_each_template_gets_a_replicaset_with_an_increasing_revision(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    for image in ("shop/web:2.0", "shop/web:3.0"):
        wait_for(rolled_out(apps, "web"), f"rollout before {image}")
        apps.patch_namespaced_deployment(
            "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        )
    wait_for(rolled_out(apps, "web"), "the third rollout")
    sets = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    by_revision = {int(k8s.annotations_of(rs)["deployment.kubernetes.io/revision"]): rs for rs in sets}
    assert sorted(by_revision) == [1, 2, 3]
    for rev, image in ((1, "shop/web:1.0"), (2, "shop/web:2.0"), (3, "shop/web:3.0")):
        rs = by_revision[rev]
        assert k8s.template_spec(rs).containers[0].image == image
        template_hash = k8s.labels_of(rs)["pod-template-hash"]
        assert k8s.meta(rs).name == f"web-{template_hash}"
        assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": template_hash}
        owner = k8s.present(k8s.meta(rs).owner_references, "ownerReferences")[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Deployment",
            "web",
            k8s.meta(created).uid,
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
    again = apps.read_namespaced_replica_set(k8s.present(k8s.meta(by_revision[1]).name, "name"), NS)
    assert k8s.annotations_of(again)["deployment.kubernetes.io/revision"] == "4"
    assert k8s.annotations_of(again)["deployment.kubernetes.io/revision-history"] == "1"
    assert again.spec.replicas == 2
    assert len(apps.list_namespaced_replica_set(NS, label_selector="app=web").items) == 3


def test_replace_with_a_stale_resource_version_is_a_conflict(apps: client.AppsV1Api) -> None:
    first = apps.create_namespaced_deployment(NS, as_deployment(deployment()))
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
            {"metadata": {"resourceVersion": k8s.meta(first).resource_version}, "spec": {"replicas": 6}},
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
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    assert exists.value.status == 409
    assert status_body(exists.value)["reason"] == "AlreadyExists"
    mismatched = deployment("other")
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "elsewhere"}}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment(NS, as_deployment(mismatched))
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
        apps.create_namespaced_deployment("nowhere", as_deployment(deployment()))
    assert no_namespace.value.status == 404
    assert status_body(no_namespace.value)["message"] == 'namespaces "nowhere" not found'


def test_namespaces_list_get_create(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    names = {k8s.meta(ns).name for ns in core.list_namespace().items}
    assert "default" in names
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="staging")))
    assert k8s.present(created.status, "status").phase == "Active"
    assert k8s.labels_of(core.read_namespace("staging"))["kubernetes.io/metadata.name"] == "staging"
    apps.create_namespaced_deployment("staging", as_deployment(deployment()))
    assert [k8s.meta(d).name for d in apps.list_namespaced_deployment("staging").items] == ["web"]
    assert apps.list_namespaced_deployment(NS).items == []
    assert [k8s.meta(d).name for d in apps.list_deployment_for_all_namespaces().items] == ["web"]


def test_list_by_label_and_field_selectors(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment("web")))
    apps.create_namespaced_deployment(NS, as_deployment(deployment("api")))
    assert [
        k8s.meta(d).name for d in apps.list_namespaced_deployment(NS, label_selector="app=api").items
    ] == ["api"]
    assert [
        k8s.meta(d).name for d in apps.list_namespaced_deployment(NS, label_selector="app in (web,x)").items
    ] == ["web"]
    by_name = apps.list_namespaced_deployment(NS, field_selector="metadata.name=web").items
    assert [k8s.meta(d).name for d in by_name] == ["web"]
    page = apps.list_namespaced_deployment(NS, limit=1)
    assert len(page.items) == 1
    rest = apps.list_namespaced_deployment(
        NS, limit=1, _continue=k8s.present(page.metadata, "list metadata")._continue
    )
    assert {k8s.meta(page.items[0]).name, k8s.meta(rest.items[0]).name} == {"web", "api"}


def test_scale_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert scale.kind == "Scale"
    assert k8s.present(scale.spec, "spec").replicas == 4
    assert k8s.present(scale.status, "status").selector == "app=web"
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4
    wait_for(rolled_out(apps, "web"), "four replicas")
    read = apps.read_namespaced_deployment_scale("web", NS)
    assert k8s.present(read.status, "status").replicas == 4
    k8s.present(read.spec, "spec").replicas = 0
    replaced = apps.replace_namespaced_deployment_scale("web", NS, read)
    assert k8s.present(replaced.spec, "spec").replicas == 0
    d = apps.read_namespaced_deployment("web", NS)  # scaling to zero completes at once
    assert (k8s.status(d).replicas or 0) == 0
    assert next(c for c in k8s.conditions(d) if c.type == "Progressing").reason == "NewReplicaSetAvailable"


def test_watch_streams_added_and_modified_events(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=2)))
    seen: list[tuple[str, int]] = []
    stream = k8s.Watch()
    for event in stream.stream(
        apps.list_namespaced_deployment,
        NS,
        field_selector="metadata.name=web",
        resource_version=k8s.meta(created).resource_version,
        timeout_seconds=10,
    ):
        obj = event["object"]
        seen.append((event["type"], obj.status.available_replicas or 0))
        if (obj.status.available_replicas or 0) == 2:
            stream.stop()
    assert seen[0][0] == "MODIFIED"  # the create itself is before the resourceVersion we watched from
    assert {kind for kind, _ in seen} == {"MODIFIED"}
    assert seen[-1] == ("MODIFIED", 2)
    initial = [e["type"] for e in k8s.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=1)]
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
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    wait_for(rolled_out(apps, "web"), "the rollout")
    apps.delete_namespaced_deployment("web", NS)
    wait_for(lambda: not apps.list_namespaced_replica_set(NS).items, "ReplicaSets to be collected")
    wait_for(lambda: not core.list_namespaced_pod(NS).items, "pods to be collected")


def test_bad_image_never_becomes_ready_and_exceeds_the_progress_deadline(
    server: ServerThread, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=2)))
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
    assert k8s.status(d).available_replicas == 2  # the old pods keep serving
    assert k8s.status(d).updated_replicas == 1
    new_pods = [
        p
        for p in core.list_namespaced_pod(NS, label_selector="app=web").items
        if k8s.pod_spec(p).containers[0].image == "shop/web:2-broken"
    ]
    assert new_pods
    container_status = k8s.present(k8s.pod_status(new_pods[0]).container_statuses, "containerStatuses")[0]
    waiting = k8s.present(k8s.present(container_status.state, "state").waiting, "state.waiting")
    assert waiting.reason == "ImagePullBackOff"
    assert not any(c.status == "True" for c in k8s.pod_conditions(new_pods[0]) if c.type == "Ready")


def test_services_selector_switch(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service(
        NS,
        client.V1Service.model_validate(
            {
                "metadata": {"name": "web"},
                "spec": {
                    "selector": {"app": "web", "color": "blue"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            }
        ),
    )
    assert k8s.service_spec(created).type == "ClusterIP"
    assert k8s.present(k8s.service_spec(created).cluster_ip, "clusterIP").startswith("10.96.")
    assert k8s.present(k8s.service_spec(created).ports, "ports")[0].protocol == "TCP"
    switched = core.patch_namespaced_service("web", NS, {"spec": {"selector": {"color": "green"}}})
    assert k8s.service_spec(switched).selector == {"app": "web", "color": "green"}
    assert k8s.service_spec(switched).cluster_ip == k8s.service_spec(created).cluster_ip
    fetched = core.read_namespaced_service("web", NS)
    k8s.service_spec(fetched).selector = {"app": "web", "color": "blue"}
    replaced = core.replace_namespaced_service("web", NS, fetched)
    assert k8s.present(k8s.service_spec(replaced).selector, "selector")["color"] == "blue"
    assert [k8s.meta(s).name for s in core.list_namespaced_service(NS).items] == ["web"]


def test_injected_faults_surface_as_api_exceptions(server: ServerThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    control(server, "faults", {"method": "GET", "path": "/deployments/web$", "status": 500, "count": 1})
    with pytest.raises(ApiException) as failed:
        apps.read_namespaced_deployment("web", NS)
    assert failed.value.status == 500
    assert status_body(failed.value)["reason"] == "InternalError"
    assert k8s.meta(apps.read_namespaced_deployment("web", NS)).name == "web"  # only the next one
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
    # 25 % of 4: surge 1, unavailable 1
    created = apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=4)))
    wait_for(rolled_out(apps, "web"), "the first rollout")
    start = k8s.meta(apps.read_namespaced_deployment("web", NS)).resource_version
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    states = []
    stream = k8s.Watch()
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
    assert k8s.meta(created).uid == k8s.meta(apps.read_namespaced_deployment("web", NS)).uid


def test_recreate_removes_old_pods_before_starting_new_ones(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(
        NS, as_deployment(deployment(replicas=2, strategy={"type": "Recreate"}))
    )
    wait_for(rolled_out(apps, "web"), "the first rollout")
    start = k8s.present(core.list_namespaced_pod(NS).metadata, "list metadata").resource_version
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:2.0"}]}}}},
    )
    wait_for(rolled_out(apps, "web"), "the second rollout")
    events = [
        (e["type"], e["object"].spec.containers[0].image)
        for e in k8s.Watch().stream(core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=1)
    ]
    deleted = [i for i, (kind, image) in enumerate(events) if kind == "DELETED" and image == "shop/web:1.0"]
    added = [i for i, (kind, image) in enumerate(events) if kind == "ADDED" and image == "shop/web:2.0"]
    assert len(deleted) == len(added) == 2
    assert max(deleted) < min(added)


def test_lifting_a_bad_image_lets_its_pods_start(server: ServerThread, apps: client.AppsV1Api) -> None:
    control(server, "bad-images", {"patterns": ["shop/web:1.0"]})
    apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=1)))
    wait_for(lambda: k8s.status(apps.read_namespaced_deployment("web", NS)).updated_replicas == 1, "the pod")
    assert not k8s.status(apps.read_namespaced_deployment("web", NS)).available_replicas
    control(server, "bad-images", {"patterns": []})
    wait_for(rolled_out(apps, "web"), "the rollout once the image exists")


def test_a_deleted_pod_is_replaced(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment(replicas=2)))
    wait_for(rolled_out(apps, "web"), "the rollout")
    first = k8s.present(
        k8s.meta(core.list_namespaced_pod(NS, label_selector="app=web").items[0]).name, "name"
    )
    core.delete_namespaced_pod(first, NS)
    wait_for(
        lambda: (
            len(names := [k8s.meta(p).name for p in core.list_namespaced_pod(NS).items]) == 2
            and first not in names
        ),
        "a replacement pod",
    )
    wait_for(rolled_out(apps, "web"), "the replacement to be ready")


def test_status_subresource_writes_status_only(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    wait_for(rolled_out(apps, "web"), "the rollout")
    read = apps.read_namespaced_deployment_status("web", NS)
    assert k8s.status(read).available_replicas == 2
    patched = apps.patch_namespaced_deployment_status(
        "web", NS, {"metadata": {"labels": {"ignored": "yes"}}, "status": {"collisionCount": 1}}
    )
    assert k8s.status(patched).collision_count == 1
    assert "ignored" not in (k8s.meta(patched).labels or {})
    assert k8s.meta(patched).generation == 1
    spec_via_main = apps.patch_namespaced_deployment("web", NS, {"status": {"collisionCount": 7}})
    assert k8s.status(spec_via_main).collision_count == 1  # the main resource ignores status


def test_delayed_requests_hit_the_client_timeout(server: ServerThread, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, as_deployment(deployment()))
    control(
        server,
        "faults",
        {"method": "GET", "path": "/deployments/web$", "status": None, "delay": 1, "count": 4},
    )
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="Read timed out"):  # urllib3 retried 3 times
        apps.read_namespaced_deployment("web", NS, _request_timeout=0.2)
    assert control(server, "faults")["faults"] == []
    assert k8s.meta(apps.read_namespaced_deployment("web", NS, _request_timeout=5)).name == "web"
