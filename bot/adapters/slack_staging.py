"""The notifier's first half: what a notification changes in its thread, stored before Slack hears of it.

Why a module of its own: the notifier does two jobs that meet only in the database. This one runs
inside ``Chat.notify`` and never touches Slack: it redacts the notification (every text a person or
CI wrote, before anything is rendered or escaped), renders it (the planner) against the card's
stored state and, in one transaction per thread, stores the card's new state and each message's
desired content by (deployment, key) (``bot.store.threads``). The same notification twice — the
outbox retrying a ``Notify`` after a crash — therefore lands on the same rows: an edit, never a
second post. The other job, bringing Slack up to date from those rows, is the sender's
(``bot.adapters.slack_notifier``); ephemerals are handed back to it, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.deployment import Deployment
from bot.domain.notifications import DeploymentOpened, EnvLocked, EnvUnlocked, Notification
from bot.slack.outgoing import CARD, Ephemeral, Plan, RenderContext
from bot.store.threads import NO_CHANNEL, Desired, ThreadStore

log = logging.getLogger("shipthread.slack")

Planner = Callable[[Mapping[str, Any] | None, Notification, RenderContext], Plan]
"""``bot.slack.thread.plan``: what one notification changes in its thread."""
ChannelFor = Callable[[Deployment], str | None]
"""Where a deployment's thread goes when it opens without a ``DeploymentOpened`` delivered."""
Redact = Callable[[Any], Any]
"""Secrets out of a text or a JSON-like value or a notification (``Redactor.redact_data``)."""


def _thread_named(notification: Notification) -> str | None:
    """The deployment thread a notification without a ``deployment`` belongs to, if any.

    A guard's lock (``EnvLocked`` / ``EnvUnlocked``) names its deployment by id: the planner tells
    it in that thread (with the card's lock line) only when handed that thread's card state, and
    posts it top-level in the channel when there is none (a manual lock, or a thread never opened).
    """
    if isinstance(notification, EnvLocked | EnvUnlocked):
        return notification.deployment_id or None
    return None


@dataclass(frozen=True, slots=True)
class Staged:
    revisions: dict[str, int]
    """Each thread message's revision now (for measuring delivery)."""
    ephemeral: tuple[Ephemeral, ...]
    """What to send best-effort, never stored."""


@dataclass(frozen=True, slots=True)
class Rendering:
    """What the planner is told besides the notification: links, and the time."""

    prometheus_url: str | None
    grafana_url: str | None
    now: Callable[[], datetime]


class ThreadStaging:
    """Stores what notifications change, one thread at a time (a lock per live thread)."""

    def __init__(
        self,
        store: ThreadStore,
        planner: Planner,
        channel_for: ChannelFor,
        redact: Redact,
        rendering: Rendering,
    ) -> None:
        self._store = store
        self._plan = planner
        self._channel_for = channel_for
        self._redact = redact
        self._rendering = rendering
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Per thread, its lock and how many hold or wait for it (dropped at zero)."""

    async def stage(self, notification: Notification) -> Staged:
        # Redacted before rendering: after mrkdwn escaping a secret with ``&<>`` no longer reads
        # as itself, and a mask put in after ``limits.fit_*`` could grow text past Slack's limits.
        notification = self._redact(notification)
        dep: Deployment | None = getattr(notification, "deployment", None)
        thread_id = dep.id if dep is not None else _thread_named(notification)
        r = self._rendering
        ctx = RenderContext(r.now(), r.prometheus_url, r.grafana_url)
        revisions: dict[str, int] = {}
        if thread_id is None:
            plan = self._plan(None, notification, ctx)
        else:
            async with self._lock(thread_id):
                plan, revisions = await self._stage_thread(thread_id, dep, notification, ctx)
        for post in plan.channel:
            thread_id = f"channel:{post.channel}"
            async with self._lock(thread_id):
                m = post.message
                await self._store.record(
                    thread_id,
                    post.channel,
                    None,
                    [self._desired(m.key, m.text, m.blocks, int(m.priority), True)],
                    r.now(),
                )
        return Staged(revisions, tuple(plan.ephemeral))

    async def _stage_thread(
        self, thread_id: str, dep: Deployment | None, notification: Notification, ctx: RenderContext
    ) -> tuple[Plan, dict[str, int]]:
        thread = await self._store.thread(thread_id)
        plan = self._plan(thread.card_state if thread else None, notification, ctx)
        channel = self._channel_of(dep, notification) if not thread or not thread.channel else None
        if thread is None and channel is None and plan.thread:
            # Kept, card fold and messages, under no channel: a later notification that
            # knows the channel sends them all (``ThreadStore.record``).
            log.warning("%s: no channel for its thread yet; %s kept", thread_id, type(notification))
        if not plan.thread and plan.card_state is None:
            return plan, {}
        revisions = await self._store.record(
            thread_id,
            channel or (thread.channel if thread else NO_CHANNEL),
            self._redact(plan.card_state),
            [self._desired(o.key, o.text, o.blocks, int(o.priority), o.key == CARD) for o in plan.thread],
            self._rendering.now(),
        )
        return plan, revisions

    def _channel_of(self, dep: Deployment | None, notification: Notification) -> str | None:
        if isinstance(notification, DeploymentOpened):
            return notification.channel
        if dep is None:  # a lock told in a deployment's thread names its channel itself
            return getattr(notification, "channel", None)
        return self._channel_for(dep)

    def _desired(
        self, key: str, text: str, blocks: tuple[dict[str, Any], ...], priority: int, top_level: bool
    ) -> Desired:
        # A backstop: the notification was redacted already, so this changes nothing unless a
        # secret only appears once rendered (then a refusal for size beats a leak).
        return Desired(key, self._redact(text), tuple(self._redact(list(blocks))), priority, top_level)

    @contextlib.asynccontextmanager
    async def _lock(self, thread_id: str) -> AsyncIterator[None]:
        """The thread's lock; forgotten once nobody holds or waits for it (one per live thread)."""
        lock, users = self._locks.get(thread_id, (asyncio.Lock(), 0))
        self._locks[thread_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[thread_id]
            if users <= 1:
                del self._locks[thread_id]
            else:
                self._locks[thread_id] = (lock, users - 1)
