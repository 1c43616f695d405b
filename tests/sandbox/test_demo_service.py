"""The demo service: its traffic follows what the Kubernetes emulator runs, and a real Prometheus
reading it through the example playbook's own guard query sees a good image pass and a bad one fail.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from bot.domain.playbook import render
from bot.playbooks import load_playbook
from bot.sandbox.demo_service import DemoService, Serving, Workload, create_demo_app
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from tests.engine.stack import create_k8s_deployment
from tests.support.prometheus import PrometheusServer

FAST = 0.01
IMAGE = "registry.example.com/{}:{}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ServerThread]:
    with ServerThread(create_kubernetes_app(time_scale=FAST), name="kubernetes") as server:
        yield server


@pytest.fixture
def apis(cluster: ServerThread) -> Iterator[tuple[k8s.AppsV1Api, k8s.CoreV1Api]]:
    post(cluster.url, "/_sandbox/reset", {})
    api = k8s.ApiClient(k8s.Configuration(host=cluster.url))
    yield k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    api.close()  # type: ignore[no-untyped-call]


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_for(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    """Poll until ``check()`` is truthy; the limit only bounds a broken setup."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def seen(demo: DemoService) -> set[tuple[str, str, str, int]]:
    demo.refresh()
    return {(s.workload.service, s.track, s.version, s.ready) for s in demo.serving()}


def samples(demo: DemoService) -> dict[tuple[str, ...], float]:
    """Every sample of the exposition, keyed by name and its label values (sorted by label name)."""
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(demo.exposition().decode()):
        for s in family.samples:
            out[(s.name, *(f"{k}={v}" for k, v in sorted(s.labels.items())))] = s.value
    return out


def requests(demo: DemoService, service: str, version: str, code: str, namespace: str = "shop") -> float:
    key = ("http_requests_total", f"code={code}", f"namespace={namespace}", f"service={service}")
    return sum(v for k, v in samples(demo).items() if k[:4] == key and f"version={version}" in k)


def labelled(name: str, labels: dict[str, str], image: str, replicas: int) -> k8s.V1Deployment:
    # the client's model of the manifest: what the client itself makes of a dict body before sending
    return k8s.V1Deployment.model_validate(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        }
    )


def test_traffic_follows_the_ready_pods_and_the_image_version(
    cluster: ServerThread, apis: tuple[k8s.AppsV1Api, k8s.CoreV1Api]
) -> None:
    apps, _ = apis
    create_k8s_deployment(cluster.url, "checkout", IMAGE.format("checkout", "1.4.2"), replicas=2)
    demo = DemoService(cluster.url, [Workload("checkout", "shop")], requests_per_pod=10)
    wait_for(lambda: seen(demo) == {("checkout", "stable", "1.4.2", 2)}, "two ready pods")
    demo.tick(60)
    ok, failed = requests(demo, "checkout", "1.4.2", "200"), requests(demo, "checkout", "1.4.2", "500")
    assert ok + failed == pytest.approx(2 * 10 * 60, abs=1)
    assert failed / (ok + failed) < 0.005
    assert samples(demo)[("demo_service_up", "namespace=shop", "service=checkout")] == 1

    apps.patch_namespaced_deployment(
        "checkout",
        "shop",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": IMAGE.format("checkout", "2.0.0-bad")}]}
                }
            }
        },
    )
    wait_for(lambda: seen(demo) == {("checkout", "stable", "2.0.0-bad", 2)}, "the bad version rolled out")
    demo.tick(60)
    bad_ok, bad_failed = (
        requests(demo, "checkout", "2.0.0-bad", "200"),
        requests(demo, "checkout", "2.0.0-bad", "500"),
    )
    assert bad_failed / (bad_ok + bad_failed) == pytest.approx(0.25, abs=0.01)
    # What the good version served stays counted: counters never go back.
    assert requests(demo, "checkout", "1.4.2", "200") == ok

    apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 0}})
    wait_for(lambda: seen(demo) == set(), "no pod left")
    assert samples(demo)[("demo_service_up", "namespace=shop", "service=checkout")] == 0


def test_canary_tracks_and_the_live_colour_of_a_blue_green_pair(
    cluster: ServerThread, apis: tuple[k8s.AppsV1Api, k8s.CoreV1Api]
) -> None:
    apps, core = apis
    create_k8s_deployment(cluster.url, "checkout", IMAGE.format("checkout", "1.4.2"), replicas=4, track=True)
    canary = {"app": "checkout", "track": "canary"}
    apps.create_namespaced_deployment(
        "shop", labelled("checkout-canary", canary, IMAGE.format("checkout", "2.0.0-bad"), 1)
    )
    for colour, version in (("blue", "1.0.0"), ("green", "1.1.0")):
        labels = {"app": "payments", "color": colour}
        apps.create_namespaced_deployment(
            "shop", labelled(f"payments-{colour}", labels, IMAGE.format("payments", version), 2)
        )
    core.create_namespaced_service(
        "shop",
        k8s.V1Service.model_validate(
            {
                "metadata": {"name": "payments"},
                "spec": {"selector": {"app": "payments", "color": "blue"}, "ports": [{"port": 80}]},
            }
        ),
    )
    demo = DemoService(
        cluster.url,
        [Workload("checkout", "shop"), Workload("payments", "shop", payments=True)],
        bad_versions={"2.0.0-bad"},
    )
    wait_for(
        lambda: (
            seen(demo)
            == {
                ("checkout", "stable", "1.4.2", 4),
                ("checkout", "canary", "2.0.0-bad", 1),
                ("payments", "blue", "1.0.0", 2),
            }
        ),
        "both tracks and the blue colour",
    )
    demo.tick(10)
    canary_failed = requests(demo, "checkout", "2.0.0-bad", "500")
    assert canary_failed == pytest.approx(0.25 * 10 * 10, abs=1)
    track = [k for k in samples(demo) if k[0] == "http_requests_total" and "version=2.0.0-bad" in k]
    assert all("track=canary" in k for k in track) and track
    errors = samples(demo)[
        (
            "payment_requests_total",
            "namespace=shop",
            "outcome=error",
            "service=payments",
            "track=blue",
            "version=1.0.0",
        )
    ]
    assert errors < 0.005 * 2 * 10 * 10 + 1

    core.patch_namespaced_service(
        "payments", "shop", {"spec": {"selector": {"app": "payments", "color": "green"}}}
    )
    wait_for(lambda: ("payments", "green", "1.1.0", 2) in seen(demo), "traffic on green")
    assert not any(s[0] == "payments" and s[1] == "blue" for s in seen(demo))


def test_a_cluster_that_cannot_be_read_keeps_what_was_last_seen(
    cluster: ServerThread, apis: tuple[k8s.AppsV1Api, k8s.CoreV1Api]
) -> None:
    create_k8s_deployment(cluster.url, "checkout", IMAGE.format("checkout", "1.4.2"), replicas=1)
    demo = DemoService(cluster.url, [Workload("checkout", "shop")], attempts=2, timeout_s=1)
    wait_for(lambda: seen(demo) == {("checkout", "stable", "1.4.2", 1)}, "one ready pod")
    post(cluster.url, "/_sandbox/faults", {"method": "GET", "path": "replicasets", "status": 503, "count": 2})
    assert seen(demo) == {("checkout", "stable", "1.4.2", 1)}
    assert samples(demo)[("demo_service_poll_errors_total", "namespace=shop", "service=checkout")] == 1
    # One failed attempt is retried and nothing is counted.
    post(cluster.url, "/_sandbox/faults", {"method": "GET", "path": "replicasets", "status": 500, "count": 1})
    assert seen(demo) == {("checkout", "stable", "1.4.2", 1)}
    assert samples(demo)[("demo_service_poll_errors_total", "namespace=shop", "service=checkout")] == 1


def query(prometheus: PrometheusServer, promql: str) -> float | None:
    url = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.mark.prometheus
def test_prometheus_sees_the_good_image_pass_and_the_bad_one_breach_the_playbooks_guard(
    cluster: ServerThread, apis: tuple[k8s.AppsV1Api, k8s.CoreV1Api], prometheus: PrometheusServer
) -> None:
    service = f"checkout-{uuid.uuid4().hex[:8]}"  # labels no other test in the session uses
    create_k8s_deployment(cluster.url, service, IMAGE.format(service, "1.4.2"), namespace="shop")
    create_k8s_deployment(cluster.url, service, IMAGE.format(service, "2.0.0-bad"), namespace="shop-staging")
    demo = DemoService(
        cluster.url, [Workload(service, "shop"), Workload(service, "shop-staging")], requests_per_pod=200
    )
    with ServerThread(create_demo_app(demo, poll_interval_s=0.2), name="demo") as exporter:
        prometheus.scrape(f"demo-{service}", [exporter.url.removeprefix("http://")], "1s")
        checks = {c.name: c for c in load_playbook("playbooks/checkout.yaml").guards["http"].checks}
        measured: dict[tuple[str, str], float] = {}
        for name in ("5xx ratio", "p99 latency"):
            for namespace in ("shop", "shop-staging"):
                promql = render(checks[name].query, {"service": service, "namespace": namespace})
                measured[(name, namespace)] = wait_for(
                    functools.partial(query, prometheus, promql), f"{name} in {namespace}"
                )
    ratio_max, latency_max = checks["5xx ratio"].max, checks["p99 latency"].max
    assert ratio_max is not None and latency_max is not None
    assert measured[("5xx ratio", "shop")] < ratio_max < measured[("5xx ratio", "shop-staging")]
    assert measured[("5xx ratio", "shop-staging")] == pytest.approx(0.25, abs=0.03)
    assert measured[("p99 latency", "shop")] < latency_max < measured[("p99 latency", "shop-staging")]


def test_serving_is_a_plain_value() -> None:
    w = Workload("checkout", "shop")
    assert Serving(w, "stable", "1.0.0", 2) == Serving(w, "stable", "1.0.0", 2)
    assert w.name == "checkout" and Workload("checkout", "shop", deployment="co").name == "co"
