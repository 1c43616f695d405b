"""Fitting text and blocks into Slack's Block Kit limits, with a visible marker when cut.

Slack refuses a whole message (``invalid_blocks``) when one text is a character too long, so every
block is fitted here before it leaves the renderer. Cutting mrkdwn is careful: never inside an
escape sequence (``&amp;``) or an angle-bracket token (``<@U123>``, ``<url|label>``), and never
leaving a code fence open. The limits are Slack's (PLATFORM_NOTES.md); the emulator checks the same.
"""

from __future__ import annotations

from typing import Any, Final

SECTION_TEXT: Final = 3000
SECTION_FIELD_TEXT: Final = 2000
HEADER_TEXT: Final = 150
CONTEXT_ELEMENTS: Final = 10
CONTEXT_TEXT: Final = 3000
MESSAGE_BLOCKS: Final = 50
BUTTON_TEXT: Final = 75
BUTTON_VALUE: Final = 2000
CONFIRM_TITLE: Final = 100
CONFIRM_TEXT: Final = 300
CONFIRM_BUTTON: Final = 30
FALLBACK_TEXT: Final = 4000
"""Our own cap on the fallback ``text`` (Slack truncates at 40,000): a notification, not a log."""

MARKER: Final = "… _(truncated)_"
PLAIN_MARKER: Final = "… (truncated)"
FENCE: Final = "```"


def clip_mrkdwn(text: str, limit: int) -> str:
    """``text`` (already-escaped mrkdwn) cut to ``limit`` characters with a visible marker."""
    if len(text) <= limit:
        return text
    room = max(0, limit - len(MARKER) - len("\n" + FENCE))
    cut = _safe_cut(text, room)
    body = text[:cut].rstrip("`")  # never end on part of a fence
    if body.count(FENCE) % 2:  # the cut fell inside a code block: close it before the marker
        body += "\n" + FENCE
    return (body + MARKER)[:limit]


def _safe_cut(text: str, room: int) -> int:
    """The largest cut ≤ ``room`` that splits no ``&…;`` escape and no ``<…>`` token."""
    cut = room
    amp = text.rfind("&", max(0, cut - 6), cut)
    if amp != -1 and text.find(";", amp, cut) == -1:
        cut = amp
    lt = text.rfind("<", 0, cut)
    if lt != -1 and text.rfind(">", lt, cut) == -1:
        cut = lt
    return cut


def clip_plain(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` with a marker (plain text has no escapes to protect)."""
    if len(text) <= limit:
        return text
    marker = PLAIN_MARKER if limit > 3 * len(PLAIN_MARKER) else "…"
    return text[: max(0, limit - len(marker))] + marker


def fit_blocks(blocks: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """At most 50 blocks, every text within its limit; the last kept block says what was left out.

    Actions blocks are kept in preference to others: buttons are what a person must be able to reach.
    """
    fitted = [_fit_block(b) for b in blocks if b]
    if len(fitted) <= MESSAGE_BLOCKS:
        return tuple(fitted)
    actions = [b for b in fitted if b.get("type") == "actions"][-1:]
    keep = MESSAGE_BLOCKS - 1 - len(actions)
    dropped = len(fitted) - keep - len(actions)
    note = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"… _(truncated: {dropped} more blocks)_"}],
    }
    rest = [b for b in fitted if b not in actions][:keep]
    return (*rest, note, *actions)


def _fit_block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    out = dict(block)
    if kind == "header":
        out["text"] = _fit_text(block["text"], HEADER_TEXT)
    elif kind == "section":
        if "text" in block:
            out["text"] = _fit_text(block["text"], SECTION_TEXT)
        if "fields" in block:
            out["fields"] = [_fit_text(f, SECTION_FIELD_TEXT) for f in block["fields"][:10]]
    elif kind == "context":
        elements = [_fit_text(e, CONTEXT_TEXT) for e in block["elements"]]
        if len(elements) > CONTEXT_ELEMENTS:
            # Fold the overflow into the last element rather than lose it silently.
            tail = " · ".join(e["text"] for e in elements[CONTEXT_ELEMENTS - 1 :])
            elements = [*elements[: CONTEXT_ELEMENTS - 1], _fit_text({"type": "mrkdwn", "text": tail}, 3000)]
        out["elements"] = elements
    elif kind == "actions":
        out["elements"] = [_fit_button(e) for e in block["elements"][:25]]
    return out


def _fit_button(button: dict[str, Any]) -> dict[str, Any]:
    out = dict(button)
    out["text"] = _fit_text(button["text"], BUTTON_TEXT)
    if "confirm" in button:
        confirm = dict(button["confirm"])
        confirm["title"] = _fit_text(confirm["title"], CONFIRM_TITLE)
        confirm["text"] = _fit_text(confirm["text"], CONFIRM_TEXT)
        for key in ("confirm", "deny"):
            if key in confirm:
                confirm[key] = _fit_text(confirm[key], CONFIRM_BUTTON)
        out["confirm"] = confirm
    return out


def _fit_text(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    text = obj.get("text") or " "  # Slack refuses empty text objects
    if obj.get("type") == "mrkdwn":
        return {**obj, "text": clip_mrkdwn(text, limit)}
    return {**obj, "text": clip_plain(text, limit)}


def fit_fallback(text: str) -> str:
    """The fallback ``text``: never empty, never near Slack's 40,000-character cut."""
    return clip_mrkdwn(text, FALLBACK_TEXT) if text.strip() else "Shipthread"
