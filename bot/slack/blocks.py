"""Block Kit building blocks: text objects, links, mentions, buttons, as plain dicts.

The only places that produce mrkdwn control sequences (``<@U…>``, ``<url|label>``) are
``mention`` and ``link`` here: a mention only from a user id of the right shape, a link only to an
http(s) URL we built, with ``|``, ``<``, ``>`` percent-encoded and the label escaped. Everything
else a person or CI wrote goes through ``text`` (``mrkdwn.escape``), so it can never ping or link.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from bot.domain import message, mrkdwn

BOT_USER: Final = mrkdwn.BOT_ACTOR
"""The engine's name for itself as an actor (``bot.engine.orchestrator.BOT``)."""

_PLAIN_UNSAFE: Final = str.maketrans({"<": "‹", ">": "›"})
_URL_UNSAFE: Final = str.maketrans({"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20", "\n": "", "\r": ""})

Block = dict[str, Any]


def text(value: object) -> str:
    """User or CI text, escaped so it is shown literally."""
    return mrkdwn.escape(str(value))


def code(value: object) -> str:
    """Inline code for a short value (version, service); ``?`` for nothing (``mrkdwn.code_span``)."""
    return mrkdwn.code_span(str(value)) or "`?`"


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and message.is_user_id(value)


def mention(user: str | None) -> str:
    """``<@ID>`` for a Slack user id we hold; the bot by name; anything else as escaped text
    (``mrkdwn.mention``, the one rule)."""
    return mrkdwn.mention(user)


def safe_url(url: str | None) -> str | None:
    """``url`` fit to sit inside ``<…|…>``: http(s) only, no ``|<>``, ``&`` as ``&amp;``."""
    if not url:
        return None
    cleaned = url.strip().translate(_URL_UNSAFE)
    if not re.match(r"https?://[^/\s]", cleaned, re.IGNORECASE):
        return None
    return cleaned.replace("&amp;", "&").replace("&", "&amp;")


def link(url: str | None, label: str) -> str:
    """A link to a URL we built, or just the escaped label when there is no usable URL."""
    target = safe_url(url)
    shown = text(label).replace("|", "¦") or "link"
    return f"<{target}|{shown}>" if target else shown


def prometheus_graph(base: str | None, query: str | None) -> str | None:
    """Prometheus' graph page showing ``query`` (None without a base URL or query)."""
    if not base or not query:
        return None
    return f"{base.rstrip('/')}/graph?g0.expr={quote(query, safe='')}&g0.tab=0&g0.range_input=1h"


def when(at: datetime | None) -> str:
    """A timestamp people read at a glance, in UTC (Slack's ``<!date…>`` is a control sequence)."""
    if at is None:
        return "?"
    stamp = at.astimezone(UTC) if at.tzinfo else at
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    """``42s``, ``5m 12s``, ``2h 03m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def plain(value: str) -> Block:
    """A plain_text object. Angle brackets become look-alikes: plain text is never parsed for
    mentions, but a ``<!channel>`` shown in a header would still alarm whoever reads it."""
    return {"type": "plain_text", "text": value.translate(_PLAIN_UNSAFE) or " ", "emoji": True}


def md(value: str) -> Block:
    """A mrkdwn text object. ``verbatim``: Slack must not turn bare channel names, ``@here`` or
    URLs in user or CI text into links or mentions; the markup we write ourselves still works."""
    return {"type": "mrkdwn", "text": value or " ", "verbatim": True}


def header(value: str) -> Block:
    return {"type": "header", "text": plain(value)}


def section(value: str, fields: list[str] | None = None) -> Block:
    block: Block = {"type": "section", "text": md(value)}
    if fields:
        block["fields"] = [md(f) for f in fields]
    return block


def fields_section(fields: list[str]) -> Block:
    return {"type": "section", "fields": [md(f) for f in fields]}


def context(*parts: str) -> Block:
    return {"type": "context", "elements": [md(p) for p in parts if p] or [md(" ")]}


def divider() -> Block:
    return {"type": "divider"}


def confirm(title: str, body: str, yes: str, no: str = "Cancel") -> Block:
    """A Slack ``confirm`` dialog; ``body`` is mrkdwn (already escaped)."""
    return {
        "title": plain(title),
        "text": md(body),
        "confirm": plain(yes),
        "deny": plain(no),
        "style": "danger",
    }


def button(
    label: str, action_id: str, value: str, style: str | None = None, confirm_with: Block | None = None
) -> Block:
    element: Block = {"type": "button", "text": plain(label), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    if confirm_with:
        element["confirm"] = confirm_with
    return element


def actions(*buttons: Block) -> Block:
    return {"type": "actions", "elements": list(buttons)}
