"""Every Slack request answered the same way, whichever way it came: over HTTP or Socket Mode.

One place times and counts an ack (``shipthread_slack_acks_total``, ``shipthread_slack_ack_seconds``)
and holds the background work back while it is pending (``Background.answering``), so a Socket
Mode delivery is measured and favoured exactly as a signed ``POST /slack/events`` is.
``CountingSocketModeHandler`` is Bolt's aiohttp Socket Mode handler with its dispatch going
through ``answer``; it sends the ack with Bolt's own helper, so the envelope on the wire is Bolt's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.slack.work import Background

_KINDS = {
    "block_actions": "action",
    "view_submission": "view",
    "view_closed": "view",
    "event_callback": "event",
    "url_verification": "event",
}


def kind_of(body: Mapping[str, Any]) -> str:
    """What a request is, for the metrics' ``kind`` label: command, action, view, event or other."""
    if "command" in body:
        return "command"
    return _KINDS.get(str(body.get("type")), "other")


async def answer(app: AsyncApp, request: AsyncBoltRequest, metrics: Metrics, started: float) -> BoltResponse:
    """Dispatch ``request`` to the app (its listeners ack), timed from ``started`` and counted.

    The caller holds ``background.answering()`` around it, from the moment the request arrived.
    """
    response = await app.async_dispatch(request)
    kind = kind_of(request.body)
    metrics.ack_seconds.labels(kind).observe(time.perf_counter() - started)
    metrics.acks.labels(kind, str(response.status)).inc()
    return response


class CountingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's aiohttp Socket Mode handler, with each envelope answered through ``answer``."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str,
        *,
        web_client: AsyncWebClient,
        metrics: Metrics,
        background: Background,
    ) -> None:
        super().__init__(app, app_token, web_client=web_client)
        self._metrics = metrics
        self._background = background

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started, wall = time.perf_counter(), time.time()
        with self._background.answering():
            request = AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=build_headers(req))
            response = await answer(self.app, request, self._metrics, started)
        await send_async_response(client, req, response, wall)
