"""Jenkins adapter: the engine's CI hand, idempotent by a build parameter.

Every build Shipthread starts carries ``SHIPTHREAD_KEY=<idempotency key>``; before starting one the
adapter looks for a queue item or a recent build of the job carrying the same key and returns it, so
a retry after a crash, or after a 503 whose request actually went through, finds the build it already
started instead of starting a second. Jenkins silently drops parameters a job does not declare
(SECURITY-170), so a job without a ``SHIPTHREAD_KEY`` string parameter is refused with a message
telling the operator what to add.

python-jenkins is synchronous and runs in a bounded thread pool; each worker thread has its own client
(python-jenkins resolves auth and the CSRF crumb lazily, without locks). Its errors are mapped into
``bot.errors`` here, and never carry the API token; a 409 means a disabled job, not a conflict.
python-jenkins wraps most HTTP errors into a generic ``JenkinsException`` (a 503 on job info reads
"job does not exist"), so the mapping reads the HTTP status from the exception's chain rather than from
its message. Console tails and error details are masked by ``bot.domain.redact`` (the API token
always, and whatever else the redactor holds).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jenkins
import requests

from bot.adapters.blocking import BlockingRunner
from bot.adapters.http_errors import error_for_status, is_transient
from bot.adapters.jenkins_json import as_int, build_status, is_item_of, parameter_names, parameters
from bot.adapters.retrying import RetryPolicy, retry, untrusted_certificate
from bot.domain.redact import Redactor
from bot.errors import NotFound, PermanentError, ShipthreadError, TransientError
from bot.ports import BuildRef, BuildState, BuildStatus

log = logging.getLogger("shipthread.jenkins")

KEY_PARAM = "SHIPTHREAD_KEY"
"""The string parameter every Shipthread build carries: the effect's idempotency key."""

RECENT_BUILDS = 20
"""How many of a job's newest builds are searched for a key (or a queue id) already used."""

NOT_BUILDABLE = 409
"""Jenkins answers 409 (SC_CONFLICT) to a build of a disabled job: "... is not buildable!". It is the
one status whose meaning here differs from ``bot.adapters.http_errors``' table (where 409 is a
conflict worth retrying at once): no retry enables the job, so it is a ``PermanentError``."""

CONSOLE_MAX_CHARS = 3000
"""A console tail is posted in a Slack section, whose text is limited to 3000 characters."""


class JenkinsCI:
    """The ``CI`` port over a Jenkins server (HTTP Basic auth with a user's API token)."""

    def __init__(
        self,
        url: str,
        user: str,
        token: str,
        *,
        timeout_s: float = 10,
        policy: RetryPolicy | None = None,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        redactor: Redactor | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._where = _without_userinfo(self.url)
        self._user = user
        self._token = token
        # Whatever else it masks, it masks our own token.
        self._redactor = (redactor or Redactor()).including([token])
        self._timeout = timeout_s
        self._policy = policy or RetryPolicy(
            attempts=4, total_s=max(3 * timeout_s, 10.0), initial_s=0.5, max_wait_s=5.0
        )
        self._runner = BlockingRunner("jenkins", workers)
        # Elapsed time is measured against Jenkins' build timestamps; tests pass the emulator's clock.
        self._clock = clock
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        # Jobs seen to declare SHIPTHREAD_KEY; only a yes is kept (the operator may fix a job).
        self._keyed_jobs: set[str] = set()

    def close(self) -> None:
        self._runner.close()
        with self._clients_lock:
            for client in self._clients:
                client._session.close()  # python-jenkins has no close() of its own
            self._clients.clear()

    # --- the CI port ------------------------------------------------------------------------------

    async def trigger(self, job: str, params: Mapping[str, str], key: str) -> BuildRef:
        # The retry wraps "find or start", never "start" alone: a POST that timed out or got a 503
        # may still have queued the build, and only a fresh look finds it.
        return await retry(
            self._policy,
            f"trigger {job} [{key}]",
            lambda: self._find_or_start(job, params, key),
            system="jenkins",
        )

    async def status(self, ref: BuildRef) -> BuildStatus:
        return await retry(
            self._policy, f"status of {_describe(ref)}", lambda: self._status(ref), system="jenkins"
        )

    async def console_tail(self, ref: BuildRef, lines: int = 20) -> str:
        return await retry(
            self._policy,
            f"console of {_describe(ref)}",
            lambda: self._console_tail(ref, lines),
            system="jenkins",
        )

    async def abort(self, ref: BuildRef) -> None:
        await retry(self._policy, f"abort {_describe(ref)}", lambda: self._abort(ref), system="jenkins")

    # --- operations (one attempt each; retried as a whole) -------------------------------------

    async def _find_or_start(self, job: str, params: Mapping[str, str], key: str) -> BuildRef:
        # The queue is searched before the builds: an item that leaves the queue between the two
        # looks is then found among the builds, while the other order could miss it in both.
        queue = await self._call("reading the build queue", "get_queue_info")
        for item in queue or ():
            if is_item_of(item, job) and parameters(item).get(KEY_PARAM) == key:
                log.info("trigger %s [%s]: already queued as item %s", job, key, item.get("id"))
                return BuildRef(job, queue_item=as_int(item.get("id")))

        info = await self._call(f"job {job!r}", "get_job_info", job)
        self._require_key_param(job, info)
        found = await self._find_build(job, info, lambda b: parameters(b).get(KEY_PARAM) == key)
        if found is not None:
            log.info("trigger %s [%s]: already built as #%s", job, key, found.get("number"))
            return BuildRef(job, queue_item=as_int(found.get("queueId")), number=as_int(found.get("number")))

        undeclared = sorted(set(params) - parameter_names(info))
        if undeclared:
            log.warning("job %s does not declare %s: Jenkins will drop them", job, ", ".join(undeclared))
        values = {**{k: str(v) for k, v in params.items()}, KEY_PARAM: key}
        queue_id = await self._call(f"starting a build of {job!r}", "build_job", job, values)
        log.info("trigger %s [%s]: queued as item %s", job, key, queue_id)
        return BuildRef(job, queue_item=int(queue_id))

    def _require_key_param(self, job: str, info: Mapping[str, Any]) -> None:
        if job in self._keyed_jobs:
            return
        if KEY_PARAM not in parameter_names(info):
            raise PermanentError(
                f"Jenkins job {job!r} does not declare the parameter {KEY_PARAM}. Jenkins drops "
                f"parameters a job does not declare, so Shipthread could not recognise its own builds "
                f"and might start one twice. Add a String Parameter named {KEY_PARAM} to the job "
                f"('This project is parameterized', or `string(name: '{KEY_PARAM}')` in a Pipeline)."
            )
        self._keyed_jobs.add(job)

    async def _find_build(
        self, job: str, info: Mapping[str, Any], match: Callable[[Mapping[str, Any]], bool]
    ) -> Mapping[str, Any] | None:
        """The newest of the job's recent builds that ``match`` accepts."""
        numbers = [n for b in (info.get("builds") or [])[:RECENT_BUILDS] if (n := as_int(b.get("number")))]
        builds = await asyncio.gather(*(self._build_or_none(job, n) for n in numbers))
        return next((b for b in builds if b is not None and match(b)), None)

    async def _build_or_none(self, job: str, number: int) -> Mapping[str, Any] | None:
        try:
            info: Mapping[str, Any] = await self._call(
                f"build {job} #{number}", "get_build_info", job, number
            )
        except NotFound:
            return None  # deleted between the listing and this look
        return info

    async def _resolve(self, ref: BuildRef) -> tuple[BuildRef, Mapping[str, Any] | None]:
        """``ref`` with its build number when it has one, and the queue item while it has none."""
        if ref.number is not None:
            return ref, None
        if ref.queue_item is None:
            raise PermanentError(f"build reference of job {ref.job!r} has neither a queue item nor a number")
        try:
            item: Mapping[str, Any] = await self._call(
                f"queue item {ref.queue_item}", "get_queue_item", ref.queue_item
            )
        except NotFound:
            # Jenkins forgets a queue item about five minutes after it left the queue; the build
            # it became still names it in its queueId.
            info = await self._call(f"job {ref.job!r}", "get_job_info", ref.job)
            build = await self._find_build(
                ref.job, info, lambda b: as_int(b.get("queueId")) == ref.queue_item
            )
            if build is None:
                raise NotFound(
                    f"Jenkins no longer knows queue item {ref.queue_item} of job {ref.job!r}, "
                    f"and none of its {RECENT_BUILDS} newest builds came from it"
                ) from None
            return replace(ref, number=as_int(build.get("number"))), None
        executable = item.get("executable")
        number = as_int(executable.get("number")) if isinstance(executable, Mapping) else None
        if number is not None:
            return replace(ref, number=number), None
        return ref, item

    async def _status(self, ref: BuildRef) -> BuildStatus:
        ref, item = await self._resolve(ref)
        if item is not None:
            url = str(item["url"]) if item.get("url") else None
            if item.get("cancelled"):
                return BuildStatus(ref, BuildState.CANCELLED, url=url)
            why = item.get("why")
            return BuildStatus(ref, BuildState.QUEUED, url=url, waiting_why=str(why) if why else None)
        assert ref.number is not None
        info = await self._call(f"build {ref.job} #{ref.number}", "get_build_info", ref.job, ref.number)
        return build_status(ref, info, now=self._clock())

    async def _console_tail(self, ref: BuildRef, lines: int) -> str:
        ref, item = await self._resolve(ref)
        if item is not None:
            return ""  # still queued or cancelled: no console yet
        text = await self._call(
            f"console of {ref.job} #{ref.number}", "get_build_console_output", ref.job, ref.number
        )
        return tail(str(text or ""), lines, redact=self._redactor.redact)

    async def _abort(self, ref: BuildRef) -> None:
        ref, item = await self._resolve(ref)
        if item is not None:
            if item.get("cancelled"):
                return
            await self._call(f"cancelling queue item {ref.queue_item}", "cancel_queue", ref.queue_item)
            # The item may have left the queue just before the cancel arrived: stop what it became.
            ref, item = await self._resolve(ref)
            if item is not None:
                return
        assert ref.number is not None
        info = await self._call(f"build {ref.job} #{ref.number}", "get_build_info", ref.job, ref.number)
        if info.get("building") or info.get("result") is None:
            await self._call(f"stopping {ref.job} #{ref.number}", "stop_build", ref.job, ref.number)
            log.info("aborted %s #%s", ref.job, ref.number)

    # --- the library, at arm's length -------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = jenkins.Jenkins(
                self.url, username=self._user, password=self._token, timeout=self._timeout
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _invoke(self, method: str, *args: Any) -> Any:
        return getattr(self._client(), method)(*args)

    async def _call(self, what: str, method: str, *args: Any) -> Any:
        """One python-jenkins call on the pool, its errors translated into ours."""
        try:
            return await self._runner.run(self._invoke, method, *args)
        except Exception as exc:
            raise self._translate(exc, what) from exc

    def _translate(self, exc: Exception, what: str) -> ShipthreadError:
        chain = list(_chain(exc))
        certificate = untrusted_certificate(exc)
        if certificate is not None:
            return PermanentError(
                f"Jenkins at {self._where} presented a TLS certificate Shipthread does not trust "
                f"({certificate.verify_message}) while {what}; fix the certificate or point "
                f"REQUESTS_CA_BUNDLE at the CA that signed it"
            )
        if any(isinstance(e, requests.Timeout | jenkins.TimeoutException) for e in chain):
            return TransientError(f"Jenkins at {self._where} did not answer {what} within {self._timeout:g}s")
        if any(isinstance(e, requests.ConnectionError) for e in chain):
            return TransientError(f"could not reach Jenkins at {self._where} ({what})")
        response = next(
            (e.response for e in chain if isinstance(e, requests.HTTPError) and e.response is not None),
            None,
        )
        if response is not None:
            status = response.status_code
            message = self._status_message(status, what)
            if status == NOT_BUILDABLE:
                return PermanentError(message)
            return error_for_status(status, message, response.headers.get("Retry-After"))
        detail = self._redactor.redact(str(exc))[:300]
        return PermanentError(f"Jenkins at {self._where} failed {what}: {type(exc).__name__}: {detail}")

    def _status_message(self, status: int, what: str) -> str:
        """What to say of an HTTP ``status`` answered to ``what`` (``error_for_status`` picks the class)."""
        if status in (401, 403):
            return (
                f"Jenkins refused our credentials for user {self._user!r} (HTTP {status}) while "
                f"{what}; check JENKINS_USER, JENKINS_TOKEN and the user's permissions on the job"
            )
        if status == 404:
            return f"{what} not found on Jenkins at {self._where}"
        if status == NOT_BUILDABLE:
            return (
                f"Jenkins at {self._where} refused {what} (HTTP 409): the job is not buildable "
                f"(disabled?); enable it in Jenkins and deploy again"
            )
        if is_transient(status):
            return f"Jenkins at {self._where} answered HTTP {status} to {what}"
        return f"Jenkins at {self._where} refused {what} (HTTP {status})"


def _describe(ref: BuildRef) -> str:
    if ref.number is not None:
        return f"{ref.job} #{ref.number}"
    return f"{ref.job} (queue item {ref.queue_item})"


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# --- console text, made safe to show ------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_SHAPES_ONLY = Redactor()


def tail(
    text: str,
    lines: int,
    *,
    redact: Callable[[str], str] = _SHAPES_ONLY.redact,
    max_chars: int = CONSOLE_MAX_CHARS,
) -> str:
    """The last ``lines`` lines of a console, without colour codes, redacted, at most ``max_chars``."""
    # Redact a wider window than is shown, so a secret spanning lines (a PEM key) is seen whole.
    window = text.splitlines()[-max(4 * lines, 200) :]
    clean = redact(_ANSI.sub("", "\n".join(window)).replace("\r", ""))
    shown = "\n".join(clean.splitlines()[-lines:]) if lines > 0 else ""
    if len(shown) > max_chars:
        shown = "…" + shown[-(max_chars - 1) :]
    return shown
