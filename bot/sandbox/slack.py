"""An emulator of the Slack Web API that slack-sdk and slack-bolt cannot tell from Slack.

Shipthread's notifier, its Bolt listeners and the sandbox need a Slack that keeps what they post,
answers the way Slack answers (HTTP 200 with ``{"ok": false, "error": ...}``, 429 with
``Retry-After``, ``invalid_blocks`` with JSON pointers) and lets a test read everything back through
the real client. This module is that Slack: ``/api/<method>`` for the Web API, ``/_sandbox/...``
for what a test steers (users, channels, user groups, rate limits, the clock) and reads (every
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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aiohttp import web

from bot.sandbox import slack_blocks

JSONDict = dict[str, Any]

TEAM_ID: Final = "T0SANDBOX"
TEAM_NAME: Final = "Shipthread Sandbox"
TEAM_DOMAIN: Final = "shipthread-sandbox"
APP_ID: Final = "A0SHIPTHREAD"
BOT_USER_ID: Final = "U0SHIPBOT"
BOT_ID: Final = "B0SHIPBOT"
BOT_NAME: Final = "shipthread"

TRIGGER_LIFETIME: Final = 3.0  # seconds
RESPONSE_URL_LIFETIME: Final = 30 * 60.0
RESPONSE_URL_USES: Final = 5
MAX_TEXT: Final = 40_000
MAX_ATTACHMENTS: Final = 100
VIEW_STACK: Final = 3  # modals a user can have stacked
TRUNCATED_NOTE: Final = (
    "[WARN] Your message was truncated but still posted. The `text` field accepts up to 40,000 characters."
)


# ---------------------------------------------------------------------------------------------
# Time


class Clock:
    """The emulator's sense of time: wall-clock time, optionally scaled, frozen or moved forward.

    ``scale`` 1 follows real time, 10 runs ten times faster, 0 stands still until ``advance``.
    """

    def __init__(
        self,
        start: float | None = None,
        scale: float = 1.0,
        source: Callable[[], float] = time.monotonic,
    ) -> None:
        if scale < 0:
            raise ValueError("clock scale must be >= 0")
        self._source = source
        self._lock = threading.Lock()
        self._origin = time.time() if start is None else start
        self._origin_real = source()
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        with self._lock:
            return self._origin + (self._source() - self._origin_real) * self._scale

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._origin += seconds

    def set_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError("clock scale must be >= 0")
        now = self.now()
        with self._lock:
            self._origin, self._origin_real, self._scale = now, self._source(), scale


# ---------------------------------------------------------------------------------------------
# Rate limits

TIERS: Final[Mapping[str, str]] = {
    # Slack's published tiers (docs.slack.dev/reference/methods; the Java SDK's MethodsRateLimits).
    "api.test": "special",
    "auth.test": "special",
    "chat.postMessage": "special",
    "chat.getPermalink": "special",
    "chat.update": "tier3",
    "chat.delete": "tier3",
    "chat.postEphemeral": "tier4",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
    "conversations.info": "tier3",
    "reactions.add": "tier3",
    "users.info": "tier4",
    "users.lookupByEmail": "tier3",
    "usergroups.list": "tier2",
    "usergroups.users.list": "tier2",
    "views.open": "tier4",
    "views.push": "tier4",
    "views.update": "tier4",
    "views.publish": "tier4",
}

DEFAULT_PER_MINUTE: Final[Mapping[str, int]] = {
    "tier1": 1,
    "tier2": 20,
    "tier3": 50,
    "tier4": 100,
    # "hundreds of requests per minute" for auth.test and getPermalink; chat.postMessage's
    # workspace-wide cap ("several hundred per minute") on top of its per-channel pace.
    "special": 600,
}


@dataclass(frozen=True)
class RateLimits:
    """What the emulator allows per minute and per channel; changed by copying."""

    enabled: bool = True
    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PER_MINUTE))
    methods: Mapping[str, int] = field(default_factory=dict)
    """Per-method overrides of the tier figure, calls per minute."""
    post_per_second: float = 1.0
    """chat.postMessage to one channel: sustained pace."""
    post_burst: int = 4
    """chat.postMessage to one channel: how many may go at once before the pace applies."""

    def limit_for(self, method: str) -> int | None:
        if method in self.methods:
            return self.methods[method]
        tier = TIERS.get(method)
        return self.per_minute.get(tier) if tier else None

    def changed(self, patch: Mapping[str, Any]) -> RateLimits:
        """A copy with the control API's changes; raises ``ValueError`` on a bad figure."""
        unknown = set(patch) - {"enabled", "per_minute", "tiers", "methods", "post_per_second", "post_burst"}
        if unknown:
            raise ValueError(f"unknown rate limit settings: {', '.join(sorted(unknown))}")
        per_minute = dict(self.per_minute)
        for name, value in {**patch.get("per_minute", {}), **patch.get("tiers", {})}.items():
            key = name if str(name).startswith(("tier", "special")) else f"tier{name}"
            per_minute[key] = _positive_int(value, f"tier {name}")
        methods = dict(self.methods)
        for name, value in patch.get("methods", {}).items():
            methods[str(name)] = _positive_int(value, f"method {name}")
        post_per_second = float(patch.get("post_per_second", self.post_per_second))
        post_burst = _positive_int(patch.get("post_burst", self.post_burst), "post_burst")
        if post_per_second <= 0:
            raise ValueError("post_per_second must be > 0")
        return RateLimits(
            enabled=bool(patch.get("enabled", self.enabled)),
            per_minute=per_minute,
            methods=methods,
            post_per_second=post_per_second,
            post_burst=post_burst,
        )

    def to_json(self) -> JSONDict:
        return {
            "enabled": self.enabled,
            "per_minute": dict(self.per_minute),
            "methods": dict(self.methods),
            "post_per_second": self.post_per_second,
            "post_burst": self.post_burst,
        }


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number") from None
    if number < 1:
        raise ValueError(f"{what} must be at least 1")
    return number


class RateLimiter:
    """Sliding one-minute windows per method, and a token bucket per channel for chat.postMessage."""

    WINDOW: Final = 60.0

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._calls: dict[str, deque[float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # channel → (tokens, at)

    def reset(self, limits: RateLimits | None = None) -> None:
        if limits is not None:
            self.limits = limits
        self._calls.clear()
        self._buckets.clear()

    def method_wait(self, method: str, now: float) -> int:
        """Seconds to wait before ``method`` may be called (0: go, and the call is counted)."""
        limit = self.limits.limit_for(method)
        if not self.limits.enabled or limit is None:
            return 0
        window = self._calls.setdefault(method, deque())
        while window and window[0] <= now - self.WINDOW:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + self.WINDOW - now))
        window.append(now)
        return 0

    def post_wait(self, channel: str, now: float) -> int:
        """Seconds to wait before the next chat.postMessage to ``channel`` (0: go, and it is counted)."""
        if not self.limits.enabled:
            return 0
        rate, burst = self.limits.post_per_second, float(self.limits.post_burst)
        tokens, at = self._buckets.get(channel, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self._buckets[channel] = (tokens - 1.0, now)
        return 0


# ---------------------------------------------------------------------------------------------
# The workspace's records


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str = ""
    email: str = ""
    is_bot: bool = False
    is_admin: bool = False
    deleted: bool = False
    tz: str = "Europe/London"

    def to_json(self) -> JSONDict:
        profile: JSONDict = {
            "real_name": self.real_name or self.name,
            "real_name_normalized": self.real_name or self.name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "team": TEAM_ID,
            "image_48": f"https://avatars.example/{self.id}_48.png",
        }
        if self.email and not self.is_bot:
            profile["email"] = self.email
        if self.is_bot:
            profile["bot_id"] = BOT_ID if self.id == BOT_USER_ID else f"B{self.id[1:]}"
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name or self.name,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": 0,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "is_email_confirmed": bool(self.email),
        }


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    is_private: bool = False
    topic: str = ""
    purpose: str = ""
    created: int = 1_700_000_000

    def to_json(self) -> JSONDict:
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "creator": "U0ALICE",
            "is_archived": False,
            "is_general": self.name == "general",
            "unlinked": 0,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": TEAM_ID,
            "shared_team_ids": [TEAM_ID],
            "parent_conversation": None,
            "is_member": True,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
        }


@dataclass(frozen=True)
class Usergroup:
    id: str
    handle: str
    name: str
    users: tuple[str, ...] = ()
    description: str = ""
    disabled: bool = False

    def to_json(self, *, include_users: bool, include_count: bool = True) -> JSONDict:
        out: JSONDict = {
            "id": self.id,
            "team_id": TEAM_ID,
            "is_usergroup": True,
            "is_subteam": True,
            "name": self.name,
            "description": self.description,
            "handle": self.handle,
            "is_external": False,
            "date_create": 1_700_000_000,
            "date_update": 1_700_000_000,
            "date_delete": 1_700_000_100 if self.disabled else 0,
            "auto_type": None,
            "auto_provision": False,
            "enterprise_subteam_id": "",
            "created_by": "U0ALICE",
            "updated_by": "U0ALICE",
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
        }
        if include_users:
            out["users"] = list(self.users)
        if include_count:
            out["user_count"] = len(self.users)
        return out


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    """Set on replies only; a parent's thread_ts is derived from its replies."""
    broadcast: bool = False
    orphaned: bool = False
    bot: bool = False
    edited: JSONDict | None = None
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    metadata: JSONDict | None = None
    tombstone: bool = False

    @property
    def top_level(self) -> bool:
        return self.thread_ts is None


@dataclass(frozen=True)
class Ephemeral:
    channel: str
    user: str
    ts: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    via: str = "chat.postEphemeral"

    def to_json(self) -> JSONDict:
        out: JSONDict = {
            "type": "message",
            "subtype": "ephemeral",
            "channel": self.channel,
            "user": self.user,
            "ts": self.ts,
            "text": self.text,
            "via": self.via,
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class View:
    id: str
    user_id: str
    type: str
    body: JSONDict
    hash: str
    root_view_id: str | None
    previous_view_id: str | None = None
    state: JSONDict = field(default_factory=dict)
    closed: bool = False

    @property
    def external_id(self) -> str:
        return str(self.body.get("external_id") or "")

    def to_json(self) -> JSONDict:
        body = self.body
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "type": self.type,
            "blocks": body.get("blocks", []),
            "private_metadata": body.get("private_metadata", ""),
            "callback_id": body.get("callback_id", ""),
            "state": {"values": self.state},
            "hash": self.hash,
            "title": body.get("title"),
            "clear_on_close": bool(body.get("clear_on_close", False)),
            "notify_on_close": bool(body.get("notify_on_close", False)),
            "close": body.get("close"),
            "submit": body.get("submit"),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": APP_ID,
            "external_id": self.external_id,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }


@dataclass(frozen=True)
class Trigger:
    id: str
    user_id: str
    issued_at: float
    used: bool = False
    view_id: str | None = None


@dataclass(frozen=True)
class ResponseUrl:
    id: str
    url: str
    channel_id: str
    user_id: str
    created_at: float
    message_ts: str | None = None
    is_ephemeral: bool = False
    thread_ts: str | None = None
    uses: tuple[JSONDict, ...] = ()

    def to_json(self) -> JSONDict:
        return {
            "id": self.id,
            "response_url": self.url,
            "channel_id": self.channel_id,
            "user_id": self.user_id,
            "created_at": self.created_at,
            "message_ts": self.message_ts,
            "is_ephemeral": self.is_ephemeral,
            "thread_ts": self.thread_ts,
            "uses": list(self.uses),
        }


@dataclass(frozen=True)
class CallRecord:
    method: str
    args: JSONDict
    time: float
    status: int
    ok: bool
    error: str | None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> JSONDict:
        return {
            "method": self.method,
            "args": self.args,
            "time": self.time,
            "status": self.status,
            "ok": self.ok,
            "error": self.error,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Identity:
    """Who a token speaks for."""

    user_id: str
    bot_id: str | None


DEFAULT_USERS: Final = (
    User(BOT_USER_ID, BOT_NAME, "Shipthread", is_bot=True),
    User("U0ALICE", "alice", "Alice Requester", "alice@example.com"),
    User("U0BOB", "bob", "Bob Approver", "bob@example.com"),
    User("U0CAROL", "carol", "Carol SRE", "carol@example.com", is_admin=True),
)
DEFAULT_CHANNELS: Final = (
    Channel("C0DEPLOYS", "deploys", purpose="Deployments, one thread each"),
    Channel("C0GENERAL", "general"),
)
DEFAULT_USERGROUPS: Final = (
    Usergroup("S0APPROVERS", "deploy-approvers", "Deploy approvers", ("U0BOB", "U0CAROL")),
    Usergroup("S0SRE", "sre", "Site reliability", ("U0CAROL",)),
)


# ---------------------------------------------------------------------------------------------
# Requests and answers


class ApiError(Exception):
    """A refusal, answered in Slack's envelope."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        messages: Iterable[str] = (),
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra: JSONDict = dict(extra)
        notes = list(messages)
        if notes:
            self.extra["response_metadata"] = {"messages": notes}

    def body(self) -> JSONDict:
        return {"ok": False, "error": self.error, **self.extra}


def missing(name: str) -> ApiError:
    return ApiError("invalid_arguments", messages=[f"[ERROR] missing required field: {name}"])


@dataclass
class Call:
    """One Web API call being answered: its arguments and the caller, plus warnings to report."""

    method: str
    args: JSONDict
    identity: Identity
    now: float
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        value = self.args.get(name)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def required(self, name: str, error: str | None = None) -> str:
        value = self.text(name)
        if value is None:
            raise ApiError(error) if error else missing(name)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.args.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes")

    def number(self, name: str, default: int) -> int:
        value = self.args.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError(
                "invalid_arguments", messages=[f"[ERROR] must be an integer [json-pointer:/{name}]"]
            ) from None

    def structured(self, name: str) -> Any:
        """A JSON argument: already structured in a JSON body, a JSON string in a form body."""
        value = self.args.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            return json.loads(value)  # the caller maps ValueError to the method's own error
        return value


@dataclass(frozen=True)
class Content:
    text: str | None
    blocks: list[Any] | None
    attachments: list[Any] | None


def _decimal_ts(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(value) from None
    if not number.is_finite():
        raise ValueError(value)
    return number


class _Ids:
    """Identifiers that look like Slack's, unique and reproducible within one emulator."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last_ts = 0

    def next(self, prefix: str, width: int = 9) -> str:
        n = next(self._counter)
        digits = _base36(n + 36**5).rjust(width - len(prefix), "0")
        return prefix + digits

    def short(self) -> str:
        n = next(self._counter)
        return (
            base64.b32encode(hashlib.sha1(str(n).encode(), usedforsecurity=False).digest())
            .decode()[:5]
            .rstrip("=")
            .lower()
        )

    def hex(self, length: int = 8) -> str:
        return hashlib.sha1(str(next(self._counter)).encode(), usedforsecurity=False).hexdigest()[:length]

    def ts(self, now: float) -> str:
        """A message ts: seconds.micro, strictly increasing even when the clock stands still."""
        micros = max(int(now * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _base36(n: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, rem = divmod(n, 36)
        out = alphabet[rem] + out
    return out or "0"


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _from_cursor(cursor: str) -> Decimal:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if not raw.startswith("next_ts:"):
        raise ApiError("invalid_cursor")
    try:
        return _decimal_ts(raw.removeprefix("next_ts:"))
    except ValueError:
        raise ApiError("invalid_cursor") from None


# ---------------------------------------------------------------------------------------------
# The emulator


Handler = Callable[[Call], JSONDict]


class SlackEmulator:
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
    ) -> None:
        self.token = token
        self.clock = clock or Clock()
        limits = rate_limits if isinstance(rate_limits, RateLimits) else RateLimits(enabled=rate_limits)
        self.limiter = RateLimiter(limits)
        self._lock = threading.RLock()
        self._directory = (tuple(users), tuple(channels), tuple(usergroups))
        self._tokens: dict[str, Identity] = {token: Identity(BOT_USER_ID, BOT_ID)}
        self._reset_state(keep_directory=False)
        self._methods: dict[str, Handler] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }
        self.app = self._build_app()

    # -- state -------------------------------------------------------------------------------

    def _reset_state(self, *, keep_directory: bool) -> None:
        if not keep_directory:
            users, channels, groups = self._directory
            self._users: dict[str, User] = {u.id: u for u in users}
            self._channels: dict[str, Channel] = {c.id: c for c in channels}
            self._usergroups: dict[str, Usergroup] = {g.id: g for g in groups}
        self._ids = _Ids()
        self._messages: dict[str, dict[str, Message]] = {}
        self._threads: dict[tuple[str, str], list[str]] = {}
        self._ephemeral: list[Ephemeral] = []
        self._views: dict[str, View] = {}
        self._stacks: dict[str, list[str]] = {}
        self._home: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._calls: list[CallRecord] = []
        self.limiter.reset()

    def reset(self, *, keep_directory: bool = False) -> None:
        """Forget messages, views, calls, triggers, response URLs and rate-limit windows.

        Users, channels and user groups go back to those given at creation unless
        ``keep_directory``."""
        with self._lock:
            self._reset_state(keep_directory=keep_directory)

    def add_user(self, user: User) -> None:
        with self._lock:
            self._users[user.id] = user

    def add_channel(self, channel: Channel) -> None:
        with self._lock:
            self._channels[channel.id] = channel

    def add_usergroup(self, group: Usergroup) -> None:
        with self._lock:
            self._usergroups[group.id] = group

    def configure(self, limits: RateLimits) -> None:
        """New rate limits; the windows start afresh."""
        with self._lock:
            self.limiter.reset(limits)

    def calls(self, method: str | None = None) -> list[JSONDict]:
        with self._lock:
            return [c.to_json() for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[JSONDict]:
        """Every message, replies and orphans included, oldest first, as the control API gives them."""
        with self._lock:
            out = []
            for channel_id, by_ts in self._messages.items():
                if channel is not None and channel_id != channel:
                    continue
                for message in by_ts.values():
                    item = self._message_json(message)
                    item["channel"] = channel_id
                    if message.orphaned:
                        item["orphaned"] = True
                    out.append(item)
            return sorted(out, key=lambda m: _decimal_ts(m["ts"]))

    def ephemeral(self, channel: str | None = None, user: str | None = None) -> list[JSONDict]:
        with self._lock:
            return [
                e.to_json()
                for e in self._ephemeral
                if (channel is None or e.channel == channel) and (user is None or e.user == user)
            ]

    def issue_trigger(self, user_id: str, view_id: str | None = None) -> str:
        """A fresh trigger_id for ``user_id``, valid for views.open/push for 3 s of emulator time."""
        with self._lock:
            now = self.clock.now()
            trigger_id = f"{int(now)}.{int(now * 1000) % 10_000_000}.{self._ids.hex(32)}"
            self._triggers[trigger_id] = Trigger(trigger_id, user_id, now, view_id=view_id)
            return trigger_id

    def issue_response_url(
        self,
        base_url: str,
        *,
        channel_id: str,
        user_id: str,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
        thread_ts: str | None = None,
    ) -> str:
        """A fresh response_url under ``base_url`` (the emulator's own address)."""
        with self._lock:
            rid = f"{TEAM_ID}/{self._ids.next('', 13)}/{self._ids.hex(24)}"
            url = f"{base_url.rstrip('/')}/_sandbox/response/{rid}"
            self._response_urls[rid] = ResponseUrl(
                rid, url, channel_id, user_id, self.clock.now(), message_ts, is_ephemeral, thread_ts
            )
            return url

    # -- HTTP ----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app[EMULATOR_KEY] = self
        app.router.add_route("*", "/api/{method}", self._api)
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
        ]
        for verb, path, handler in routes:
            app.router.add_route(verb, f"/_sandbox/{path}", handler)
        return app

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        now = self.clock.now()
        args: JSONDict = {}
        try:
            args, token, warnings = await _read_args(request)
            with self._lock:
                body = self._dispatch(method, args, token, warnings)
        except ApiError as refusal:
            with self._lock:
                self._record(method, args, now, refusal.status, refusal.error, ())
            return _json(refusal.body(), refusal.status, refusal.headers)
        with self._lock:
            self._record(
                method, args, now, 200, None, tuple(body.get("response_metadata", {}).get("warnings", ()))
            )
        return _json(body)

    def _dispatch(self, method: str, args: JSONDict, token: str | None, warnings: list[str]) -> JSONDict:
        handler = self._methods.get(method)
        if handler is None:
            raise ApiError("unknown_method", req_method=method)
        identity = self._authenticate(token) if method != "api.test" else Identity("", None)
        now = self.clock.now()
        wait = self.limiter.method_wait(method, now)
        if wait:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        call = Call(method, args, identity, now, warnings=list(warnings))
        result = handler(call)
        body: JSONDict = {"ok": True, **result}
        if call.warnings:
            body["warning"] = ",".join(call.warnings)
            meta = body.setdefault("response_metadata", {})
            meta["warnings"] = list(call.warnings)
            if call.notes:
                meta["messages"] = list(call.notes)
        return body

    def _authenticate(self, token: str | None) -> Identity:
        if not token:
            raise ApiError("not_authed")
        identity = self._tokens.get(token)
        if identity is None:
            raise ApiError("invalid_auth")
        return identity

    def _record(
        self,
        method: str,
        args: JSONDict,
        now: float,
        status: int,
        error: str | None,
        warnings: tuple[str, ...],
    ) -> None:
        self._calls.append(CallRecord(method, dict(args), now, status, error is None, error, warnings))

    # -- helpers -------------------------------------------------------------------------------

    def _channel(self, ref: str | None) -> Channel:
        if not ref:
            raise ApiError("channel_not_found")
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name:
                return channel
        raise ApiError("channel_not_found")

    def _conversation(self, call: Call) -> Channel:
        return self._channel(call.required("channel"))

    def _content(self, call: Call) -> Content:
        try:
            blocks = call.structured("blocks")
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        if blocks:
            problems = slack_blocks.check_message_blocks(blocks)
            if problems:
                raise ApiError("invalid_blocks", errors=problems, messages=[f"[ERROR] {p}" for p in problems])
            blocks = slack_blocks.with_ids(blocks, self._ids.short)
        try:
            attachments = call.structured("attachments")
        except ValueError:
            raise ApiError("invalid_attachments") from None
        if attachments is not None and not isinstance(attachments, list):
            raise ApiError("invalid_attachments")
        if attachments and len(attachments) > MAX_ATTACHMENTS:
            raise ApiError("too_many_attachments")
        text = call.text("text")
        if text is not None and len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            call.warnings.append("message_truncated")
            call.notes.append(TRUNCATED_NOTE)
        return Content(text, blocks, attachments)

    def _channel_messages(self, channel: str) -> dict[str, Message]:
        return self._messages.setdefault(channel, {})

    def _find(self, channel: str, ts: str | None) -> Message | None:
        message = self._messages.get(channel, {}).get(ts or "")
        return message

    def _store(self, message: Message) -> None:
        self._channel_messages(message.channel)[message.ts] = message
        if message.thread_ts is not None:
            replies = self._threads.setdefault((message.channel, message.thread_ts), [])
            if message.ts not in replies:
                replies.append(message.ts)

    def _remove(self, message: Message) -> None:
        self._messages.get(message.channel, {}).pop(message.ts, None)
        if message.thread_ts is not None:
            replies = self._threads.get((message.channel, message.thread_ts), [])
            if message.ts in replies:
                replies.remove(message.ts)

    def _replies(self, channel: str, ts: str) -> list[Message]:
        by_ts = self._messages.get(channel, {})
        return [by_ts[r] for r in self._threads.get((channel, ts), []) if r in by_ts]

    def _bot_profile(self) -> JSONDict:
        return {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "icons": {"image_48": "https://avatars.example/shipthread_48.png"},
            "deleted": False,
            "updated": 1_700_000_000,
            "team_id": TEAM_ID,
        }

    def _message_json(self, m: Message) -> JSONDict:
        if m.tombstone:
            out: JSONDict = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                "hidden": True,
                "ts": m.ts,
            }
        else:
            out = {"type": "message", "text": m.text, "user": m.user, "ts": m.ts, "team": TEAM_ID}
            if m.bot:
                out.update(bot_id=BOT_ID, app_id=APP_ID, bot_profile=self._bot_profile())
            if m.blocks is not None:
                out["blocks"] = m.blocks
            if m.attachments:
                out["attachments"] = [{"id": i + 1, **a} for i, a in enumerate(m.attachments)]
            if m.edited is not None:
                out["edited"] = m.edited
            if m.reactions:
                out["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in m.reactions]
            if m.metadata is not None:
                out["metadata"] = m.metadata
        if m.thread_ts is not None:
            out["thread_ts"] = m.thread_ts
            parent = self._find(m.channel, m.thread_ts)
            if parent is not None:
                out["parent_user_id"] = parent.user
            if m.broadcast:
                out["subtype"] = "thread_broadcast"
                if parent is not None and parent.top_level:
                    out["root"] = {k: v for k, v in self._message_json(parent).items() if k != "bot_profile"}
        else:
            replies = [r for r in self._replies(m.channel, m.ts) if not r.tombstone]
            if replies:
                users = list(dict.fromkeys(r.user for r in replies))
                out.update(
                    thread_ts=m.ts,
                    reply_count=len(replies),
                    reply_users_count=len(users),
                    latest_reply=replies[-1].ts,
                    reply_users=users[:5],
                    is_locked=False,
                    subscribed=False,
                )
        return out

    def _ts_bound(self, call: Call, name: str, error: str) -> Decimal | None:
        value = call.text(name)
        if value is None:
            return None
        try:
            return _decimal_ts(value)
        except ValueError:
            raise ApiError(error) from None

    # -- Web API methods ---------------------------------------------------------------------

    def _api_test(self, call: Call) -> JSONDict:
        args = {k: v for k, v in call.args.items() if k != "token"}
        if "error" in args:
            raise ApiError(str(args["error"]), args=args)
        return {"args": args}

    def _auth_test(self, call: Call) -> JSONDict:
        user = self._users.get(call.identity.user_id)
        out: JSONDict = {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": user.name if user else call.identity.user_id,
            "team_id": TEAM_ID,
            "user_id": call.identity.user_id,
            "is_enterprise_install": False,
        }
        if call.identity.bot_id:
            out["bot_id"] = call.identity.bot_id
        return out

    def _chat_post_message(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        thread_ts = call.text("thread_ts")
        orphaned = False
        if thread_ts is not None:
            parent = self._find(channel.id, thread_ts)
            orphaned = parent is None or not parent.top_level or parent.tombstone
        wait = self.limiter.post_wait(channel.id, call.now)
        if wait:
            raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
        try:
            metadata = call.structured("metadata")
        except ValueError:
            raise ApiError("invalid_metadata_format") from None
        message = Message(
            channel=channel.id,
            ts=self._ids.ts(call.now),
            user=call.identity.user_id,
            text=content.text or "",
            blocks=content.blocks,
            attachments=content.attachments,
            thread_ts=thread_ts,
            broadcast=thread_ts is not None and call.flag("reply_broadcast") and not orphaned,
            orphaned=orphaned,
            bot=call.identity.bot_id is not None,
            metadata=metadata if isinstance(metadata, dict) else None,
        )
        self._store(message)
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(message)}

    def _owned_message(self, call: Call, channel: Channel, ts_arg: str, refusal: str) -> Message:
        message = self._find(channel.id, call.text(ts_arg))
        if message is None or message.tombstone:
            raise ApiError("message_not_found")
        if message.user != call.identity.user_id:
            raise ApiError(refusal)
        return message

    def _chat_update(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._owned_message(call, channel, "ts", "cant_update_message")
        content = self._content(call)
        given_blocks = call.args.get("blocks") is not None
        given_attachments = call.args.get("attachments") is not None
        if content.text is None and not given_blocks and not given_attachments:
            raise ApiError("no_text")
        updated = replace(
            message,
            text=content.text if content.text is not None else message.text,
            blocks=(content.blocks or None) if given_blocks else message.blocks,
            attachments=(content.attachments or None) if given_attachments else message.attachments,
            edited={"user": call.identity.user_id, "ts": self._ids.ts(call.now)},
        )
        self._store(updated)
        return {
            "channel": channel.id,
            "ts": updated.ts,
            "text": updated.text,
            "message": self._message_json(updated),
        }

    def _chat_delete(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._owned_message(call, channel, "ts", "cant_delete_message")
        self._delete(message)
        return {"channel": channel.id, "ts": message.ts}

    def _delete(self, message: Message) -> None:
        if message.top_level and self._replies(message.channel, message.ts):
            # A parent with replies leaves a tombstone so the thread stays readable, as on Slack.
            self._store(replace(message, tombstone=True, text="", blocks=None, attachments=None))
        else:
            self._remove(message)

    def _chat_post_ephemeral(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        user = call.text("user")
        if user is None or user not in self._users:
            raise ApiError("user_not_in_channel")
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        ephemeral = Ephemeral(
            channel.id,
            user,
            self._ids.ts(call.now),
            content.text or "",
            content.blocks,
            content.attachments,
            call.text("thread_ts"),
        )
        self._ephemeral.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    def _chat_get_permalink(self, call: Call) -> JSONDict:
        channel = self._channel(call.text("channel"))
        message = self._find(channel.id, call.required("message_ts", "message_not_found"))
        if message is None:
            raise ApiError("message_not_found")
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.thread_ts is not None:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _window(
        self, call: Call, items: list[Message], *, newest_first: bool, default_limit: int, max_limit: int
    ) -> tuple[list[Message], str | None]:
        """Apply latest/oldest/inclusive/cursor/limit to ``items`` (already in answer order)."""
        latest = self._ts_bound(call, "latest", "invalid_ts_latest")
        oldest = self._ts_bound(call, "oldest", "invalid_ts_oldest")
        inclusive = call.flag("inclusive")
        limit = call.number("limit", default_limit)
        limit = default_limit if limit <= 0 else min(limit, max_limit)
        cursor = call.text("cursor")
        start = _from_cursor(cursor) if cursor else None

        def keep(m: Message) -> bool:
            ts = _decimal_ts(m.ts)
            if latest is not None and (ts > latest or (ts == latest and not inclusive)):
                return False
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            if start is not None:
                return ts <= start if newest_first else ts >= start
            return True

        chosen = [m for m in items if keep(m)]
        page = chosen[:limit]
        return page, _cursor(chosen[limit].ts) if len(chosen) > limit else None

    def _conversations_history(self, call: Call) -> JSONDict:
        channel = self._conversation(call)
        visible = [
            m
            for m in self._messages.get(channel.id, {}).values()
            if (m.top_level or m.broadcast) and not m.orphaned
        ]
        visible.sort(key=lambda m: _decimal_ts(m.ts), reverse=True)
        page, next_cursor = self._window(call, visible, newest_first=True, default_limit=100, max_limit=999)
        out: JSONDict = {
            "messages": [self._message_json(m) for m in page],
            "has_more": next_cursor is not None,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if next_cursor:
            out["response_metadata"] = {"next_cursor": next_cursor}
        return out

    def _conversations_replies(self, call: Call) -> JSONDict:
        channel = self._conversation(call)
        root = self._find(channel.id, call.required("ts", "thread_not_found"))
        if root is None:
            raise ApiError("thread_not_found")
        replies = self._replies(channel.id, root.ts)
        page, next_cursor = self._window(
            call, replies, newest_first=False, default_limit=1000, max_limit=1000
        )
        first_page = not call.text("cursor")
        messages = ([self._message_json(root)] if first_page else []) + [self._message_json(m) for m in page]
        out: JSONDict = {"messages": messages, "has_more": next_cursor is not None}
        if next_cursor:
            out["response_metadata"] = {"next_cursor": next_cursor}
        return out

    def _conversations_info(self, call: Call) -> JSONDict:
        return {"channel": self._conversation(call).to_json()}

    def _reactions_add(self, call: Call) -> JSONDict:
        name = (call.text("name") or "").strip(":")
        channel_ref, ts = call.text("channel"), call.text("timestamp")
        if channel_ref is None or ts is None:
            raise ApiError("no_item_specified")
        channel = self._channel(channel_ref)
        if not name:
            raise ApiError("invalid_name")
        message = self._find(channel.id, ts)
        if message is None or message.tombstone:
            raise ApiError("message_not_found")
        reactions = dict(message.reactions)
        users = reactions.get(name, ())
        if call.identity.user_id in users:
            raise ApiError("already_reacted")
        reactions[name] = (*users, call.identity.user_id)
        self._store(replace(message, reactions=tuple(reactions.items())))
        return {}

    def _users_info(self, call: Call) -> JSONDict:
        user = self._users.get(call.required("user", "user_not_found"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_json()}

    def _users_lookup_by_email(self, call: Call) -> JSONDict:
        email = call.required("email", "users_not_found").lower()
        for user in self._users.values():
            if user.email.lower() == email and not user.deleted:
                return {"user": user.to_json()}
        raise ApiError("users_not_found")

    def _usergroups_list(self, call: Call) -> JSONDict:
        include_users = call.flag("include_users")
        include_disabled = call.flag("include_disabled")
        include_count = call.flag("include_count", True)
        groups = [g for g in self._usergroups.values() if include_disabled or not g.disabled]
        return {
            "usergroups": [
                g.to_json(include_users=include_users, include_count=include_count) for g in groups
            ]
        }

    def _usergroups_users_list(self, call: Call) -> JSONDict:
        group = self._usergroups.get(call.required("usergroup", "no_such_subteam"))
        if group is None or (group.disabled and not call.flag("include_disabled")):
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    # -- views ---------------------------------------------------------------------------------

    def _view_arg(self, call: Call, kinds: frozenset[str]) -> JSONDict:
        if call.args.get("view") is None:
            raise missing("view")
        try:
            view = call.structured("view")
        except ValueError:
            view = None
        problems = slack_blocks.check_view(view, kinds=kinds)
        if problems:
            raise ApiError("invalid_arguments", messages=[f"[ERROR] {p}" for p in problems])
        assert isinstance(view, dict)
        stored = dict(view)
        stored["blocks"] = slack_blocks.with_ids(view.get("blocks", []), self._ids.short)
        for name in ("title", "submit", "close"):
            if isinstance(stored.get(name), dict):
                stored[name] = {"emoji": True, **stored[name]}
        return stored

    def _check_external_id(self, body: JSONDict, replacing: str | None = None) -> None:
        external_id = body.get("external_id")
        if not external_id:
            return
        for view in self._views.values():
            if view.external_id == external_id and view.id != replacing and not view.closed:
                raise ApiError("duplicate_external_id")

    def _exchange(self, call: Call) -> Trigger:
        trigger = self._triggers.get(call.required("trigger_id"))
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        if call.now - trigger.issued_at > TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")
        used = replace(trigger, used=True)
        self._triggers[trigger.id] = used
        return used

    def _new_view(self, user_id: str, body: JSONDict, *, root: str | None, previous: str | None) -> View:
        view_id = self._ids.next("V")
        view = View(
            view_id,
            user_id,
            str(body["type"]),
            body,
            self._view_hash(),
            root or view_id,
            previous,
        )
        self._views[view_id] = view
        return view

    def _view_hash(self) -> str:
        return f"{int(self.clock.now())}.{self._ids.hex(8)}"

    def _views_open(self, call: Call) -> JSONDict:
        body = self._view_arg(call, frozenset({"modal"}))
        self._check_external_id(body)
        trigger = self._exchange(call)
        for view_id in self._stacks.get(trigger.user_id, []):
            self._views[view_id] = replace(self._views[view_id], closed=True)
        view = self._new_view(trigger.user_id, body, root=None, previous=None)
        self._stacks[trigger.user_id] = [view.id]
        return {"view": view.to_json()}

    def _views_push(self, call: Call) -> JSONDict:
        body = self._view_arg(call, frozenset({"modal"}))
        self._check_external_id(body)
        trigger = self._exchange(call)
        stack = self._stacks.setdefault(trigger.user_id, [])
        if len(stack) >= VIEW_STACK:
            raise ApiError("push_limit_reached")
        view = self._new_view(
            trigger.user_id, body, root=stack[0] if stack else None, previous=stack[-1] if stack else None
        )
        stack.append(view.id)
        return {"view": view.to_json()}

    def _views_update(self, call: Call) -> JSONDict:
        view_id, external_id = call.text("view_id"), call.text("external_id")
        if view_id is None and external_id is None:
            raise missing("view_id")
        current = self._views.get(view_id or "")
        if current is None and external_id is not None:
            current = next((v for v in self._views.values() if v.external_id == external_id), None)
        if current is None or current.closed:
            raise ApiError("not_found")
        body = self._view_arg(call, frozenset({current.type}))
        given_hash = call.text("hash")
        if given_hash is not None and given_hash != current.hash:
            raise ApiError("hash_conflict")
        if current.external_id and not body.get("external_id"):
            body["external_id"] = current.external_id  # naming the view by it must keep working
        self._check_external_id(body, replacing=current.id)
        updated = replace(current, body=body, hash=self._view_hash())
        self._views[current.id] = updated
        return {"view": updated.to_json()}

    def _views_publish(self, call: Call) -> JSONDict:
        user_id = call.required("user_id")
        if user_id not in self._users:
            raise ApiError("user_not_found")
        body = self._view_arg(call, frozenset({"home"}))
        current = self._views.get(self._home.get(user_id, ""))
        given_hash = call.text("hash")
        if current is not None and given_hash is not None and given_hash != current.hash:
            raise ApiError("hash_conflict")
        if current is None:
            view = self._new_view(user_id, body, root=None, previous=None)
            self._home[user_id] = view.id
        else:
            view = replace(current, body=body, hash=self._view_hash())
            self._views[view.id] = view
        return {"view": view.to_json()}

    # -- response_url ----------------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        try:
            payload = await _read_payload(request)
        except ApiError as refusal:
            return _json(refusal.body(), 400)
        with self._lock:
            now = self.clock.now()
            entry = self._response_urls.get(rid)
            if entry is None or now - entry.created_at > RESPONSE_URL_LIFETIME:
                return _json({"ok": False, "error": "expired_url"}, 404)
            if len(entry.uses) >= RESPONSE_URL_USES:
                return _json({"ok": False, "error": "used_url"}, 404)
            try:
                outcome = self._respond(entry, payload, now)
                status, body = 200, {"ok": True}
            except ApiError as refusal:
                outcome, status, body = refusal.error, 400, refusal.body()
            use = {"time": now, "payload": payload, "status": status, "outcome": outcome}
            self._response_urls[rid] = replace(entry, uses=(*entry.uses, use))
            return _json(body, status)

    def _respond(self, entry: ResponseUrl, payload: JSONDict, now: float) -> str:
        """Apply one response_url post; returns what it did, for the log."""
        call = Call("response_url", payload, Identity(BOT_USER_ID, BOT_ID), now)
        original = self._find(entry.channel_id, entry.message_ts) if entry.message_ts else None
        ephemeral_original = next(
            (
                e
                for e in self._ephemeral
                if entry.is_ephemeral and e.ts == entry.message_ts and e.channel == entry.channel_id
            ),
            None,
        )
        if call.flag("delete_original"):
            if original is not None:
                self._delete(original)
            elif ephemeral_original is not None:
                self._ephemeral.remove(ephemeral_original)
            else:
                raise ApiError("message_not_found")
            return "deleted_original"
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        if call.flag("replace_original") and (original is not None or ephemeral_original is not None):
            if original is not None:
                self._store(
                    replace(
                        original,
                        text=content.text or "",
                        blocks=content.blocks,
                        attachments=content.attachments,
                        edited={"user": BOT_USER_ID, "ts": self._ids.ts(now)},
                    )
                )
            elif ephemeral_original is not None:
                index = self._ephemeral.index(ephemeral_original)
                self._ephemeral[index] = replace(
                    ephemeral_original,
                    text=content.text or "",
                    blocks=content.blocks,
                    attachments=content.attachments,
                )
            return "replaced_original"
        thread_ts = call.text("thread_ts") or entry.thread_ts
        if call.text("response_type") == "in_channel":
            message = Message(
                channel=entry.channel_id,
                ts=self._ids.ts(now),
                user=BOT_USER_ID,
                text=content.text or "",
                blocks=content.blocks,
                attachments=content.attachments,
                thread_ts=thread_ts,
                bot=True,
            )
            self._store(message)
            return f"in_channel:{message.ts}"
        ephemeral = Ephemeral(
            entry.channel_id,
            entry.user_id,
            self._ids.ts(now),
            content.text or "",
            content.blocks,
            content.attachments,
            thread_ts,
            via="response_url",
        )
        self._ephemeral.append(ephemeral)
        return f"ephemeral:{ephemeral.ts}"

    # -- control API -----------------------------------------------------------------------------

    async def _ctl_workspace(self, request: web.Request) -> web.Response:
        with self._lock:
            return _json(
                {
                    "ok": True,
                    "team_id": TEAM_ID,
                    "team_name": TEAM_NAME,
                    "team_domain": TEAM_DOMAIN,
                    "enterprise_id": None,
                    "app_id": APP_ID,
                    "bot_user_id": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "users": [u.to_json() for u in self._users.values()],
                    "channels": [c.to_json() for c in self._channels.values()],
                    "usergroups": [g.to_json(include_users=True) for g in self._usergroups.values()],
                }
            )

    async def _ctl_users(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> User:
            return User(
                id=_need(item, "id"),
                name=_need(item, "name"),
                real_name=str(item.get("real_name", "")),
                email=str(item.get("email", "")),
                is_bot=bool(item.get("is_bot", False)),
                is_admin=bool(item.get("is_admin", False)),
                deleted=bool(item.get("deleted", False)),
            )

        return await self._register(request, "users", build, self.add_user)

    async def _ctl_channels(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> Channel:
            channel_id, name = _need(item, "id"), _need(item, "name").removeprefix("#")
            if not channel_id.startswith(("C", "G")):
                raise ValueError("a channel id starts with C (or G for a private channel)")
            return Channel(channel_id, name, bool(item.get("is_private", False)), str(item.get("topic", "")))

        return await self._register(request, "channels", build, self.add_channel)

    async def _ctl_usergroups(self, request: web.Request) -> web.Response:
        def build(item: JSONDict) -> Usergroup:
            group_id = _need(item, "id")
            if not group_id.startswith("S"):
                raise ValueError("a user group id starts with S")
            users = item.get("users", [])
            if not isinstance(users, list):
                raise ValueError("users must be a list of user ids")
            handle = _need(item, "handle").removeprefix("@")
            return Usergroup(
                group_id,
                handle,
                str(item.get("name", handle)),
                tuple(str(u) for u in users),
                str(item.get("description", "")),
                bool(item.get("disabled", False)),
            )

        return await self._register(request, "usergroups", build, self.add_usergroup)

    async def _register(
        self, request: web.Request, plural: str, build: Callable[[JSONDict], Any], add: Callable[[Any], None]
    ) -> web.Response:
        try:
            payload = await _read_payload(request)
            items = payload.get(plural, [payload])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError(f"{plural} must be a list of objects")
            records = [build(i) for i in items]
        except (ValueError, ApiError) as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        for record in records:
            add(record)
        return _json({"ok": True, plural: [r.id for r in records]})

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "calls": self.calls(request.query.get("method"))})

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "messages": self.messages(request.query.get("channel"))})

    async def _ctl_post_message(self, request: web.Request) -> web.Response:
        """Post as a person (not the bot): what a human writes in a channel or thread."""
        try:
            payload = await _read_payload(request)
            user = _need(payload, "user")
        except (ValueError, ApiError) as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        with self._lock:
            if user not in self._users:
                return _json({"ok": False, "error": "user_not_found"}, 400)
            try:
                channel = self._channel(str(payload.get("channel", "")))
                call = Call("_sandbox.post", payload, Identity(user, None), self.clock.now())
                content = self._content(call)
            except ApiError as refusal:
                return _json(refusal.body(), 400)
            thread_ts = call.text("thread_ts")
            parent = self._find(channel.id, thread_ts) if thread_ts else None
            message = Message(
                channel=channel.id,
                ts=self._ids.ts(call.now),
                user=user,
                text=content.text or "",
                blocks=content.blocks,
                thread_ts=thread_ts,
                orphaned=thread_ts is not None and (parent is None or not parent.top_level),
            )
            self._store(message)
            return _json({"ok": True, "channel": channel.id, "ts": message.ts})

    async def _ctl_message(self, request: web.Request) -> web.Response:
        channel, ts = request.query.get("channel", ""), request.query.get("ts", "")
        with self._lock:
            message = self._find(channel, ts)
            if message is not None and not message.tombstone:
                return _json({"ok": True, "is_ephemeral": False, "message": self._message_json(message)})
            for ephemeral in self._ephemeral:
                if ephemeral.channel == channel and ephemeral.ts == ts:
                    return _json({"ok": True, "is_ephemeral": True, "message": ephemeral.to_json()})
        return _json({"ok": False, "error": "message_not_found"}, 404)

    async def _ctl_ephemeral(self, request: web.Request) -> web.Response:
        return _json(
            {"ok": True, "messages": self.ephemeral(request.query.get("channel"), request.query.get("user"))}
        )

    async def _ctl_views(self, request: web.Request) -> web.Response:
        with self._lock:
            views = [
                {**v.to_json(), "user_id": v.user_id, "closed": v.closed}
                for v in self._views.values()
                if request.query.get("user") in (None, v.user_id)
            ]
        return _json({"ok": True, "views": views})

    async def _ctl_view(self, request: web.Request) -> web.Response:
        with self._lock:
            view = self._views.get(request.match_info["view_id"])
            if view is None:
                return _json({"ok": False, "error": "not_found"}, 404)
            return _json({"ok": True, "view": view.to_json(), "user_id": view.user_id, "closed": view.closed})

    async def _ctl_view_response(self, request: web.Request) -> web.Response:
        """What Slack does with an app's answer to a view_submission (the driver reports it here)."""
        try:
            payload = await _read_payload(request)
        except ApiError as refusal:
            return _json(refusal.body(), 400)
        with self._lock:
            view = self._views.get(request.match_info["view_id"])
            if view is None:
                return _json({"ok": False, "error": "not_found"}, 404)
            if isinstance(payload.get("state"), dict):
                view = replace(view, state=payload["state"])
                self._views[view.id] = view
            action = payload.get("response_action")
            stack = self._stacks.get(view.user_id, [])
            try:
                if action == "errors":
                    return _json({"ok": True, "view": view.to_json()})
                if action == "update":
                    call = Call("response_action", payload, Identity(BOT_USER_ID, BOT_ID), self.clock.now())
                    body = self._view_arg(call, frozenset({"modal"}))
                    view = replace(view, body=body, hash=self._view_hash())
                    self._views[view.id] = view
                    return _json({"ok": True, "view": view.to_json()})
                if action == "push":
                    call = Call("response_action", payload, Identity(BOT_USER_ID, BOT_ID), self.clock.now())
                    body = self._view_arg(call, frozenset({"modal"}))
                    if len(stack) >= VIEW_STACK:
                        raise ApiError("push_limit_reached")
                    pushed = self._new_view(
                        view.user_id, body, root=stack[0] if stack else view.id, previous=view.id
                    )
                    stack.append(pushed.id)
                    return _json({"ok": True, "view": pushed.to_json()})
            except ApiError as refusal:
                return _json(refusal.body(), 400)
            closing = list(stack) if action == "clear" else [view.id]
            for view_id in closing:
                self._views[view_id] = replace(self._views[view_id], closed=True)
            self._stacks[view.user_id] = [v for v in stack if v not in closing]
            return _json({"ok": True, "closed": closing})

    async def _ctl_triggers(self, request: web.Request) -> web.Response:
        try:
            payload = await _read_payload(request)
            user_id = _need(payload, "user_id")
        except (ValueError, ApiError) as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        view_id = payload.get("view_id")
        return _json(
            {"ok": True, "trigger_id": self.issue_trigger(user_id, str(view_id) if view_id else None)}
        )

    async def _ctl_response_urls(self, request: web.Request) -> web.Response:
        with self._lock:
            return _json({"ok": True, "response_urls": [r.to_json() for r in self._response_urls.values()]})

    async def _ctl_new_response_url(self, request: web.Request) -> web.Response:
        try:
            payload = await _read_payload(request)
            channel_id, user_id = _need(payload, "channel_id"), _need(payload, "user_id")
        except (ValueError, ApiError) as exc:
            return _json({"ok": False, "error": str(exc)}, 400)
        url = self.issue_response_url(
            str(request.url.origin()),
            channel_id=channel_id,
            user_id=user_id,
            message_ts=payload.get("message_ts"),
            is_ephemeral=bool(payload.get("is_ephemeral", False)),
            thread_ts=payload.get("thread_ts"),
        )
        return _json({"ok": True, "response_url": url})

    async def _ctl_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = await _read_payload(request)
                with self._lock:
                    if "rate_limits" in payload:
                        patch = payload["rate_limits"]
                        if isinstance(patch, bool):
                            patch = {"enabled": patch}
                        if not isinstance(patch, dict):
                            raise ValueError("rate_limits must be an object or a boolean")
                        self.limiter.reset(self.limiter.limits.changed(patch))
                    clock = payload.get("clock", {})
                    if not isinstance(clock, dict):
                        raise ValueError("clock must be an object")
                    if "scale" in clock:
                        self.clock.set_scale(float(clock["scale"]))
                    if "advance" in clock:
                        self.clock.advance(float(clock["advance"]))
            except (ValueError, TypeError, ApiError) as exc:
                return _json({"ok": False, "error": str(exc)}, 400)
        with self._lock:
            return _json(
                {
                    "ok": True,
                    "rate_limits": self.limiter.limits.to_json(),
                    "clock": {"now": self.clock.now(), "scale": self.clock.scale},
                }
            )

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        try:
            payload = await _read_payload(request) if request.can_read_body else {}
        except ApiError as refusal:
            return _json(refusal.body(), 400)
        self.reset(keep_directory=bool(payload.get("keep_directory", False)))
        return _json({"ok": True})


# ---------------------------------------------------------------------------------------------
# Wire helpers


def _json(body: JSONDict, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _need(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not value or not isinstance(value, str):
        raise ValueError(f"missing required field: {name}")
    return value


async def _read_payload(request: web.Request) -> JSONDict:
    """A control-API or response_url body: JSON, or a form (whose ``payload`` may hold JSON)."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if "payload" in form:
            try:
                payload = json.loads(form["payload"])
            except ValueError:
                raise ApiError("invalid_payload") from None
            return payload if isinstance(payload, dict) else {}
        return dict(form)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ApiError("invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError("invalid_json")
    return payload


async def _read_args(request: web.Request) -> tuple[JSONDict, str | None, list[str]]:
    """A Web API call's arguments, token and warnings, from the query string and the body.

    Slack takes the token from ``Authorization: Bearer`` or a ``token`` query/form argument, never
    from a JSON body; a JSON body without a charset earns the ``missing_charset`` warning and a
    form body with one ``superfluous_charset``.
    """
    args: JSONDict = dict(request.query)
    warnings: list[str] = []
    if request.method == "POST" and request.body_exists:
        ctype = request.content_type
        declared = request.headers.get("Content-Type", "")
        if ctype == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            body.pop("token", None)
            args.update(body)
            if "charset" not in declared.lower():
                warnings.append("missing_charset")
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except ValueError:
                raise ApiError("invalid_form_data") from None
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
            if ctype == "application/x-www-form-urlencoded" and "charset" in declared.lower():
                warnings.append("superfluous_charset")
        elif ctype == "application/octet-stream" and "content-type" not in {
            h.lower() for h in request.headers
        }:
            raise ApiError("missing_post_type")
        elif ctype != "text/plain":
            raise ApiError("invalid_post_type")
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    form_token = args.pop("token", None)
    if not token and isinstance(form_token, str):
        token = form_token
    return args, token or None, warnings


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
