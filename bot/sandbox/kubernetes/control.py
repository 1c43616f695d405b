"""The Kubernetes emulator's control API under ``/_sandbox/``: bad images, time scale, faults, calls, reset.

What a test steers and reads; no auth, and never recorded as an API call.
"""

from __future__ import annotations

import re
from dataclasses import asdict

from aiohttp import web

from bot.sandbox.kubernetes.state import KUBERNETES_SANDBOX, Fault
from bot.sandbox.kubernetes.vocabulary import JsonDict


async def _json_body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def control_bad_images(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "POST":
        patterns = (await _json_body(request)).get("patterns")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise web.HTTPBadRequest(text='expected {"patterns": ["image-glob", ...]}')
        sandbox.set_bad_images(patterns)
    return web.json_response({"patterns": sandbox.controller.bad_images})


async def control_time_scale(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "POST":
        value = (await _json_body(request)).get("time_scale")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise web.HTTPBadRequest(text='expected {"time_scale": <number >= 0>}')
        try:
            sandbox.set_time_scale(float(value))  # the clock holds the rule (0 freezes it)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.json_response({"time_scale": sandbox.clock.time_scale})


def _fault_json(fault: Fault) -> JsonDict:
    return {
        "method": fault.method,
        "path": fault.path.pattern,
        "status": fault.status,
        "delay": fault.delay,
        "count": fault.remaining,
        "retry_after": fault.retry_after,
    }


async def control_faults(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "DELETE":
        sandbox.faults.clear()
    elif request.method == "POST":
        body = await _json_body(request)
        try:
            fault = Fault(
                path=re.compile(str(body.get("path", ".*"))),
                method=str(body.get("method", "*")).upper(),
                status=None if body.get("status", 500) is None else int(body.get("status", 500)),
                delay=float(body.get("delay", 0)),
                remaining=int(body.get("count", 1)),
                retry_after=None if body.get("retry_after") is None else int(body["retry_after"]),
            )
        except (re.error, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"invalid fault: {exc}") from exc
        sandbox.add_fault(fault)
    return web.json_response({"faults": [_fault_json(f) for f in sandbox.faults]})


async def control_calls(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "DELETE":
        sandbox.calls.clear()
    return web.json_response({"calls": [asdict(c) for c in sandbox.calls]})


async def control_reset(request: web.Request) -> web.Response:
    request.app[KUBERNETES_SANDBOX].reset()
    return web.json_response({"ok": True})
