"""What the Slack driver's tests over HTTP and over Socket Mode both expect: the token, the fields
of a slash command as Slack's payload reference lists them, and the modal their Bolt apps open.

Why a module of its own: the two transports must carry the same requests, so their tests share one
statement of what a request holds instead of two copies that could drift apart.
"""

from __future__ import annotations

from typing import Any, Final

TOKEN: Final = "xoxb-sandbox"
SLASH_FIELDS: Final = frozenset(
    {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
)


def reject_modal(private_metadata: str = "") -> dict[str, Any]:
    """The Reject modal of the test apps: one text input, ``reason`` / ``text``."""
    return {
        "type": "modal",
        "callback_id": "reject",
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "text"},
            }
        ],
    }
