"""Slack user groups as sets of user ids, for approver groups written as ``S…`` ids or ``@handles``.

``bot.adapters.directory.ConfigDirectory`` caches what this returns (short TTL), so an approval
click asks Slack at most once per group per few minutes. A handle is looked up in
``usergroups.list`` first (one call). Only Slack's own "no such group" is an answer (no members:
nobody can approve through it, the safe side); a Slack that cannot answer now (a status
``bot.adapters.http_errors`` calls transient — 408, 429, 5xx — a timeout, a dropped connection)
raises ``TransientError`` and anything else ``PermanentError``, so the directory never mistakes a
blip for "nobody is an approver" and never caches one.
"""

from __future__ import annotations

import logging
from typing import Final

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.directory import HandleResolver
from bot.adapters.http_errors import is_transient
from bot.adapters.retrying import retry_after
from bot.errors import PermanentError, TransientError

log = logging.getLogger("shipthread.slack")

NO_SUCH_GROUP: Final = frozenset({"no_such_subteam", "subteam_not_found", "invalid_usergroup"})
"""Slack's errors that mean "this group does not exist": an answer, not a failure."""

TRANSIENT_ERRORS: Final = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "request_timeout", "service_unavailable"}
)
"""Errors Slack sends with HTTP 200 that still mean "try again later"."""


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
        except SlackApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if error in NO_SUCH_GROUP:
                log.warning("Slack has no user group %s (%s)", entry, error)
                return frozenset()
            if is_transient(status) or error in TRANSIENT_ERRORS:
                headers = exc.response.headers if exc.response is not None else {}
                raise TransientError(
                    f"Slack did not list the members of {entry} ({status} {error})".strip(),
                    retry_in=retry_after(headers.get("Retry-After") or headers.get("retry-after")),
                ) from exc
            raise PermanentError(f"Slack refused to list the members of {entry}: {error}") from exc
        except (OSError, TimeoutError) as exc:  # aiohttp's ClientError is an OSError; timeouts are not
            raise TransientError(f"Slack did not answer for the members of {entry}: {exc}") from exc

    return resolve
