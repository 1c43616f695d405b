"""One Slack Web API call and what its failures mean, in our error tree.

Every call the notifier makes goes through ``call``: slack-sdk's ``api_call`` with no retry
handler of its own (retries are the caller's, paced), its failures mapped at the edge:

- ``RateLimited`` — a 429: wait ``Retry-After`` for that method (or channel), never retry in place;
- ``WorkspaceRefused`` — the token or the app is the problem (``invalid_auth``, ``token_revoked``,
  ``missing_scope``...): no message is at fault, so the notifier backs off as a whole and keeps
  every message pending for when an operator fixes the token;
- ``TransientError`` — what ``bot.adapters.http_errors`` calls transient (408, 5xx), Slack's own
  "try again" errors, timeouts and connection errors;
- ``SlackRefused`` — any other ``ok: false``: Slack refused this call for good.

``ObservedWebClient`` is the client the notifier and the chart poster call through: it tells a
``CallObserver`` how each Web API call ended, so ``/metrics`` counts their calls and 429s with
the app's own (``Metrics.slack_call``; the observer is handed in, adapters know no metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.adapters.http_errors import is_transient
from bot.adapters.retrying import retry_after
from bot.errors import PermanentError, ShipthreadError, TransientError

TRANSIENT_ERRORS: Final = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
"""Slack error names that are worth retrying; any other ``ok: false`` is a refusal."""

WORKSPACE_ERRORS: Final = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)
"""Slack errors about the token or the app, not the message: they hold for every call alike."""

CHANNEL_ERRORS: Final = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
"""Refusals an operator fixes on the channel (create it, invite the bot, unarchive it), after
which what was refused is worth sending again."""

WORKSPACE_BACKOFF_S: Final = 30.0
"""How long every call waits after a workspace-level refusal (a person has to fix the token)."""


CallObserver = Callable[[str, int | None, str | None], None]
"""Told (method, HTTP status or None when no answer came, Slack's error name or None) per call."""


class ObservedWebClient(AsyncWebClient):
    """slack-sdk's client, telling ``observe`` how each Web API call ended (one HTTP request each:
    our clients have no retry handlers, so every 429 is seen)."""

    def __init__(self, observe: CallObserver | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._observe = observe

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        if self._observe is None:
            return await super().api_call(api_method, **kwargs)
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            answer = exc.response
            status = answer.status_code if answer is not None else None
            error = answer.get("error") if answer is not None and isinstance(answer.data, dict) else None
            self._observe(api_method, status, str(error or f"HTTP {status}"))
            raise
        except Exception:
            self._observe(api_method, None, None)
            raise
        self._observe(api_method, response.status_code, None)
        return response


def open_client(
    observe: CallObserver | None, *, token: str, base_url: str, timeout_s: float
) -> tuple[aiohttp.ClientSession, ObservedWebClient]:
    """A client on an HTTP session of its own (close the session when done), with no retry handler:
    retries are the caller's, paced and bounded, and never on a 429; ``timeout_s`` bounds each call."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
    client = ObservedWebClient(
        observe,
        token=token,
        base_url=base_url,
        timeout=max(1, round(timeout_s)),
        session=session,
        retry_handlers=[],
    )
    return session, client


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


class WorkspaceRefused(TransientError):
    """Slack refused the token or the app (``error``): every call fails alike until a person
    fixes it, so it is retried (slowly), and no message is given up for it."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(
            f"Slack refused {method}: {error} (check SLACK_BOT_TOKEN and the app's scopes)",
            retry_in=WORKSPACE_BACKOFF_S,
        )
        self.error = error


async def call(
    client: AsyncWebClient, method: str, args: Mapping[str, Any], http_verb: str = "POST"
) -> dict[str, Any]:
    """One Web API call, its failures mapped onto our error tree."""
    try:
        if http_verb == "GET":
            response = await client.api_call(method, http_verb="GET", params=dict(args))
        else:
            response = await client.api_call(method, json=dict(args))
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429 or error == "ratelimited":
            raise RateLimited(method, retry_after(exc.response.headers.get("Retry-After"))) from exc
        if error in WORKSPACE_ERRORS:
            raise WorkspaceRefused(method, error) from exc
        if is_transient(status) or error in TRANSIENT_ERRORS:
            raise TransientError(f"{method}: Slack answered {status} {error}".rstrip(), retry_in=1.0) from exc
        raise SlackRefused(method, error or f"HTTP {status}") from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientError(f"{method}: {type(exc).__name__}: {exc}", retry_in=1.0) from exc
    data = response.data
    return data if isinstance(data, dict) else {}
