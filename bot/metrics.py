"""The bot's own metrics, for ``GET /metrics``: one prometheus-client registry and its instruments.

A registry per process (not the library's global one) so tests can build several apps in one
interpreter and read each one's figures. Counters are bumped where things happen (the Slack
request handler, the transition hook, a counting chat, a log handler on the retry logger); the
gauges that describe the store (deployments by phase, the outbox) are read at scrape time, so
they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.domain.deployment import Deployment
from bot.domain.events import Event
from bot.domain.notifications import SKIPPED, GuardVerdict, Notification
from bot.domain.phases import Phase
from bot.ports import Chat, PendingEffect

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The exposition format's content type (what Prometheus expects from a scrape)."""

_EFFECT_FAILED = re.compile(r"^effect (\S+) (?:will be retried|failed)")
_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class Metrics:
    """Every instrument of one process, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
            "shipthread_adapter_errors", "Effects that failed (to be retried), by kind", ["kind"], registry=r
        )
        self.outbox_depth = Gauge("shipthread_outbox_depth", "Effects waiting in the outbox", registry=r)
        self.outbox_oldest = Gauge(
            "shipthread_outbox_oldest_age_seconds",
            "Age of the oldest effect waiting in the outbox",
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

    def observe_store(
        self, active: Iterable[Deployment], pending: Iterable[PendingEffect], now: datetime
    ) -> None:
        """Set the store gauges from what the store holds now (called at scrape time)."""
        counts = dict.fromkeys((p for p in Phase if not p.terminal), 0)
        for dep in active:
            counts[dep.phase] = counts.get(dep.phase, 0) + 1
        for phase, count in counts.items():
            self.deployments.labels(phase.value).set(count)
        waiting = list(pending)
        self.outbox_depth.set(len(waiting))
        oldest = min((p.created_at for p in waiting), default=None)
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


class LogCounter(logging.Handler):
    """Counts the retry and effect-failure records the adapters and the engine already log.

    The retry helper logs one warning per retried attempt and the orchestrator one record per failed
    effect; counting those records keeps the metrics out of every adapter's code.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.WARNING)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "shipthread.retry":
            self._metrics.adapter_retries.inc()
        elif record.name == "shipthread.engine":
            # Read from the formatted message: redaction (``bot.logs``) drops the record's args.
            found = _EFFECT_FAILED.match(record.getMessage())
            if found:
                # Effect keys are "<deployment>:<step>[:<n>]": the step names what failed.
                parts = found[1].split(":")
                self._metrics.adapter_errors.labels(parts[1] if len(parts) > 1 else "effect").inc()

    def install(self) -> None:
        for name in ("shipthread.retry", "shipthread.engine"):
            logging.getLogger(name).addHandler(self)

    def remove(self) -> None:
        for name in ("shipthread.retry", "shipthread.engine"):
            logging.getLogger(name).removeHandler(self)
