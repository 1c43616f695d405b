"""A demo service's ``/metrics``: traffic that follows what the Kubernetes emulator runs.

The sandbox's story needs a QoS guard with something real to watch: a real Prometheus scrapes this
exporter, and the guard's own PromQL (``playbooks/*.yaml``) reads what it serves. The traffic
follows the cluster: the exporter polls the Kubernetes emulator (plain HTTP GETs with a timeout and
a bounded retry — the sandbox uses no production client) for each service's ReplicaSets, and
every ready pod serves a steady number of requests a second. A pod's image decides how it behaves:
a known-bad version (by default any version containing ``bad``) answers about 25 % 5xx, slowly;
any other version fewer than 0.5 % 5xx, quickly. So deploying a bad image makes the guard breach,
and rolling back makes it pass, with nothing scripted.

What takes traffic: the pods of the Deployments ``<name>``, ``<name>-canary``, ``<name>-blue`` and
``<name>-green`` (the adapter's canary and blue-green conventions), each ReplicaSet on its own (a
rolling update serves both versions for a while), and only those the traffic Service's selector
matches when that Service exists (so only the live colour of a blue-green pair serves).

Series (labels the example playbooks' guards use):

- ``http_requests_total{service, namespace, track, version, code}`` (``code`` 200 or 500),
- ``http_request_duration_seconds{service, namespace, track, version}`` (histogram),
- ``payment_requests_total{…, outcome}`` and ``payment_authorisations_total`` for workloads that
  also speak the payments playbook's names (``Workload.payments``),
- ``demo_service_up{service, namespace}`` (1 while any pod serves), ``demo_service_ready_pods``
  and ``demo_service_poll_errors_total``. (``up`` itself is Prometheus' own, per scrape.)

Time is explicit: ``tick(seconds)`` advances the counters (tests never sleep); served with
``realtime=True`` the app polls and ticks by itself on the wall clock. Counts are derived from
each series' total requests, whole numbers, each one never decreasing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SUFFIXES: Final = {"": None, "-canary": "canary", "-blue": "blue", "-green": "green"}
"""Deployment name suffixes that belong to a workload, and the track each implies."""


@dataclass(frozen=True)
class Profile:
    """How a version behaves: its share of 5xx answers and its (log-normal) latency."""

    error_ratio: float
    median_s: float
    sigma: float

    def below(self, le: float) -> float:
        """The share of requests answered within ``le`` seconds."""
        z = (math.log(le) - math.log(self.median_s)) / (self.sigma * math.sqrt(2))
        return 0.5 * (1 + math.erf(z))

    @property
    def mean_s(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2)


GOOD: Final = Profile(error_ratio=0.002, median_s=0.05, sigma=0.6)
"""p99 ≈ 0.2 s, 0.2 % 5xx."""
BAD: Final = Profile(error_ratio=0.25, median_s=0.8, sigma=0.5)
"""p99 ≈ 2.5 s, 25 % 5xx."""


def contains_bad(version: str) -> bool:
    """The default rule: a version is bad when its name says so (``2.0.0-bad``)."""
    return "bad" in version.lower()


@dataclass(frozen=True)
class Workload:
    """One service in one namespace of the emulated cluster."""

    service: str
    namespace: str
    deployment: str = ""
    """The main Deployment's name (default: the service's)."""
    container: str = ""
    """The container whose image says the version (default: the first)."""
    traffic_service: str = ""
    """The Kubernetes Service whose selector picks the pods that take traffic (default: the
    Deployment's name); when it does not exist, every ready pod takes traffic."""
    payments: bool = False
    """Also serve the payments playbook's series (``payment_requests_total`` and friends)."""

    @property
    def name(self) -> str:
        return self.deployment or self.service


@dataclass(frozen=True)
class Serving:
    """Ready pods of one workload running one version on one track."""

    workload: Workload
    track: str
    version: str
    ready: int


@dataclass
class _Series:
    requests: float = 0.0


@dataclass
class _State:
    serving: dict[Workload, list[Serving]] = field(default_factory=dict)
    series: dict[tuple[Workload, str, str], _Series] = field(default_factory=dict)
    poll_errors: dict[Workload, int] = field(default_factory=dict)


class PollError(Exception):
    """The emulator could not be read (after the retries)."""


class DemoService(Collector):
    """The exporter's state: what the cluster serves (``refresh``) and what it has served (``tick``).

    Thread-safe: the sandbox's server thread and a test's thread may call it at once.
    """

    def __init__(
        self,
        kubernetes_url: str,
        workloads: Iterable[Workload],
        *,
        requests_per_pod: float = 10.0,
        bad_versions: Callable[[str], bool] | Collection[str] = contains_bad,
        good: Profile = GOOD,
        bad: Profile = BAD,
        timeout_s: float = 2.0,
        attempts: int = 3,
    ) -> None:
        self.kubernetes_url = kubernetes_url.rstrip("/")
        self.workloads = tuple(workloads)
        self.requests_per_pod = requests_per_pod
        self._is_bad = bad_versions if callable(bad_versions) else frozenset(bad_versions).__contains__
        self._good, self._bad = good, bad
        self._timeout_s = timeout_s
        self._attempts = max(1, attempts)
        self._lock = threading.Lock()
        self._state = _State()

    def profile(self, version: str) -> Profile:
        return self._bad if self._is_bad(version) else self._good

    # -- what the cluster runs -------------------------------------------------------------------

    def refresh(self) -> None:
        """Read each workload's ReplicaSets from the emulator; a workload that cannot be read keeps
        what was last seen (and counts a poll error)."""
        for workload in self.workloads:
            try:
                found = self._poll(workload)
            except PollError as exc:
                log.warning("demo service: cannot read %s/%s: %s", workload.namespace, workload.name, exc)
                with self._lock:
                    errors = self._state.poll_errors
                    errors[workload] = errors.get(workload, 0) + 1
                continue
            with self._lock:
                self._state.serving[workload] = found

    def serving(self) -> list[Serving]:
        with self._lock:
            return [s for found in self._state.serving.values() for s in found]

    def _get(self, path: str) -> Any | None:
        """GET ``path`` as JSON; None on 404; ``PollError`` once the attempts are spent."""
        url = f"{self.kubernetes_url}{path}"
        problem = "no attempt made"
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 1.0))
            try:
                with urllib.request.urlopen(url, timeout=self._timeout_s) as response:  # noqa: S310
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break  # a refusal: asking again gets the same answer
            except (urllib.error.URLError, OSError, ValueError) as exc:
                problem = str(exc)
        raise PollError(f"GET {path}: {problem}")

    def _poll(self, workload: Workload) -> list[Serving]:
        ns = urllib.parse.quote(workload.namespace, safe="")
        listing = self._get(f"/apis/apps/v1/namespaces/{ns}/replicasets")
        selector: Mapping[str, str] | None = None
        traffic = urllib.parse.quote(workload.traffic_service or workload.name, safe="")
        service = self._get(f"/api/v1/namespaces/{ns}/services/{traffic}")
        if isinstance(service, dict):
            selector = (service.get("spec") or {}).get("selector") or None
        ready: dict[tuple[str, str], int] = {}
        for rs in (listing or {}).get("items") or []:
            owner = _owner(rs)
            suffix = owner.removeprefix(workload.name) if owner.startswith(workload.name) else None
            if suffix not in SUFFIXES:
                continue
            pods = int((rs.get("status") or {}).get("readyReplicas") or 0)
            template = (rs.get("spec") or {}).get("template") or {}
            labels: dict[str, str] = (template.get("metadata") or {}).get("labels") or {}
            if pods <= 0 or (selector and any(labels.get(k) != v for k, v in selector.items())):
                continue
            track = labels.get("track") or SUFFIXES[suffix] or "stable"
            version = _version(template, workload.container)
            ready[(track, version)] = ready.get((track, version), 0) + pods
        return [Serving(workload, t, v, n) for (t, v), n in sorted(ready.items())]

    # -- what it served --------------------------------------------------------------------------

    def tick(self, seconds: float) -> None:
        """``seconds`` of traffic at the current pods (no-op for zero or less)."""
        if seconds <= 0:
            return
        with self._lock:
            for found in self._state.serving.values():
                for s in found:
                    series = self._state.series.setdefault((s.workload, s.track, s.version), _Series())
                    series.requests += s.ready * self.requests_per_pod * seconds

    def collect(self) -> Iterable[Metric]:
        """The metric families, for prometheus_client's registry."""
        with self._lock:
            series = sorted(
                ((w, t, v, s.requests) for (w, t, v), s in self._state.series.items()),
                key=lambda x: (x[0].service, x[0].namespace, x[1], x[2]),
            )
            serving = [s for found in self._state.serving.values() for s in found]
            errors = dict(self._state.poll_errors)
        base = ["service", "namespace", "track", "version"]
        requests = CounterMetricFamily("http_requests", "HTTP requests answered.", labels=[*base, "code"])
        latency = HistogramMetricFamily(
            "http_request_duration_seconds", "Time to answer an HTTP request.", labels=base
        )
        payments = CounterMetricFamily(
            "payment_requests", "Payment requests handled.", labels=[*base, "outcome"]
        )
        authorised = CounterMetricFamily("payment_authorisations", "Payments authorised.", labels=base)
        for workload, track, version, total in series:
            labels = [workload.service, workload.namespace, track, version]
            profile = self.profile(version)
            failed = math.floor(total * profile.error_ratio)
            ok = math.floor(total * (1 - profile.error_ratio))
            requests.add_metric([*labels, "200"], ok)
            requests.add_metric([*labels, "500"], failed)
            answered = ok + failed
            buckets = [(_le(le), math.floor(answered * profile.below(le))) for le in BUCKETS]
            latency.add_metric(labels, [*buckets, ("+Inf", answered)], answered * profile.mean_s)
            if workload.payments:
                payments.add_metric([*labels, "success"], ok)
                payments.add_metric([*labels, "error"], failed)
                authorised.add_metric(labels, ok)
        up = GaugeMetricFamily("demo_service_up", "1 while any pod takes traffic.", labels=base[:2])
        pods = GaugeMetricFamily("demo_service_ready_pods", "Ready pods taking traffic.", labels=base)
        poll = CounterMetricFamily(
            "demo_service_poll_errors", "Failed reads of the cluster.", labels=base[:2]
        )
        for workload in self.workloads:
            mine = [s for s in serving if s.workload == workload]
            up.add_metric([workload.service, workload.namespace], 1.0 if mine else 0.0)
            poll.add_metric([workload.service, workload.namespace], errors.get(workload, 0))
            for s in mine:
                pods.add_metric([workload.service, workload.namespace, s.track, s.version], s.ready)
        families = [requests, latency, up, pods, poll]
        if any(w.payments for w in self.workloads):
            families += [payments, authorised]
        return families

    def exposition(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry)


def _owner(rs: Mapping[str, Any]) -> str:
    for ref in (rs.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Deployment":
            return str(ref.get("name", ""))
    return ""


def _version(template: Mapping[str, Any], container: str) -> str:
    """The tag of the container's image (``registry/checkout:1.4.2`` → ``1.4.2``)."""
    containers = (template.get("spec") or {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == container), containers[0] if containers else {})
    image = str(chosen.get("image", ""))
    name, _, digest = image.partition("@")
    if digest:
        return digest
    _, colon, tag = name.rpartition(":")
    return tag if colon and "/" not in tag else "latest"


def _le(bound: float) -> str:
    return f"{bound:g}"


# -- serving it ----------------------------------------------------------------------------------

DEMO_SERVICE: Final = web.AppKey("demo_service", DemoService)


def create_demo_app(
    service: DemoService, *, realtime: bool = True, poll_interval_s: float = 1.0
) -> web.Application:
    """``/metrics`` and a small control API; with ``realtime`` it polls and ticks by itself.

    - ``GET /_sandbox/state``: the pods it sees taking traffic
    - ``POST /_sandbox/tick`` ``{"seconds": 60}``: that much traffic now (a story's fast-forward)
    - ``POST /_sandbox/refresh``: read the cluster now
    """
    app = web.Application()
    app[DEMO_SERVICE] = service

    async def metrics(request: web.Request) -> web.Response:
        body = service.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def state(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "serving": [_serving_json(s) for s in service.serving()]})

    async def tick(request: web.Request) -> web.Response:
        try:
            seconds = float((await request.json()).get("seconds", 0))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"ok": False, "error": "seconds must be a number"}, status=400)
        service.tick(seconds)
        return web.json_response({"ok": True})

    async def refresh(request: web.Request) -> web.Response:
        await asyncio.to_thread(service.refresh)
        return await state(request)

    async def run_in_real_time(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_real_time(service, poll_interval_s)) if realtime else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_sandbox/state", state)
    app.router.add_post("/_sandbox/tick", tick)
    app.router.add_post("/_sandbox/refresh", refresh)
    app.cleanup_ctx.append(run_in_real_time)
    return app


async def _real_time(service: DemoService, interval_s: float) -> None:
    last = time.monotonic()
    while True:
        await asyncio.to_thread(service.refresh)  # urllib is blocking: never on the loop itself
        await asyncio.sleep(interval_s)
        now = time.monotonic()
        service.tick(now - last)  # the pods seen at the last refresh served the time since
        last = now


def _serving_json(s: Serving) -> dict[str, Any]:
    w = s.workload
    return {
        "service": w.service,
        "namespace": w.namespace,
        "track": s.track,
        "version": s.version,
        "ready": s.ready,
    }
