"""A whole Shipthread stack for engine tests: emulators, a real Prometheus, a SQLite store, the engine.

Built through ``bot.container.build`` from a config file and playbook files written to a temp
folder, exactly as ``shipthread serve`` builds it; only Slack is replaced by the recording chat.
Every stack gets a fresh ``run`` label so its Prometheus series never meet another test's.

Two kinds of stack answer the same questions (``image``, ``builds``, ``ratio``, ``drive``...), so a
scenario test is written once and runs on either: ``Stack`` on the emulators and a real Prometheus,
on the real clock; ``tests.engine.fast_stack.MemoryStack`` on the in-memory stand-ins
(``bot.sandbox.memory``) and a manual clock it advances itself. ``BOTH`` parametrizes a test over
the two; a test with a ``systems`` argument and no parametrization of its own runs on the memory one.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as kubernetes_client

from bot.adapters.retrying import RetryPolicy
from bot.config import load_settings
from bot.container import Runtime, build
from bot.domain.deployment import Deployment
from bot.engine.engine import Engine
from bot.playbooks import load_playbooks
from bot.ports import Chat
from bot.sandbox.chat import RecordingChat
from bot.sandbox.jenkins import BuildRecord, BuildScript, JenkinsEmulator
from bot.sandbox.server import ServerThread
from bot.store.migrate import upgrade
from bot.store.repository import Repository
from tests.support.k8s_emulator import deployment_body
from tests.support.prometheus import PrometheusServer
from tests.support.promwrite import Series, push

# The kubernetes client's models are typed strictly; setting up a test cluster from plain dicts is
# what it does at run time, so the tests use it untyped.
k8s: Any = kubernetes_client

MEMORY = pytest.param("memory", marks=pytest.mark.fast, id="memory")
EMULATORS = pytest.param("emulators", marks=pytest.mark.prometheus, id="emulators")
BOTH = pytest.mark.parametrize("systems", [MEMORY, EMULATORS])
"""Run a scenario on the in-memory stand-ins (the fast tier) and on the emulators (real clients)."""

FAST_RETRY = RetryPolicy(attempts=3, total_s=3.0, initial_s=0.05, max_wait_s=0.2, jitter_s=0.02)
RATIO = "service:http_5xx_ratio:rate1m"


def playbook(
    service: str,
    run: str,
    *,
    strategy: str = "rolling",
    steps: tuple[int, ...] = (25, 50),
    approvals: list[dict[str, Any]] | None = None,
    interval: float = 0.2,
    window: float = 0.6,
    failure_limit: int = 0,
    no_data: str = "fail",
    on_breach: str = "rollback",
    jenkins: bool = True,
    requires_staging: bool = False,
) -> dict[str, Any]:
    """A playbook dict whose guard reads ``RATIO`` for this service under this stack's run label."""
    env: dict[str, Any] = {"channel": "C0DEPLOYS", "strategy": strategy, "guard": "http"}
    if strategy == "canary":
        env["canary"] = {"steps": list(steps)}
    if strategy == "blue-green":
        env["blue_green"] = {"service": service, "colour_label": "color"}
    if approvals:
        env["approvals"] = approvals
    environments: dict[str, Any] = {}
    if requires_staging:
        environments["staging"] = {"channel": "C0DEPLOYS", "guard": "http"}
        env["requires"] = [{"succeeded_in": "staging"}]
    environments["production"] = env
    book: dict[str, Any] = {
        "service": service,
        "kubernetes": {
            "cluster": "main",
            "namespace": "shop",
            "deployment": service,
            "container": "app",
            "image": f"registry.example.com/{service}:{{version}}",
            "rollout_timeout": 30,
        },
        "guards": {
            "http": {
                "interval": interval,
                "window": window,
                "failure_limit": failure_limit,
                "no_data": no_data,
                "on_breach": on_breach,
                "checks": [
                    {
                        "name": "5xx ratio",
                        "query": f'max({RATIO}{{service="{{service}}",run="{run}"}})',
                        "max": 0.05,
                    }
                ],
            }
        },
        "environments": environments,
        "default_env": "production",
    }
    if jenkins:
        book["jenkins"] = {"job": f"{service}-build", "parameters": {"VERSION": "{version}"}}
    return book


class Driving:
    """Driving an engine by hand, tick by tick, on whichever clock the stack runs (``elapsed``/``pause``)."""

    runtime: Runtime
    step = 0.05
    """Seconds between two ticks when a test does not say."""

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def store(self) -> Repository:
        return self.runtime.store

    def elapsed(self) -> float:
        """Seconds on the stack's clock (any origin): deadlines are measured on it."""
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass on the stack's clock between two ticks."""
        raise NotImplementedError

    async def get(self, deployment_id: str) -> Deployment:
        dep = await self.store.get_deployment(deployment_id)
        assert dep is not None
        return dep

    async def drive(
        self,
        deployment_id: str,
        until: Callable[[Deployment], bool],
        timeout: float = 30.0,
        step: float | None = None,
    ) -> Deployment:
        """Tick the engine by hand until the deployment satisfies ``until`` (or fail with its phase)."""
        deadline = self.elapsed() + timeout
        dep = await self.get(deployment_id)
        while not until(dep):
            if self.elapsed() > deadline:
                raise AssertionError(f"{deployment_id} stuck in {dep.phase} (step {dep.step}): {dep.reason}")
            await self.engine.tick()
            await self.pause(step or self.step)
            dep = await self.get(deployment_id)
        return dep

    async def tick_for(self, seconds: float, step: float | None = None) -> None:
        """Tick the engine by hand for ``seconds`` of real time (a window's worth, say)."""
        deadline = self.elapsed() + seconds
        while self.elapsed() < deadline:
            await self.engine.tick()
            await self.pause(step or self.step)

    async def end_watches(self, timeout: float = 15.0) -> None:
        """Tick until no post-rollback watch is running (or fail)."""
        deadline = self.elapsed() + timeout
        while await self.store.active_watches():
            assert self.elapsed() < deadline, "the post-rollback watch never ended"
            await self.engine.tick()
            await self.pause(self.step)

    async def finish(self, deployment_id: str, timeout: float = 30.0) -> Deployment:
        return await self.drive(deployment_id, lambda d: d.phase.terminal, timeout)


@dataclass
class Stack(Driving):
    runtime: Runtime
    chat: RecordingChat
    jenkins: JenkinsEmulator
    k8s_url: str
    prometheus: PrometheusServer
    run: str
    folder: Path
    kubernetes: ServerThread | None = None

    def elapsed(self) -> float:
        return time.monotonic()

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def ratio(self, service: str, value: float) -> None:
        """Make the service's 5xx ratio ``value`` from now on (a fresh sample at the current time)."""
        now = int(time.time() * 1000)
        labels = {"__name__": RATIO, "service": service, "run": self.run}
        push(self.prometheus.url, [Series(labels, [(now, value)])])

    # -- what a scenario asks of the systems around the engine (the memory stack answers the same) --

    def add_workload(self, service: str, image: str) -> None:
        """The service's Deployment as the operator made it, before Shipthread's first deployment."""
        create_k8s_deployment(self.k8s_url, service, image)

    def image(self, name: str) -> str:
        return k8s_image(self.k8s_url, name)

    def replicas(self, name: str) -> int:
        return int(k8s_deployment(self.k8s_url, name)["spec"]["replicas"])

    def selector(self, service: str) -> dict[str, str]:
        api = k8s.ApiClient(k8s.Configuration(host=self.k8s_url))
        try:
            return dict(k8s.CoreV1Api(api).read_namespaced_service(service, "shop").spec.selector)
        finally:
            api.close()

    def blue_green(self, service: str) -> None:
        """Before the first switch the main Deployment's pods are the live colour (blue), which the
        Service selects."""
        api = k8s.ApiClient(k8s.Configuration(host=self.k8s_url))
        try:
            k8s.AppsV1Api(api).patch_namespaced_deployment(
                service, "shop", {"spec": {"template": {"metadata": {"labels": {"color": "blue"}}}}}
            )
            k8s.CoreV1Api(api).create_namespaced_service(
                "shop",
                {
                    "metadata": {"name": service},
                    "spec": {"selector": {"app": service, "color": "blue"}, "ports": [{"port": 80}]},
                },
            )
        finally:
            api.close()

    def set_bad_images(self, patterns: list[str]) -> None:
        from bot.sandbox.kubernetes import kubernetes_sandbox

        assert self.kubernetes is not None, "this stack was built without its Kubernetes server"
        kubernetes_sandbox(self.kubernetes.app).set_bad_images(patterns)

    def builds(self, job: str | None = None) -> list[BuildRecord]:
        return self.jenkins.builds(job)

    def script_build(self, job: str, *, result: str, console: str) -> None:
        self.jenkins.script(job, BuildScript(result=result, console=console))

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass without ticking the engine."""
        await asyncio.sleep(seconds)


def create_k8s_deployment(
    url: str,
    name: str,
    image: str,
    replicas: int = 2,
    namespace: str = "shop",
    deadline_s: int = 20,
    track: bool = False,
) -> None:
    """The workload as an operator would have it before Shipthread's first deployment."""
    api = k8s.ApiClient(k8s.Configuration(host=url))
    try:
        core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        try:
            core.create_namespace({"metadata": {"name": namespace}})
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
        # Canary needs the main Deployment's pods to carry track=stable (its selector too), so
        # that it never adopts the canary's pods; the Service selects on app only.
        labels = {"app": name, "track": "stable"} if track else {"app": name}
        apps.create_namespaced_deployment(
            namespace, deployment_body(name, image, replicas=replicas, deadline_s=deadline_s, labels=labels)
        )
    finally:
        api.close()


def k8s_image(url: str, name: str, namespace: str = "shop") -> str:
    api = k8s.ApiClient(k8s.Configuration(host=url))
    try:
        dep = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)
        return str(dep.spec.template.spec.containers[0].image)
    finally:
        api.close()


def write_stack_files(
    folder: Path,
    prometheus_url: str,
    jenkins: ServerThread,
    kubernetes_url: str,
    books: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Config, playbooks and Jenkins jobs for a stack; returns the environment to run it with."""
    from bot.sandbox.jenkins import emulator_of, parameterized_job_xml

    environ = write_config_files(folder, prometheus_url, jenkins.url, kubernetes_url, books, config)
    emulator = emulator_of(jenkins.app)
    for book in books:
        if "jenkins" in book:
            emulator.create_job(book["jenkins"]["job"], parameterized_job_xml("SHIPTHREAD_KEY", "VERSION"))
    return environ


def write_config_files(
    folder: Path,
    prometheus_url: str,
    jenkins_url: str,
    kubernetes_url: str,
    books: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The config file and playbooks of a stack; returns the environment to run it with."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbooks").mkdir(exist_ok=True)
    for book in books:
        (folder / "playbooks" / f"{book['service']}.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
    settings_doc: dict[str, Any] = {
        "clusters": {"main": {"server": kubernetes_url}},
        "approver_groups": {"sre": ["U0BOB", "U0CAROL"], "leads": ["U0DAVE"], "oncall": ["U0ERIN"]},
        "break_glass": "oncall",
        **(config or {}),
    }
    (folder / "shipthread.yaml").write_text(yaml.safe_dump(settings_doc))
    return {
        "SHIPTHREAD_CONFIG": str(folder / "shipthread.yaml"),
        "SHIPTHREAD_PLAYBOOKS": str(folder / "playbooks"),
        "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'shipthread.db'}",
        "JENKINS_URL": jenkins_url,
        "PROMETHEUS_URL": prometheus_url,
        "JENKINS_USER": "shipthread",
        "JENKINS_TOKEN": "sandbox-token",
    }


_template: list[Path] = []
SQLITE = "sqlite+aiosqlite:///"


async def prepare_database(url: str) -> None:
    """Bring a stack's database to the current schema. A SQLite file not made yet becomes a copy of
    one migrated once per process (the migrations cost more than a whole scenario on the stand-ins);
    any other database is upgraded as ``shipthread db upgrade`` would."""
    path = Path(url.removeprefix(SQLITE)) if url.startswith(SQLITE) else None
    if path is None or path.exists():
        await upgrade(url)
        return
    if not _template:
        template = Path(tempfile.mkdtemp(prefix="shipthread-schema-")) / "template.db"
        await upgrade(SQLITE + str(template))
        _template.append(template)
    shutil.copyfile(_template[0], path)


async def build_from_files(environ: dict[str, str], chat: Chat, **build_options: Any) -> Runtime:
    """The engine exactly as the files and environment describe it (what a process would build)."""
    settings = load_settings(environ["SHIPTHREAD_CONFIG"], environ)
    await prepare_database(settings.database_url)
    playbooks = load_playbooks(environ["SHIPTHREAD_PLAYBOOKS"])
    build_options.setdefault("use_scheduler", False)
    build_options.setdefault("retry", FAST_RETRY)
    build_options.setdefault("poll_interval_s", 0.1)
    return build(settings, playbooks, chat=chat, **build_options)


async def make_stack(
    folder: Path,
    prometheus: PrometheusServer,
    jenkins: ServerThread,
    kubernetes: ServerThread,
    books: list[dict[str, Any]],
    *,
    run: str,
    config: dict[str, Any] | None = None,
    chat: RecordingChat | None = None,
    **build_options: Any,
) -> Stack:
    from bot.sandbox.jenkins import emulator_of

    environ = write_stack_files(folder, prometheus.url, jenkins, kubernetes.url, books, config)
    chat = chat or RecordingChat()
    runtime = await build_from_files(environ, chat, **build_options)
    return Stack(runtime, chat, emulator_of(jenkins.app), kubernetes.url, prometheus, run, folder, kubernetes)


def new_run() -> str:
    return uuid.uuid4().hex[:10]


def k8s_deployment(url: str, name: str, namespace: str = "shop") -> dict[str, Any]:
    """The Deployment as the API server returns it (JSON), read with the kubernetes client."""
    api = k8s.ApiClient(k8s.Configuration(host=url))
    try:
        dep = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)
        return dict(api.sanitize_for_serialization(dep))
    finally:
        api.close()
