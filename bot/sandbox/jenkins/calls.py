"""Requests and replies of the Jenkins emulator, free of aiohttp.

Why it exists: the emulator's core stays synchronous and runs under one lock, so it takes a plain
:class:`Call` and gives back a plain :class:`Reply` (or raises :class:`Fail`). This module holds
those values, Jenkins' error page, and the parsing of request parameters Jenkins gives meaning to
(a ``build`` form post, ``delay``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import MultiMapping

from bot.sandbox.jenkins.config import Json
from bot.sandbox.jenkins.tree import apply_tree, parse_tree


@dataclass(frozen=True)
class Call:
    method: str
    segments: tuple[str, ...]
    query: MultiMapping[str]
    form: MultiMapping[str]
    body: bytes
    content_type: str
    base: str
    user: str | None

    def param(self, name: str) -> str | None:
        """A request parameter, query string first (like a servlet's getParameter)."""
        value = self.query.get(name)
        return value if value is not None else self.form.get(name)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class Fail(Exception):
    """An error answer, raised from deep inside a route."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Server Error",
    503: "Service Unavailable",
}


def error_page(status: int, message: str) -> bytes:
    reason = _REASONS.get(status, "Error")
    text = html.escape(message)
    return (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {text}</title>\n</head>\n<body><h2>HTTP ERROR {status} {text}</h2>\n"
        f"<table>\n<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{text}</td></tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n"
        f"</table>\n<!-- {reason} -->\n</body>\n</html>\n"
    ).encode()


def json_reply(data: Json, call: Call | None = None) -> Reply:
    if call is not None:
        tree = call.query.get("tree")
        if tree:
            try:
                data = apply_tree(data, parse_tree(tree))
            except ValueError as exc:
                raise Fail(400, f"Failed to parse tree: {exc}") from exc
    return Reply(body=json.dumps(data).encode(), content_type="application/json;charset=utf-8")


def html_page(title: str) -> Reply:
    text = html.escape(title)
    return Reply(
        body=(
            f"<!DOCTYPE html><html><head><title>{text} [Jenkins]</title></head><body>{text}</body></html>"
        ).encode()
    )


def not_found() -> Fail:
    return Fail(404, "Not Found")


def redirect(location: str) -> Reply:
    return Reply(status=302, headers={"Location": location})


def submitted_form(raw: str | None) -> dict[str, str]:
    """The parameters of a ``build`` form post (``json={"parameter": [{"name", "value"}]}``)."""
    if raw is None:
        raise Fail(400, "Nothing is submitted")
    try:
        form = json.loads(raw)
        entries = form.get("parameter", [])
        if isinstance(entries, dict):
            entries = [entries]
        return {str(e["name"]): _java_text(e.get("value", "")) for e in entries}
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise Fail(400, f"This page expects a form submission: {exc}") from exc


def _java_text(value: Json) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_delay(raw: str | None) -> float:
    """Jenkins' ``delay`` parameter (``10``, ``10sec``, ``500ms``, ``2min``)."""
    if not raw:
        return 0.0
    match = re.fullmatch(r"\s*(\d+)\s*(ms|sec|secs|s|min|mins|m)?\s*", raw)
    if match is None:
        raise Fail(400, f"Invalid delay: {raw}")
    number = float(match.group(1))
    unit = match.group(2) or "sec"
    return number / 1000 if unit == "ms" else number * 60 if unit.startswith("m") else number
