"""A whole Shipthread stack for engine tests: emulators, a real Prometheus, a SQLite store, the engine.

Built through ``bot.container.build`` from a config file and playbook files written to a temp
folder, exactly as ``shipthread serve`` builds it; only Slack is replaced by the recording chat.
Every stack gets a fresh ``run`` label so its Prometheus series never meet another test's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from bot.adapters.retrying import RetryPolicy
from bot.config import load_settings
from bot.container import Runtime, build
from bot.domain.deployment import Deployment
from bot.playbooks import load_playbooks
from bot.sandbox.chat import RecordingChat
from bot.sandbox.jenkins import JenkinsEmulator
from bot.sandbox.server import ServerThread
from bot.store.migrate import upgrade
from tests.support.prometheus import PrometheusServer
from tests.support.promwrite import Series, push

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


@dataclass
class Stack:
    runtime: Runtime
    chat: RecordingChat
    jenkins: JenkinsEmulator
    k8s_url: str
    prometheus: PrometheusServer
    run: str
    folder: Path

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.runtime.engine

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.runtime.store

    def ratio(self, service: str, value: float) -> None:
        """Make the service's 5xx ratio ``value`` from now on (a fresh sample at the current time)."""
        now = int(time.time() * 1000)
        labels = {"__name__": RATIO, "service": service, "run": self.run}
        push(self.prometheus.url, [Series(labels, [(now, value)])])

    async def get(self, deployment_id: str) -> Deployment:
        dep = await self.store.get_deployment(deployment_id)
        assert dep is not None
        return dep

    async def drive(
        self,
        deployment_id: str,
        until: Callable[[Deployment], bool],
        timeout: float = 30.0,
        step: float = 0.05,
    ) -> Deployment:
        """Tick the engine by hand until the deployment satisfies ``until`` (or fail with its phase)."""
        deadline = time.monotonic() + timeout
        dep = await self.get(deployment_id)
        while not until(dep):
            if time.monotonic() > deadline:
                raise AssertionError(f"{deployment_id} stuck in {dep.phase} (step {dep.step}): {dep.reason}")
            await self.engine.tick()
            await asyncio.sleep(step)
            dep = await self.get(deployment_id)
        return dep

    async def tick_for(self, seconds: float, step: float = 0.05) -> None:
        """Tick the engine by hand for ``seconds`` of real time (a window's worth, say)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.engine.tick()
            await asyncio.sleep(step)

    async def end_watches(self, timeout: float = 15.0) -> None:
        """Tick until no post-rollback watch is running (or fail)."""
        deadline = time.monotonic() + timeout
        while await self.store.active_watches():
            assert time.monotonic() < deadline, "the post-rollback watch never ended"
            await self.engine.tick()
            await asyncio.sleep(0.05)

    async def finish(self, deployment_id: str, timeout: float = 30.0) -> Deployment:
        return await self.drive(deployment_id, lambda d: d.phase.terminal, timeout)


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
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "progressDeadlineSeconds": deadline_s,
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
    emulator = emulator_of(jenkins.app)
    for book in books:
        if "jenkins" in book:
            emulator.create_job(book["jenkins"]["job"], parameterized_job_xml("SHIPTHREAD_KEY", "VERSION"))
    return {
        "SHIPTHREAD_CONFIG": str(folder / "shipthread.yaml"),
        "SHIPTHREAD_PLAYBOOKS": str(folder / "playbooks"),
        "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'shipthread.db'}",
        "JENKINS_URL": jenkins.url,
        "PROMETHEUS_URL": prometheus_url,
        "JENKINS_USER": "shipthread",
        "JENKINS_TOKEN": "sandbox-token",
    }


async def build_from_files(environ: dict[str, str], chat: RecordingChat, **build_options: Any) -> Runtime:
    """The engine exactly as the files and environment describe it (what a process would build)."""
    settings = load_settings(environ["SHIPTHREAD_CONFIG"], environ)
    await upgrade(settings.database_url)
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
    return Stack(runtime, chat, emulator_of(jenkins.app), kubernetes.url, prometheus, run, folder)


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
