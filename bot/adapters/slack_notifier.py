"""The Slack notifier: the engine's ``Chat`` port, restart-safe and paced under Slack's limits.

``notify`` never touches Slack. It redacts, renders and stores what the notification changes in
its thread, the same rows for the same notification twice (``bot.adapters.slack_staging``); then
it wakes the sender. Ephemerals are sent best-effort and never stored.

One sender task brings Slack up to date: new messages are posted in thread order (the card
first: replies need its ``ts``), edits send only the latest content (coalesced), urgent messages
go before normal ones and guard-tick redraws last (``bot.adapters.slack_pacing``). Each post is
marked as attempted in the database first and carries message metadata, so a post whose answer
was lost (a crash, a timeout) is found again in the thread and adopted instead of posted twice
(``bot.adapters.slack_lookup``). The sender picks what goes when; the call itself and what its
failure means for the next one are ``bot.adapters.slack_delivery``'s.

Failures (``bot.adapters.slack_wire`` names them): a 429 blocks what it names for
``Retry-After``; 5xx, timeouts and connection errors leave the message pending, and the sender
backs off (capped) and tries again — with a new token or post slot, never in place — for as long
as the process lives; a refused token (``invalid_auth``...) backs the whole sender off and gives
no message up; Slack's permanent refusals (``invalid_blocks``, ``msg_too_long``...) are recorded
on the message and logged, not retried until its content changes. A refusal about the channel
(``not_in_channel``, ``channel_not_found``) parks the message until the channel is fixed: the
channels are relisted on a timer, and a parked channel the bot is now in gets its messages back
(``bot.adapters.slack_channel_watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_wire
from bot.adapters.retrying import RetryPolicy, retry
from bot.adapters.slack_channel_watch import ChannelWatch
from bot.adapters.slack_channels import PAGE_SIZE
from bot.adapters.slack_delivery import Delivered, Delivery
from bot.adapters.slack_lookup import EVENT_TYPE as EVENT_TYPE
from bot.adapters.slack_pacing import Pacer, Pacing
from bot.adapters.slack_staging import ChannelFor as ChannelFor
from bot.adapters.slack_staging import Planner as Planner
from bot.adapters.slack_staging import Redact, Rendering, ThreadStaging
from bot.adapters.slack_wire import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from bot.adapters.slack_wire import CallObserver
from bot.adapters.slack_wire import SlackRefused as SlackRefused
from bot.domain.notifications import Notification
from bot.domain.redact import Redactor
from bot.slack.outgoing import Ephemeral
from bot.store.threads import OutMessage, ThreadStore

log = logging.getLogger("shipthread.slack")


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    pacing: Pacing = field(default_factory=Pacing)
    timeout_s: float = 10.0
    """Every Slack call's timeout."""
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, total_s=30.0))
    """Ephemerals only: posts and edits are never retried in place (a retry takes a new turn)."""
    max_in_flight: int = 4
    """Calls under way at once (never two for one thread, which keeps each thread in order)."""
    outage_backoff_s: float = 0.5
    outage_backoff_cap_s: float = 10.0
    """After a call failed, the sender waits this long (doubling up to the cap)."""
    drain_s: float = 5.0
    """How long ``close`` keeps sending what is pending."""
    lookup_pages: int = 5
    """Pages of a thread or channel searched for a post whose answer was lost."""
    channels_refresh_s: float = 300.0
    """How often the channels are relisted (a channel created, the bot invited)."""
    bot_name: str = "Shipthread"


class SlackNotifier:
    """Implements ``bot.ports.Chat`` over slack-sdk's ``AsyncWebClient``; ``start`` / ``close`` it."""

    def __init__(
        self,
        store: ThreadStore,
        planner: Planner,
        *,
        token: str,
        base_url: str,
        channel_for: ChannelFor,
        options: NotifierOptions | None = None,
        redact: Redact | None = None,
        channels: Iterable[str] = (),
        prometheus_url: str | None = None,
        grafana_url: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        on_delivered: Delivered | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        self.store = store
        self.options = options or NotifierOptions()
        self._token = token
        self._base_url = base_url
        # Without the process's secrets, the credential shapes are still masked.
        self._redact: Redact = redact or Redactor().redact_data
        self._staging = ThreadStaging(
            store, planner, channel_for, self._redact, Rendering(prometheus_url, grafana_url, now)
        )
        self._watched = tuple(channels)
        self._now = now
        self._clock = monotonic
        self._on_call = on_call
        self._pacer = Pacer(self.options.pacing, started_at=monotonic())
        self._delivery = self._new_delivery(on_delivered)
        self._wakeup = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._completions = 0
        self._finished: dict[str, int] = {}
        """Per thread, the completion count when its last delivery ended (pruned each round)."""
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._channels = self._new_channel_watch()

    def _new_delivery(self, on_delivered: Delivered | None) -> Delivery:
        return Delivery(
            self.store,
            self._api,
            self._pacer,
            lookup_pages=self.options.lookup_pages,
            backoff_s=self.options.outage_backoff_s,
            backoff_cap_s=self.options.outage_backoff_cap_s,
            now=self._now,
            clock=self._clock,
            on_delivered=on_delivered,
        )

    def _new_channel_watch(self) -> ChannelWatch:
        return ChannelWatch(
            self.store,
            self._list_channels,
            bot_name=self.options.bot_name,
            pages=self._pacer.listings,
            refresh_s=self.options.channels_refresh_s,
            now=self._now,
            clock=self._clock,
            backoff=self._delivery.backoff,  # a channel that cannot be resolved: Slack is failing
            wake=self._wakeup.set,
        )

    # -- the Chat port ---------------------------------------------------------------------------

    async def notify(self, notification: Notification) -> None:
        """Store what the notification changes and wake the sender; never waits for Slack."""
        await self.stage(notification)

    async def stage(self, notification: Notification) -> dict[str, int]:
        """``notify``, returning each thread message's revision now (for measuring delivery)."""
        staged = await self._staging.stage(notification)
        for ephemeral in staged.ephemeral:
            self._spawn(self._send_ephemeral(ephemeral))
        self._wakeup.set()
        return staged.revisions

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._sender is not None:
            return
        self._stopping = False
        self._session, self._client = slack_wire.open_client(
            self._on_call, token=self._token, base_url=self._base_url, timeout_s=self.options.timeout_s
        )
        self._channels.start()
        self._sender = asyncio.create_task(self._run(), name="slack-sender")

    async def close(self) -> None:
        """Send what is pending for up to ``drain_s``, then stop and release the HTTP session."""
        if self._sender is not None:
            await self.drain(self.options.drain_s)
            self._stopping = True
            self._wakeup.set()
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        tasks = [*self._in_flight.values(), *self._side_tasks]
        if self._channels.refreshing is not None:
            tasks.append(self._channels.refreshing)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._channels.refreshing = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self, timeout: float) -> bool:
        """Wait until Slack shows everything that may be sent (True) or ``timeout`` passes (False)."""
        deadline = self._clock() + timeout
        while True:
            if not self._in_flight and not self._side_tasks and not await self.store.pending(limit=1):
                return True
            if self._clock() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def problems(self) -> list[str]:
        """What an operator must fix about the channels (for ``/readyz``): empty when all is well."""
        return await self._channels.problems(self._watched)

    # -- the sender --------------------------------------------------------------------------------

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            for problem in await self.problems():
                log.error("Slack: %s", problem)
            await self._channels.rearm_fixed()
        while not self._stopping:
            self._wakeup.clear()
            self._channels.refresh_when_due()
            try:
                delay = await self._round()
            except Exception:
                log.exception("the Slack sender failed a round; trying again")
                delay = 1.0
            refresh_in = self._channels.refresh_due_in()
            delay = refresh_in if delay is None else min(delay, refresh_in)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(delay, 0.0))

    async def _round(self) -> float | None:
        """Start what may go now; returns how long until something else may (None: until woken)."""
        now = self._clock()
        if now < self._delivery.down_until:
            return self._delivery.down_until - now
        if len(self._in_flight) >= self.options.max_in_flight:
            return None
        snapshot = self._completions
        # Older completions can no longer make a row read from now on stale: forget them.
        self._finished = {t: n for t, n in self._finished.items() if n >= snapshot}
        pending = await self.store.pending()
        self._delivery.forget_settled(pending, now)
        candidates = self._candidates(pending)
        wait: float | None = None
        for message in candidates:
            if len(self._in_flight) >= self.options.max_in_flight:
                break
            if message.thread_id in self._in_flight or self._finished.get(message.thread_id, -1) >= snapshot:
                # Under way, or finished a delivery since ``pending`` was read: this copy of the
                # row may be stale (a post now done would be posted again). The next round sees it.
                continue
            now = self._clock()
            hold = self._delivery.not_before.get(message.id, 0.0) - now
            if hold > 0:
                wait = hold if wait is None else min(wait, hold)
                continue
            channel = await self._channels.channel_id(message)
            if channel is None:
                continue
            gate = (
                self._pacer.post_wait(channel, now)
                if message.ts is None
                else self._pacer.update_wait(message.priority, now)
            )
            if gate > 0:
                wait = gate if wait is None else min(wait, gate)
                continue
            task = asyncio.create_task(self._deliver(message, channel), name=f"slack-{message.thread_id}")
            self._in_flight[message.thread_id] = task
        return wait

    @staticmethod
    def _candidates(pending: list[OutMessage]) -> list[OutMessage]:
        """What may be sent, most urgent and longest waiting first: edits of posted messages, and
        per thread only its next post in sequence (a reply only once its parent has a ts)."""
        out: list[OutMessage] = []
        by_thread: dict[str, list[OutMessage]] = {}
        for message in pending:
            by_thread.setdefault(message.thread_id, []).append(message)
        for messages in by_thread.values():
            next_post = True
            for message in sorted(messages, key=lambda m: m.seq):
                if message.ts is not None:
                    out.append(message)
                elif next_post:
                    next_post = False
                    if message.top_level or message.parent_ts is not None:
                        out.append(message)
        never = datetime.max.replace(tzinfo=UTC)
        return sorted(out, key=lambda m: (m.priority, m.pending_since or never, m.seq))

    async def _deliver(self, message: OutMessage, channel: str) -> None:
        try:
            await self._delivery.deliver(message, channel)
        finally:
            self._finished[message.thread_id] = self._completions
            self._completions += 1
            self._in_flight.pop(message.thread_id, None)
            self._wakeup.set()

    async def _send_ephemeral(self, ephemeral: Ephemeral) -> None:
        try:
            directory = self._channels.directory
            assert directory is not None, "the notifier is not started"
            channel = await directory.resolve(ephemeral.channel)
            args = {
                "channel": channel,
                "user": ephemeral.user,
                "text": self._redact(ephemeral.text),
                "blocks": self._redact(list(ephemeral.blocks)),
            }
            await retry(
                self.options.retry,
                "posting an ephemeral",
                lambda: self._api("chat.postEphemeral", args),
                system="slack",
            )
        except Exception as exc:  # best-effort by design: a refusal is not worth more than a log line
            log.warning(
                "Slack: ephemeral to %s in %s not delivered: %s", ephemeral.user, ephemeral.channel, exc
            )

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- the wire ----------------------------------------------------------------------------------

    async def _list_channels(self, cursor: str | None) -> dict[str, Any]:
        """One page of channels (``ChannelDirectory`` paces the pages and retries them)."""
        args: dict[str, Any] = {
            "types": "public_channel,private_channel",
            "exclude_archived": True,
            "limit": PAGE_SIZE,
        }
        if cursor:
            args["cursor"] = cursor
        return await self._api("conversations.list", args, "GET")

    async def _api(self, method: str, args: Mapping[str, Any], http_verb: str = "POST") -> dict[str, Any]:
        assert self._client is not None, "the notifier is not started"
        return await slack_wire.call(self._client, method, args, http_verb)
