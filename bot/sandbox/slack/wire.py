"""How the Slack emulator reads requests and writes answers, in Slack's own envelope.

Slack answers refusals with HTTP 200 and ``{"ok": false, "error": ...}``, takes the token from a
header or a form field but never from a JSON body, and warns about charsets; the handlers of the
Web API, the control API and response URLs all need the same reading and writing, so it lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.slack.records import Identity, JSONDict


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
    origin: str = ""
    """The emulator's base URL as the caller reached it, for URLs a method hands out."""

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


def json_response(
    body: JSONDict, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def need(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not value or not isinstance(value, str):
        raise ValueError(f"missing required field: {name}")
    return value


async def read_payload(request: web.Request) -> JSONDict:
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


async def read_args(request: web.Request) -> tuple[JSONDict, str | None, list[str]]:
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
