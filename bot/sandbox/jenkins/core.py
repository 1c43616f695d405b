"""The emulated Jenkins' state: its folders and jobs, the queue and the builds, moved on by its clock.

Why a module of its own: the HTTP-facing side (``emulator``: the control surface, security and
Jenkins' routes) only asks this core to create items, schedule builds and bring the queue up to now.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from typing import TypedDict

from bot.sandbox.clock import EmulatedClock
from bot.sandbox.jenkins.calls import Call, Fail, Reply, not_found, parse_delay, redirect, submitted_form
from bot.sandbox.jenkins.config import (
    EMPTY_FOLDER_XML,
    EMPTY_PIPELINE_XML,
    EMPTY_PROJECT_XML,
    FOLDER_CLASS,
    FREESTYLE_CLASS,
    PIPELINE_CLASS,
    ConfigError,
    JobConfig,
    ParamValue,
    check_good_name,
    parse_config,
)
from bot.sandbox.jenkins.model import Build, Folder, Item, Job, QueueItem, permalink, start_time
from bot.sandbox.jenkins.steering import BuildScript, Fault

DEFAULT_VERSION = "2.479.3"
"""The Jenkins LTS release the emulator claims to be (``X-Jenkins``)."""


class JenkinsOptions(TypedDict, total=False):
    """``JenkinsCore``'s keyword arguments, for ``create_jenkins_app`` to pass on without listing them
    again; the defaults live in the constructor."""

    user: str
    token: str
    password: str | None
    time_scale: float
    anonymous_read: bool
    crumb_exempt_api_token: bool
    default_duration: float
    default_queue_wait: float
    queue_item_ttl: float
    root_url: str | None
    version: str


class JenkinsCore:
    """Folders, jobs, the queue and builds of one emulated Jenkins; the lock guards all of it."""

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
        self._root = Folder(name="", parent=None, config=parse_config(EMPTY_FOLDER_XML))
        self._queue: dict[int, QueueItem] = {}
        self._pending: dict[int, QueueItem] = {}  # the waiting subset of _queue, oldest first
        self._next_queue_id = 1
        self._scripts: dict[str, deque[BuildScript]] = {}
        self._faults.clear()

    # -- items --------------------------------------------------------------------------------

    def _add_item(self, folder: Folder, name: str, config: JobConfig) -> Item:
        item: Item
        if config.is_folder:
            item = Folder(name=name, parent=folder, config=config)
        else:
            item = Job(name=name, parent=folder, config=config)
        folder.children[name] = item
        return item

    def _create_item(self, call: Call, folder: Folder) -> Reply:
        name = call.query.get("name")
        if name is None:
            name = call.form.get("name")
        if name is None:
            raise Fail(400, "Query parameter 'name' is required")
        problem = check_good_name(name)
        if problem is not None:
            raise Fail(400, problem, {"X-Error": problem})
        if name in folder.children:
            message = f"A job already exists with the name ‘{name}’"
            raise Fail(400, message, {"X-Error": message})
        mode = call.param("mode")
        is_xml = call.content_type.startswith(("application/xml", "text/xml"))
        if is_xml:
            try:
                config = parse_config(call.body.decode("utf-8"))
            except (ConfigError, UnicodeDecodeError) as exc:
                raise Fail(500, str(exc)) from exc
            self._add_item(folder, name, config)
            return Reply()
        if mode == "copy":
            source = folder.children.get(call.param("from") or "")
            if source is None:
                raise Fail(400, f"No such job: {call.param('from')}")
            self._add_item(folder, name, source.config)
        elif mode in (FOLDER_CLASS, FREESTYLE_CLASS, PIPELINE_CLASS):
            xml = {FOLDER_CLASS: EMPTY_FOLDER_XML, FREESTYLE_CLASS: EMPTY_PROJECT_XML}.get(
                mode, EMPTY_PIPELINE_XML
            )
            self._add_item(folder, name, parse_config(xml))
        elif mode is None:
            raise Fail(400, "No mode given")
        else:
            raise Fail(400, f"No item type ‘{mode}’ is known")
        item = folder.children[name]
        return redirect(call.base + item.path + "configure")

    def _update_config(self, call: Call, item: Item) -> Reply:
        try:
            config = parse_config(call.body.decode("utf-8"))
        except (ConfigError, UnicodeDecodeError) as exc:
            raise Fail(500, str(exc)) from exc
        if config.is_folder != item.config.is_folder:
            raise Fail(500, f"Expecting {item.config.item_class} but got {config.item_class} instead")
        item.config = config
        return Reply()

    def _delete(self, item: Item) -> None:
        parent = item.parent
        assert parent is not None
        doomed = [item, *(item.walk() if isinstance(item, Folder) else ())]
        now = self.clock.now()
        for q in self._waiting():
            if q.job in doomed:
                q.cancelled_at = now
                del self._pending[q.id]
        for job in doomed:  # deleting a job aborts its running build, as in Jenkins
            if isinstance(job, Job):
                for build in job.builds.values():
                    if build.building(now):
                        build.aborted_at = now
        del parent.children[item.name]

    # -- builds and the queue -----------------------------------------------------------------

    def _schedule(self, call: Call, job: Job, now: float, *, with_parameters: bool) -> Reply:
        if job.config.disabled:
            raise Fail(409, f"{job.full_name} is not buildable")
        definitions = job.config.params
        submitted: dict[str, str] | None = None
        if not with_parameters and definitions:
            submitted = submitted_form(call.param("json"))
        if with_parameters and not definitions:
            raise Fail(500, "java.lang.IllegalStateException: This build is not parameterized!")
        values: list[ParamValue] = []
        for definition in definitions:
            if submitted is not None:
                given = [submitted[definition.name]] if definition.name in submitted else []
            else:
                given = call.query.getall(definition.name, []) or call.form.getall(definition.name, [])
            try:
                values.append(definition.value(given[0] if given else None))
            except ConfigError as exc:
                raise Fail(500, f"java.lang.IllegalArgumentException: {exc}") from exc
        params = tuple(values)
        for waiting in self._waiting():
            if waiting.job is job and waiting.params == params:
                return self._created(call, waiting)
        delay = parse_delay(call.param("delay"))
        script = self._next_script(job)
        queue_wait = script.queue_wait if script.queue_wait is not None else self.default_script.queue_wait
        item = QueueItem(
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
    def _created(call: Call, item: QueueItem) -> Reply:
        return Reply(status=201, headers={"Location": f"{call.base}queue/item/{item.id}/"})

    def _next_script(self, job: Job) -> BuildScript:
        pending = self._scripts.get(job.full_name)
        if pending:
            return pending.popleft()
        return self.default_script

    def _waiting(self) -> list[QueueItem]:
        return list(self._pending.values())

    def _visible_item(self, qid: int, now: float) -> QueueItem | None:
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

    def _start(self, item: QueueItem, at: float) -> None:
        job = item.job
        duration = item.script.duration
        if duration is None:
            duration = self.default_script.duration or 0.0
        build = Build(
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

    def _find_build(self, job: Job, ref: str, now: float) -> Build:
        if ref.isdigit():
            build = job.builds.get(int(ref))
            if build is None:
                raise not_found()
            return build
        found = permalink(job, ref, now)
        if found is None:
            raise not_found()
        return found

    def _progressive(self, call: Call, build: Build, now: float) -> Reply:
        text = build.console(now).encode()
        raw = call.param("start") or "0"
        try:
            start = int(raw)
        except ValueError:
            raise Fail(500, f'java.lang.NumberFormatException: For input string: "{raw}"') from None
        if start < 0 or start > len(text):
            start = 0  # Jenkins' LargeText: the text rolled over
        headers = {"X-Text-Size": str(len(text))}
        if build.building(now):
            headers["X-More-Data"] = "true"
        return Reply(body=text[start:], content_type="text/plain;charset=utf-8", headers=headers)

    def _running(self, now: float) -> list[Build]:
        return [
            item.build
            for item in sorted(self._queue.values(), key=lambda q: q.id)
            if item.build is not None and item.build.building(now)
        ]
