"""Channel names to ids, and the plain-words problems with the channels Shipthread is told to use.

Playbooks may say ``#deploys``; Slack's API wants ``C0123ABCD``. Names are resolved through
``conversations.list`` (public and private channels, every page) and cached; ids pass through.
``problems`` tells an operator, for ``/readyz`` and the start-up log, what to fix: a channel that
does not exist, or one the bot is not a member of ("invite @Shipthread to #deploys").

``conversations.list`` is Tier 2 (about 20 calls a minute), and a large workspace has thousands
of channels: pages are 1,000 channels (Slack's most), each takes a token of the pacer's listing
bucket, a 429 part-way waits its ``Retry-After`` and goes on from the same cursor, and a listing
cut short keeps what it read. The notifier relists on a timer (``refresh``); ``problems`` reads
the cache and never lists (but the first time), so a busy ``/readyz`` costs Slack nothing, and an
unknown name relists at most every ``REFRESH_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.adapters.slack_pacing import Bucket
from bot.adapters.slack_wire import RateLimited
from bot.domain.channels import CHANNEL_ID
from bot.errors import PermanentError, TransientError

log = logging.getLogger("shipthread.slack")

_CHANNEL_ID = CHANNEL_ID  # the one rule for what an id looks like
REFRESH_S = 60.0
"""How soon an unknown name may trigger another listing (a channel created meanwhile)."""
PAGE_SIZE = 1000
"""Channels per ``conversations.list`` page: Slack's most, so a big workspace takes few calls."""
MAX_PAGES = 200
PAGE_TRIES = 3
"""Tries of one page (after a 429 or a transient failure) before the listing stops short."""

Lister = Callable[[str | None], Awaitable[dict[str, Any]]]
"""One ``conversations.list`` page for a cursor (None: the first page), ``PAGE_SIZE`` long."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    name: str
    is_member: bool


def is_channel_id(ref: str) -> bool:
    return bool(_CHANNEL_ID.match(ref))


def label(ref: str) -> str:
    """How a person would write the channel: ``#name`` for names, the id otherwise."""
    return ref if is_channel_id(ref) else "#" + ref.removeprefix("#")


class ChannelDirectory:
    """The workspace's channels as listed by Slack, cached; refreshed at most every ``REFRESH_S``."""

    def __init__(
        self,
        lister: Lister,
        bot_name: str = "Shipthread",
        *,
        pages: Bucket | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list_page = lister
        self._bot_name = bot_name
        self._pages = pages or Bucket(20 / 60, 3)
        self._clock = clock
        self._by_name: dict[str, ChannelInfo] = {}
        self._by_id: dict[str, ChannelInfo] = {}
        self._listed_at: float | None = None
        self._listing = asyncio.Lock()

    @property
    def listed_at(self) -> float | None:
        """When the last listing ended (the injected monotonic clock), None before the first."""
        return self._listed_at

    async def refresh(self) -> bool:
        """List the workspace's channels; True when every page was read.

        A listing cut short (429s or failures past ``PAGE_TRIES`` on one page) keeps what it read on
        top of what was known; ``TransientError`` only when not one page could be read.
        """
        async with self._listing:
            by_name: dict[str, ChannelInfo] = {}
            cursor: str | None = None
            complete = False
            failure: Exception | None = None
            for _ in range(MAX_PAGES):
                try:
                    page = await self._page(cursor)
                except (TransientError, RateLimited) as exc:
                    failure = exc
                    break
                for item in page.get("channels", []):
                    info = ChannelInfo(str(item["id"]), str(item["name"]), bool(item.get("is_member", False)))
                    by_name[info.name] = info
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    complete = True
                    break
            if complete:
                self._by_name = by_name
            else:
                log.warning("Slack: channel listing cut short after %d channels: %s", len(by_name), failure)
                if failure is not None and not by_name:
                    raise failure
                self._by_name = {**self._by_name, **by_name}
            self._by_id = {info.id: info for info in self._by_name.values()}
            self._listed_at = self._clock()
            return complete

    async def _page(self, cursor: str | None) -> dict[str, Any]:
        """One page, paced by the listing bucket; a 429 or a transient failure waits and tries again."""
        for attempt in range(1, PAGE_TRIES + 1):
            wait = self._pages.wait(self._clock())
            if wait > 0:
                await asyncio.sleep(wait)
                self._pages.wait(self._clock())  # take the token the sleep waited for
            try:
                return await self._list_page(cursor)
            except RateLimited as exc:
                self._pages.blocked(exc.retry_after, self._clock())
                if attempt == PAGE_TRIES:
                    raise
            except TransientError as exc:
                if attempt == PAGE_TRIES:
                    raise
                await asyncio.sleep(min(exc.retry_in, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _known(self, ref: str, *, relist: bool = True) -> ChannelInfo | None:
        found = self._lookup(ref)
        never = self._listed_at is None
        stale = self._listed_at is not None and self._clock() - self._listed_at > REFRESH_S
        if never or (found is None and relist and stale):
            await self.refresh()
            found = self._lookup(ref)
        return found

    def _lookup(self, ref: str) -> ChannelInfo | None:
        if is_channel_id(ref):
            return self._by_id.get(ref)
        return self._by_name.get(ref.removeprefix("#"))

    async def resolve(self, ref: str) -> str:
        """The id of ``ref`` (``#name``, ``name`` or an id); ``PermanentError`` for an unknown name."""
        if is_channel_id(ref):
            return ref
        found = await self._known(ref)
        if found is None:
            raise PermanentError(
                f"{label(ref)} does not exist (or is private and @{self._bot_name} is not in it)"
            )
        return found.id

    def member_of(self, ref: str) -> bool:
        """Is the bot in ``ref``, as of the last listing? (A channel not listed: no.)"""
        found = self._lookup(ref)
        return found is not None and found.is_member

    async def problems(self, refs: Iterable[str]) -> list[str]:
        """What is wrong with each channel, in words an operator acts on (empty: all fine); from the
        last listing (the notifier relists on a timer), listing only if nothing was listed yet."""
        out: list[str] = []
        for ref in dict.fromkeys(refs):
            found = await self._known(ref, relist=False)
            if found is None:
                out.append(f"{label(ref)} does not exist (or is private and @{self._bot_name} is not in it)")
                continue
            if not found.is_member:
                out.append(f"invite @{self._bot_name} to #{found.name}")
        return out
