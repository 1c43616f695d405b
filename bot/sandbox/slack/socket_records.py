"""Socket Mode's records in the Slack emulator: settings, connections, envelopes and envelope types.

Split from ``socket_mode`` so the driver and the Web API can name envelope types and settings
without the WebSocket machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot.sandbox.slack.records import APP_ID, JSONDict

SLASH_COMMANDS: Final = "slash_commands"
INTERACTIVE: Final = "interactive"
EVENTS_API: Final = "events_api"
ENVELOPE_TYPES: Final = frozenset({SLASH_COMMANDS, INTERACTIVE, EVENTS_API})
DEFAULT_APP_TOKEN: Final = "xapp-1-A0SHIPTHREAD-sandbox"  # the sandbox's well-known app-level token
DEBUG_HOST: Final = "applink-sandbox"
CONNECTION_TIME: Final = 18_060
"""``approximate_connection_time`` in ``hello``: the seconds Slack means to keep a connection."""


@dataclass(frozen=True)
class SocketSettings:
    """How patient the emulator's Socket Mode is; changed by copying (``changed``)."""

    ack_timeout: float = 3.0
    """Emulated seconds an envelope waits for its ack before it is sent again."""
    max_retries: int = 3
    """Redeliveries after the first delivery; then the envelope is dropped."""
    max_connections: int = 10

    def changed(self, patch: Mapping[str, Any]) -> SocketSettings:
        unknown = set(patch) - {"ack_timeout", "max_retries", "max_connections"}
        if unknown:
            raise ValueError(f"unknown Socket Mode settings: {', '.join(sorted(unknown))}")
        settings = SocketSettings(
            ack_timeout=float(patch.get("ack_timeout", self.ack_timeout)),
            max_retries=int(patch.get("max_retries", self.max_retries)),
            max_connections=int(patch.get("max_connections", self.max_connections)),
        )
        if settings.ack_timeout <= 0 or settings.max_retries < 0 or settings.max_connections < 1:
            raise ValueError("ack_timeout must be > 0, max_retries >= 0 and max_connections >= 1")
        return settings

    def to_json(self) -> JSONDict:
        return {
            "ack_timeout": self.ack_timeout,
            "max_retries": self.max_retries,
            "max_connections": self.max_connections,
        }


@dataclass(frozen=True)
class Connection:
    id: str
    opened_at: float
    state: str = "open"
    """``open``; ``draining`` once told to disconnect (no new envelopes); ``closed``."""
    closed_at: float | None = None
    disconnect_reason: str | None = None

    def to_json(self) -> JSONDict:
        return {
            "id": self.id,
            "app_id": APP_ID,
            "state": self.state,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "disconnect_reason": self.disconnect_reason,
        }


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    payload: JSONDict
    accepts_response_payload: bool
    created_at: float
    first_retry_attempt: int = 0
    """A driver may hand in an envelope that is itself a retry (``retry_num``)."""
    first_retry_reason: str = ""
    state: str = "queued"
    """``queued`` (waiting for a connection), ``sent``, ``acked`` or ``dropped``."""
    deadline: float | None = None
    attempts: tuple[JSONDict, ...] = ()
    acks: tuple[JSONDict, ...] = ()

    @property
    def settled(self) -> bool:
        return self.state in ("acked", "dropped")

    def wire(self, retry_attempt: int, retry_reason: str) -> JSONDict:
        """The envelope as it goes over the socket; Slack puts retry fields on events and on retries."""
        message: JSONDict = {
            "envelope_id": self.id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == EVENTS_API or retry_attempt > 0:
            message["retry_attempt"] = retry_attempt
            message["retry_reason"] = retry_reason
        return message

    def to_json(self) -> JSONDict:
        return {
            "envelope_id": self.id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
            "state": self.state,
            "created_at": self.created_at,
            "attempts": list(self.attempts),
            "acks": list(self.acks),
            "ack": self.acks[0] if self.state == "acked" else None,
        }
