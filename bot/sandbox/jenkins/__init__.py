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

The emulator is a package of small modules; import only from here (``__all__`` below), never from a
module inside: ``config`` (config.xml), ``steering`` (build scripts, faults, records), ``model`` (jobs,
builds, queue items), ``tree`` (``?tree=``), ``calls`` (plain requests and replies), ``core`` (the
state: items, queue, builds), ``emulator`` (its control surface, security and routes), ``shapes``
(Jenkins' JSON answers), ``middleware`` (aiohttp handler and middlewares), ``control``
(``/_sandbox/``) and ``app``, which wires them into an app.
Its clock is the sandbox-wide :class:`bot.sandbox.clock.EmulatedClock`.
"""

from __future__ import annotations

from bot.sandbox.jenkins.app import create_jenkins_app
from bot.sandbox.jenkins.config import parameterized_job_xml
from bot.sandbox.jenkins.emulator import JenkinsEmulator
from bot.sandbox.jenkins.middleware import emulator_of
from bot.sandbox.jenkins.steering import BuildRecord, BuildScript
from bot.sandbox.jenkins.tree import parse_tree

__all__ = [
    "BuildRecord",
    "BuildScript",
    "JenkinsEmulator",
    "create_jenkins_app",
    "emulator_of",
    "parameterized_job_xml",
    "parse_tree",
]
