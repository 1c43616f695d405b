"""An emulator of the Slack Web API that slack-sdk and slack-bolt cannot tell from Slack.

Shipthread's notifier, its Bolt listeners and the sandbox need a Slack that keeps what they post,
answers the way Slack answers (HTTP 200 with ``{"ok": false, "error": ...}``, 429 with
``Retry-After``, ``invalid_blocks`` with JSON pointers) and lets a test read everything back through
the real client. This module is that Slack: ``/api/<method>`` for the Web API, ``/_sandbox/...``
for what a test steers (users, channels, user groups, rate limits, the clock, faults) and reads (every
call received, every message), and the ``response_url`` endpoints handed out by
``bot.sandbox.slack_driver``.

Decisions worth knowing (see also ``slack_blocks`` for the Block Kit limits):

- One workspace (``T0SANDBOX``), one app and bot user; every registered user is a member of every
  registered channel. Channels are never created on first post: as on Slack, an unknown channel is
  ``channel_not_found``. ``#deploys`` (C0DEPLOYS) and ``#general`` (C0GENERAL) exist from the start,
  with three people (alice, bob, carol) and two user groups (deploy-approvers, sre).
- A reply whose ``thread_ts`` names no top-level message is accepted and lost, as Slack does: it
  shows in no thread and not in history (the control API marks it ``orphaned``).
- Time is a ``Clock`` that can run scaled, frozen (scale 0) or be moved forward, so tests of
  trigger expiry and rate limits never sleep.
- Error names are Slack's documented ones: ``expired_trigger_id`` / ``exchanged_trigger_id``,
  ``hash_conflict``, ``cant_update_message``, ``users_not_found``, ``no_such_subteam``,
  ``unknown_method`` (HTTP 200, with ``req_method``), ``invalid_arguments`` with
  ``[ERROR] missing required field: X``; text over 40,000 characters is truncated with the
  ``message_truncated`` warning. ``response_url`` refusals (404 ``expired_url``/``used_url``) are our
  best reading: we found no recording of Slack's.

The emulator is split by what each part holds; this module assembles it and is the one to import:
``slack_records`` (identity, limits, frozen records), ``slack_clock``, ``slack_ratelimit`` (tiers
and the limiter), ``slack_faults`` (outages on demand), ``slack_wire`` (reading requests, Slack's
envelope), ``slack_ids`` (ids, ts, cursors), ``slack_state`` (the workspace), ``slack_methods``
(the Web API), ``slack_control`` (the control API and response URLs), ``slack_files`` (external
file uploads) and ``slack_socket``
(Socket Mode: ``apps.connections.open``, the ``/link/`` WebSocket, envelopes and acks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from aiohttp import web

from bot.sandbox.slack_clock import Clock
from bot.sandbox.slack_files import SlackFilesApi
from bot.sandbox.slack_methods import Handler
from bot.sandbox.slack_ratelimit import DEFAULT_PER_MINUTE, TIERS, RateLimiter, RateLimits
from bot.sandbox.slack_records import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    DEFAULT_CHANNELS,
    DEFAULT_USERGROUPS,
    DEFAULT_USERS,
    MAX_ATTACHMENTS,
    MAX_TEXT,
    RESPONSE_URL_LIFETIME,
    RESPONSE_URL_USES,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    TRIGGER_LIFETIME,
    TRUNCATED_NOTE,
    VIEW_STACK,
    CallRecord,
    Channel,
    Ephemeral,
    Identity,
    JSONDict,
    Message,
    ResponseUrl,
    Trigger,
    User,
    Usergroup,
    View,
)
from bot.sandbox.slack_socket import DEFAULT_APP_TOKEN, SocketMode, SocketSettings
from bot.sandbox.slack_wire import ApiError, Call, Content, missing

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_NAME",
    "BOT_USER_ID",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_CHANNELS",
    "DEFAULT_PER_MINUTE",
    "DEFAULT_USERGROUPS",
    "DEFAULT_USERS",
    "EMULATOR_KEY",
    "MAX_ATTACHMENTS",
    "MAX_TEXT",
    "RESPONSE_URL_LIFETIME",
    "RESPONSE_URL_USES",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEAM_NAME",
    "TIERS",
    "TRIGGER_LIFETIME",
    "TRUNCATED_NOTE",
    "VIEW_STACK",
    "ApiError",
    "Call",
    "CallRecord",
    "Channel",
    "Clock",
    "Content",
    "Ephemeral",
    "Handler",
    "Identity",
    "JSONDict",
    "Message",
    "RateLimiter",
    "RateLimits",
    "ResponseUrl",
    "SlackEmulator",
    "SocketMode",
    "SocketSettings",
    "Trigger",
    "User",
    "Usergroup",
    "View",
    "create_slack_app",
    "emulator_of",
    "missing",
]


class SlackEmulator(SlackFilesApi):
    """The Slack workspace, its Web API and its control API; serve ``.app`` (e.g. with ServerThread).

    Handlers run under one lock, so tests may also read the state from another thread through
    the public methods here; over HTTP, ``/_sandbox/`` gives the same.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-sandbox",  # noqa: S107 -- the sandbox's well-known token, not a secret
        rate_limits: bool | RateLimits = True,
        clock: Clock | None = None,
        users: Iterable[User] = DEFAULT_USERS,
        channels: Iterable[Channel] = DEFAULT_CHANNELS,
        usergroups: Iterable[Usergroup] = DEFAULT_USERGROUPS,
        app_token: str = DEFAULT_APP_TOKEN,
        socket_mode: SocketSettings | None = None,
    ) -> None:
        super().__init__(
            token=token,
            rate_limits=rate_limits,
            clock=clock,
            users=users,
            channels=channels,
            usergroups=usergroups,
        )
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


def create_slack_app(
    *,
    token: str = "xoxb-sandbox",  # noqa: S107 -- the sandbox's well-known token, not a secret
    rate_limits: bool | RateLimits = True,
    clock: Clock | None = None,
    users: Iterable[User] = DEFAULT_USERS,
    channels: Iterable[Channel] = DEFAULT_CHANNELS,
    usergroups: Iterable[Usergroup] = DEFAULT_USERGROUPS,
) -> web.Application:
    """The emulator's aiohttp application; ``emulator_of(app)`` gives its state."""
    return SlackEmulator(
        token=token,
        rate_limits=rate_limits,
        clock=clock,
        users=users,
        channels=channels,
        usergroups=usergroups,
    ).app


def emulator_of(app: web.Application) -> SlackEmulator:
    return app[EMULATOR_KEY]
