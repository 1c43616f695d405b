"""An emulator of Jenkins' remote API, good enough that python-jenkins cannot tell it from Jenkins.

Why it exists: the bot drives Jenkins builds, and its tests, benchmarks and ``shipthread sandbox``
need a Jenkins whose builds can be told to pass, fail, hang or be slow, without a JVM. It answers
the URLs python-jenkins 1.8 uses, with Jenkins' JSON shapes, and adds a control API under
``/_sandbox/``.

What it copies from Jenkins on purpose (checked against Jenkins core and python-jenkins):

- Security like a locked-down Jenkins: HTTP Basic with the user's API token (or password, if one is
  set). Wrong credentials give 401 with ``WWW-Authenticate``; *no* credentials give 403
  "Authentication required" with ``X-You-Are-Authenticated-As: anonymous`` (Jenkins' entry point
  answers anonymous callers with 403, not 401). ``anonymous_read=True`` lets anonymous GETs through.
  python-jenkins sends no credentials in ``get_version()`` until another call has resolved its
  auth, so on a locked-down Jenkins (and here) ``get_version()`` must not be the first call.
- CSRF: ``GET crumbIssuer/api/json`` issues a crumb for the caller; a POST without it gets 403
  "No valid crumb was included in the request". Real Jenkins exempts API-token requests from the
  crumb (JENKINS-22474); this emulator does not unless ``crumb_exempt_api_token=True``, so a client
  that forgets the crumb is caught here rather than behind a password login in production.
- Every answer carries ``X-Jenkins`` (python-jenkins' ``get_version`` reads it).
- Builds: ``build`` on a parameterized job is 400 "Nothing is submitted"; ``buildWithParameters`` on
  a job without parameters is 500; parameters the job does not define are dropped (SECURITY-170);
  a disabled job is 409. Scheduling the same job with the same parameters while an item waits
  returns the waiting item (Jenkins folds duplicates). A job without ``concurrentBuild`` runs one
  build at a time; later items wait, blocked, behind it.
- The queue: waiting items answer ``why``; an item that left stays readable for ``queue_item_ttl``
  (Jenkins keeps left items 5 minutes) with ``executable`` or ``cancelled``; then 404.
  ``cancelItem`` answers 204, 404 for unknown ids, 500 for an item that already left.
- ``estimatedDuration`` follows Jenkins' ``Job.getEstimatedDuration`` (last successful builds first,
  then failed ones; -1 with none).
- ``computer/api/json`` shows one built-in node with an executor per running build (never fewer
  than two): builds never wait for an executor here; scripted queue waits stand for that.
- ``?tree=`` filters every ``api/json`` answer like Jenkins (``_class`` is always kept, ``{m,n}``
  ranges slice lists); ``depth`` is accepted and the depth-0 shape is always served.

Time: the emulator has its own clock, which runs ``1 / time_scale`` times as fast as real time
(``time_scale=0.01``: a 2-second build takes 20 ms), and can be pushed forward through
``POST /_sandbox/clock/advance`` or :meth:`JenkinsEmulator.advance`. ``time_scale=0`` freezes it, so
only advancing moves builds on. Every time (scripted durations, queue waits, ``timestamp``,
``duration``) is in emulated seconds. State moves forward lazily: each request first brings the
queue and the builds up to the clock's now, so nothing runs in the background.

Control API (no auth, no crumb):
``POST /_sandbox/jobs/<full/name>/script`` ``{"builds": [{"result", "duration", "console",
"queue_wait", "until_stopped"}], "append": false}`` or one step with ``"count"``;
``PUT /_sandbox/jobs/<full/name>`` (body: config.xml, optional) creates a job and its folders;
``POST /_sandbox/faults`` ``{"status": 503, "count": 1, "path": regex, "method": "POST",
"delay": seconds}`` (``GET`` lists, ``DELETE`` clears); ``GET /_sandbox/builds[?job=]``;
``GET /_sandbox/queue``; ``POST /_sandbox/reset``; ``GET /_sandbox/clock``;
``POST /_sandbox/clock/advance`` ``{"seconds": s}``.

The emulator is split into small modules, all re-exported here: ``jenkins_config`` (config.xml),
``jenkins_steering`` (build scripts, faults, records), ``jenkins_model`` (jobs, builds, queue
items), ``jenkins_tree`` (``?tree=``), ``jenkins_calls`` (plain requests and replies),
``jenkins_emulator`` (the stateful core and its routes), ``jenkins_shapes`` (Jenkins' JSON answers),
``jenkins_http`` (aiohttp handler and middlewares) and ``jenkins_control`` (``/_sandbox/``). This
module wires them into an app.
Its clock is the sandbox-wide :class:`bot.sandbox.clock.EmulatedClock`, re-exported as ``Clock``.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bot.sandbox.clock import EmulatedClock as Clock  # the emulator's clock, under its old name
from bot.sandbox.jenkins_config import (
    EMPTY_FOLDER_XML,
    EMPTY_PIPELINE_XML,
    EMPTY_PROJECT_XML,
    FOLDER_CLASS,
    FREESTYLE_CLASS,
    PIPELINE_CLASS,
    JobConfig,
    Json,
    ParamDef,
    ParamValue,
    check_good_name,
    parameterized_job_xml,
    parse_config,
)
from bot.sandbox.jenkins_control import (
    _control_advance,
    _control_builds,
    _control_clock,
    _control_create_job,
    _control_faults,
    _control_queue,
    _control_reset,
    _control_script,
)
from bot.sandbox.jenkins_emulator import CRUMB_FIELD, DEFAULT_VERSION, JenkinsEmulator
from bot.sandbox.jenkins_http import (
    JENKINS_EMULATOR,
    _faults,
    _jenkins,
    _jenkins_headers,
    _security,
    emulator_of,
)
from bot.sandbox.jenkins_model import PERMALINKS
from bot.sandbox.jenkins_steering import RESULTS, BuildRecord, BuildScript, Fault, QueueRecord
from bot.sandbox.jenkins_tree import TreeSpec, apply_tree, parse_tree

__all__ = [
    "CRUMB_FIELD",
    "DEFAULT_VERSION",
    "EMPTY_FOLDER_XML",
    "EMPTY_PIPELINE_XML",
    "EMPTY_PROJECT_XML",
    "FOLDER_CLASS",
    "FREESTYLE_CLASS",
    "JENKINS_EMULATOR",
    "PERMALINKS",
    "PIPELINE_CLASS",
    "RESULTS",
    "BuildRecord",
    "BuildScript",
    "Clock",
    "Fault",
    "JenkinsEmulator",
    "JobConfig",
    "Json",
    "ParamDef",
    "ParamValue",
    "QueueRecord",
    "TreeSpec",
    "apply_tree",
    "check_good_name",
    "create_jenkins_app",
    "emulator_of",
    "parameterized_job_xml",
    "parse_config",
    "parse_tree",
]


def create_jenkins_app(
    *,
    user: str = "shipthread",
    token: str = "sandbox-token",  # noqa: S107 - the sandbox's well-known token, not a secret
    time_scale: float = 1.0,
    password: str | None = None,
    anonymous_read: bool = False,
    crumb_exempt_api_token: bool = False,
    default_duration: float = 2.0,
    default_queue_wait: float = 0.5,
    queue_item_ttl: float = 300.0,
    root_url: str | None = None,
    jobs: Mapping[str, str | None] | None = None,
    version: str = DEFAULT_VERSION,
) -> web.Application:
    """An aiohttp app that answers like Jenkins; its state is ``emulator_of(app)``.

    ``jobs`` maps full job names to config.xml (None: an empty freestyle job) to create at start.
    Durations and waits are emulated seconds; see the module docstring for ``time_scale``.
    """
    emulator = JenkinsEmulator(
        user=user,
        token=token,
        password=password,
        time_scale=time_scale,
        anonymous_read=anonymous_read,
        crumb_exempt_api_token=crumb_exempt_api_token,
        default_duration=default_duration,
        default_queue_wait=default_queue_wait,
        queue_item_ttl=queue_item_ttl,
        root_url=root_url,
        version=version,
    )
    for name, config_xml in (jobs or {}).items():
        emulator.create_job(name, config_xml)
    app = web.Application(middlewares=[_faults, _security])
    app[JENKINS_EMULATOR] = emulator
    app.on_response_prepare.append(_jenkins_headers)
    app.router.add_route("*", "/_sandbox/jobs/{job:.+}/script", _control_script)
    app.router.add_route("PUT", "/_sandbox/jobs/{job:.+}", _control_create_job)
    app.router.add_route("*", "/_sandbox/faults", _control_faults)
    app.router.add_get("/_sandbox/builds", _control_builds)
    app.router.add_get("/_sandbox/queue", _control_queue)
    app.router.add_post("/_sandbox/reset", _control_reset)
    app.router.add_get("/_sandbox/clock", _control_clock)
    app.router.add_post("/_sandbox/clock/advance", _control_advance)
    app.router.add_route("*", "/{tail:.*}", _jenkins)
    return app
