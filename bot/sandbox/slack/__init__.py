"""An emulator of the Slack Web API that slack-sdk and slack-bolt cannot tell from Slack: its one public face.

Shipthread's notifier, its Bolt listeners and the sandbox need a Slack that keeps what they post,
answers the way Slack answers (HTTP 200 with ``{"ok": false, "error": ...}``, 429 with
``Retry-After``, ``invalid_blocks`` with JSON pointers) and lets a test read everything back through
the real client. This package is that Slack: ``/api/<method>`` for the Web API, ``/_sandbox/...``
for what a test steers (users, channels, user groups, rate limits, the clock, faults) and reads (every
call received, every message), and the ``response_url`` endpoints handed out by the ``SlackDriver``.

Decisions worth knowing (see also ``blocks`` for the Block Kit limits):

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

The package is split by what each module holds; import only from here (``__all__`` below), never
from a module inside: ``records`` (identity, limits, frozen records), ``clock``, ``ratelimit`` (tiers
and the limiter), ``faults`` (outages on demand), ``wire`` (reading requests, Slack's envelope),
``ids`` (ids, ts, cursors), ``state`` (the workspace), then the layers of the emulator, each a class
over the one before: ``views`` and ``conversations`` (those Web API methods), ``methods`` (the rest
of the Web API and its dispatch), ``response_urls``, ``control`` (the control API), ``files``
(external file uploads) and ``emulator`` (all of it behind one aiohttp app, with ``socket_mode``,
over ``socket_records`` and ``socket_links``: ``apps.connections.open``, the ``/link/`` WebSocket,
envelopes and acks). ``blocks`` is the Block Kit checker; ``driver``, ``socket_driver`` and
``view_state`` go the other direction: a Slack that sends slash commands, clicks and view
submissions to an app, over HTTP or Socket Mode (``driver_emulator``: what they read and mint in
the emulator).
"""

from __future__ import annotations

from bot.sandbox.slack.blocks import check_message_blocks, check_view, with_ids
from bot.sandbox.slack.clock import Clock
from bot.sandbox.slack.driver import FORM, DriverResponse, SlackDriver
from bot.sandbox.slack.emulator import SlackEmulator, create_slack_app, emulator_of
from bot.sandbox.slack.faults import parse_fault
from bot.sandbox.slack.ratelimit import DEFAULT_PER_MINUTE, RateLimits
from bot.sandbox.slack.records import DEFAULT_CHANNELS, Channel, User, Usergroup
from bot.sandbox.slack.socket_driver import SocketModeDriver
from bot.sandbox.slack.socket_records import DEFAULT_APP_TOKEN, SocketSettings
from bot.sandbox.slack.view_state import view_state

__all__ = [
    "DEFAULT_APP_TOKEN",
    "DEFAULT_CHANNELS",
    "DEFAULT_PER_MINUTE",
    "FORM",
    "Channel",
    "Clock",
    "DriverResponse",
    "RateLimits",
    "SlackDriver",
    "SlackEmulator",
    "SocketModeDriver",
    "SocketSettings",
    "User",
    "Usergroup",
    "check_message_blocks",
    "check_view",
    "create_slack_app",
    "emulator_of",
    "parse_fault",
    "view_state",
    "with_ids",
]
