"""The Web API client of the Slack layer: slack-sdk's, with each call and each 429 counted.

Listeners use this one client (not the one Bolt builds per request) so ``/metrics`` sees every
call the app makes. A 429 is retried once after its ``Retry-After`` by slack-sdk's own handler:
the calls made here (``views.publish``, ``chat.postEphemeral``) are Tier 4 and a person is waiting
for them; the thread's messages are paced by the notifier instead. Not ``views.open``: its
``trigger_id`` dies 3 s after the click, so a retry after a ``Retry-After`` of a second or more
would only fail later — the listener tells the person to click again instead.
"""

from __future__ import annotations

from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.metrics import Metrics

NOT_RETRIED: Final = frozenset({"views.open"})
"""Methods whose arguments expire before a rate-limit retry could succeed (a 3 s trigger)."""


class RateLimitRetryExceptTriggers(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 retry, except for the methods in ``NOT_RETRIED``."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rstrip("/").rsplit("/", 1)[-1] in NOT_RETRIED:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class CountingWebClient(AsyncWebClient):
    def __init__(self, metrics: Metrics, **options: Any) -> None:
        options.setdefault("retry_handlers", [RateLimitRetryExceptTriggers(max_retry_count=1)])
        super().__init__(**options)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            response = await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            answer = exc.response
            error = answer.get("error") if answer is not None and isinstance(answer.data, dict) else None
            status = answer.status_code if answer is not None else None
            self._metrics.slack_call(api_method, status, str(error or f"HTTP {status}"))
            raise
        except Exception:
            self._metrics.slack_call(api_method, None)
            raise
        self._metrics.slack_call(api_method, response.status_code)
        return response
