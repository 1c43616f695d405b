"""The composition root: the one place that builds the adapters and wires them into the engine.

Everything else depends on ports; only this module knows that the CI is Jenkins, the cluster is
Kubernetes, the metrics are Prometheus and the store is SQLAlchemy. Tests, the sandbox and
``shipthread serve`` all build their engine here, so what is tested is what runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs
from bot.adapters.directory import ConfigDirectory, HandleResolver
from bot.adapters.jenkins import JenkinsCI
from bot.adapters.k8s_access import ClusterAccess
from bot.adapters.kubernetes import KubernetesCluster
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.retrying import RetryPolicy
from bot.adapters.slack_charts import ChartOptions, SlackChartPoster
from bot.adapters.slack_notifier import ChannelFor, NotifierOptions, Planner, SlackNotifier
from bot.adapters.slack_pacing import Pacing
from bot.adapters.slack_wire import CallObserver
from bot.config import Settings
from bot.domain.playbook import Playbook
from bot.domain.redact import Redactor
from bot.engine.context import Context
from bot.engine.engine import Engine
from bot.engine.orchestrator import IdSource, TransitionHook
from bot.engine.policy import Concurrency, EnginePolicy, SystemClock
from bot.errors import ConfigError
from bot.ports import ChartPoster, Chat, Clock
from bot.store.db import create_engine
from bot.store.lease import DatabaseLease
from bot.store.repository import Repository
from bot.store.threads import ThreadStore

log = logging.getLogger("shipthread.container")


@dataclass
class Runtime:
    """A wired engine and the resources to release when it stops."""

    engine: Engine
    store: Repository
    ci: JenkinsCI
    cluster: KubernetesCluster
    metrics: PrometheusMetrics
    notifier: SlackNotifier | None = None
    chart_metrics: PrometheusMetrics | None = None
    """The charts' own Prometheus adapter (one thread), so their range queries never queue the guard's."""
    """The Slack notifier when the engine's chat is one (``slack_notifier``): closed after the engine."""
    charts: SlackChartPoster | None = None
    """The verdicts' chart poster when one is wired (``chart_poster``): closed after the engine."""

    async def close(self) -> None:
        await self.engine.stop()
        await self.engine.ticks.charts.drain(2.0)  # a chart under way gets a moment, not more
        await self.engine.ticks.charts.close()
        if self.charts is not None:
            await self.charts.close()
        if self.notifier is not None:
            await self.notifier.close()  # sends what the engine said last (bounded), then stops
        self.ci.close()
        self.cluster.close()
        self.metrics.close()
        if self.chart_metrics is not None:
            self.chart_metrics.close()
        await self.store.engine.dispose()


def cluster_access(settings: Settings) -> dict[str, ClusterAccess]:
    """Config's clusters as the adapter wants them (kubeconfig contexts, server URLs, in-cluster)."""
    clusters: dict[str, ClusterAccess] = {}
    for name, spec in settings.clusters.items():
        if spec.in_cluster:
            clusters[name] = ClusterAccess(in_cluster=True)
        elif spec.server is not None:
            clusters[name] = ClusterAccess(server=str(spec.server).rstrip("/"), verify_tls=not spec.insecure)
        else:
            clusters[name] = ClusterAccess(context=spec.context, kubeconfig=settings.kubeconfig)
    return clusters


def known_secrets(settings: Settings) -> list[str]:
    """The values Shipthread holds that must never leave the process.

    The Slack tokens and signing secret, the Jenkins API token and the database password (as written
    in the URL and decoded). Not the Jenkins user: it is a name, shown in error messages on purpose,
    and masking it would mask every ``shipthread`` in the logs.
    """
    secrets = settings.secrets
    values = [
        held.get_secret_value()
        for held in (
            secrets.slack_bot_token,
            secrets.slack_signing_secret,
            secrets.slack_app_token,
            secrets.jenkins_token,
        )
        if held is not None
    ]
    try:
        password = urlsplit(settings.database_url).password
    except ValueError:
        password = None
    if password:
        values += [password, unquote(password)]
    return values


def redactor(settings: Settings) -> Redactor:
    """The redactor for everything the process sends out: the settings' secrets and credential shapes."""
    return Redactor(known_secrets(settings))


def thread_channels(settings: Settings, playbooks: Mapping[str, Playbook]) -> list[str]:
    """Every channel a deployment's thread may go to (checked at start and by ``/readyz``)."""
    found = {env.channel for book in playbooks.values() for env in book.environments.values() if env.channel}
    if settings.slack.default_channel:
        found.add(settings.slack.default_channel)
    return sorted(found)


def slack_notifier(
    settings: Settings,
    database: AsyncEngine,
    planner: Planner,
    *,
    channel_for: ChannelFor,
    channels: Iterable[str] = (),
    options: NotifierOptions | None = None,
    on_call: CallObserver | None = None,
) -> SlackNotifier:
    """The Slack notifier on the bot's database, with the bot token, ``SLACK_API_URL``, the pacing
    and the timeout from config, and every payload through the process's redactor (``on_call``:
    told how each Slack call ended, for ``/metrics``)."""
    token = settings.secrets.slack_bot_token
    if token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    slack = settings.slack
    pacing = Pacing(posts_per_second=slack.posts_per_second, updates_per_minute=slack.updates_per_minute)
    return SlackNotifier(
        ThreadStore(database),
        planner,
        token=token.get_secret_value(),
        base_url=str(slack.api_url),
        channel_for=channel_for,
        options=options or NotifierOptions(pacing=pacing, timeout_s=slack.timeout.total_seconds()),
        redact=redactor(settings).redact_data,
        channels=channels,
        prometheus_url=str(settings.prometheus.url) if settings.prometheus.url else None,
        on_call=on_call,
    )


def chart_poster(
    settings: Settings,
    database: AsyncEngine,
    options: ChartOptions | None = None,
    on_call: CallObserver | None = None,
) -> SlackChartPoster:
    """The poster of guard verdicts' charts into their threads, on the notifier's thread store, with
    the bot token, ``SLACK_API_URL`` and the Slack timeout from config (start it, then hand it to
    ``build`` as ``charts``; ``on_call`` as for ``slack_notifier``)."""
    token = settings.secrets.slack_bot_token
    if token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set")
    timeout = settings.slack.timeout.total_seconds()
    return SlackChartPoster(
        ThreadStore(database),
        token=token.get_secret_value(),
        base_url=str(settings.slack.api_url),
        options=options or ChartOptions(timeout_s=timeout),
        on_call=on_call,
    )


def engine_policy(settings: Settings, poll_interval_s: float | None = None) -> EnginePolicy:
    """The engine's policy from config (``poll_interval_s`` for tests and the sandbox)."""
    policy = EnginePolicy(
        break_glass_group=settings.break_glass,
        freezes=settings.freezes(),
        concurrency=Concurrency(settings.concurrency.value),
        approval_ttl=settings.approval_ttl,
        charts=settings.slack.charts,
    )
    return policy if poll_interval_s is None else replace(policy, poll_interval_s=poll_interval_s)


def _jenkins(settings: Settings, retry: RetryPolicy | None, masks: Redactor) -> JenkinsCI:
    """The Jenkins adapter from config (``build`` has checked that its URL is set)."""
    secrets = settings.secrets
    user = secrets.jenkins_user.get_secret_value() if secrets.jenkins_user else ""
    token = secrets.jenkins_token.get_secret_value() if secrets.jenkins_token else ""
    return JenkinsCI(
        str(settings.jenkins.url).rstrip("/"),
        user,
        token,
        timeout_s=settings.jenkins.timeout.total_seconds(),
        policy=retry,
        redactor=masks,
    )


def _prometheus(
    settings: Settings, retry: RetryPolicy | None, workers: int | None = None
) -> PrometheusMetrics:
    """A Prometheus adapter from config (``build`` has checked that its URL is set); ``workers``
    overrides the adapter's own default thread count."""
    url = str(settings.prometheus.url).rstrip("/")
    timeout_s = settings.prometheus.timeout.total_seconds()
    if workers is None:
        return PrometheusMetrics(url, timeout_s=timeout_s, policy=retry)
    return PrometheusMetrics(url, timeout_s=timeout_s, policy=retry, workers=workers)


def build(
    settings: Settings,
    playbooks: Mapping[str, Playbook],
    *,
    chat: Chat,
    clock: Clock | None = None,
    resolve_handle: HandleResolver | None = None,
    on_transition: TransitionHook | None = None,
    use_scheduler: bool = True,
    retry: RetryPolicy | None = None,
    poll_interval_s: float | None = None,
    new_id: IdSource | None = None,
    charts: ChartPoster | None = None,
) -> Runtime:
    """Wire an engine from config. The database schema must exist (``shipthread db upgrade``).

    The engine takes the database's engine lease when it starts: one engine per database for now.
    """
    if settings.jenkins.url is None:
        raise ConfigError("jenkins.url (or JENKINS_URL) is not set")
    if settings.prometheus.url is None:
        raise ConfigError("prometheus.url (or PROMETHEUS_URL) is not set")
    # One redactor for every way out: logs (process-wide), the store's free text, Jenkins' console.
    masks = redactor(settings)
    logs.install(masks)
    store = Repository(create_engine(settings.database_url), redactor=masks)
    ci = _jenkins(settings, retry, masks)
    cluster = KubernetesCluster(cluster_access(settings), policy=retry)
    metrics = _prometheus(settings, retry)
    # Charts get an adapter of their own with one thread: a burst of range queries on a slow
    # Prometheus queues there, never in front of the guard's queries (whose retry deadline counts
    # the time spent queued). Only built when charts are.
    chart_metrics = _prometheus(settings, retry, workers=1) if charts is not None else None
    directory = ConfigDirectory(settings.approver_groups, resolve_handle)
    clock = clock or SystemClock()
    ctx = Context(
        store=store,
        ci=ci,
        cluster=cluster,
        metrics=metrics,
        chat=chat,
        directory=directory,
        clock=clock,
        playbooks=playbooks,
        policy=engine_policy(settings, poll_interval_s),
        default_channel=settings.slack.default_channel,
        charts=charts,
        chart_metrics=chart_metrics,
    )
    engine = Engine(
        ctx,
        on_transition=on_transition,
        use_scheduler=use_scheduler,
        lease=DatabaseLease(store.engine, clock),
        new_id=new_id,
    )
    return Runtime(engine, store, ci, cluster, metrics, chart_metrics=chart_metrics)
