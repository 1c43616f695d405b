"""The Jenkins emulator as one aiohttp application: its middlewares, control routes and Jenkins' URLs.

Why a module of its own: the pieces (the stateful core, the HTTP middlewares, the ``/_sandbox/``
control API) know nothing of each other's routes; this is the one place that wires them together.
Import it through ``bot.sandbox.jenkins``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from aiohttp import web

from bot.sandbox.jenkins.control import (
    control_advance,
    control_builds,
    control_clock,
    control_create_job,
    control_faults,
    control_queue,
    control_reset,
    control_script,
)
from bot.sandbox.jenkins.core import JenkinsOptions
from bot.sandbox.jenkins.emulator import JenkinsEmulator
from bot.sandbox.jenkins.middleware import (
    JENKINS_EMULATOR,
    add_jenkins_headers,
    fault_middleware,
    handle_jenkins,
    security_middleware,
)


def create_jenkins_app(
    *, jobs: Mapping[str, str | None] | None = None, **options: Unpack[JenkinsOptions]
) -> web.Application:
    """An aiohttp app that answers like Jenkins; its state is ``emulator_of(app)``.

    ``jobs`` maps full job names to config.xml (None: an empty freestyle job) to create at start.
    Durations and waits are emulated seconds; see the module docstring for ``time_scale``.
    """
    emulator = JenkinsEmulator(**options)
    for name, config_xml in (jobs or {}).items():
        emulator.create_job(name, config_xml)
    app = web.Application(middlewares=[fault_middleware, security_middleware])
    app[JENKINS_EMULATOR] = emulator
    app.on_response_prepare.append(add_jenkins_headers)
    app.router.add_route("*", "/_sandbox/jobs/{job:.+}/script", control_script)
    app.router.add_route("PUT", "/_sandbox/jobs/{job:.+}", control_create_job)
    app.router.add_route("*", "/_sandbox/faults", control_faults)
    app.router.add_get("/_sandbox/builds", control_builds)
    app.router.add_get("/_sandbox/queue", control_queue)
    app.router.add_post("/_sandbox/reset", control_reset)
    app.router.add_get("/_sandbox/clock", control_clock)
    app.router.add_post("/_sandbox/clock/advance", control_advance)
    app.router.add_route("*", "/{tail:.*}", handle_jenkins)
    return app
