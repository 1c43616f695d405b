"""The modals Shipthread opens: a reason for Reject (required) and for Roll back (optional).

Pure builders and readers. The modal carries what the click was about in ``private_metadata``
(deployment id, the ``version_no`` the button was rendered for, the channel to answer in), so the
submission is judged against the same state the click was, and the answer goes where the click was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from bot.domain.commands import MAX_REASON
from bot.slack import blocks as b

REJECT: Final = "shipthread.reject_modal"
ROLLBACK: Final = "shipthread.rollback_modal"
CALLBACK_IDS: Final = frozenset({REJECT, ROLLBACK})

REASON_BLOCK: Final = "reason"
REASON_ACTION: Final = "text"
_TITLE_LIMIT = 24


@dataclass(frozen=True, slots=True)
class Context:
    """What a modal was opened for."""

    deployment_id: str
    version_no: int
    channel: str | None
    thread_ts: str | None = None

    def encode(self) -> str:
        return json.dumps(
            {"d": self.deployment_id, "v": self.version_no, "c": self.channel, "t": self.thread_ts},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: object) -> Context | None:
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        dep, version, channel, thread = data.get("d"), data.get("v"), data.get("c"), data.get("t")
        if not isinstance(dep, str) or not isinstance(version, int) or isinstance(version, bool):
            return None
        return cls(
            dep,
            version,
            channel if isinstance(channel, str) else None,
            thread if isinstance(thread, str) else None,
        )


def _modal(
    callback_id: str, title: str, submit: str, context: Context, blocks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": context.encode(),
        "title": b.plain(title[:_TITLE_LIMIT]),
        "submit": b.plain(submit[:_TITLE_LIMIT]),
        "close": b.plain("Cancel"),
        "blocks": blocks,
    }


def _summary(context: Context) -> dict[str, Any]:
    # Only what the button said: the modal opens before anything is read from the store.
    return b.section(f"Deployment {b.code(context.deployment_id)}")


def _reason_input(label: str, optional: bool, placeholder: str) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": REASON_BLOCK,
        "optional": optional,
        "label": b.plain(label),
        "element": {
            "type": "plain_text_input",
            "action_id": REASON_ACTION,
            "multiline": True,
            "max_length": MAX_REASON,
            "placeholder": b.plain(placeholder),
        },
    }


def reject(context: Context) -> dict[str, Any]:
    """Reject needs a reason: it is told to the requester and kept in the audit log."""
    return _modal(
        REJECT,
        "Reject deployment",
        "Reject",
        context,
        [
            _summary(context),
            _reason_input("Why are you rejecting it?", False, "e.g. the error budget is spent"),
        ],
    )


def rollback(context: Context) -> dict[str, Any]:
    return _modal(
        ROLLBACK,
        "Roll back",
        "Roll back",
        context,
        [
            _summary(context),
            b.section("This puts the version that ran before it back."),
            _reason_input("Why? (optional)", True, "e.g. latency looks off"),
        ],
    )


def reason_of(view: dict[str, Any]) -> str:
    """The reason typed into a submitted modal ('' when left empty)."""
    state = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    value = (state.get(REASON_ACTION) or {}).get("value")
    return value.strip() if isinstance(value, str) else ""
