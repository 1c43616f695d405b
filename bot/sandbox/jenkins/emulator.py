"""The emulated Jenkins itself: :class:`JenkinsEmulator`, its routes, queue, builds and JSON shapes.

Why it exists: this is the one stateful core behind the HTTP app. It answers a plain call (see
``jenkins_calls``) under a lock, after bringing the queue and the builds up to the clock's now, so
tests may also drive it directly from their own thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import secrets
import threading
from collections import deque
from dataclasses import replace

from bot.sandbox.clock import EmulatedClock
from bot.sandbox.jenkins_calls import (
    _Call,
    _error_page,
    _Fail,
    _json,
    _not_found,
    _page,
    _parse_delay,
    _redirect,
    _Reply,
    _submitted_form,
)
from bot.sandbox.jenkins_config import (
    EMPTY_FOLDER_XML,
    EMPTY_PIPELINE_XML,
    EMPTY_PROJECT_XML,
    FOLDER_CLASS,
    FREESTYLE_CLASS,
    PIPELINE_CLASS,
    JobConfig,
    ParamValue,
    _ConfigError,
    _set_disabled,
    check_good_name,
    parse_config,
)
from bot.sandbox.jenkins_model import (
    PERMALINKS,
    _Build,
    _Folder,
    _Item,
    _Job,
    _QueueItem,
    permalink,
    start_time,
)
from bot.sandbox.jenkins_shapes import (
    build_json,
    folder_json,
    job_json,
    node_json,
    queue_item_json,
    user_json,
    whoami_json,
)
from bot.sandbox.jenkins_steering import BuildRecord, BuildScript, Fault, QueueRecord

DEFAULT_VERSION = "2.479.3"
"""The Jenkins LTS release the emulator claims to be (``X-Jenkins``)."""

CRUMB_FIELD = "Jenkins-Crumb"


class JenkinsEmulator:
    """The state of one emulated Jenkins and everything it can do. Thread-safe: tests may call its
    public methods from their own thread while the server answers from its loop."""

    def __init__(
        self,
        *,
        user: str = "shipthread",
        token: str = "sandbox-token",  # noqa: S107 - the sandbox's well-known token, not a secret
        password: str | None = None,
        time_scale: float = 1.0,
        anonymous_read: bool = False,
        crumb_exempt_api_token: bool = False,
        default_duration: float = 2.0,
        default_queue_wait: float = 0.5,
        queue_item_ttl: float = 300.0,
        root_url: str | None = None,
        version: str = DEFAULT_VERSION,
    ) -> None:
        if not user:
            raise ValueError("user must not be empty")
        self.user = user
        self.token = token
        self.password = password
        self.clock = EmulatedClock(time_scale)
        self.anonymous_read = anonymous_read
        self.crumb_exempt_api_token = crumb_exempt_api_token
        self.default_script = BuildScript(duration=default_duration, queue_wait=default_queue_wait)
        self.queue_item_ttl = queue_item_ttl
        self.root_url = None if root_url is None else root_url.rstrip("/") + "/"
        self.version = version
        self.session = secrets.token_hex(4)
        self._salt = secrets.token_hex(16)
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._reset_state()

    def _reset_state(self) -> None:
        self._root = _Folder(name="", parent=None, config=parse_config(EMPTY_FOLDER_XML))
        self._queue: dict[int, _QueueItem] = {}
        self._pending: dict[int, _QueueItem] = {}  # the waiting subset of _queue, oldest first
        self._next_queue_id = 1
        self._scripts: dict[str, deque[BuildScript]] = {}
        self._faults.clear()

    # -- public control surface ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget every job, build, queue item, script and fault (users and the clock stay)."""
        with self._lock:
            self._reset_state()

    def advance(self, seconds: float) -> float:
        """Push the emulated clock forward; returns the new now (epoch seconds)."""
        now = self.clock.advance(seconds)
        with self._lock:
            self._tick(self.clock.now())
        return now

    def create_job(self, full_name: str, config_xml: str | None = None) -> None:
        """Create a job (or folder, from its config.xml), creating missing parent folders."""
        config = parse_config(config_xml or EMPTY_PROJECT_XML)
        with self._lock:
            parts = full_name.strip("/").split("/")
            folder = self._root
            for part in parts[:-1]:
                child = folder.children.get(part)
                if child is None:
                    child = self._add_item(folder, part, parse_config(EMPTY_FOLDER_XML))
                if not isinstance(child, _Folder):
                    raise ValueError(f"{child.full_name} is a job, not a folder")
                folder = child
            if parts[-1] in folder.children:
                raise ValueError(f"{full_name} already exists")
            self._add_item(folder, parts[-1], config)

    def script(self, job: str, *steps: BuildScript, append: bool = False) -> int:
        """Script the next builds of ``job`` (full name, may not exist yet); returns how many wait."""
        with self._lock:
            queue = self._scripts.setdefault(job.strip("/"), deque())
            if not append:
                queue.clear()
            queue.extend(steps)
            return len(queue)

    def pending_scripts(self, job: str) -> list[BuildScript]:
        with self._lock:
            return list(self._scripts.get(job.strip("/"), ()))

    def inject_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def faults(self) -> list[Fault]:
        with self._lock:
            return [replace(f) for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault this request meets, if any (its count goes down by one)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    met = replace(fault)
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return met
        return None

    def builds(self, job: str | None = None, base: str | None = None) -> list[BuildRecord]:
        """Every build so far (of one job, if named), oldest first."""
        with self._lock:
            now = self.clock.now()
            self._tick(now)
            base = base or self.root_url or "/"
            out: list[BuildRecord] = []
            for item in sorted(self._queue.values(), key=lambda q: q.id):
                b = item.build
                if b is None or (job is not None and b.job.full_name != job.strip("/")):
                    continue
                out.append(
                    BuildRecord(
                        job=b.job.full_name,
                        number=b.number,
                        queue_id=b.queue_id,
                        parameters={p.name: p.value for p in b.params},
                        result=b.result(now),
                        building=b.building(now),
                        timestamp=round(b.started_at * 1000),
                        duration=b.duration_ms(now),
                        url=b.url(base),
                    )
                )
            return out

    def queue_records(self) -> list[QueueRecord]:
        """Every queue item ever scheduled, oldest first (expired ones included)."""
        with self._lock:
            self._tick(self.clock.now())
            out = []
            for item in sorted(self._queue.values(), key=lambda q: q.id):
                state = "waiting" if item.waiting else "cancelled" if item.cancelled_at else "left"
                out.append(
                    QueueRecord(
                        id=item.id,
                        job=item.job.full_name,
                        parameters={p.name: p.value for p in item.params},
                        state=state,
                        build_number=None if item.build is None else item.build.number,
                    )
                )
            return out

    # -- security -----------------------------------------------------------------------------

    def crumb_for(self, user: str) -> str:
        return hashlib.sha256(f"{self._salt}:{user}".encode()).hexdigest()

    def authenticate(self, header: str | None) -> tuple[str | None, bool]:
        """(user or None for anonymous, whether an API token was used); raises 401 on bad ones."""
        if header is None:
            return None, False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False  # Jenkins ignores schemes it does not know
        try:
            username, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _Fail(401, "Malformed HTTP basic Authorization header", self._challenge()) from None
        if not sep:
            raise _Fail(401, "Malformed HTTP basic Authorization header", self._challenge())
        if username == self.user:
            if secrets.compare_digest(secret.encode(), self.token.encode()):
                return username, True
            if self.password is not None and secrets.compare_digest(secret.encode(), self.password.encode()):
                return username, False
        raise _Fail(401, f"Invalid password/token for user: {username}", self._challenge())

    @staticmethod
    def _challenge() -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="Jenkins"'}

    def base_url(self, request_base: str) -> str:
        return self.root_url or request_base

    # -- the Jenkins API ----------------------------------------------------------------------

    def handle(self, call: _Call) -> _Reply:
        with self._lock:
            now = self.clock.now()
            self._tick(now)
            try:
                return self._route(call, now)
            except _Fail as fail:
                return _Reply(
                    status=fail.status, body=_error_page(fail.status, fail.message), headers=fail.headers
                )

    def _route(self, call: _Call, now: float) -> _Reply:
        segs = call.segments
        head, rest = (segs[0], segs[1:]) if segs else ("", ())
        if head == "crumbIssuer" and rest == ("api", "json"):
            user = call.user or "anonymous"
            return _json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": self.crumb_for(user),
                    "crumbRequestField": CRUMB_FIELD,
                },
                call,
            )
        if head == "me" and rest == ("api", "json"):
            return _json(user_json(call), call)
        if head == "user" and len(rest) == 3 and rest[1:] == ("api", "json") and rest[0] == call.user:
            return _json(user_json(call), call)
        if head == "whoAmI" and rest == ("api", "json"):
            return _json(whoami_json(call), call)
        if head == "queue":
            return self._route_queue(call, rest, now)
        if head == "computer":
            return self._route_computer(call, rest, now)
        item: _Item = self._root
        i = 0
        while i < len(segs) and segs[i] == "job":
            if i + 1 >= len(segs) or not isinstance(item, _Folder):
                raise _not_found()
            child = item.children.get(segs[i + 1])
            if child is None:
                raise _not_found()
            item = child
            i += 2
        rest = segs[i:]
        if isinstance(item, _Folder):
            return self._route_folder(call, item, rest, now)
        assert isinstance(item, _Job)
        return self._route_job(call, item, rest, now)

    @staticmethod
    def _require_post(call: _Call) -> None:
        if call.method != "POST":
            raise _Fail(405, "This URL requires POST")

    def _route_folder(self, call: _Call, folder: _Folder, rest: tuple[str, ...], now: float) -> _Reply:
        is_root = folder is self._root
        if rest in ((), ("configure",)):
            return _page(folder.full_display_name or "Dashboard")
        if rest == ("api", "json"):
            return _json(folder_json(folder, call, now, is_root=folder is self._root), call)
        if rest == ("createItem",):
            self._require_post(call)
            return self._create_item(call, folder)
        if rest == ("checkJobName",):
            name = call.param("value") or ""
            problem = check_good_name(name)
            if problem is None and name in folder.children:
                problem = f"A job already exists with the name ‘{name}’"
            body = "<div/>" if problem is None else f"<div class=error>{html.escape(problem)}</div>"
            return _Reply(body=body.encode())
        if not is_root:
            return self._route_item(call, folder, rest)
        raise _not_found()

    def _route_item(self, call: _Call, item: _Item, rest: tuple[str, ...]) -> _Reply:
        if rest == ("config.xml",):
            if call.method == "POST":
                return self._update_config(call, item)
            return _Reply(body=item.config.xml.encode(), content_type="application/xml;charset=utf-8")
        if rest == ("doDelete",):
            self._require_post(call)
            parent = item.parent
            assert parent is not None
            self._delete(item)
            return _redirect(call.base + parent.path)
        raise _not_found()

    def _route_job(self, call: _Call, job: _Job, rest: tuple[str, ...], now: float) -> _Reply:
        if rest in ((), ("configure",)):
            return _page(job.full_display_name)
        if rest == ("api", "json"):
            return _json(job_json(job, call, now, [q for q in self._waiting() if q.job is job]), call)
        if rest in (("enable",), ("disable",)):
            self._require_post(call)
            disabled = call.segments[-1] == "disable"
            job.config = replace(job.config, disabled=disabled, xml=_set_disabled(job.config.xml, disabled))
            return _redirect(call.base + job.path)
        if rest == ("build",):
            self._require_post(call)
            return self._schedule(call, job, now, with_parameters=False)
        if rest == ("buildWithParameters",):
            self._require_post(call)
            return self._schedule(call, job, now, with_parameters=True)
        if rest and (rest[0].isdigit() or rest[0] in PERMALINKS):
            build = self._find_build(job, rest[0], now)
            return self._route_build(call, build, rest[1:], now)
        return self._route_item(call, job, rest)

    def _route_build(self, call: _Call, build: _Build, rest: tuple[str, ...], now: float) -> _Reply:
        if rest == ():
            return _page(f"{build.job.full_display_name} #{build.number}")
        if rest == ("api", "json"):
            return _json(build_json(build, call.base, now), call)
        if rest == ("consoleText",):
            return _Reply(body=build.console(now).encode(), content_type="text/plain;charset=utf-8")
        if rest == ("logText", "progressiveText"):
            return self._progressive(call, build, now)
        if rest == ("stop",):
            self._require_post(call)
            if build.building(now):
                build.aborted_at = now
                build.aborted_by = call.user or "anonymous"
            return _redirect(build.url(call.base))
        if rest == ("doDelete",):
            self._require_post(call)
            if build.building(now):
                raise _Fail(
                    500, f"Unable to delete {build.job.full_display_name} #{build.number}: in progress"
                )
            del build.job.builds[build.number]
            return _redirect(call.base + build.job.path)
        raise _not_found()

    def _route_queue(self, call: _Call, rest: tuple[str, ...], now: float) -> _Reply:
        if rest == ("api", "json"):
            items = [queue_item_json(q, call.base, now) for q in self._waiting()]
            return _json({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}, call)
        if len(rest) >= 2 and rest[0] == "item" and rest[1].isdigit():
            item = self._visible_item(int(rest[1]), now)
            if item is None:
                raise _not_found()
            if rest[2:] == ("api", "json"):
                return _json(queue_item_json(item, call.base, now), call)
            if rest[2:] == ():
                return _page(f"Queue item {item.id}")
            raise _not_found()
        if rest == ("cancelItem",):
            self._require_post(call)
            raw = call.param("id")
            if raw is None or not raw.strip().lstrip("-").isdigit():
                raise _Fail(400, "Query parameter 'id' is required and must be a number")
            qid = int(raw)
            found = self._visible_item(qid, now)
            if found is None:
                raise _Fail(404, f"Provided id ({qid}) not found")
            if not found.waiting:
                raise _Fail(500, f"Could not cancel run for id {qid}")
            found.cancelled_at = now
            del self._pending[qid]
            return _Reply(status=204)
        if rest == ():
            return _page("Build Queue")
        raise _not_found()

    def _route_computer(self, call: _Call, rest: tuple[str, ...], now: float) -> _Reply:
        if rest == ("api", "json"):
            node = node_json(self._running(now), call.base)
            return _json(
                {
                    "_class": "hudson.model.ComputerSet",
                    "busyExecutors": sum(1 for e in node["executors"] if not e["idle"]),
                    "computer": [node],
                    "displayName": "Nodes",
                    "totalExecutors": node["numExecutors"],
                },
                call,
            )
        if rest[1:] == ("api", "json") and rest[0] in ("(built-in)", "(master)"):
            return _json(node_json(self._running(now), call.base), call)
        raise _not_found()

    # -- items --------------------------------------------------------------------------------

    def _add_item(self, folder: _Folder, name: str, config: JobConfig) -> _Item:
        item: _Item
        if config.is_folder:
            item = _Folder(name=name, parent=folder, config=config)
        else:
            item = _Job(name=name, parent=folder, config=config)
        folder.children[name] = item
        return item

    def _create_item(self, call: _Call, folder: _Folder) -> _Reply:
        name = call.query.get("name")
        if name is None:
            name = call.form.get("name")
        if name is None:
            raise _Fail(400, "Query parameter 'name' is required")
        problem = check_good_name(name)
        if problem is not None:
            raise _Fail(400, problem, {"X-Error": problem})
        if name in folder.children:
            message = f"A job already exists with the name ‘{name}’"
            raise _Fail(400, message, {"X-Error": message})
        mode = call.param("mode")
        is_xml = call.content_type.startswith(("application/xml", "text/xml"))
        if is_xml:
            try:
                config = parse_config(call.body.decode("utf-8"))
            except (_ConfigError, UnicodeDecodeError) as exc:
                raise _Fail(500, str(exc)) from exc
            self._add_item(folder, name, config)
            return _Reply()
        if mode == "copy":
            source = folder.children.get(call.param("from") or "")
            if source is None:
                raise _Fail(400, f"No such job: {call.param('from')}")
            self._add_item(folder, name, source.config)
        elif mode in (FOLDER_CLASS, FREESTYLE_CLASS, PIPELINE_CLASS):
            xml = {FOLDER_CLASS: EMPTY_FOLDER_XML, FREESTYLE_CLASS: EMPTY_PROJECT_XML}.get(
                mode, EMPTY_PIPELINE_XML
            )
            self._add_item(folder, name, parse_config(xml))
        elif mode is None:
            raise _Fail(400, "No mode given")
        else:
            raise _Fail(400, f"No item type ‘{mode}’ is known")
        item = folder.children[name]
        return _redirect(call.base + item.path + "configure")

    def _update_config(self, call: _Call, item: _Item) -> _Reply:
        try:
            config = parse_config(call.body.decode("utf-8"))
        except (_ConfigError, UnicodeDecodeError) as exc:
            raise _Fail(500, str(exc)) from exc
        if config.is_folder != item.config.is_folder:
            raise _Fail(500, f"Expecting {item.config.item_class} but got {config.item_class} instead")
        item.config = config
        return _Reply()

    def _delete(self, item: _Item) -> None:
        parent = item.parent
        assert parent is not None
        doomed = [item, *(item.walk() if isinstance(item, _Folder) else ())]
        now = self.clock.now()
        for q in self._waiting():
            if q.job in doomed:
                q.cancelled_at = now
                del self._pending[q.id]
        for job in doomed:  # deleting a job aborts its running build, as in Jenkins
            if isinstance(job, _Job):
                for build in job.builds.values():
                    if build.building(now):
                        build.aborted_at = now
        del parent.children[item.name]

    # -- builds and the queue -----------------------------------------------------------------

    def _schedule(self, call: _Call, job: _Job, now: float, *, with_parameters: bool) -> _Reply:
        if job.config.disabled:
            raise _Fail(409, f"{job.full_name} is not buildable")
        definitions = job.config.params
        submitted: dict[str, str] | None = None
        if not with_parameters and definitions:
            submitted = _submitted_form(call.param("json"))
        if with_parameters and not definitions:
            raise _Fail(500, "java.lang.IllegalStateException: This build is not parameterized!")
        values: list[ParamValue] = []
        for definition in definitions:
            if submitted is not None:
                given = [submitted[definition.name]] if definition.name in submitted else []
            else:
                given = call.query.getall(definition.name, []) or call.form.getall(definition.name, [])
            try:
                values.append(definition.value(given[0] if given else None))
            except _ConfigError as exc:
                raise _Fail(500, f"java.lang.IllegalArgumentException: {exc}") from exc
        params = tuple(values)
        for waiting in self._waiting():
            if waiting.job is job and waiting.params == params:
                return self._created(call, waiting)
        delay = _parse_delay(call.param("delay"))
        script = self._next_script(job)
        queue_wait = script.queue_wait if script.queue_wait is not None else self.default_script.queue_wait
        item = _QueueItem(
            id=self._next_queue_id,
            job=job,
            params=params,
            user=call.user or "anonymous",
            enqueued_at=now,
            ready_at=now + (queue_wait or 0.0) + delay,
            script=script,
        )
        self._next_queue_id += 1
        self._queue[item.id] = item
        self._pending[item.id] = item
        return self._created(call, item)

    @staticmethod
    def _created(call: _Call, item: _QueueItem) -> _Reply:
        return _Reply(status=201, headers={"Location": f"{call.base}queue/item/{item.id}/"})

    def _next_script(self, job: _Job) -> BuildScript:
        pending = self._scripts.get(job.full_name)
        if pending:
            return pending.popleft()
        return self.default_script

    def _waiting(self) -> list[_QueueItem]:
        return list(self._pending.values())

    def _visible_item(self, qid: int, now: float) -> _QueueItem | None:
        item = self._queue.get(qid)
        if item is None:
            return None
        left = item.left_at
        if left is not None and now - left > self.queue_item_ttl:
            return None
        return item

    def _tick(self, now: float) -> None:
        """Start every queue item whose time has come, in order, honouring one-build-at-a-time."""
        started = True
        while started:
            started = False
            seen_jobs: set[int] = set()
            for item in self._waiting():
                job = item.job
                if id(job) in seen_jobs and not job.config.concurrent:
                    continue  # FIFO: an earlier item of this job has not started yet
                seen_jobs.add(id(job))
                start = start_time(item)
                if start is not None and start <= now:
                    self._start(item, start)
                    started = True
                    break

    def _start(self, item: _QueueItem, at: float) -> None:
        job = item.job
        duration = item.script.duration
        if duration is None:
            duration = self.default_script.duration or 0.0
        build = _Build(
            job=job,
            number=job.next_build_number,
            queue_id=item.id,
            params=item.params,
            started_at=at,
            script=item.script,
            duration=duration,
            user=item.user,
        )
        job.next_build_number += 1
        job.builds[build.number] = build
        item.build = build
        del self._pending[item.id]

    def _find_build(self, job: _Job, ref: str, now: float) -> _Build:
        if ref.isdigit():
            build = job.builds.get(int(ref))
            if build is None:
                raise _not_found()
            return build
        found = permalink(job, ref, now)
        if found is None:
            raise _not_found()
        return found

    def _progressive(self, call: _Call, build: _Build, now: float) -> _Reply:
        text = build.console(now).encode()
        raw = call.param("start") or "0"
        try:
            start = int(raw)
        except ValueError:
            raise _Fail(500, f'java.lang.NumberFormatException: For input string: "{raw}"') from None
        if start < 0 or start > len(text):
            start = 0  # Jenkins' LargeText: the text rolled over
        headers = {"X-Text-Size": str(len(text))}
        if build.building(now):
            headers["X-More-Data"] = "true"
        return _Reply(body=text[start:], content_type="text/plain;charset=utf-8", headers=headers)

    def _running(self, now: float) -> list[_Build]:
        return [
            item.build
            for item in sorted(self._queue.values(), key=lambda q: q.id)
            if item.build is not None and item.build.building(now)
        ]
