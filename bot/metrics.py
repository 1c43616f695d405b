"""The bot's own metrics, for ``GET /metrics``: one prometheus-client registry and its instruments.

A registry per process (not the library's global one) so tests can build several apps in one
interpreter and read each one's figures. Counters are bumped where things happen (the Slack
request handler and the Socket Mode handler, the transition hook, a counting chat, the retry helper's
observer for the adapters' retries and failures, the loop-lag monitor); the gauges that describe
the store (deployments by phase, the outbox) are read at scrape time, so they are never stale and
cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.domain.deployment import Deployment
from bot.domain.events import Event
from bot.domain.notifications import SKIPPED, GuardVerdict, Notification
from bot.domain.phases import Phase
from bot.ports import Chat

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The exposition format's content type (what Prometheus expects from a scrape)."""

_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""50 ms is a bucket bound: the target is "no callback over 50 ms"."""


class Metrics:
    """Every instrument of one process, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._slack_requests(self.registry)
        self._deployments(self.registry)
        self._outbound_calls(self.registry)
        self._outbox(self.registry)
        self._event_loop(self.registry)
        self._lag_max = 0.0

    # -- instruments, by what they describe -----------------------------------------------------------

    def _slack_requests(self, r: CollectorRegistry) -> None:
        """What Slack sent us: answers, their latency, repeats dropped."""
        self.acks = Counter(
            "shipthread_slack_acks",
            "Slack requests answered, by kind and HTTP status",
            ["kind", "status"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "shipthread_slack_ack_seconds",
            "Time from a Slack request to its answer",
            ["kind"],
            buckets=_ACK_BUCKETS,
            registry=r,
        )
        self.duplicates = Counter(
            "shipthread_slack_duplicates",
            "Slack deliveries dropped as repeats (retries, double clicks)",
            ["kind"],
            registry=r,
        )

    def _deployments(self, r: CollectorRegistry) -> None:
        """Deployments: transitions stored, unfinished ones by phase, the guard's verdicts."""
        self.transitions = Counter(
            "shipthread_deployment_transitions",
            "Deployment transitions stored, by the phase reached",
            ["phase"],
            registry=r,
        )
        self.deployments = Gauge(
            "shipthread_deployments_active", "Unfinished deployments, by phase", ["phase"], registry=r
        )
        self.guard_verdicts = Counter(
            "shipthread_guard_verdicts",
            "QoS guard verdicts (pass, fail, inconclusive)",
            ["verdict"],
            registry=r,
        )

    def _outbound_calls(self, r: CollectorRegistry) -> None:
        """Our calls out: Slack Web API calls, and every adapter's retries and failures."""
        self.slack_calls = Counter(
            "shipthread_slack_calls",
            "Slack Web API calls made, by method and outcome (ok, error, ratelimited, unanswered)",
            ["method", "outcome"],
            registry=r,
        )
        self.slack_ratelimited = Counter(
            "shipthread_slack_ratelimited",
            "Slack Web API calls answered 429, by method",
            ["method"],
            registry=r,
        )
        self.adapter_retries = Counter(
            "shipthread_adapter_retries",
            "Retried calls to Jenkins, Kubernetes, Prometheus or Slack",
            registry=r,
        )
        self.adapter_errors = Counter(
            "shipthread_adapter_errors",
            "Calls to Jenkins, Kubernetes, Prometheus or Slack that failed (retries spent or a permanent "
            "error), by system",
            ["kind"],
            registry=r,
        )

    def _outbox(self, r: CollectorRegistry) -> None:
        """The outbox of effects waiting to be carried out (read from the store at scrape time)."""
        self.outbox_depth = Gauge("shipthread_outbox_depth", "Effects waiting in the outbox", registry=r)
        self.outbox_oldest = Gauge(
            "shipthread_outbox_oldest_age_seconds",
            "Age of the oldest effect waiting in the outbox",
            registry=r,
        )

    def _event_loop(self, r: CollectorRegistry) -> None:
        """The event loop's lag (``bot.looplag``)."""
        self.loop_lag = Histogram(
            "shipthread_event_loop_lag_seconds",
            "How late the event loop ran a periodic callback (the time something else held it)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag_cpu = Histogram(
            "shipthread_event_loop_lag_cpu_seconds",
            "The part of each event-loop lag its thread spent on the CPU: at most what the process's "
            "own callbacks held the loop for (the rest is the machine not running the process)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "shipthread_event_loop_lag_max_seconds",
            "The largest event-loop lag measured since the process started",
            registry=r,
        )

    # -- hooks --------------------------------------------------------------------------------------

    def on_transition(self, when: str, deployment: Deployment, event: Event) -> None:
        """A ``TransitionHook`` for the engine: count each stored transition by its new phase."""
        if when == "after":
            self.transitions.labels(deployment.phase.value).inc()

    def slack_call(self, method: str, status: int | None, error: str | None = None) -> None:
        """Count one Slack Web API call by how it ended (every client of ours reports here).

        ``status`` is the HTTP status, None when no answer came (a timeout, a refused connection);
        ``error`` is Slack's error name for an ``ok: false`` (None when the call succeeded)."""
        if status == 429 or error == "ratelimited":
            outcome = "ratelimited"
            self.slack_ratelimited.labels(method).inc()
        elif status is None:
            outcome = "unanswered"
        elif error is None and status < 400:
            outcome = "ok"
        else:
            outcome = "error"
        self.slack_calls.labels(method, outcome).inc()

    def adapter_retried(self, system: str, what: str, error: BaseException) -> None:
        """A ``bot.adapters.retrying`` observer: one call failed and is tried again."""
        self.adapter_retries.inc()

    def adapter_failed(self, system: str, what: str, error: BaseException) -> None:
        """A ``bot.adapters.retrying`` observer: a call failed for good (its caller sees the error)."""
        self.adapter_errors.labels(system).inc()

    def lag(self, seconds: float, cpu_seconds: float) -> None:
        """A ``bot.looplag`` observer: one measured event-loop lag and its CPU-bound part."""
        self.loop_lag.observe(seconds)
        self.loop_lag_cpu.observe(cpu_seconds)
        if seconds > self._lag_max:
            self._lag_max = seconds
            self.loop_lag_max.set(seconds)

    def observe_store(
        self, active: Iterable[Deployment], outbox_depth: int, oldest: datetime | None, now: datetime
    ) -> None:
        """Set the store gauges from what the store holds now (called at scrape time): the active
        deployments, and the outbox's depth and oldest waiting effect (one COUNT/MIN query)."""
        counts = dict.fromkeys((p for p in Phase if not p.terminal), 0)
        for dep in active:
            counts[dep.phase] = counts.get(dep.phase, 0) + 1
        for phase, count in counts.items():
            self.deployments.labels(phase.value).set(count)
        self.outbox_depth.set(outbox_depth)
        self.outbox_oldest.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class CountingChat:
    """A ``Chat`` that counts guard verdicts on their way to the real one."""

    def __init__(self, chat: Chat, metrics: Metrics) -> None:
        self._chat = chat
        self._metrics = metrics

    async def notify(self, notification: Notification) -> None:
        # A step no guard watches has no verdict to count (it would read as a pass).
        if isinstance(notification, GuardVerdict) and notification.verdict != SKIPPED:
            self._metrics.guard_verdicts.labels(notification.verdict).inc()
        await self._chat.notify(notification)
