"""The Slack notifier: the engine's ``Chat`` port, restart-safe and paced under Slack's limits.

``notify`` never touches Slack. It renders the notification (``plan``) against the card's stored
state and, in one transaction, stores the card's new state and each message's desired content by
(deployment, key) (``bot.store.threads``); then it wakes the sender. The same notification twice —
the outbox retrying a ``Notify`` after a crash — therefore lands on the same rows: an edit, never a
second post. Ephemerals are sent best-effort and never stored.

One sender task brings Slack up to date: new messages are posted in thread order (the card
first: replies need its ``ts``), edits send only the latest content (coalesced), urgent messages
go before normal ones and guard-tick redraws last (``bot.adapters.slack_pacing``). Each post is
marked as attempted in the database first and carries message metadata, so a post whose answer
was lost (a crash, a timeout) is found again in the thread and adopted instead of posted twice.

Failures: a 429 blocks what it names for ``Retry-After``; 5xx, timeouts and connection errors are
retried with backoff (``bot.adapters.retrying``), then the message stays pending and the sender
backs off (capped) and tries again for as long as the process lives; Slack's permanent refusals
(``channel_not_found``, ``not_in_channel``, ``invalid_blocks``, ``msg_too_long``...) are recorded on
the message and logged, not retried until its content changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.retrying import RetryPolicy, retry, retry_after
from bot.adapters.slack_channels import ChannelDirectory, label
from bot.adapters.slack_pacing import Pacer, Pacing
from bot.domain.deployment import Deployment
from bot.domain.notifications import DeploymentOpened, Notification
from bot.errors import PermanentError, ShipthreadError, TransientError
from bot.slack.outgoing import CARD, Ephemeral, Plan, RenderContext
from bot.store.threads import Desired, OutMessage, ThreadStore

log = logging.getLogger("shipthread.slack")

EVENT_TYPE: Final = "shipthread_message"
"""The metadata event type of every message Shipthread posts (how a lost post is found again)."""

TRANSIENT_ERRORS: Final = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
"""Slack error names that are worth retrying; any other ``ok: false`` is a refusal."""

Planner = Callable[[Mapping[str, Any] | None, Notification, RenderContext], Plan]
"""``bot.slack.thread.plan``: what one notification changes in its thread."""
ChannelFor = Callable[[Deployment], str | None]
"""Where a deployment's thread goes when it opens without a ``DeploymentOpened`` delivered."""
Redact = Callable[[Any], Any]
"""Secrets out of a text or a JSON-like value (``bot.domain.redact``)."""
Delivered = Callable[[OutMessage, int, float], None]
"""Told (message, revision now shown, monotonic time) after each successful post or edit."""


class RateLimited(ShipthreadError):
    """Slack answered 429: the pacer blocks the method (or channel) for ``retry_after`` seconds.

    Deliberately not a ``TransientError``: it must not be retried in place but wait its turn.
    """

    def __init__(self, method: str, retry_after_s: float) -> None:
        super().__init__(f"{method} rate limited for {retry_after_s:.0f}s")
        self.method = method
        self.retry_after = retry_after_s


class SlackRefused(PermanentError):
    """Slack refused the call for good (``error`` is Slack's own name for why)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack refused {method}: {error}")
        self.error = error


def _no_redaction(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    pacing: Pacing = field(default_factory=Pacing)
    timeout_s: float = 10.0
    """Every Slack call's timeout."""
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, total_s=30.0))
    max_in_flight: int = 4
    """Calls under way at once (never two for one thread, which keeps each thread in order)."""
    outage_backoff_s: float = 0.5
    outage_backoff_cap_s: float = 10.0
    """After a call failed all its retries, the sender waits this long (doubling up to the cap)."""
    drain_s: float = 5.0
    """How long ``close`` keeps sending what is pending."""
    lookup_pages: int = 5
    """Pages of a thread or channel searched for a post whose answer was lost."""
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
        redact: Redact = _no_redaction,
        channels: Iterable[str] = (),
        prometheus_url: str | None = None,
        grafana_url: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_delivered: Delivered | None = None,
    ) -> None:
        self.store = store
        self.options = options or NotifierOptions()
        self._plan = planner
        self._token = token
        self._base_url = base_url
        self._channel_for = channel_for
        self._redact = redact
        self._watched = tuple(channels)
        self._prometheus_url = prometheus_url
        self._grafana_url = grafana_url
        self._now = now
        self._on_delivered = on_delivered
        self._pacer = Pacer(self.options.pacing)
        self._locks: dict[str, asyncio.Lock] = {}
        self._wakeup = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self.channels: ChannelDirectory | None = None
        self._resolved: dict[str, str] = {}
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._completions = 0
        self._finished: dict[str, int] = {}
        """Per thread, the completion count when its last delivery ended."""
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._not_before: dict[int, float] = {}
        self._attempted: set[int] = set()
        self._failures = 0
        self._down_until = 0.0
        self._stopping = False

    # -- the Chat port ---------------------------------------------------------------------------

    async def notify(self, notification: Notification) -> None:
        """Store what the notification changes and wake the sender; never waits for Slack."""
        await self.stage(notification)

    async def stage(self, notification: Notification) -> dict[str, int]:
        """``notify``, returning each thread message's revision now (for measuring delivery)."""
        dep: Deployment | None = getattr(notification, "deployment", None)
        ctx = RenderContext(self._now(), self._prometheus_url, self._grafana_url)
        revisions: dict[str, int] = {}
        if dep is None:
            plan = self._plan(None, notification, ctx)
        else:
            async with self._locks.setdefault(dep.id, asyncio.Lock()):
                thread = await self.store.thread(dep.id)
                plan = self._plan(thread.card_state if thread else None, notification, ctx)
                channel = thread.channel if thread else self._channel_of(dep, notification)
                if channel is None:
                    log.warning(
                        "%s: no channel for its thread; %s not posted", dep.id, type(notification).__name__
                    )
                elif plan.thread or plan.card_state is not None:
                    revisions = await self.store.record(
                        dep.id,
                        channel,
                        plan.card_state,
                        [
                            self._desired(o.key, o.text, o.blocks, int(o.priority), o.key == CARD)
                            for o in plan.thread
                        ],
                        self._now(),
                    )
        for post in plan.channel:
            thread_id = f"channel:{post.channel}"
            async with self._locks.setdefault(thread_id, asyncio.Lock()):
                m = post.message
                await self.store.record(
                    thread_id,
                    post.channel,
                    None,
                    [self._desired(m.key, m.text, m.blocks, int(m.priority), True)],
                    self._now(),
                )
        for ephemeral in plan.ephemeral:
            self._spawn(self._send_ephemeral(ephemeral))
        self._wakeup.set()
        return revisions

    def _channel_of(self, dep: Deployment, notification: Notification) -> str | None:
        if isinstance(notification, DeploymentOpened):
            return notification.channel
        return self._channel_for(dep)

    def _desired(
        self, key: str, text: str, blocks: tuple[dict[str, Any], ...], priority: int, top_level: bool
    ) -> Desired:
        # Every outgoing payload passes the one redaction, before it is even stored.
        return Desired(key, self._redact(text), tuple(self._redact(list(blocks))), priority, top_level)

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._sender is not None:
            return
        self._stopping = False
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.timeout_s))
        self._client = AsyncWebClient(
            token=self._token,
            base_url=self._base_url,
            timeout=max(1, round(self.options.timeout_s)),
            session=self._session,
            retry_handlers=[],  # retries are ours (tenacity), paced, and never on a 429
        )
        self.channels = ChannelDirectory(self._list_channels, self.options.bot_name)
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
        for task in [*self._in_flight.values(), *self._side_tasks]:
            task.cancel()
        for task in [*self._in_flight.values(), *self._side_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self, timeout: float) -> bool:
        """Wait until Slack shows everything stored (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._in_flight and not self._side_tasks and not await self.store.pending(limit=1):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def problems(self) -> list[str]:
        """What an operator must fix about the channels (for ``/readyz``): empty when all is well."""
        if self.channels is None:
            return ["the Slack notifier is not started"]
        try:
            return await self.channels.problems(self._watched)
        except (TransientError, RateLimited) as exc:
            return [f"Slack cannot be reached to check the channels: {exc}"]

    # -- the sender --------------------------------------------------------------------------------

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            for problem in await self.problems():
                log.error("Slack: %s", problem)
        while not self._stopping:
            self._wakeup.clear()
            try:
                delay = await self._round()
            except Exception:
                log.exception("the Slack sender failed a round; trying again")
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _round(self) -> float | None:
        """Start what may go now; returns how long until something else may (None: until woken)."""
        now = time.monotonic()
        if now < self._down_until:
            return self._down_until - now
        if len(self._in_flight) >= self.options.max_in_flight:
            return None
        snapshot = self._completions
        candidates = self._candidates(await self.store.pending())
        wait: float | None = None
        for message in candidates:
            if len(self._in_flight) >= self.options.max_in_flight:
                break
            if message.thread_id in self._in_flight or self._finished.get(message.thread_id, -1) >= snapshot:
                # Under way, or finished a delivery since ``pending`` was read: this copy of the
                # row may be stale (a post now done would be posted again). The next round sees it.
                continue
            now = time.monotonic()
            hold = self._not_before.get(message.id, 0.0) - now
            if hold > 0:
                wait = hold if wait is None else min(wait, hold)
                continue
            channel = await self._channel_id(message)
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

    async def _channel_id(self, message: OutMessage) -> str | None:
        ref = message.channel
        if ref in self._resolved:
            return self._resolved[ref]
        assert self.channels is not None
        try:
            channel = await self.channels.resolve(ref)
        except PermanentError as exc:
            log.error("Slack: %s; %s %s not posted", exc, message.thread_id, message.key)
            await self.store.failed(message.id, message.revision, str(exc), self._now())
            return None
        except (TransientError, RateLimited) as exc:
            log.warning("Slack: cannot resolve %s yet: %s", label(ref), exc)
            self._backoff()
            return None
        self._resolved[ref] = channel
        return channel

    async def _deliver(self, message: OutMessage, channel: str) -> None:
        try:
            if message.ts is None:
                await retry(
                    self.options.retry, f"posting {message.key}", lambda: self._post(message, channel)
                )
            else:
                await retry(
                    self.options.retry, f"editing {message.key}", lambda: self._edit(message, channel)
                )
            self._failures = 0
            self._not_before.pop(message.id, None)
        except RateLimited as exc:
            now = time.monotonic()
            if exc.method == "chat.update":
                self._pacer.updates_rate_limited(exc.retry_after, now)
            elif exc.method == "chat.postMessage":
                self._pacer.posts_rate_limited(channel, exc.retry_after, now)
            else:
                self._not_before[message.id] = now + exc.retry_after
            log.warning("Slack: %s", exc)
        except PermanentError as exc:
            log.error("Slack: %s %s not delivered: %s", message.thread_id, message.key, exc)
            await self.store.failed(message.id, message.revision, str(exc), self._now())
        except TransientError as exc:
            log.warning("Slack: %s %s still pending: %s", message.thread_id, message.key, exc)
            self._backoff()
        except Exception:
            log.exception("Slack: delivering %s %s failed", message.thread_id, message.key)
            self._not_before[message.id] = time.monotonic() + self.options.outage_backoff_cap_s
        finally:
            self._finished[message.thread_id] = self._completions
            self._completions += 1
            self._in_flight.pop(message.thread_id, None)
            self._wakeup.set()

    def _backoff(self) -> None:
        """Slack is failing: wait before the next call, doubling up to the cap, until one succeeds."""
        self._failures += 1
        delay = min(
            self.options.outage_backoff_cap_s, self.options.outage_backoff_s * 2 ** (self._failures - 1)
        )
        self._down_until = max(self._down_until, time.monotonic() + delay)

    async def _post(self, message: OutMessage, channel: str) -> None:
        if message.attempted_at is not None or message.id in self._attempted:
            # An earlier post may have reached Slack without its answer reaching us: adopt it.
            found = await self._find_posted(message, channel)
            if found is not None:
                ts, revision = found
                log.info("Slack: adopted %s %s posted earlier (ts %s)", message.thread_id, message.key, ts)
                await self._sent(message, revision, ts, channel)
                return
        await self.store.attempting(message.id, self._now())
        self._attempted.add(message.id)
        args: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "blocks": list(message.blocks),
            "metadata": {
                "event_type": EVENT_TYPE,
                "event_payload": {
                    "deployment": message.thread_id,
                    "key": message.key,
                    "revision": message.revision,
                },
            },
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if not message.top_level:
            args["thread_ts"] = message.parent_ts
        answer = await self._api("chat.postMessage", args)
        await self._sent(message, message.revision, str(answer["ts"]), channel)

    async def _edit(self, message: OutMessage, channel: str) -> None:
        args = {"channel": channel, "ts": message.ts, "text": message.text, "blocks": list(message.blocks)}
        await self._api("chat.update", args)
        assert message.ts is not None
        await self._sent(message, message.revision, message.ts, channel)

    async def _sent(self, message: OutMessage, revision: int, ts: str, channel: str) -> None:
        await self.store.sent(message.id, revision, ts, self._now(), channel if message.top_level else None)
        self._attempted.discard(message.id)
        if self._on_delivered is not None:
            self._on_delivered(message, revision, time.monotonic())

    async def _find_posted(self, message: OutMessage, channel: str) -> tuple[str, int] | None:
        cursor: str | None = None
        for _ in range(self.options.lookup_pages):
            args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if cursor:
                args["cursor"] = cursor
            if message.top_level:
                page = await self._api("conversations.history", args, http_verb="GET")
            else:
                page = await self._api(
                    "conversations.replies", {**args, "ts": message.parent_ts}, http_verb="GET"
                )
            for item in page.get("messages", []):
                meta = item.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == EVENT_TYPE
                    and payload.get("deployment") == message.thread_id
                    and payload.get("key") == message.key
                ):
                    return str(item["ts"]), int(payload.get("revision", 0))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def _send_ephemeral(self, ephemeral: Ephemeral) -> None:
        try:
            assert self.channels is not None, "the notifier is not started"
            channel = await self.channels.resolve(ephemeral.channel)
            args = {
                "channel": channel,
                "user": ephemeral.user,
                "text": self._redact(ephemeral.text),
                "blocks": self._redact(list(ephemeral.blocks)),
            }
            await retry(
                self.options.retry, "posting an ephemeral", lambda: self._api("chat.postEphemeral", args)
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
        args: dict[str, Any] = {
            "types": "public_channel,private_channel",
            "exclude_archived": True,
            "limit": 200,
        }
        if cursor:
            args["cursor"] = cursor
        return await retry(
            self.options.retry,
            "listing channels",
            lambda: self._api("conversations.list", args, http_verb="GET"),
        )

    async def _api(self, method: str, args: Mapping[str, Any], http_verb: str = "POST") -> dict[str, Any]:
        """One Web API call, its failures mapped onto our error tree."""
        assert self._client is not None, "the notifier is not started"
        try:
            if http_verb == "GET":
                response = await self._client.api_call(method, http_verb="GET", params=dict(args))
            else:
                response = await self._client.api_call(method, json=dict(args))
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if status == 429 or error == "ratelimited":
                raise RateLimited(method, retry_after(exc.response.headers.get("Retry-After"))) from exc
            if status >= 500 or error in TRANSIENT_ERRORS:
                raise TransientError(
                    f"{method}: Slack answered {status} {error}".rstrip(), retry_in=1.0
                ) from exc
            raise SlackRefused(method, error or f"HTTP {status}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"{method}: {type(exc).__name__}: {exc}", retry_in=1.0) from exc
        data = response.data
        return data if isinstance(data, dict) else {}
