"""The Jenkins emulator's HTTP face: the aiohttp handler and middlewares that make it look like Jenkins.

Why it exists: Jenkins' security (Basic auth, CSRF crumbs, anonymous 403s), its headers and the
injected faults act on the HTTP request before any route runs. This module does that and turns
aiohttp requests into the emulator's plain calls and its replies back into responses.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeAlias
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict, MultiDict, MultiDictProxy

from bot.sandbox.jenkins.calls import Call, Fail, Reply, error_page
from bot.sandbox.jenkins.emulator import CRUMB_FIELD, JenkinsEmulator

JENKINS_EMULATOR = web.AppKey("jenkins_emulator", JenkinsEmulator)
"""Where the app keeps its :class:`JenkinsEmulator`."""

_Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


def emulator_of(app: web.Application) -> JenkinsEmulator:
    """The emulator behind an app made by :func:`create_jenkins_app`."""
    return app[JENKINS_EMULATOR]


def _to_response(reply: Reply) -> web.Response:
    headers = CIMultiDict(reply.headers)
    if reply.status not in (204, 302) or reply.body:
        headers["Content-Type"] = reply.content_type
    return web.Response(status=reply.status, body=reply.body or None, headers=headers)


def request_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/"


@web.middleware
async def fault_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    emulator = request.app[JENKINS_EMULATOR]
    fault = emulator.take_fault(request.method, request.path)
    if fault is None:
        return await handler(request)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is None:
        return await handler(request)
    message = fault.body or "Service Unavailable"
    return _to_response(Reply(status=fault.status, body=error_page(fault.status, message)))


@web.middleware
async def security_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    emulator = request.app[JENKINS_EMULATOR]
    try:
        user, with_token = emulator.authenticate(request.headers.get("Authorization"))
    except Fail as fail:
        return _to_response(
            Reply(status=fail.status, body=error_page(fail.status, fail.message), headers=fail.headers)
        )
    if request.method == "POST" and not (with_token and emulator.crumb_exempt_api_token):
        crumb = request.headers.get(CRUMB_FIELD) or request.query.get(CRUMB_FIELD)
        if crumb is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            posted = (await request.post()).get(CRUMB_FIELD)
            crumb = posted if isinstance(posted, str) else None
        expected = emulator.crumb_for(user or "anonymous")
        if not isinstance(crumb, str) or not secrets.compare_digest(crumb.encode(), expected.encode()):
            message = "No valid crumb was included in the request"
            return _to_response(Reply(status=403, body=error_page(403, message)))
    if user is None and not (emulator.anonymous_read and request.method in ("GET", "HEAD")):
        body = (
            b"<html><head><meta http-equiv='refresh' content='1;url=/login'/></head>"
            b"<body>\n\nAuthentication required\n<!--\n-->\n</body></html>\n"
        )
        headers = {
            "X-You-Are-Authenticated-As": "anonymous",
            "X-You-Are-In-Group-Disabled": "JENKINS-39402: use /whoAmI to diagnose",
            "X-Required-Permission": "hudson.model.Hudson.Read",
            "X-Permission-Implied-By": "hudson.security.Permission.GenericRead",
        }
        return _to_response(Reply(status=403, body=body, headers=headers))
    return await handler(request)


async def add_jenkins_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/_sandbox/"):
        return
    emulator = request.app[JENKINS_EMULATOR]
    response.headers["X-Jenkins"] = emulator.version
    response.headers["X-Hudson"] = "1.395"
    response.headers["X-Jenkins-Session"] = emulator.session
    response.headers["X-Content-Type-Options"] = "nosniff"


async def handle_jenkins(request: web.Request) -> web.StreamResponse:
    emulator = request.app[JENKINS_EMULATOR]
    raw_path = request.rel_url.raw_path
    segments = tuple(unquote(s) for s in raw_path.split("/") if s)
    body = b""
    form: MultiDictProxy[str] = MultiDictProxy(MultiDict())
    if request.can_read_body:
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            posted = await request.post()
            form = MultiDictProxy(MultiDict((k, v) for k, v in posted.items() if isinstance(v, str)))
        else:
            body = await request.read()
    call = Call(
        method=request.method,
        segments=segments,
        query=request.query,
        form=form,
        body=body,
        content_type=request.content_type,
        base=emulator.base_url(request_base(request)),
        # the security middleware already let these credentials through
        user=emulator.authenticate(request.headers.get("Authorization"))[0],
    )
    return _to_response(emulator.handle(call))
