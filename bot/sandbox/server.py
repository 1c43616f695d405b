"""Run an aiohttp application in a thread of its own, with its own event loop.

The Jenkins and Kubernetes clients are synchronous: a server in the caller's event loop would
deadlock them, so every emulator runs in its own thread (PLATFORM_NOTES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class ServerThread:
    """An aiohttp app served on ``host:port`` (0 = a free port) from a daemon thread.

    Use as a context manager, or call ``start()`` / ``stop()``. ``url`` is the base URL without a
    trailing slash, e.g. ``http://127.0.0.1:41234``.
    """

    def __init__(
        self, app: web.Application, host: str = "127.0.0.1", port: int = 0, name: str = "emulator"
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{name}", daemon=True)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def app(self) -> web.Application:
        return self._app

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "server not started"
        return self._loop

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"{self.name} emulator did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} emulator failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop = self._loop
        if loop is None or self._stopped.is_set():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._request_stop)
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() rather than lost in the thread
            self._error = exc
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        # aiohttp exposes the bound sockets only on the private server object; with port 0 that
        # is the one place the kernel's chosen port can be read back.
        sockets = getattr(site._server, "sockets", None) or ()
        if self._port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._runner = runner
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
