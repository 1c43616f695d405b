"""``shipthread serve``: the Bolt app on aiohttp (or Socket Mode), health, readiness and metrics.

This module only serves; what it serves is wired in ``bot.wiring``. Start-up refuses to run on
anything broken, with the message an operator can act on: config and playbooks are validated
exactly as ``shipthread playbook validate`` does (one ``file:line: field: message`` line each),
the Slack secrets must be set, and the database must be at the newest migration — ``serve`` does
not migrate on its own unless started with ``--upgrade``: a schema change is an operator's
decision (and with several replicas, one of them should make it).

Routes: ``POST /slack/events`` (Slack's request URL for commands, interactivity and events; not
served with ``--socket-mode``), ``GET /healthz`` (the process answers), ``GET /readyz`` (the engine
still holds its lease, database reachable and migrated, playbooks loaded, Slack ``auth.test`` good,
channels resolved — each failing part named in the body, 503; ``shutting_down`` once SIGTERM came,
so load balancers stop sending work), ``GET /metrics`` (``bot.metrics``).

Start-up keeps the event loop free: the heavy imports happen before the loop runs, what the
kubernetes client loads lazily (its ``ApiClient`` and REST layer) loads in a thread before serving,
and ``bot.looplag`` measures from the first moment how late the loop runs its callbacks
(``shipthread_event_loop_lag_seconds``).

SIGTERM (or SIGINT): ``/readyz`` answers 503, new Slack requests get 503 (Slack retries them
elsewhere), the work already acked finishes (bounded by ``--drain``), the engine lets its running
ticks finish, the notifier sends what is pending, then the process exits 0.

Logs are one JSON object per line on stderr (``bot.jsonlog``), with the deployment id when the
line concerns one, and every secret masked (``bot.domain.redact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.errors import ConfigProblems
from bot.jsonlog import configure_logging
from bot.looplag import LoopLag
from bot.metrics import CONTENT_TYPE, Metrics
from bot.slack import acks
from bot.store import housekeeping, migrate

if TYPE_CHECKING:
    from bot.wiring import Wired

log = logging.getLogger("shipthread.serve")

EVENTS_PATH = "/slack/events"
READY_CACHE_S = 10.0
"""How long a Slack readiness answer is reused (``auth.test`` is Tier 4, probes come every few s)."""
PRUNE_EVERY = timedelta(hours=6)
"""How often old Slack delivery keys are pruned (at start, then this often)."""


LISTEN_BACKLOG = 1024
"""Connections the kernel holds for us before we accept them (aiohttp's default is 128).

Slack delivers a burst of slash commands and clicks as simultaneous connections; past the backlog
the kernel drops the handshake's last ACK and the client sends it again after a second, so each
request over 128 waited over 1 s for its ack (seen at 200 concurrent, ``bench/ack.py``). Linux caps
the value at ``net.core.somaxconn`` (4096 on current kernels)."""


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


# -- the server ------------------------------------------------------------------------------------


class Server:
    """Everything ``serve`` runs, started and stopped in order."""

    def __init__(self, wired: Wired, options: ServeOptions, lag: LoopLag | None = None) -> None:
        self.wired = wired
        self.settings = wired.settings
        self.playbooks = wired.playbooks
        self.runtime = wired.runtime
        self.services = wired.services
        self.app = wired.app
        self.metrics = wired.metrics
        self.options = options
        self.lag = lag or LoopLag(self.metrics.lag)
        self.socket_handler: acks.CountingSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._slack_ready: tuple[float, str | None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
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
        self.lag.start()
        # The kubernetes client loads its ApiClient and REST layer on first use: here, in a thread
        # and before serving, not on the loop in the middle of the first deployment.
        await self.runtime.cluster.preload()
        await self._prune_keys()
        if self.runtime.notifier is not None:
            await self.runtime.notifier.start()
        if self.runtime.charts is not None:
            await self.runtime.charts.start()
        await self.runtime.engine.start()
        self._runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, backlog=LISTEN_BACKLOG)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        if self.options.socket_mode:
            self.socket_handler = acks.CountingSocketModeHandler(
                self.app,
                self.wired.app_token or "",
                web_client=self.services.client,
                metrics=self.metrics,
                background=self.services.background,
            )
            await self.socket_handler.connect_async()  # type: ignore[no-untyped-call]
        self._housekeeping = asyncio.create_task(self._prune_every(PRUNE_EVERY), name="prune delivery keys")
        # Everything built so far (the client libraries, pydantic models, SQLAlchemy) lives as long
        # as the process: keep it out of the collector's way, so a full collection during a burst of
        # requests walks only what the requests made, not the whole heap. The modules were frozen
        # before the loop ran (``serve_command``); what start-up built since is collected young only
        # (a full collection here would stall the loop for 0.3-0.5 s) and frozen with the rest.
        gc.collect(1)
        gc.freeze()
        mode = "socket mode" if self.options.socket_mode else f"HTTP {EVENTS_PATH}"
        log.info("serving on %s:%d (%s)", self.options.host, self.port, mode)

    async def stop(self) -> None:
        """Stop taking work, finish what was acked (bounded), stop the engine, flush the notifier."""
        self.services.background.accepting = False
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.socket_handler is not None:
            with contextlib.suppress(Exception):
                await self.socket_handler.close_async()  # type: ignore[no-untyped-call]
        cut = await self.services.background.drain(self.options.drain_s)
        if cut:
            log.warning("%d acked request(s) did not finish within %.0fs", cut, self.options.drain_s)
        # The engine stops after its running ticks; the notifier then sends what it still holds.
        await self.runtime.close()
        self.wired.unobserve()
        if self._runner is not None:
            await self._runner.cleanup()
        self.lag.stop()
        log.info("stopped")

    async def _prune_keys(self) -> None:
        try:
            pruned = await housekeeping.prune_delivery_keys(self.runtime.store.engine, datetime.now(UTC))
        except Exception as exc:  # a table that grows a little longer is no reason not to serve
            log.warning("could not prune old Slack delivery keys: %s", exc)
            return
        if pruned:
            log.info("pruned %d Slack delivery key(s) older than %s", pruned, housekeeping.DELIVERY_KEY_TTL)

    async def _prune_every(self, every: timedelta) -> None:
        while True:
            await asyncio.sleep(every.total_seconds())
            await self._prune_keys()

    # -- routes ----------------------------------------------------------------------------------

    async def slack_events(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        background = self.services.background
        if not background.accepting:
            return web.json_response({"error": "shutting down"}, status=503)
        with background.answering():  # from the first byte: work waits while this request does
            bolt_request = await to_bolt_request(request)
            response = await acks.answer(self.app, bolt_request, self.metrics, started)
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
        if not self.services.background.accepting:
            # Draining after SIGTERM: a load balancer must stop sending work here now.
            checks["shutting_down"] = "SIGTERM received: finishing acked work, taking no more"
        failing = {name: problem for name, problem in checks.items() if problem}
        body = {"ready": not failing, "failing": failing, "checks": {k: v or "ok" for k, v in checks.items()}}
        return web.json_response(body, status=200 if not failing else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        store = self.runtime.store
        with contextlib.suppress(Exception):  # a scrape must answer even when the database does not
            depth, oldest = await housekeeping.outbox_stats(store.engine)
            self.metrics.observe_store(await store.active_deployments(), depth, oldest, datetime.now(UTC))
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    # -- readiness parts -------------------------------------------------------------------------

    async def _database_problem(self) -> str | None:
        try:
            current = await asyncio.wait_for(migrate.current_revision(self.settings.database_url), 5.0)
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        head = self.wired.head_revision
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


async def build_server(
    options: ServeOptions,
    environ: Mapping[str, str],
    *,
    metrics: Metrics | None = None,
    lag: LoopLag | None = None,
) -> Server:
    """Validate everything, then wire the app (``bot.wiring``); raises ``ConfigError`` on a problem."""
    from bot import wiring  # the client libraries: imported before the loop runs by ``serve_command``

    wired = await wiring.wire(
        environ,
        socket_mode=options.socket_mode,
        upgrade=options.upgrade,
        poll_interval_s=options.poll_interval_s,
        metrics=metrics,
    )
    return Server(wired, options, lag)


async def serve(options: ServeOptions, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    configure_logging()
    # Measured from the first moment, so a stall during start-up shows too.
    metrics = Metrics()
    lag = LoopLag(metrics.lag)
    lag.start()
    try:
        server = await build_server(options, env, metrics=metrics, lag=lag)
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
    # The heavy imports (client libraries) before the loop, not on it. They build ~350,000 objects
    # that live as long as the process, which the collector would walk again at every
    # generation-2 pass while they load (~0.2 s of the cold start): off while they load, on again
    # whatever happens. Then they are collected and frozen once, before the loop runs, so that no
    # later collection walks them (``Server.start`` freezes what start-up built).
    gc.disable()
    try:
        import bot.wiring  # noqa: F401
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()
    return asyncio.run(serve(options))


__all__ = ["EVENTS_PATH", "ServeOptions", "Server", "build_server", "serve", "serve_command"]
