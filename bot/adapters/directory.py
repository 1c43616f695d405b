"""Approver groups from config: who may approve, as Slack user ids.

Groups listed as user ids (``U…``/``W…``) resolve from config alone. Slack user-group handles
(``@sre-oncall``, ``S…``) need Slack's ``usergroups.users.list``: pass a ``resolve_handle``
coroutine (the Slack adapter's) and the answer is cached for ``ttl_s`` so an approval click never
waits on Slack twice in a row.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

HandleResolver = Callable[[str], Awaitable[frozenset[str]]]


class ConfigDirectory:
    """The ``Directory`` port over config's ``approver_groups``."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        resolve_handle: HandleResolver | None = None,
        ttl_s: float = 300.0,
    ) -> None:
        self._groups = {name: tuple(entries) for name, entries in groups.items()}
        self._resolve = resolve_handle
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        """Every user id of ``group``; an unknown group has no members (so nobody can approve)."""
        users: set[str] = set()
        for entry in self._groups.get(group, ()):
            if _USER_ID.match(entry):
                users.add(entry)
            elif self._resolve is not None:
                users |= await self._handle(entry)
        return frozenset(users)

    async def _handle(self, handle: str) -> frozenset[str]:
        assert self._resolve is not None
        cached = self._cache.get(handle)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        users = await self._resolve(handle)
        self._cache[handle] = (now, users)
        return users
