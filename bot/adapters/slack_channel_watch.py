"""The channels the notifier posts into, watched: names resolved to ids, relisted on a timer, and
messages parked on a channel problem sent again once it is fixed.

``bot.adapters.slack_channels`` lists and judges the channels; this holds what the notifier's
sender does with that over time, off its path (a listing takes several calls): when the next
relisting is due, a message whose channel cannot be found recorded as such, and ``rearm`` asked for
every parked channel the bot is now in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bot.adapters.slack_channels import ChannelDirectory, Lister, label
from bot.adapters.slack_pacing import Bucket
from bot.adapters.slack_wire import CHANNEL_ERRORS, RateLimited
from bot.errors import PermanentError, TransientError
from bot.store.threads import OutMessage, ThreadStore

log = logging.getLogger("shipthread.slack")

CHANNEL_MISSING = "channel_not_found"
"""Slack's name for a channel that cannot be found, also kept when a name does not resolve."""


class ChannelWatch:
    """The notifier's view of its channels; ``start`` it before asking anything of it."""

    def __init__(
        self,
        store: ThreadStore,
        lister: Lister,
        *,
        bot_name: str,
        pages: Bucket,
        refresh_s: float,
        now: Callable[[], datetime],
        clock: Callable[[], float],
        backoff: Callable[[Exception | None], float],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self._lister = lister
        self._bot_name = bot_name
        self._pages = pages
        self._refresh_s = refresh_s
        self._now = now
        self._clock = clock
        self._backoff = backoff
        """The sender's backoff, when Slack cannot be reached to resolve a channel."""
        self._wake = wake
        self.directory: ChannelDirectory | None = None
        self.refreshing: asyncio.Task[None] | None = None
        self._resolved: dict[str, str] = {}
        self._refresh_tried = 0.0

    def start(self) -> None:
        self.directory = ChannelDirectory(self._lister, self._bot_name, pages=self._pages, clock=self._clock)
        self._refresh_tried = self._clock()  # the sender lists them as it starts

    async def problems(self, watched: Iterable[str]) -> list[str]:
        """What an operator must fix about the channels (for ``/readyz``): empty when all is well.

        From the last listing: this never lists channels itself (but the very first time)."""
        if self.directory is None:
            return ["the Slack notifier is not started"]
        try:
            return await self.directory.problems(watched)
        except (TransientError, RateLimited) as exc:
            return [f"Slack cannot be reached to check the channels: {exc}"]

    def refresh_due_in(self) -> float:
        last = max(self._refresh_tried, (self.directory.listed_at if self.directory else None) or 0.0)
        return max(0.01, last + self._refresh_s - self._clock())

    def refresh_when_due(self) -> None:
        """Relist the channels on the timer, off the sender's path (a listing takes several calls)."""
        if self.directory is None or (self.refreshing is not None and not self.refreshing.done()):
            return
        if self.refresh_due_in() > 0.01:
            return
        self._refresh_tried = self._clock()
        self.refreshing = asyncio.create_task(self._refresh(), name="slack-channels")

    async def _refresh(self) -> None:
        assert self.directory is not None
        try:
            await self.directory.refresh()
            await self.rearm_fixed()
        except Exception as exc:  # the next timer tries again; sends go on meanwhile
            log.warning("Slack: relisting the channels failed: %s", exc)
        finally:
            self._wake()

    async def rearm_fixed(self) -> None:
        """Messages parked on a channel problem go pending again once the bot is in the channel."""
        assert self.directory is not None
        errors = (*CHANNEL_ERRORS, CHANNEL_MISSING)
        for ref in await self.store.parked_channels(errors):
            if self.directory.member_of(ref):
                self._resolved.pop(ref, None)  # it may be a new channel of the same name
                count = await self.store.rearm(ref, errors, self._now())
                log.info("Slack: %s is fixed; %d message(s) to send again", label(ref), count)

    async def channel_id(self, message: OutMessage) -> str | None:
        """The id of ``message``'s channel, or None (recorded on the message if it does not exist)."""
        ref = message.channel
        if ref in self._resolved:
            return self._resolved[ref]
        assert self.directory is not None
        try:
            channel = await self.directory.resolve(ref)
        except PermanentError as exc:
            log.error("Slack: %s; %s %s not posted", exc, message.thread_id, message.key)
            # Slack's error name kept in the row: ``rearm`` finds it once the channel exists.
            await self.store.failed(message.id, message.revision, f"{exc} ({CHANNEL_MISSING})", self._now())
            return None
        except (TransientError, RateLimited) as exc:
            log.warning("Slack: cannot resolve %s yet: %s", label(ref), exc)
            self._backoff(exc)
            return None
        self._resolved[ref] = channel
        return channel
