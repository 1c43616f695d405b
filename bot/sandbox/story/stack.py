"""Everything ``shipthread sandbox`` runs: emulators, demo service, Prometheus and ``shipthread serve``.

The sandbox must be the real thing end to end, so ``serve`` runs as its own process (``python -m
bot serve``), configured the way an operator configures it: a config file, a playbooks folder and
the environment (secrets, endpoints, the SQLite database). This module imports no production
layer: it only writes files, starts processes and speaks HTTP to what it started.

Before ``serve`` starts, the world its playbooks expect is made to exist: their Slack channels
(through the Slack emulator's control API), their Jenkins jobs (declaring the parameters they
send), and their Kubernetes namespaces and Deployments at ``STABLE_VERSION`` (through the
emulated API server, as ``kubectl create`` would). The demo service serves traffic for each
Deployment; Prometheus (the Debian binary, when installed) scrapes it every second.

Everything started is stopped by ``close()`` — processes by their PID — also after a failure or
Ctrl-C (``with SandboxStack(...)``).
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import yaml

from bot.sandbox.demo_service import DemoService, Workload, create_demo_app
from bot.sandbox.jenkins import create_jenkins_app, parameterized_job_xml
from bot.sandbox.jenkins import emulator_of as jenkins_of
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackDriver, create_slack_app
from bot.sandbox.story import files as story_files
from bot.sandbox.story.processes import PrometheusProcess, ServeProcess, StackError, request_json, spawn_serve

INSTALL_PROMETHEUS: Final = "sudo apt-get install -y --no-install-recommends prometheus"
BOT_TOKEN: Final = "xoxb-sandbox"
JENKINS_USER: Final = "shipthread"
JENKINS_TOKEN: Final = "sandbox-token"
JENKINS_TIME_SCALE: Final = 0.5
"""A two-second emulated build takes one real second."""
KUBERNETES_TIME_SCALE: Final = 0.5


@dataclass(frozen=True)
class Target:
    """Where one environment of a playbook deploys."""

    service: str
    env: str
    namespace: str
    deployment: str
    container: str
    image: str
    canary: bool
    channel: str | None


def read_playbooks(folder: Path) -> list[dict[str, Any]]:
    """The playbook documents of ``folder`` (``*.yaml``/``*.yml``), as plain data.

    Only what the sandbox must create is read here; ``serve`` validates them fully and says what
    is wrong, file and line.
    """
    books = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise StackError(f"{path}: {exc}") from exc
        if isinstance(loaded, dict) and "service" in loaded:
            books.append(loaded)
    return books


def targets_of(book: Mapping[str, Any]) -> list[Target]:
    kube = book.get("kubernetes") or {}
    service = str(book["service"])
    found = []
    for env, spec in (book.get("environments") or {}).items():
        spec = spec or {}
        found.append(
            Target(
                service=service,
                env=str(env),
                namespace=str(spec.get("namespace") or kube.get("namespace") or "default"),
                deployment=str(spec.get("deployment") or kube.get("deployment") or service),
                container=str(kube.get("container") or "app"),
                image=str(kube.get("image") or f"registry.example.com/{service}:{{version}}"),
                canary=spec.get("strategy") == "canary",
                channel=str(spec["channel"]) if spec.get("channel") else None,
            )
        )
    return found


def channel_id_for(name: str) -> str:
    """An emulator channel id for a channel name (``deploys-staging`` → ``C0DEPLOYSST``)."""
    letters = re.sub(r"[^A-Z0-9]", "", name.upper())[:9]
    return f"C0{letters or secrets.token_hex(4).upper()}"


def sandbox_config(
    user_config: Mapping[str, Any], playbooks: list[dict[str, Any]], k8s_url: str
) -> dict[str, Any]:
    """A person's config pointed at the emulators: every cluster it or a playbook names is the emulator.

    Endpoints and the database come from the environment (which wins over the file); the rest —
    approver groups, freeze windows, concurrency — stays the person's.
    """
    doc = dict(user_config)
    names = set((doc.get("clusters") or {}).keys())
    for book in playbooks:
        names.add(str((book.get("kubernetes") or {}).get("cluster") or "default"))
        for spec in (book.get("environments") or {}).values():
            if isinstance(spec, dict) and spec.get("cluster"):
                names.add(str(spec["cluster"]))
    doc["clusters"] = {name: {"server": k8s_url} for name in sorted(names)}
    doc.pop("database_url", None)
    return doc


class SandboxStack:
    """Starts everything in order and stops it all in ``close()`` (also as a context manager).

    ``playbooks``/``config``: a person's own files (``--playbooks DIR --config FILE``); None: the
    sandbox's (``files``). ``prometheus``: the binary (None: run without; the story then
    leaves out what needs a guard).
    """

    def __init__(
        self,
        *,
        prometheus: str | None,
        playbooks: Path | None = None,
        config: Path | None = None,
        guarded: bool = True,
    ) -> None:
        self.prometheus_binary = prometheus
        self.user_playbooks = playbooks
        self.user_config = config
        self.guarded = guarded and prometheus is not None
        self.signing_secret = "sandbox-" + secrets.token_hex(16)
        self.folder = Path(tempfile.mkdtemp(prefix="shipthread-sandbox-"))
        self.slack: ServerThread | None = None
        self.jenkins: ServerThread | None = None
        self.kubernetes: ServerThread | None = None
        self.demo: ServerThread | None = None
        self.prometheus: PrometheusProcess | None = None
        self.serve: ServeProcess | None = None
        self.channels: dict[str, str] = dict(story_files.CHANNELS)
        """Channel name (without ``#``) → emulator id, for every channel a playbook names."""
        self.targets: list[Target] = []

    def __enter__(self) -> SandboxStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @classmethod
    def of_command(cls, prometheus: str | None, playbooks: str | None, config: str | None) -> SandboxStack:
        """The stack a command line asked for (``--playbooks DIR --config FILE``, or the sandbox's)."""
        return cls(
            prometheus=prometheus,
            playbooks=Path(playbooks) if playbooks else None,
            config=Path(config) if config else None,
        )

    @property
    def slack_url(self) -> str:
        assert self.slack is not None
        return self.slack.url

    def driver(self) -> SlackDriver:
        """What people do in Slack, sent to serve as Slack sends it (signed); after ``start()``."""
        assert self.serve is not None, "start() first"
        return SlackDriver(self.serve.events_url, self.signing_secret, self.slack_url)

    def start(self) -> None:
        # Rate limits off: the story is about Shipthread's behaviour, not about waiting out Slack tiers.
        self.slack = ServerThread(create_slack_app(rate_limits=False), name="slack").start()
        self.jenkins = ServerThread(create_jenkins_app(time_scale=JENKINS_TIME_SCALE), name="jenkins").start()
        self.kubernetes = ServerThread(
            create_kubernetes_app(time_scale=KUBERNETES_TIME_SCALE), name="kubernetes"
        ).start()
        books = self._playbooks()
        for book in books:
            self.targets += targets_of(book)
        self._create_world(books)
        workloads = [
            Workload(t.service, t.namespace, deployment=t.deployment, container=t.container)
            for t in self.targets
        ]
        service = DemoService(self.kubernetes.url, list(dict.fromkeys(workloads)))
        self.demo = ServerThread(create_demo_app(service, poll_interval_s=0.25), name="demo-service").start()
        prometheus_url = "http://127.0.0.1:9"  # nothing listens: a guard would see an error, never data
        if self.prometheus_binary is not None:
            target = self.demo.url.removeprefix("http://")
            self.prometheus = PrometheusProcess(self.prometheus_binary, [target]).launch()
            prometheus_url = self.prometheus.url
        # Serve's seconds of imports pass while Prometheus starts and scrapes; it is ready only with both.
        self.serve = spawn_serve(self.folder, self._serve_environ(books, prometheus_url))
        if self.prometheus is not None:
            # Every workload seen serving (count == number of workloads, all up) before a deployment:
            # a guard started earlier would judge a service it cannot see yet.
            expected = len(set(workloads))
            self.prometheus.wait_ready().wait_for_data(f"count(demo_service_up == 1) == bool {expected}")
        self.serve.wait_serving()

    def _serve_environ(self, books: list[dict[str, Any]], prometheus_url: str) -> dict[str, str]:
        assert self.slack is not None and self.jenkins is not None
        return {
            "SHIPTHREAD_CONFIG": str(self._write_config(books)),
            "SHIPTHREAD_PLAYBOOKS": str(self.folder / "playbooks"),
            "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'shipthread.db'}",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": self.signing_secret,
            "SLACK_API_URL": f"{self.slack.url}/api/",
            "JENKINS_URL": self.jenkins.url,
            "JENKINS_USER": JENKINS_USER,
            "JENKINS_TOKEN": JENKINS_TOKEN,
            "PROMETHEUS_URL": prometheus_url,
        }

    def _playbooks(self) -> list[dict[str, Any]]:
        out = self.folder / "playbooks"
        out.mkdir()
        if self.user_playbooks is None:
            books = [story_files.playbook(guarded=self.guarded)]
            for book in books:
                (out / f"{book['service']}.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
            return books
        if not self.user_playbooks.is_dir():
            raise StackError(f"--playbooks {self.user_playbooks}: not a folder")
        for path in self.user_playbooks.iterdir():
            if path.is_file():
                shutil.copy(path, out / path.name)
        books = read_playbooks(out)
        if not books:
            raise StackError(f"--playbooks {self.user_playbooks}: no playbook (*.yaml with a service)")
        return books

    def _write_config(self, books: list[dict[str, Any]]) -> Path:
        assert self.kubernetes is not None
        if self.user_config is None:
            doc = story_files.config(self.kubernetes.url)
        else:
            try:
                loaded = yaml.safe_load(self.user_config.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise StackError(f"--config {self.user_config}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise StackError(f"--config {self.user_config}: not a mapping of settings")
            doc = sandbox_config(loaded, books, self.kubernetes.url)
        self._add_approvers(doc)
        path = self.folder / "shipthread.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _add_approvers(self, doc: Mapping[str, Any]) -> None:
        """Every user id an approver group names becomes a person of the workspace (``as U01…``)."""
        assert self.slack is not None
        status, workspace = request_json("GET", f"{self.slack.url}/_sandbox/workspace")
        known = {str(u.get("id")) for u in (workspace or {}).get("users", [])} if status == 200 else set()
        wanted = {
            str(member)
            for members in (doc.get("approver_groups") or {}).values()
            for member in (members or [])
            if str(member).startswith("U") and str(member) not in known
        }
        if wanted:
            users = [{"id": uid, "name": uid.lower()} for uid in sorted(wanted)]
            request_json("POST", f"{self.slack.url}/_sandbox/users", {"users": users})

    def _create_world(self, books: list[dict[str, Any]]) -> None:
        assert self.slack is not None and self.jenkins is not None and self.kubernetes is not None
        jenkins = jenkins_of(self.jenkins.app)
        for book in books:
            job = (book.get("jenkins") or {}).get("job")
            if job:
                params = [str(p) for p in ((book.get("jenkins") or {}).get("parameters") or {})]
                jenkins.create_job(str(job), parameterized_job_xml("SHIPTHREAD_KEY", *params))
        wanted = {
            t.channel.removeprefix("#") for t in self.targets if t.channel and t.channel.startswith("#")
        }
        new = [{"id": self.channels.get(n) or channel_id_for(n), "name": n} for n in sorted(wanted)]
        for channel in new:
            self.channels[channel["name"]] = channel["id"]
        if new:
            status, answer = request_json("POST", f"{self.slack.url}/_sandbox/channels", {"channels": new})
            if status >= 400:
                raise StackError(f"cannot create the channels {new}: {answer}")
        for target in dict.fromkeys(self.targets):
            self._create_deployment(target)

    def _create_deployment(self, t: Target) -> None:
        """The workload as it runs before Shipthread's first deployment (a 409 means it exists)."""
        assert self.kubernetes is not None
        base = self.kubernetes.url
        request_json("POST", f"{base}/api/v1/namespaces", {"metadata": {"name": t.namespace}})
        # A canary's main Deployment selects track=stable, so it never adopts the canary's pods.
        labels = {"app": t.deployment, "track": "stable"} if t.canary else {"app": t.deployment}
        image = t.image.replace("{version}", story_files.STABLE_VERSION)
        for key, value in (("{service}", t.service), ("{env}", t.env), ("{namespace}", t.namespace)):
            image = image.replace(key, value)
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": t.deployment, "namespace": t.namespace, "labels": labels},
            "spec": {
                "replicas": story_files.REPLICAS,
                "progressDeadlineSeconds": 60,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": t.container, "image": image}]},
                },
            },
        }
        status, answer = request_json(
            "POST", f"{base}/apis/apps/v1/namespaces/{t.namespace}/deployments", body
        )
        if status >= 400 and status != 409:
            raise StackError(f"cannot create Deployment {t.namespace}/{t.deployment}: {answer}")

    def close(self) -> None:
        """Stop everything that was started, newest first; safe to call twice."""
        if self.serve is not None:
            self.serve.stop()
            self.serve = None
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        for name in ("demo", "kubernetes", "jenkins", "slack"):
            server: ServerThread | None = getattr(self, name)
            if server is not None:
                server.stop()
                setattr(self, name, None)
        shutil.rmtree(self.folder, ignore_errors=True)
