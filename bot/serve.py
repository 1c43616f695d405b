"""``shipthread serve``: the Bolt app on aiohttp (or Socket Mode), health, readiness and metrics.

Start-up refuses to run on anything broken, with the message an operator can act on: config and
playbooks are validated exactly as ``shipthread playbook validate`` does (one ``file:line: field:
message`` line each), the Slack secrets must be set, and the database must be at the newest
migration — ``serve`` does not migrate on its own unless started with ``--upgrade``: a schema
change is an operator's decision (and with several replicas, one of them should make it).

Routes: ``POST /slack/events`` (Slack's request URL for commands, interactivity and events; not
served with ``--socket-mode``), ``GET /healthz`` (the process answers), ``GET /readyz`` (the engine
still holds its lease, database reachable and migrated, playbooks loaded, Slack ``auth.test`` good,
channels resolved — each failing part named in the body, 503), ``GET /metrics`` (``bot.metrics``).

SIGTERM (or SIGINT): new Slack requests get 503 (Slack retries them elsewhere), the work already
acked finishes (bounded by ``--drain``), the engine lets its running ticks finish, the notifier sends
what is pending, then the process exits 0.

Logs are one JSON object per line on stderr, with the deployment id when the line concerns one,
and every secret masked (``bot.domain.redact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot import logs
from bot.adapters.slack_usergroups import usergroup_resolver
from bot.config import ConfigProblems, Settings, load_settings
from bot.container import Runtime
from bot.domain.playbook import Playbook
from bot.errors import ConfigError
from bot.metrics import CONTENT_TYPE, CountingChat, LogCounter, Metrics
from bot.playbooks import cross_validate, load_playbooks
from bot.slack.app import BotIdentity, build_app
from bot.slack.client import CountingWebClient
from bot.slack.late import LateCharts, LateChat
from bot.slack.outgoing import CARD
from bot.slack.services import Services, ThreadOf
from bot.slack.thread import plan
from bot.slack.work import deployment_context
from bot.store import migrate
from bot.store.threads import ThreadStore

log = logging.getLogger("shipthread.serve")

EVENTS_PATH = "/slack/events"
READY_CACHE_S = 10.0
"""How long a Slack readiness answer is reused (``auth.test`` is Tier 4, probes come every few s)."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "0.0.0.0"  # noqa: S104 -- a server in a container listens on every interface
    port: int = 3000
    socket_mode: bool = False
    upgrade: bool = False
    """Migrate the database at start instead of refusing an old schema."""
    drain_s: float = 20.0
    """How long SIGTERM waits for acked work to finish."""
    poll_interval_s: float | None = None
    """How often an unfinished deployment is polled; None: the engine's default."""


# -- logging ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[0-9a-z]+")
_ID_SHAPE = re.compile(r"^d(?:[0-9a-hjkmnp-tv-z]{10}|[0-9a-f]{6})$")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, deployment id, secrets masked.

    Records are redacted when made (``bot.logs``); the finished line is masked once more with the
    redactor installed at that moment, for records made before it was.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        deployment = _deployment_of(record, message)
        if deployment:
            line["deployment_id"] = deployment
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return logs.installed().redact(json.dumps(line, ensure_ascii=False, default=str))


def _deployment_of(record: logging.LogRecord, message: str) -> str | None:
    given = getattr(record, "deployment_id", None)
    if isinstance(given, str):
        return given
    # The engine names the deployment in its messages; redaction has already merged the arguments in.
    for word in _WORD.findall(message):
        if _ID_SHAPE.match(word) and any(c.isdigit() for c in word):
            return str(word)
    return deployment_context.get()


def configure_logging(level: int = logging.INFO) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO (every HTTP request of aiohttp's access log, Bolt's per-request
    # debug) would drown what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("shipthread.bolt").setLevel(logging.WARNING)
    return handler


# -- start-up checks -------------------------------------------------------------------------------


class StartupError(ConfigError):
    """Something an operator must fix before the bot can start; the message says what."""


def load_checked(environ: Mapping[str, str]) -> tuple[Settings, dict[str, Playbook]]:
    """Settings and playbooks, validated as ``playbook validate`` does; ``ConfigProblems`` otherwise."""
    settings = load_settings(None, environ)
    playbooks = load_playbooks(environ.get("SHIPTHREAD_PLAYBOOKS") or settings.playbooks_dir)
    problems = cross_validate(playbooks, settings)
    if problems:
        raise ConfigProblems(problems)
    return settings, playbooks


async def check_schema(url: str, upgrade: bool) -> None:
    """The database must be at the newest migration (or be migrated now, with ``upgrade``)."""
    head = migrate.head_revision()
    current = await migrate.current_revision(url)
    if current == head:
        return
    if upgrade:
        await migrate.upgrade(url)
        return
    at = f"at revision {current}" if current else "not migrated"
    raise StartupError(
        f"the database is {at}; this Shipthread needs revision {head}: "
        "run `shipthread db upgrade` first (or start with `shipthread serve --upgrade`)"
    )


def _secret(settings: Settings, name: str) -> str:
    value = getattr(settings.secrets, name.lower())
    if value is None:
        raise StartupError(f"{name} is not set (secrets come from the environment only)")
    return str(value.get_secret_value())


# -- the server ------------------------------------------------------------------------------------


class Server:
    """Everything ``serve`` runs, started and stopped in order."""

    def __init__(
        self,
        *,
        settings: Settings,
        playbooks: Mapping[str, Playbook],
        runtime: Runtime,
        services: Services,
        app: AsyncApp,
        metrics: Metrics,
        options: ServeOptions,
    ) -> None:
        self.settings = settings
        self.playbooks = playbooks
        self.runtime = runtime
        self.services = services
        self.app = app
        self.metrics = metrics
        self.options = options
        self.socket_handler: Any = None
        self._runner: web.AppRunner | None = None
        self._slack_ready: tuple[float, str | None] | None = None
        self.port = options.port

    def web_app(self) -> web.Application:
        web_app = web.Application()
        if not self.options.socket_mode:
            web_app.router.add_post(EVENTS_PATH, self.slack_events)
        web_app.router.add_get("/healthz", self.healthz)
        web_app.router.add_get("/readyz", self.readyz)
        web_app.router.add_get("/metrics", self.metrics_page)
        return web_app

    async def start(self) -> None:
        if self.runtime.notifier is not None:
            await self.runtime.notifier.start()
        if self.runtime.charts is not None:
            await self.runtime.charts.start()
        await self.runtime.engine.start()
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        if self.options.socket_mode:
            from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

            self.socket_handler = AsyncSocketModeHandler(
                self.app, _secret(self.settings, "SLACK_APP_TOKEN"), web_client=self.services.client
            )
            await self.socket_handler.connect_async()
        # Everything built so far (the client libraries, pydantic models, SQLAlchemy) lives as long
        # as the process: keep it out of the collector's way, so a full collection during a burst of
        # requests walks only what the requests made, not the whole heap.
        gc.collect()
        gc.freeze()
        mode = "socket mode" if self.options.socket_mode else f"HTTP {EVENTS_PATH}"
        log.info("serving on %s:%d (%s)", self.options.host, self.port, mode)

    async def stop(self) -> None:
        """Stop taking work, finish what was acked (bounded), stop the engine, flush the notifier."""
        self.services.background.accepting = False
        if self.socket_handler is not None:
            with contextlib.suppress(Exception):
                await self.socket_handler.close_async()
        cut = await self.services.background.drain(self.options.drain_s)
        if cut:
            log.warning("%d acked request(s) did not finish within %.0fs", cut, self.options.drain_s)
        # The engine stops after its running ticks; the notifier then sends what it still holds.
        await self.runtime.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("stopped")

    # -- routes ----------------------------------------------------------------------------------

    async def slack_events(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        if not self.services.background.accepting:
            return web.json_response({"error": "shutting down"}, status=503)
        bolt_request = await to_bolt_request(request)
        response = await self.app.async_dispatch(bolt_request)
        kind = _kind(bolt_request.body)
        self.metrics.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        self.metrics.acks.labels(kind, str(response.status)).inc()
        return await to_aiohttp_response(response)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = {
            # An engine whose lease another took over acts no more: out of service until restarted.
            "engine": self.runtime.engine.lease_problem,
            "database": await self._database_problem(),
            "playbooks": None if self.playbooks else "no playbooks loaded",
            "slack": await self._slack_problem(),
            "channels": await self._channel_problem(),
        }
        failing = {name: problem for name, problem in checks.items() if problem}
        body = {"ready": not failing, "failing": failing, "checks": {k: v or "ok" for k, v in checks.items()}}
        return web.json_response(body, status=200 if not failing else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        store = self.runtime.store
        with contextlib.suppress(Exception):  # a scrape must answer even when the database does not
            self.metrics.observe_store(
                await store.active_deployments(), await store.pending_effects(), datetime.now(UTC)
            )
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    # -- readiness parts -------------------------------------------------------------------------

    async def _database_problem(self) -> str | None:
        try:
            current = await asyncio.wait_for(migrate.current_revision(self.settings.database_url), 5.0)
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        head = migrate.head_revision()
        if current != head:
            return f"at revision {current}, needs {head}: run `shipthread db upgrade`"
        return None

    async def _slack_problem(self) -> str | None:
        now = time.monotonic()
        if self._slack_ready is not None and now - self._slack_ready[0] < READY_CACHE_S:
            return self._slack_ready[1]
        problem: str | None = None
        try:
            answer = await self.services.client.auth_test()
            if not answer.get("ok"):
                problem = f"auth.test: {answer.get('error')}"
        except Exception as exc:
            problem = f"auth.test failed: {type(exc).__name__}: {exc}"
        self._slack_ready = (now, problem)
        return problem

    async def _channel_problem(self) -> str | None:
        if self.runtime.notifier is None:
            return None
        try:
            problems = await self.runtime.notifier.problems()
        except Exception as exc:
            return f"cannot check: {exc}"
        return "; ".join(problems) or None


def _kind(body: Mapping[str, Any]) -> str:
    if "command" in body:
        return "command"
    return {
        "block_actions": "action",
        "view_submission": "view",
        "view_closed": "view",
        "event_callback": "event",
        "url_verification": "event",
    }.get(str(body.get("type")), "other")


async def identify(client: CountingWebClient, attempts: int = 5) -> BotIdentity:
    """The bot's identity from ``auth.test``, retried briefly (Slack may be slow to answer at start)."""
    for attempt in range(attempts):
        try:
            answer = await client.auth_test()
            return BotIdentity.from_auth_test(dict(answer.data) if isinstance(answer.data, dict) else {})
        except Exception as exc:
            if attempt + 1 == attempts:
                raise StartupError(f"Slack auth.test failed: {exc}") from exc
            await asyncio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


async def build_server(options: ServeOptions, environ: Mapping[str, str]) -> Server:
    """Validate everything, then wire the app; raises ``ConfigError`` (with its message) on a problem."""
    from bot import container

    settings, playbooks = load_checked(environ)
    await check_schema(settings.database_url, options.upgrade)
    bot_token = _secret(settings, "SLACK_BOT_TOKEN")
    signing_secret = "" if options.socket_mode else _secret(settings, "SLACK_SIGNING_SECRET")
    if options.socket_mode:
        _secret(settings, "SLACK_APP_TOKEN")
    metrics = Metrics()
    LogCounter(metrics).install()
    client = CountingWebClient(
        metrics,
        token=bot_token,
        base_url=str(settings.slack.api_url),
        timeout=max(1, round(settings.slack.timeout.total_seconds())),
    )
    identity = await identify(client)
    # The notifier and the chart poster live on the runtime's database, which the build creates;
    # the build wants a chat: late-bound stand-ins bridge the two (``bot.slack.late``).
    chat, charts = LateChat(), LateCharts()
    runtime = container.build(
        settings,
        playbooks,
        chat=CountingChat(chat, metrics),
        resolve_handle=usergroup_resolver(client),
        on_transition=metrics.on_transition,
        poll_interval_s=options.poll_interval_s,
        charts=charts,
    )
    notifier = container.slack_notifier(
        settings,
        runtime.store.engine,
        # The renderer takes the card state as a dict; the notifier hands it a read-only mapping.
        lambda state, notification, ctx: plan(dict(state) if state is not None else None, notification, ctx),
        channel_for=runtime.engine.ctx.channel,
        channels=container.thread_channels(settings, playbooks),
        on_call=metrics.slack_call,  # counted with the app's own calls
    )
    runtime.notifier = chat.target = notifier
    runtime.charts = charts.target = container.chart_poster(
        settings, runtime.store.engine, on_call=metrics.slack_call
    )
    services = Services(
        engine=runtime.engine,
        store=runtime.store,
        playbooks=playbooks,
        directory=runtime.engine.ctx.directory,
        clock=runtime.engine.ctx.clock,
        client=client,
        metrics=metrics,
        thread_of=_thread_of(ThreadStore(runtime.store.engine)),
        break_glass_group=settings.break_glass,
        workspace_url=identity.url,
    )
    app = build_app(services, signing_secret=signing_secret, bot_token=bot_token, identity=identity)
    return Server(
        settings=settings,
        playbooks=playbooks,
        runtime=runtime,
        services=services,
        app=app,
        metrics=metrics,
        options=options,
    )


def _thread_of(threads: ThreadStore) -> ThreadOf:
    async def thread_of(deployment_id: str) -> tuple[str, str] | None:
        for message in await threads.messages(deployment_id):
            if message.key == CARD and message.ts:
                return message.channel, message.ts
        return None

    return thread_of


async def serve(options: ServeOptions, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    configure_logging()
    try:
        server = await build_server(options, env)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"shipthread: {len(exc.problems)} problem(s) found; not starting", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    log.info("stopping: no new work, finishing what was acked")
    await server.stop()
    return 0


def serve_command(options: ServeOptions) -> int:
    """Entry point of ``shipthread serve``."""
    return asyncio.run(serve(options))


__all__ = ["EVENTS_PATH", "ServeOptions", "Server", "ThreadOf", "build_server", "serve", "serve_command"]
