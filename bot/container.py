"""The composition root: the one place that builds the adapters and wires them into the engine.

Everything else depends on ports; only this module knows that the CI is Jenkins, the cluster is
Kubernetes, the metrics are Prometheus and the store is SQLAlchemy. Tests, the sandbox and
``shipthread serve`` all build their engine here, so what is tested is what runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot.adapters.directory import ConfigDirectory, HandleResolver
from bot.adapters.jenkins import JenkinsCI
from bot.adapters.k8s_access import ClusterAccess
from bot.adapters.kubernetes import KubernetesCluster
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.retrying import RetryPolicy
from bot.config import Settings
from bot.domain.playbook import Playbook
from bot.engine.context import Context
from bot.engine.engine import Engine
from bot.engine.orchestrator import TransitionHook
from bot.engine.policy import Concurrency, EnginePolicy, SystemClock
from bot.errors import ConfigError
from bot.ports import Chat, Clock
from bot.store.db import create_engine
from bot.store.repository import Repository

log = logging.getLogger("shipthread.container")


@dataclass
class Runtime:
    """A wired engine and the resources to release when it stops."""

    engine: Engine
    store: Repository
    ci: JenkinsCI
    cluster: KubernetesCluster
    metrics: PrometheusMetrics

    async def close(self) -> None:
        await self.engine.stop()
        self.ci.close()
        self.cluster.close()
        self.metrics.close()
        await self.store.engine.dispose()


def cluster_access(settings: Settings) -> dict[str, ClusterAccess]:
    """Config's clusters as the adapter wants them (kubeconfig contexts or server URLs)."""
    clusters: dict[str, ClusterAccess] = {}
    for name, spec in settings.clusters.items():
        if spec.server is not None:
            clusters[name] = ClusterAccess(server=str(spec.server).rstrip("/"), verify_tls=not spec.insecure)
        else:
            clusters[name] = ClusterAccess(context=spec.context, kubeconfig=settings.kubeconfig)
    return clusters


def engine_policy(settings: Settings, poll_interval_s: float | None = None) -> EnginePolicy:
    """The engine's policy from config (``poll_interval_s`` for tests and the sandbox)."""
    policy = EnginePolicy(
        break_glass_group=settings.break_glass,
        freezes=settings.freezes(),
        concurrency=Concurrency(settings.concurrency.value),
        approval_ttl=settings.approval_ttl,
    )
    return policy if poll_interval_s is None else replace(policy, poll_interval_s=poll_interval_s)


def build(
    settings: Settings,
    playbooks: Mapping[str, Playbook],
    *,
    chat: Chat,
    clock: Clock | None = None,
    resolve_handle: HandleResolver | None = None,
    on_transition: TransitionHook | None = None,
    use_scheduler: bool = True,
    guard_resolution_s: float = 0.25,
    retry: RetryPolicy | None = None,
    poll_interval_s: float | None = None,
) -> Runtime:
    """Wire an engine from config. The database schema must exist (``shipthread db upgrade``)."""
    if settings.jenkins.url is None:
        raise ConfigError("jenkins.url (or JENKINS_URL) is not set")
    if settings.prometheus.url is None:
        raise ConfigError("prometheus.url (or PROMETHEUS_URL) is not set")
    secrets = settings.secrets
    user = secrets.jenkins_user.get_secret_value() if secrets.jenkins_user else ""
    token = secrets.jenkins_token.get_secret_value() if secrets.jenkins_token else ""
    store = Repository(create_engine(settings.database_url))
    ci = JenkinsCI(
        str(settings.jenkins.url).rstrip("/"),
        user,
        token,
        timeout_s=settings.jenkins.timeout.total_seconds(),
        policy=retry,
    )
    cluster = KubernetesCluster(cluster_access(settings), policy=retry)
    metrics = PrometheusMetrics(
        str(settings.prometheus.url).rstrip("/"),
        timeout_s=settings.prometheus.timeout.total_seconds(),
        policy=retry,
    )
    directory = ConfigDirectory(settings.approver_groups, resolve_handle)
    ctx = Context(
        store=store,
        ci=ci,
        cluster=cluster,
        metrics=metrics,
        chat=chat,
        directory=directory,
        clock=clock or SystemClock(),
        playbooks=playbooks,
        policy=engine_policy(settings, poll_interval_s),
        default_channel=settings.slack.default_channel,
    )
    engine = Engine(
        ctx, on_transition=on_transition, use_scheduler=use_scheduler, guard_resolution_s=guard_resolution_s
    )
    return Runtime(engine, store, ci, cluster, metrics)
