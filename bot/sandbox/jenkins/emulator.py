"""The emulated Jenkins itself: :class:`JenkinsEmulator`, its control surface, security and routes.

Why it exists: this is the one stateful core behind the HTTP app. It answers a plain call (see
``calls``) under a lock, after bringing the queue and the builds up to the clock's now, so
tests may also drive it directly from their own thread. Its state (items, the queue, builds) is
``core.JenkinsCore``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import secrets
from collections import deque
from dataclasses import replace

from bot.sandbox.jenkins.calls import (
    Call,
    Fail,
    Reply,
    error_page,
    html_page,
    json_reply,
    not_found,
    redirect,
)
from bot.sandbox.jenkins.config import (
    EMPTY_FOLDER_XML,
    EMPTY_PROJECT_XML,
    check_good_name,
    parse_config,
    set_disabled,
)
from bot.sandbox.jenkins.core import JenkinsCore
from bot.sandbox.jenkins.model import PERMALINKS, Build, Folder, Item, Job
from bot.sandbox.jenkins.shapes import (
    build_json,
    folder_json,
    job_json,
    node_json,
    queue_item_json,
    user_json,
    whoami_json,
)
from bot.sandbox.jenkins.steering import BuildRecord, BuildScript, Fault, QueueRecord

CRUMB_FIELD = "Jenkins-Crumb"


class JenkinsEmulator(JenkinsCore):
    """The state of one emulated Jenkins and everything it can do. Thread-safe: tests may call its
    public methods from their own thread while the server answers from its loop."""

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
                if not isinstance(child, Folder):
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
            raise Fail(401, "Malformed HTTP basic Authorization header", self._challenge()) from None
        if not sep:
            raise Fail(401, "Malformed HTTP basic Authorization header", self._challenge())
        if username == self.user:
            if secrets.compare_digest(secret.encode(), self.token.encode()):
                return username, True
            if self.password is not None and secrets.compare_digest(secret.encode(), self.password.encode()):
                return username, False
        raise Fail(401, f"Invalid password/token for user: {username}", self._challenge())

    @staticmethod
    def _challenge() -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="Jenkins"'}

    def base_url(self, request_base: str) -> str:
        return self.root_url or request_base

    # -- the Jenkins API ----------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        with self._lock:
            now = self.clock.now()
            self._tick(now)
            try:
                return self._route(call, now)
            except Fail as fail:
                return Reply(
                    status=fail.status, body=error_page(fail.status, fail.message), headers=fail.headers
                )

    def _route(self, call: Call, now: float) -> Reply:
        segs = call.segments
        head, rest = (segs[0], segs[1:]) if segs else ("", ())
        if head == "crumbIssuer" and rest == ("api", "json"):
            user = call.user or "anonymous"
            return json_reply(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": self.crumb_for(user),
                    "crumbRequestField": CRUMB_FIELD,
                },
                call,
            )
        if head == "me" and rest == ("api", "json"):
            return json_reply(user_json(call), call)
        if head == "user" and len(rest) == 3 and rest[1:] == ("api", "json") and rest[0] == call.user:
            return json_reply(user_json(call), call)
        if head == "whoAmI" and rest == ("api", "json"):
            return json_reply(whoami_json(call), call)
        if head == "queue":
            return self._route_queue(call, rest, now)
        if head == "computer":
            return self._route_computer(call, rest, now)
        item: Item = self._root
        i = 0
        while i < len(segs) and segs[i] == "job":
            if i + 1 >= len(segs) or not isinstance(item, Folder):
                raise not_found()
            child = item.children.get(segs[i + 1])
            if child is None:
                raise not_found()
            item = child
            i += 2
        rest = segs[i:]
        if isinstance(item, Folder):
            return self._route_folder(call, item, rest, now)
        assert isinstance(item, Job)
        return self._route_job(call, item, rest, now)

    @staticmethod
    def _require_post(call: Call) -> None:
        if call.method != "POST":
            raise Fail(405, "This URL requires POST")

    def _route_folder(self, call: Call, folder: Folder, rest: tuple[str, ...], now: float) -> Reply:
        is_root = folder is self._root
        if rest in ((), ("configure",)):
            return html_page(folder.full_display_name or "Dashboard")
        if rest == ("api", "json"):
            return json_reply(folder_json(folder, call, now, is_root=folder is self._root), call)
        if rest == ("createItem",):
            self._require_post(call)
            return self._create_item(call, folder)
        if rest == ("checkJobName",):
            name = call.param("value") or ""
            problem = check_good_name(name)
            if problem is None and name in folder.children:
                problem = f"A job already exists with the name ‘{name}’"
            body = "<div/>" if problem is None else f"<div class=error>{html.escape(problem)}</div>"
            return Reply(body=body.encode())
        if not is_root:
            return self._route_item(call, folder, rest)
        raise not_found()

    def _route_item(self, call: Call, item: Item, rest: tuple[str, ...]) -> Reply:
        if rest == ("config.xml",):
            if call.method == "POST":
                return self._update_config(call, item)
            return Reply(body=item.config.xml.encode(), content_type="application/xml;charset=utf-8")
        if rest == ("doDelete",):
            self._require_post(call)
            parent = item.parent
            assert parent is not None
            self._delete(item)
            return redirect(call.base + parent.path)
        raise not_found()

    def _route_job(self, call: Call, job: Job, rest: tuple[str, ...], now: float) -> Reply:
        if rest in ((), ("configure",)):
            return html_page(job.full_display_name)
        if rest == ("api", "json"):
            return json_reply(job_json(job, call, now, [q for q in self._waiting() if q.job is job]), call)
        if rest in (("enable",), ("disable",)):
            self._require_post(call)
            disabled = call.segments[-1] == "disable"
            job.config = replace(job.config, disabled=disabled, xml=set_disabled(job.config.xml, disabled))
            return redirect(call.base + job.path)
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

    def _route_build(self, call: Call, build: Build, rest: tuple[str, ...], now: float) -> Reply:
        if rest == ():
            return html_page(f"{build.job.full_display_name} #{build.number}")
        if rest == ("api", "json"):
            return json_reply(build_json(build, call.base, now), call)
        if rest == ("consoleText",):
            return Reply(body=build.console(now).encode(), content_type="text/plain;charset=utf-8")
        if rest == ("logText", "progressiveText"):
            return self._progressive(call, build, now)
        if rest == ("stop",):
            self._require_post(call)
            if build.building(now):
                build.aborted_at = now
                build.aborted_by = call.user or "anonymous"
            return redirect(build.url(call.base))
        if rest == ("doDelete",):
            self._require_post(call)
            if build.building(now):
                raise Fail(
                    500, f"Unable to delete {build.job.full_display_name} #{build.number}: in progress"
                )
            del build.job.builds[build.number]
            return redirect(call.base + build.job.path)
        raise not_found()

    def _route_queue(self, call: Call, rest: tuple[str, ...], now: float) -> Reply:
        if rest == ("api", "json"):
            items = [queue_item_json(q, call.base, now) for q in self._waiting()]
            return json_reply({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}, call)
        if len(rest) >= 2 and rest[0] == "item" and rest[1].isdigit():
            item = self._visible_item(int(rest[1]), now)
            if item is None:
                raise not_found()
            if rest[2:] == ("api", "json"):
                return json_reply(queue_item_json(item, call.base, now), call)
            if rest[2:] == ():
                return html_page(f"Queue item {item.id}")
            raise not_found()
        if rest == ("cancelItem",):
            self._require_post(call)
            raw = call.param("id")
            if raw is None or not raw.strip().lstrip("-").isdigit():
                raise Fail(400, "Query parameter 'id' is required and must be a number")
            qid = int(raw)
            found = self._visible_item(qid, now)
            if found is None:
                raise Fail(404, f"Provided id ({qid}) not found")
            if not found.waiting:
                raise Fail(500, f"Could not cancel run for id {qid}")
            found.cancelled_at = now
            del self._pending[qid]
            return Reply(status=204)
        if rest == ():
            return html_page("Build Queue")
        raise not_found()

    def _route_computer(self, call: Call, rest: tuple[str, ...], now: float) -> Reply:
        if rest == ("api", "json"):
            node = node_json(self._running(now), call.base)
            return json_reply(
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
            return json_reply(node_json(self._running(now), call.base), call)
        raise not_found()
