"""Text for Slack's mrkdwn: escaping user and CI text so it can never ping, link or phish.

In mrkdwn only ``&``, ``<`` and ``>`` are special (they build ``<!channel>``, ``<@U123>``,
``<!subteam^S1>`` and ``<url|label>``); escaping exactly those three, once, where text enters a
message, is what keeps a commit message or a Jenkins log line from mentioning the whole company.
A ``Message`` (``bot.domain.message``) becomes mrkdwn only through ``render``; mention markup is
written only by ``mention`` (from a user id) and inline code only by ``code_span``, the rules the
Block Kit builders (``bot.slack.blocks``) use too.
"""

from __future__ import annotations

from bot.domain.message import Code, Mention, Message, Text, is_user_id

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

BOT_ACTOR = "shipthread"
"""The engine's name for itself as an actor (``bot.engine.orchestrator.BOT``)."""
BOT_NAME = "Shipthread"

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""


def escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped, and nothing else changed."""
    return text.translate(_ESCAPES)


def code_block(text: str, limit: int = SECTION_LIMIT) -> str:
    """``text`` (a console tail, say) escaped in a code block that fits a section block.

    Keeps the end of the text when it must cut (the last lines say why a build failed), and
    never leaves a half escape sequence or a closing fence inside the text.
    """
    body = escape(text.replace("```", "'''"))
    room = limit - len("```\n\n```") - 1
    if len(body) > room:
        body = body[-room:]
        amp = body.find(";")
        if 0 <= amp < 5 and "&" not in body[:amp]:  # the cut split an escape such as &lt;
            body = body[amp + 1 :]
        body = "…" + body
    return f"```\n{body}\n```"


def mention(user: str | None) -> str:
    """``<@ID>`` for a Slack user id; the bot (or nobody) by its name; anything else — a typed
    name, an id we did not get from Slack — shown as escaped ``@text``, never linked."""
    if user is None or user == BOT_ACTOR:
        return BOT_NAME
    return f"<@{user}>" if is_user_id(user) else escape(f"@{user}")


def code_span(text: str) -> str:
    """``text`` as inline code, escaped; empty for blank text. A backtick inside would end the
    code early and let the rest be formatted, and a newline would break the span: both replaced."""
    shown = text.replace("`", "'").replace("\n", " ")
    return f"`{escape(shown)}`" if shown.strip() else ""


def render(message: Message) -> str:
    """``message`` as mrkdwn: every text escaped, a mention for each ``Mention`` with a real user id."""
    return "".join(_segment(part) for part in message.parts)


def _segment(part: Text | Mention | Code) -> str:
    if isinstance(part, Mention):
        return mention(part.user_id)
    if isinstance(part, Code):
        return code_span(part.text)
    return escape(part.text)
