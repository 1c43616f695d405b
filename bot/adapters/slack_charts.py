"""Posting a guard verdict's chart into its deployment's thread: the ``ChartPoster`` port over Slack.

The chart is drawn off the event loop (``bot.adapters.charts.render_png`` in a one-worker pool,
under ``render_timeout_s``), then uploaded with Slack's external-upload flow through slack-sdk's
``files_upload_v2`` (``files.getUploadURLExternal``, the bytes to the upload URL,
``files.completeUploadExternal`` with ``thread_ts``) as a reply under the thread's card, whose
``ts`` the notifier keeps in the thread store (``bot.store.threads``). If the card is not posted
yet (Slack was down), the poster waits for it, up to ``thread_wait_s``.

Everything here is best effort and bounded: a chart is worth a retry or two, never a stall. Every
failure raises one of ours (``TransientError``/``PermanentError``) for the caller to log and count.
A completion whose answer is lost and then retried can share the chart twice; that is accepted for
a picture (a message of the thread would be adopted instead, see ``bot.adapters.slack_notifier``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_wire
from bot.adapters.blocking import BlockingRunner
from bot.adapters.http_errors import is_transient
from bot.adapters.retrying import RetryPolicy, retry, retry_after
from bot.adapters.slack_notifier import TRANSIENT_ERRORS, SlackRefused
from bot.adapters.slack_wire import CallObserver
from bot.domain.chart import VerdictChart
from bot.errors import PermanentError, TransientError
from bot.store.threads import ThreadStore

log = logging.getLogger("shipthread.slack.charts")

Renderer = Callable[[VerdictChart], bytes]


def render_png(chart: VerdictChart) -> bytes:
    """``bot.adapters.charts.render_png``, imported off start-up's path: matplotlib costs over a
    second of start-up and ~40 MB, so the poster loads it in its worker at its first chart
    (``_load_matplotlib``, outside ``render_timeout_s``)."""
    from bot.adapters import charts

    return charts.render_png(chart)


def _load_matplotlib() -> None:
    from bot.adapters import charts

    del charts


@dataclass(frozen=True, slots=True)
class ChartOptions:
    timeout_s: float = 10.0
    """Each Slack call's timeout (the upload of the bytes included)."""
    render_timeout_s: float = 10.0
    """The longest a chart may take to draw; past it the chart is dropped."""
    thread_wait_s: float = 30.0
    """How long to wait for the thread's card to be posted before giving the chart up."""
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=2, total_s=20.0))


class SlackChartPoster:
    """Implements ``bot.ports.ChartPoster``; ``start`` / ``close`` it."""

    def __init__(
        self,
        store: ThreadStore,
        *,
        token: str,
        base_url: str,
        options: ChartOptions | None = None,
        render: Renderer = render_png,
        on_call: CallObserver | None = None,
    ) -> None:
        self.store = store
        self.options = options or ChartOptions()
        self._token = token
        self._base_url = base_url
        self._render = render
        self._on_call = on_call
        self._runner = BlockingRunner("charts", 1)
        self._loaded: asyncio.Future[None] | None = None
        """matplotlib being imported in the worker (begun by the first chart)."""
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self.rendered_s: list[float] = []
        """How long each chart took to draw (the last few), for operators and benchmarks."""

    async def start(self) -> None:
        self._session, self._client = slack_wire.open_client(
            self._on_call, token=self._token, base_url=self._base_url, timeout_s=self.options.timeout_s
        )

    async def close(self) -> None:
        self._runner.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_chart(self, chart: VerdictChart, comment: str) -> None:
        png = await self.render(chart)
        channel, thread_ts = await self._thread(chart.deployment_id)
        await retry(
            self.options.retry,
            f"uploading the chart of {chart.deployment_id}",
            lambda: self._upload(chart, png, comment, channel, thread_ts),
            system="slack",
        )

    async def render(self, chart: VerdictChart) -> bytes:
        """The chart's PNG, drawn in the poster's worker thread within ``render_timeout_s``."""
        started = time.perf_counter()
        try:
            await asyncio.shield(self._load())  # importing is not drawing: ``render_timeout_s`` is for that
            started = time.perf_counter()
            png = await asyncio.wait_for(self._runner.run(self._render, chart), self.options.render_timeout_s)
        except TimeoutError:
            limit = self.options.render_timeout_s
            raise PermanentError(
                f"the chart of {chart.deployment_id} took longer than {limit}s to draw"
            ) from None
        except Exception as exc:  # matplotlib's errors are many and undocumented: all are ours now
            raise PermanentError(f"the chart of {chart.deployment_id} could not be drawn: {exc}") from exc
        self.rendered_s = [*self.rendered_s, time.perf_counter() - started][-20:]
        return png

    def _load(self) -> asyncio.Future[None]:
        if self._loaded is None:
            self._loaded = asyncio.ensure_future(self._runner.run(_load_matplotlib))
        return self._loaded

    async def _thread(self, deployment_id: str) -> tuple[str, str]:
        """The thread's channel id and its card's ts, once the notifier has posted the card."""
        deadline = time.monotonic() + self.options.thread_wait_s
        while True:
            for message in await self.store.messages(deployment_id):
                if message.top_level and message.ts is not None and message.channel_id is not None:
                    return message.channel_id, message.ts
            if time.monotonic() >= deadline:
                raise TransientError(f"{deployment_id}: its thread was not posted in time for the chart")
            await asyncio.sleep(0.25)

    async def _upload(
        self, chart: VerdictChart, png: bytes, comment: str, channel: str, thread_ts: str
    ) -> None:
        assert self._client is not None, "the chart poster is not started"
        try:
            await self._client.files_upload_v2(
                filename=chart.filename,
                content=png,
                title=chart.title,
                alt_txt=chart.title[:1000],
                channel=channel,
                thread_ts=thread_ts,
                initial_comment=comment,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if is_transient(status) or error in TRANSIENT_ERRORS:
                wait = retry_after(exc.response.headers.get("Retry-After")) if status == 429 else 1.0
                raise TransientError(
                    f"chart upload: Slack answered {status} {error}".rstrip(), retry_in=wait
                ) from exc
            raise SlackRefused("files_upload_v2", error or f"HTTP {status}") from exc
        except SlackRequestError as exc:  # the upload URL refused the bytes
            raise TransientError(f"chart upload: {exc}", retry_in=1.0) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"chart upload: {type(exc).__name__}: {exc}", retry_in=1.0) from exc
        log.info("Slack: chart of %s posted in its thread (%d bytes)", chart.deployment_id, len(png))
