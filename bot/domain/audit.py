"""The audit record of a human action: who did what, when, from where, and how it ended.

Every command and click is recorded, accepted or refused, so "who approved the 2 am deploy" and
"who broke glass" have an answer. The store keeps these append-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

BOT = "shipthread"
"""The actor of what the bot does by itself (guard rollbacks, guard locks): never a Slack user id."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    """Slack user id (or ``shipthread`` for what the bot did by itself)."""
    action: str
    """deploy, approve, reject, cancel, rollback, promote, lock, unlock, emergency…"""
    channel: str | None
    target: str | None
    """Deployment id, or ``env[/service]`` for locks."""
    outcome: str
    """accepted, refused: <why>, failed: <why>."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
