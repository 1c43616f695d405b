"""One message brought up to date in Slack, and what a failed attempt means for the next one.

The notifier's sender (``bot.adapters.slack_notifier``) decides *which* message goes *when*;
``Delivery`` makes the one call for it — a post (adopting a post whose answer was lost, found by
its metadata: ``bot.adapters.slack_lookup``) or an edit — and keeps what the sender must respect
afterwards: per message, when it may be tried again (a 429's ``Retry-After``, a transient failure's
backoff), and for the whole sender, until when Slack is considered down (doubling, capped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.adapters.slack_lookup import Api, find_posted, metadata
from bot.adapters.slack_pacing import Pacer
from bot.adapters.slack_wire import RateLimited, WorkspaceRefused
from bot.errors import PermanentError, TransientError
from bot.store.threads import OutMessage, ThreadStore

log = logging.getLogger("shipthread.slack")

Delivered = Callable[[OutMessage, int, float], None]
"""Told (message, revision now shown, monotonic time) after each successful post or edit."""


class Delivery:
    """Posts and edits, one call per turn, with the memory of what failed and until when to wait."""

    def __init__(
        self,
        store: ThreadStore,
        api: Api,
        pacer: Pacer,
        *,
        lookup_pages: int,
        backoff_s: float,
        backoff_cap_s: float,
        now: Callable[[], datetime],
        clock: Callable[[], float],
        on_delivered: Delivered | None = None,
    ) -> None:
        self.store = store
        self._api = api
        self._pacer = pacer
        self._lookup_pages = lookup_pages
        self._backoff_s = backoff_s
        self._backoff_cap_s = backoff_cap_s
        self._now = now
        self._clock = clock
        self._on_delivered = on_delivered
        self.not_before: dict[int, float] = {}
        """Per message id, the monotonic time before which it must not be tried again."""
        self.down_until = 0.0
        """No call at all before this monotonic time (Slack failing, or the token refused)."""
        self._attempted: set[int] = set()
        self._failures = 0

    async def deliver(self, message: OutMessage, channel: str) -> None:
        """Post or edit ``message``; a failure leaves it pending (or records Slack's refusal)."""
        # One call per turn: a failure leaves the message pending, and the next round takes a new
        # token or post slot for it (a retry in place would spend Slack's allowance unpaced).
        try:
            if message.ts is None:
                await self._post(message, channel)
            else:
                await self._edit(message, channel)
            self._failures = 0
            self.not_before.pop(message.id, None)
        except RateLimited as exc:
            now = self._clock()
            if exc.method == "chat.update":
                self._pacer.updates_rate_limited(exc.retry_after, now)
            elif exc.method == "chat.postMessage":
                self._pacer.posts_rate_limited(channel, exc.retry_after, now)
            elif exc.method.startswith("conversations."):
                self._pacer.lookups.blocked(exc.retry_after, now)
            self.not_before[message.id] = now + exc.retry_after
            log.warning("Slack: %s", exc)
        except PermanentError as exc:
            log.error("Slack: %s %s not delivered: %s", message.thread_id, message.key, exc)
            await self.store.failed(message.id, message.revision, str(exc), self._now())
        except WorkspaceRefused as exc:
            log.error("Slack: %s; %s %s still pending", exc, message.thread_id, message.key)
            self.backoff(exc)
        except TransientError as exc:
            log.warning("Slack: %s %s still pending: %s", message.thread_id, message.key, exc)
            self.not_before[message.id] = self.backoff(exc)
        except Exception:
            log.exception("Slack: delivering %s %s failed", message.thread_id, message.key)
            self.not_before[message.id] = self._clock() + self._backoff_cap_s

    def backoff(self, exc: Exception | None = None) -> float:
        """Slack is failing: wait before the next call, doubling up to the cap, until one succeeds
        (at least as long as a refused token asks for). Returns when calls may start again."""
        self._failures += 1
        delay = min(self._backoff_cap_s, self._backoff_s * 2 ** (self._failures - 1))
        if isinstance(exc, WorkspaceRefused):
            delay = max(delay, min(exc.retry_in, self._backoff_cap_s * 3))
        self.down_until = max(self.down_until, self._clock() + delay)
        return self.down_until

    def forget_settled(self, pending: list[OutMessage], now: float) -> None:
        """Per-message memory only for messages still pending (it would grow per deployment)."""
        if len(pending) >= 1000:  # a partial view: keep what may still matter, drop only what expired
            self.not_before = {k: t for k, t in self.not_before.items() if t > now}
            return
        ids = {m.id for m in pending}  # a message under way is still pending until it is sent
        self.not_before = {k: t for k, t in self.not_before.items() if k in ids and t > now}
        self._attempted &= ids

    async def _post(self, message: OutMessage, channel: str) -> None:
        if message.attempted_at is not None or message.id in self._attempted:
            # An earlier post may have reached Slack without its answer reaching us: adopt it.
            found = await find_posted(
                self._api,
                message,
                channel,
                pages=self._lookup_pages,
                bucket=self._pacer.lookups,
                clock=self._clock,
            )
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
            "metadata": metadata(message),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if not message.top_level:
            args["thread_ts"] = message.parent_ts
        answer = await self._api("chat.postMessage", args, "POST")
        await self._sent(message, message.revision, str(answer["ts"]), channel)

    async def _edit(self, message: OutMessage, channel: str) -> None:
        args = {"channel": channel, "ts": message.ts, "text": message.text, "blocks": list(message.blocks)}
        await self._api("chat.update", args, "POST")
        assert message.ts is not None
        await self._sent(message, message.revision, message.ts, channel)

    async def _sent(self, message: OutMessage, revision: int, ts: str, channel: str) -> None:
        await self.store.sent(message.id, revision, ts, self._now(), channel if message.top_level else None)
        self._attempted.discard(message.id)
        if self._on_delivered is not None:
            self._on_delivered(message, revision, self._clock())
