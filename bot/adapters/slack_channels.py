"""Channel names to ids, and the plain-words problems with the channels Shipthread is told to use.

Playbooks may say ``#deploys``; Slack's API wants ``C0123ABCD``. Names are resolved once through
``conversations.list`` (public and private channels, every page) and cached; ids pass through.
``problems`` tells an operator, for ``/readyz`` and the start-up log, what to fix: a channel that
does not exist, or one the bot is not a member of ("invite @Shipthread to #deploys").
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.errors import PermanentError

log = logging.getLogger("shipthread.slack")

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
REFRESH_S = 60.0
"""How soon an unknown name may trigger another listing (a channel created meanwhile)."""

Lister = Callable[[str | None], Awaitable[dict[str, Any]]]
"""One ``conversations.list`` page for a cursor (None: the first page)."""


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

    def __init__(self, lister: Lister, bot_name: str = "Shipthread") -> None:
        self._list_page = lister
        self._bot_name = bot_name
        self._by_name: dict[str, ChannelInfo] = {}
        self._by_id: dict[str, ChannelInfo] = {}
        self._listed_at: float | None = None

    async def refresh(self) -> None:
        by_name: dict[str, ChannelInfo] = {}
        cursor: str | None = None
        while True:
            page = await self._list_page(cursor)
            for item in page.get("channels", []):
                info = ChannelInfo(str(item["id"]), str(item["name"]), bool(item.get("is_member", False)))
                by_name[info.name] = info
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        self._by_name = by_name
        self._by_id = {info.id: info for info in by_name.values()}
        self._listed_at = time.monotonic()

    async def _known(self, ref: str) -> ChannelInfo | None:
        found = self._lookup(ref)
        stale = self._listed_at is None or time.monotonic() - self._listed_at > REFRESH_S
        if found is None and stale:
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

    async def problems(self, refs: Iterable[str]) -> list[str]:
        """What is wrong with each channel, in words an operator acts on (empty: all fine)."""
        out: list[str] = []
        for ref in dict.fromkeys(refs):
            found = await self._known(ref)
            if found is None:
                out.append(f"{label(ref)} does not exist (or is private and @{self._bot_name} is not in it)")
                continue
            if not found.is_member:
                out.append(f"invite @{self._bot_name} to #{found.name}")
        return out
