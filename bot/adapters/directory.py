"""Approver groups from config: who may approve, as Slack user ids.

Groups listed as user ids (``U…``/``W…``) resolve from config alone. Slack user-group handles
(``@sre-oncall``, ``S…``) need Slack's ``usergroups.users.list``: pass a ``resolve_handle``
coroutine (the Slack adapter's) and the answer is cached for ``ttl_s`` so an approval click never
waits on Slack twice in a row.

Only answers are cached, never failures: when Slack cannot answer, the last good answer is served
(however old: the group was right a moment ago, and an empty set would lock every approver out),
and with none yet the resolver's error goes up, so the caller says "try again" instead of "you are
not an approver".
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from bot.errors import ShipthreadError, TransientError

log = logging.getLogger("shipthread.directory")

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

HandleResolver = Callable[[str], Awaitable[frozenset[str]]]
"""A handle or group id → its members; raises ``TransientError``/``PermanentError`` when it cannot tell."""


class ConfigDirectory:
    """The ``Directory`` port over config's ``approver_groups``."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        resolve_handle: HandleResolver | None = None,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._groups = {name: tuple(entries) for name, entries in groups.items()}
        self._resolve = resolve_handle
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        """Every user id of ``group``; an unknown group has no members (so nobody can approve).

        Raises ``TransientError`` when a handle of the group cannot be resolved and was never resolved.
        """
        users: set[str] = set()
        for entry in self._groups.get(group, ()):
            if _USER_ID.match(entry):
                users.add(entry)
            elif self._resolve is not None:
                users |= await self._handle(group, entry)
        return frozenset(users)

    async def _handle(self, group: str, handle: str) -> frozenset[str]:
        assert self._resolve is not None
        cached = self._cache.get(handle)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            users = await self._resolve(handle)
        except ShipthreadError as exc:
            if cached is not None:
                log.warning("serving the members of %s from %.0f s ago: %s", handle, now - cached[0], exc)
                return cached[1]
            if isinstance(exc, TransientError):
                raise TransientError(
                    f"cannot check the approver group {group} now ({exc})", retry_in=exc.retry_in
                ) from exc
            raise
        self._cache[handle] = (now, users)
        return users
