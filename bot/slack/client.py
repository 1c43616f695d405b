"""The Web API client of the Slack layer: slack-sdk's, with each call and each 429 counted.

Listeners use this one client (not the one Bolt builds per request) so ``/metrics`` sees every
call the app makes. A 429 is retried once after its ``Retry-After`` by slack-sdk's own handler:
the calls made here (``views.open``, ``views.publish``, ``chat.postEphemeral``) are Tier 4 and
a person is waiting for them; the thread's messages are paced by the notifier instead.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.metrics import Metrics


class CountingWebClient(AsyncWebClient):
    def __init__(self, metrics: Metrics, **options: Any) -> None:
        options.setdefault("retry_handlers", [AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
        super().__init__(**options)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        self._metrics.slack_calls.labels(api_method).inc()
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            if exc.response is not None and exc.response.status_code == 429:
                self._metrics.slack_ratelimited.labels(api_method).inc()
            raise
