"""Slack user groups as sets of user ids, for approver groups written as ``S…`` ids or ``@handles``.

``bot.adapters.directory.ConfigDirectory`` caches what this returns (short TTL), so an approval
click asks Slack at most once per group per few minutes. A handle is looked up in
``usergroups.list`` first (one call, cached with the same answer); an unknown group, or a Slack
that refuses, has no members — nobody can approve through it, which is the safe side.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.directory import HandleResolver

log = logging.getLogger("shipthread.slack")


def usergroup_resolver(client: AsyncWebClient) -> HandleResolver:
    """A ``HandleResolver`` over ``usergroups.list`` and ``usergroups.users.list``."""

    async def resolve(entry: str) -> frozenset[str]:
        try:
            group_id = entry
            if entry.startswith("@"):
                listing = await client.usergroups_list()
                handle = entry.removeprefix("@")
                found = [g for g in listing.get("usergroups") or [] if g.get("handle") == handle]
                if not found:
                    log.warning("no Slack user group with the handle %s", entry)
                    return frozenset()
                group_id = str(found[0]["id"])
            answer = await client.usergroups_users_list(usergroup=group_id)
            return frozenset(str(u) for u in answer.get("users") or [])
        except (SlackApiError, OSError, TimeoutError) as exc:
            log.warning("cannot list the members of %s: %s", entry, exc)
            return frozenset()

    return resolve
