"""The Slack emulator itself: the workspace, its Web API, control API, files and Socket Mode in one app.

The pieces live in the sibling modules (records, state, methods, control, files, socket_mode); this
one puts them behind one aiohttp application. Import it through ``bot.sandbox.slack``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Unpack

from aiohttp import web

from bot.sandbox.slack.files import SlackFilesApi
from bot.sandbox.slack.socket_mode import SocketMode
from bot.sandbox.slack.socket_records import DEFAULT_APP_TOKEN, SocketSettings
from bot.sandbox.slack.state import WorkspaceOptions


class SlackEmulator(SlackFilesApi):
    """The Slack workspace, its Web API and its control API; serve ``.app`` (e.g. with ServerThread).

    Handlers run under one lock, so tests may also read the state from another thread through
    the public methods here; over HTTP, ``/_sandbox/`` gives the same.
    """

    def __init__(
        self,
        *,
        app_token: str = DEFAULT_APP_TOKEN,
        socket_mode: SocketSettings | None = None,
        **workspace: Unpack[WorkspaceOptions],
    ) -> None:
        super().__init__(**workspace)
        self.socket = SocketMode(self.clock, self._lock, app_tokens=(app_token,), settings=socket_mode)
        self._methods = {**self._method_table(), **self._file_methods()}
        self.app = self._build_app()

    # -- HTTP ----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app[EMULATOR_KEY] = self
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_route("GET", "/link/", self.socket.link)
        app.cleanup_ctx.append(self.socket.watch)
        app.on_shutdown.append(self.socket.close_all)
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "workspace", self._ctl_workspace),
            ("POST", "users", self._ctl_users),
            ("POST", "channels", self._ctl_channels),
            ("POST", "usergroups", self._ctl_usergroups),
            ("GET", "calls", self._ctl_calls),
            ("GET", "messages", self._ctl_messages),
            ("POST", "messages", self._ctl_post_message),
            ("GET", "message", self._ctl_message),
            ("GET", "ephemeral", self._ctl_ephemeral),
            ("GET", "views", self._ctl_views),
            ("GET", "views/{view_id}", self._ctl_view),
            ("POST", "views/{view_id}/response", self._ctl_view_response),
            ("POST", "triggers", self._ctl_triggers),
            ("GET", "response_urls", self._ctl_response_urls),
            ("POST", "response_urls", self._ctl_new_response_url),
            ("POST", "response/{rid:.+}", self._response_url),
            ("GET", "config", self._ctl_config),
            ("POST", "config", self._ctl_config),
            ("POST", "reset", self._ctl_reset),
            ("GET", "faults", self._ctl_faults),
            ("POST", "faults", self._ctl_faults),
            ("DELETE", "faults", self._ctl_faults),
        ]
        routes += self.socket.routes()
        for verb, path, handler in self._file_routes():
            app.router.add_route(verb, path, handler)
        for verb, path, handler in routes:
            app.router.add_route(verb, f"/_sandbox/{path}", handler)
        return app

    def reset(self, *, keep_directory: bool = False) -> None:
        super().reset(keep_directory=keep_directory)
        self.socket.reset()
        self._reset_files()


EMULATOR_KEY: Final = web.AppKey("slack_emulator", SlackEmulator)


def create_slack_app(**workspace: Unpack[WorkspaceOptions]) -> web.Application:
    """The emulator's aiohttp application; ``emulator_of(app)`` gives its state."""
    return SlackEmulator(**workspace).app


def emulator_of(app: web.Application) -> SlackEmulator:
    return app[EMULATOR_KEY]
