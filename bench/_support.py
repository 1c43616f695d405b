"""What the engine benches share: the stack they start, the engine process they measure, the figures.

Why it exists: ``guard_scale``, ``throughput`` and ``recovery`` must measure the engine as it was
before issue 13 (a frozen copy run with ``PYTHONPATH=/work/before``) and as it is after, while the
engine's insides (scheduler, ticks, repository, orchestrator) are being rewritten. So they touch
only what survives that rewrite: the emulators' public faces, ``bot.container.build`` (in the child
process, ``_support_engine.py``), the store's ``deployments`` and events tables read with plain SQL,
the child's CPU from ``/proc``, and Prometheus's own request counters from its ``/metrics``.

The emulators run in threads of the bench process and the engine in a child process, so the
child's CPU is the engine's alone.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from _support_store import StoreReader, clone_deployments

__all__ = ["StoreReader", "clone_deployments"]  # the store's helpers, re-exported for the benches

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
TERMINAL = ("succeeded", "rejected", "expired", "cancelled", "failed", "rolled_back", "rollback_failed")
METRICS = ("bench_http_5xx_ratio", "bench_latency_p99_s", "bench_saturation")
"""The three checks of every benched guard: one metric each, all well inside their thresholds."""
THRESHOLDS = {"bench_http_5xx_ratio": 0.05, "bench_latency_p99_s": 1.0, "bench_saturation": 0.9}
HEALTHY = {"bench_http_5xx_ratio": 0.001, "bench_latency_p99_s": 0.12, "bench_saturation": 0.3}


def first(*names: str) -> Any:
    """The first ``module:attribute`` that imports (the emulators are moving into subpackages)."""
    problems = []
    for name in names:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{name}: {exc}")
    raise ImportError("; ".join(problems))


def tree() -> str:
    """Which Shipthread is under test (the folder ``bot`` was imported from)."""
    import bot

    return str(Path(bot.__file__).resolve().parents[1])


# The test helpers (a Prometheus server, remote write) come from the tree under test, beside its bot.
if tree() not in sys.path:
    sys.path.append(tree())


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "tree": tree(),
        "load_at_start": [round(x, 2) for x in load()],
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_results(name: str, doc: dict[str, Any]) -> Path:
    """``bench/results/<name>-<before|after>.json`` (before: the tree under test is not this one).

    Cases (``doc["cases"]``, keyed by their first field) measured earlier and not now are kept, so
    ``--counts 1000`` alone refreshes that row only.
    """
    label = "after" if Path(tree()) == BENCH.parent else "before"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{label}.json"
    if out.exists() and "cases" in doc:
        with contextlib.suppress(ValueError, KeyError, StopIteration):
            key = next(iter(doc["cases"][0]))
            fresh = {case[key] for case in doc["cases"]}
            kept = [case for case in json.loads(out.read_text())["cases"] if case[key] not in fresh]
            doc["cases"] = sorted(kept + doc["cases"], key=lambda case: case[key])
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


# -- the stack ------------------------------------------------------------------------------------


def server_thread(app: Any, name: str) -> Any:
    cls = first("bot.sandbox.server:ServerThread", "bot.sandbox:ServerThread")
    return cls(app, name=name)


def jenkins_app(time_scale: float) -> Any:
    return first("bot.sandbox.jenkins:create_jenkins_app")(time_scale=time_scale)


def kubernetes_app(time_scale: float) -> Any:
    return first("bot.sandbox.kubernetes:create_kubernetes_app")(time_scale=time_scale)


def service(i: int) -> str:
    return f"svc{i:04d}"


def kubernetes_target(name: str) -> dict[str, Any]:
    """A playbook's ``kubernetes`` section: the Deployment ``create_workloads`` makes for ``name``."""
    return {
        "cluster": "main",
        "namespace": "shop",
        "deployment": name,
        "container": "app",
        "image": f"registry.example.com/{name}:{{version}}",
    }


def guarded_playbook(
    name: str, run: str, *, interval: float, window: float, jenkins: bool, failure_limit: int = 0
) -> dict[str, Any]:
    """One service's playbook: rolling, no approvals, a guard of the three ``METRICS`` checks."""
    checks = [
        {
            "name": metric.removeprefix("bench_"),
            "query": f'max({metric}{{service="{{service}}",run="{run}"}})',
            "max": THRESHOLDS[metric],
        }
        for metric in METRICS
    ]
    book: dict[str, Any] = {
        "service": name,
        "kubernetes": kubernetes_target(name) | {"rollout_timeout": 120},
        "guards": {
            "http": {
                "interval": interval,
                "window": window,
                "failure_limit": failure_limit,
                "checks": checks,
            }
        },
        "environments": {"production": {"channel": "C0DEPLOYS", "strategy": "rolling", "guard": "http"}},
        "default_env": "production",
    }
    if jenkins:
        book["jenkins"] = {"job": f"{name}-build", "parameters": {"VERSION": "{version}"}}
    return book


def write_stack(
    folder: Path,
    books: list[dict[str, Any]],
    *,
    prometheus_url: str,
    jenkins: Any,
    kubernetes_url: str,
) -> dict[str, str]:
    """Config, playbooks, Jenkins jobs and Kubernetes Deployments; the environment to run with."""
    (folder / "playbooks").mkdir(parents=True, exist_ok=True)
    for book in books:
        (folder / "playbooks" / f"{book['service']}.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
    settings = {"clusters": {"main": {"server": kubernetes_url}}, "approver_groups": {"sre": ["U0BOB"]}}
    (folder / "shipthread.yaml").write_text(yaml.safe_dump(settings))
    emulator = first("bot.sandbox.jenkins:emulator_of")(jenkins.app)
    job_xml = first("bot.sandbox.jenkins:parameterized_job_xml")
    for book in books:
        if "jenkins" in book:
            emulator.create_job(book["jenkins"]["job"], job_xml("SHIPTHREAD_KEY", "VERSION"))
    create_workloads(kubernetes_url, [book["service"] for book in books])
    return stack_environ(folder, jenkins_url=jenkins.url, prometheus_url=prometheus_url)


def stack_environ(folder: Path, *, jenkins_url: str, prometheus_url: str) -> dict[str, str]:
    """The environment an engine runs with on the stack written in ``folder`` (its SQLite store there)."""
    return {
        "SHIPTHREAD_CONFIG": str(folder / "shipthread.yaml"),
        "SHIPTHREAD_PLAYBOOKS": str(folder / "playbooks"),
        "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'shipthread.db'}",
        "JENKINS_URL": jenkins_url,
        "JENKINS_USER": "shipthread",
        "JENKINS_TOKEN": "sandbox-token",
        "PROMETHEUS_URL": prometheus_url,
    }


@contextlib.contextmanager
def emulated_stack(
    prom: Any, folder: Path, books: list[dict[str, Any]], run: str
) -> Iterator[tuple[dict[str, str], StoreReader]]:
    """Jenkins and Kubernetes emulators in threads, the stack's files for ``books`` written and healthy
    series fed to ``prom``: yields the engine's environment and a reader of its store; the emulators
    stop on leaving."""
    with (
        server_thread(jenkins_app(0.02), "jenkins") as jenkins,
        server_thread(kubernetes_app(0.02), "kubernetes") as kubernetes,
    ):
        env = write_stack(
            folder, books, prometheus_url=prom.url, jenkins=jenkins, kubernetes_url=kubernetes.url
        )
        feed_healthy(prom.url, run, [book["service"] for book in books])
        yield env, StoreReader(env["SHIPTHREAD_DATABASE_URL"])


def create_workloads(url: str, names: list[str], version: str = "1") -> None:
    """Each service's Deployment as an operator would have it before Shipthread's first deploy (its
    image ``registry.example.com/<service>:<version>``), in a new namespace ``shop``."""
    from kubernetes import client as k8s

    # The client's models are typed; plain dicts are what it also takes (and what the tests send).
    api: Any = k8s.ApiClient(k8s.Configuration(host=url))
    try:
        core: Any = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "shop"}})
        apps: Any = k8s.AppsV1Api(api)
        for name in names:
            labels, image = {"app": name}, f"registry.example.com/{name}:{version}"
            apps.create_namespaced_deployment(
                "shop",
                {
                    "metadata": {"name": name, "labels": labels},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "app", "image": image}]},
                        },
                    },
                },
            )
    finally:
        api.close()


def feed_healthy(prometheus_url: str, run: str, names: list[str]) -> None:
    """A fresh healthy sample of every check's metric for every service (one remote write)."""
    series_cls = first("tests.support.promwrite:Series")
    push = first("tests.support.promwrite:push")
    now = int(time.time() * 1000)
    series = [
        series_cls({"__name__": metric, "service": name, "run": run}, [(now, HEALTHY[metric])])
        for name in names
        for metric in METRICS
    ]
    for i in range(0, len(series), 1000):
        push(prometheus_url, series[i : i + 1000])


def start_prometheus() -> Any:
    find = first("tests.support.prometheus:find_prometheus")
    binary = find()
    if binary is None:
        raise SystemExit(
            "prometheus is not installed (apt-get install -y --no-install-recommends prometheus)"
        )
    return first("tests.support.prometheus:PrometheusServer")(binary).start()


def prometheus_queries(prometheus_url: str) -> int:
    """Prometheus's own count of requests to its query endpoints, from its ``/metrics`` (black-box;
    reading it this way is not itself a query)."""
    with urllib.request.urlopen(f"{prometheus_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


# -- the engine process ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


class EngineProcess:
    """``_support_engine.py`` in a child process: the engine as ``bot.container`` builds it."""

    def __init__(
        self, env: dict[str, str], *, deploy: int = 0, log: Path | None = None, profile: Path | None = None
    ) -> None:
        argv = [sys.executable, str(BENCH / "_support_engine.py"), "--deploy", str(deploy)]
        if profile is not None:  # cProfile in every thread, dumped with statement counts on SIGTERM
            argv += ["--profile", str(profile)]
        self.log_path = log
        self._log: IO[bytes] | None = open(log, "ab") if log else None  # noqa: SIM115 -- closed in stop()
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL,
            text=True,
        )
        self.lines: dict[str, dict[str, Any]] = {}

    def wait_for(self, what: str, timeout: float) -> dict[str, Any]:
        """Read the child's JSON lines until ``{"event": what}`` (with the monotonic time it came)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while what not in self.lines:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(
                    f"engine process: no {what!r} (exit {self.proc.poll()}, log {self.log_path})"
                )
            line = self.proc.stdout.readline()
            if line.startswith("{"):
                doc = json.loads(line)
                doc["seen"] = time.monotonic()
                self.lines[doc["event"]] = doc
        return self.lines[what]

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()


@contextlib.contextmanager
def engine_process(
    env: dict[str, str], *, deploy: int = 0, log: Path | None = None, profile: Path | None = None
) -> Iterator[EngineProcess]:
    process = EngineProcess(env, deploy=deploy, log=log, profile=profile)
    try:
        yield process
    finally:
        process.stop()


def wait_until(check: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


@contextlib.contextmanager
def tail_on_error(engine: EngineProcess, lines: int = 30) -> Iterator[None]:
    """On a failure, print the end of the engine's log (it lives in a temp folder about to go)."""
    try:
        yield
    except BaseException:
        if engine.log_path is not None and engine.log_path.exists():
            print(
                "\n".join(engine.log_path.read_text(errors="replace").splitlines()[-lines:]), file=sys.stderr
            )
        raise


def exit_on_sigterm() -> None:
    """SIGTERM runs the ``finally`` blocks (Prometheus and the engine process are stopped, not orphaned)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
