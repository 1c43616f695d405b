"""The Slack emulator's workspace identity, limits and records: what it stores, as frozen values.

Users, channels, user groups, messages, views, triggers, response URLs and logged calls are
plain data changed by copying; each knows how Slack renders it on the wire (``to_json``). The
starting directory (three people, two channels, two user groups) is here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

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
    is_member: bool = True
    """Whether the bot is in the channel: if not, chat.postMessage is ``not_in_channel``."""

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
            "is_member": self.is_member,
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
    files: tuple[JSONDict, ...] = ()
    """Files shared by ``files.completeUploadExternal`` (``bot.sandbox.slack.files``)."""

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
