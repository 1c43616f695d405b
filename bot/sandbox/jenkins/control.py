"""The Jenkins emulator's control API under ``/_sandbox/`` (no auth, no crumb).

Why it exists: tests in other processes (and ``shipthread sandbox``) steer the emulator over HTTP:
script builds, create jobs, inject faults, list builds and the queue, reset, read and advance the
clock. These handlers only translate JSON to calls on :class:`JenkinsEmulator` and back.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict

from aiohttp import web

from bot.sandbox.jenkins.config import Json
from bot.sandbox.jenkins.middleware import JENKINS_EMULATOR, request_base
from bot.sandbox.jenkins.steering import BuildScript, Fault


def _control_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Json]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return data


async def control_script(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    job = request.match_info["job"]
    if request.method == "GET":
        return web.json_response({"job": job, "builds": [s.to_json() for s in emulator.pending_scripts(job)]})
    data = await _json_body(request)
    try:
        if "builds" in data:
            steps_data = data["builds"]
            if not isinstance(steps_data, list):
                return _control_error("builds must be a list")
            steps = [BuildScript.from_json(s) for s in steps_data]
        else:
            fields = {k: v for k, v in data.items() if k != "append"}
            steps = [BuildScript.from_json(fields)] * int(fields.get("count", 1))
    except (TypeError, ValueError, AttributeError) as exc:
        return _control_error(str(exc))
    pending = emulator.script(job, *steps, append=bool(data.get("append", False)))
    return web.json_response({"job": job, "pending": pending})


async def control_create_job(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    text = await request.text() if request.can_read_body else ""
    try:
        emulator.create_job(request.match_info["job"], text or None)
    except ValueError as exc:
        return _control_error(str(exc), 409 if "exists" in str(exc) else 400)
    return web.json_response({"job": request.match_info["job"]}, status=201)


async def control_faults(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    if request.method == "POST":
        data = await _json_body(request)
        try:
            emulator.inject_fault(Fault.from_json(data))
        except (TypeError, ValueError, re.error) as exc:
            return _control_error(str(exc))
    elif request.method == "DELETE":
        emulator.clear_faults()
    return web.json_response({"faults": [asdict(f) for f in emulator.faults()]})


async def control_builds(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    base = emulator.base_url(request_base(request))
    records = emulator.builds(request.query.get("job"), base)
    return web.json_response({"builds": [asdict(r) for r in records]})


async def control_queue(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    return web.json_response({"items": [asdict(r) for r in emulator.queue_records()]})


async def control_reset(request: web.Request) -> web.Response:
    request.app[JENKINS_EMULATOR].reset()
    return web.json_response({"reset": True})


async def control_clock(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    return web.json_response({"now": emulator.clock.now(), "time_scale": emulator.clock.time_scale})


async def control_advance(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    data = await _json_body(request)
    try:
        now = emulator.advance(float(data.get("seconds", 0)))
    except (TypeError, ValueError) as exc:
        return _control_error(str(exc))
    return web.json_response({"now": now, "time_scale": emulator.clock.time_scale})
