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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import html
import json
import math
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeAlias
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import CIMultiDict, MultiDict, MultiDictProxy, MultiMapping

__all__ = [
    "DEFAULT_VERSION",
    "JENKINS_EMULATOR",
    "BuildRecord",
    "BuildScript",
    "Clock",
    "Fault",
    "JenkinsEmulator",
    "QueueRecord",
    "create_jenkins_app",
    "emulator_of",
]

DEFAULT_VERSION = "2.479.3"
"""The Jenkins LTS release the emulator claims to be (``X-Jenkins``)."""

RESULTS = frozenset({"SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT"})
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
FREESTYLE_CLASS = "hudson.model.FreeStyleProject"
PIPELINE_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
CRUMB_FIELD = "Jenkins-Crumb"
PERMALINKS = (
    "lastBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastFailedBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
    "lastCompletedBuild",
)
# Jenkins.checkGoodName refuses these characters in item names.
_BAD_NAME_CHARS = set("?*/\\%!@#$^&|<>[]:;")
_INFINITY = math.inf

Json: TypeAlias = Any
"""A JSON value as ``json.loads`` gives it back."""


# ---------------------------------------------------------------------------------------------
# Time


class Clock:
    """Emulated time in epoch seconds: scaled real time plus whatever was advanced by hand."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale < 0 or not math.isfinite(time_scale):
            raise ValueError(f"time_scale must be a finite number >= 0, not {time_scale!r}")
        self._scale = time_scale
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def time_scale(self) -> float:
        return self._scale

    def now(self) -> float:
        elapsed = time.monotonic() - self._mono0
        run = elapsed / self._scale if self._scale > 0 else 0.0
        with self._lock:
            return self._wall0 + run + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (emulated); returns the new now."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"the clock only moves forward by a finite amount, not {seconds!r}")
        with self._lock:
            self._offset += seconds
        return self.now()


# ---------------------------------------------------------------------------------------------
# What tests steer: scripted builds and injected faults


@dataclass(frozen=True)
class BuildScript:
    """What one build of a job does. Times are emulated seconds; None means the emulator default.

    ``duration=math.inf`` runs until stopped. ``console`` replaces the build's own output lines
    (Jenkins' header and ``Finished:`` line are added around it).
    """

    result: str = "SUCCESS"
    duration: float | None = None
    console: str | None = None
    queue_wait: float | None = None

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"result must be one of {sorted(RESULTS)}, not {self.result!r}")
        for name in ("duration", "queue_wait"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> BuildScript:
        unknown = set(data) - {"result", "duration", "console", "queue_wait", "until_stopped", "count"}
        if unknown:
            raise ValueError(f"unknown build script fields: {sorted(unknown)}")
        duration = data.get("duration")
        if data.get("until_stopped"):
            duration = _INFINITY
        console = data.get("console")
        if isinstance(console, list):
            console = "\n".join(str(line) for line in console)
        return cls(
            result=str(data.get("result", "SUCCESS")).upper(),
            duration=duration,
            console=console,
            queue_wait=data.get("queue_wait"),
        )

    def to_json(self) -> dict[str, Json]:
        return {
            "result": self.result,
            "duration": self.duration if self.duration is None or math.isfinite(self.duration) else None,
            "until_stopped": self.duration == _INFINITY,
            "console": self.console,
            "queue_wait": self.queue_wait,
        }


@dataclass
class Fault:
    """The next ``count`` requests matching ``method`` and ``path`` (a regex searched in the path)
    are delayed by ``delay`` real seconds and then, if ``status`` is set, answered with it."""

    status: int | None = 503
    count: int = 1
    path: str | None = None
    method: str | None = None
    delay: float = 0.0
    body: str | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, not {self.status}")
        if self.status is None and self.delay == 0:
            raise ValueError("a fault needs a status, a delay, or both")
        if self.path is not None:
            re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Json]) -> Fault:
        unknown = set(data) - {"status", "count", "path", "method", "delay", "body"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        status = data.get("status", 503 if not data.get("delay") else None)
        return cls(
            status=None if status is None else int(status),
            count=int(data.get("count", 1)),
            path=data.get("path"),
            method=data.get("method"),
            delay=float(data.get("delay", 0.0)),
            body=data.get("body"),
        )


@dataclass(frozen=True)
class BuildRecord:
    """One build as the control API reports it (tests count and inspect builds with it)."""

    job: str
    number: int
    queue_id: int
    parameters: dict[str, str | bool]
    result: str | None
    building: bool
    timestamp: int
    duration: int
    url: str


@dataclass(frozen=True)
class QueueRecord:
    """One queue item, waiting, cancelled or left for a build."""

    id: int
    job: str
    parameters: dict[str, str | bool]
    state: str
    build_number: int | None


# ---------------------------------------------------------------------------------------------
# config.xml


class _ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ParamValue:
    cls: str
    name: str
    value: str | bool
    secret: bool = False

    @property
    def text(self) -> str:
        """The value as Jenkins prints it (Java's ``true``/``false`` for booleans)."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return self.value

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"_class": self.cls, "name": self.name}
        if not self.secret:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class ParamDef:
    """A parameter definition read from config.xml's ``<parameterDefinitions>``."""

    kind: str
    name: str
    description: str
    default: str | bool
    choices: tuple[str, ...] = ()
    trim: bool = False

    @property
    def short_type(self) -> str:
        return self.kind.rsplit(".", 1)[-1]

    @property
    def value_class(self) -> str:
        if self.kind.endswith("Definition"):
            return self.kind[: -len("Definition")] + "Value"
        return "hudson.model.StringParameterValue"

    @property
    def is_boolean(self) -> bool:
        return "Boolean" in self.short_type

    @property
    def is_choice(self) -> bool:
        return "Choice" in self.short_type

    @property
    def secret(self) -> bool:
        return "Password" in self.short_type

    def value(self, raw: str | None) -> ParamValue:
        value: str | bool
        if raw is None:
            value = self.default
        elif self.is_boolean:
            value = raw.strip().lower() == "true"
        elif self.is_choice:
            if raw not in self.choices:
                raise _ConfigError(f"Illegal choice for parameter {self.name}: {raw}")
            value = raw
        else:
            value = raw.strip() if self.trim else raw
        return ParamValue(self.value_class, self.name, value, self.secret)

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {
            "_class": self.kind,
            "defaultParameterValue": self.value(None).to_json(),
            "description": self.description,
            "name": self.name,
            "type": self.short_type,
        }
        if self.is_choice:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class JobConfig:
    """What the emulator reads out of an item's config.xml (the XML itself is kept verbatim)."""

    xml: str
    item_class: str
    description: str | None
    disabled: bool
    concurrent: bool
    params: tuple[ParamDef, ...]

    @property
    def is_folder(self) -> bool:
        return self.item_class == FOLDER_CLASS

    @property
    def build_class(self) -> str:
        if self.item_class == PIPELINE_CLASS:
            return "org.jenkinsci.plugins.workflow.job.WorkflowRun"
        return "hudson.model.FreeStyleBuild"


_ROOT_TAGS = {
    "project": FREESTYLE_CLASS,
    "flow-definition": PIPELINE_CLASS,
    "matrix-project": "hudson.matrix.MatrixProject",
    "maven2-moduleset": "hudson.maven.MavenModuleSet",
}

EMPTY_PROJECT_XML = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description></description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>false</concurrentBuild>
  <builders/>
  <publishers/>
  <buildWrappers/>
</project>"""

EMPTY_FOLDER_XML = """<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.hudson.plugins.folder.Folder plugin="cloudbees-folder">
  <actions/>
  <description></description>
  <properties/>
  <folderViews class="com.cloudbees.hudson.plugins.folder.views.DefaultFolderViewHolder">
    <views>
      <hudson.model.AllView>
        <name>All</name>
        <filterExecutors>false</filterExecutors>
        <filterQueue>false</filterQueue>
      </hudson.model.AllView>
    </views>
  </folderViews>
  <healthMetrics/>
</com.cloudbees.hudson.plugins.folder.Folder>"""

EMPTY_PIPELINE_XML = """<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <description></description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <triggers/>
  <disabled>false</disabled>
</flow-definition>"""


def _text(element: ET.Element | None) -> str | None:
    return None if element is None else (element.text or "")


def parameterized_job_xml(*params: str, concurrent: bool = False, description: str = "") -> str:
    """A freestyle job's config.xml declaring string parameters ``params``.

    Jenkins drops build parameters a job does not declare, so a job Shipthread builds must declare
    ``SHIPTHREAD_KEY`` (its idempotency key) next to its own parameters.
    """
    definitions = "".join(
        "<hudson.model.StringParameterDefinition>"
        f"<name>{escape(name)}</name><description></description><defaultValue></defaultValue>"
        "<trim>false</trim></hudson.model.StringParameterDefinition>"
        for name in params
    )
    return (
        f"<?xml version='1.1' encoding='UTF-8'?><project><description>{escape(description)}</description>"
        "<properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
        f"{definitions}</parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>"
        f"<disabled>false</disabled><concurrentBuild>{str(concurrent).lower()}</concurrentBuild></project>"
    )


def parse_config(xml: str) -> JobConfig:
    """Read the parts of a job or folder config.xml the emulator acts on."""
    try:
        # Expat >= 2.4 refuses entity-expansion bombs; the sandbox only parses its callers' XML.
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise _ConfigError(f"Failed to parse the job configuration: {exc}") from exc
    tag = root.tag
    item_class = _ROOT_TAGS.get(tag, tag)
    if "." not in item_class:
        raise _ConfigError(f"Unrecognized item type <{tag}> in config.xml")
    params: list[ParamDef] = []
    for definitions in root.iter("parameterDefinitions"):
        for node in definitions:
            name = (_text(node.find("name")) or "").strip()
            if not name:
                raise _ConfigError(f"A parameter definition <{node.tag}> has no name")
            params.append(_param_def(node, name))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise _ConfigError(f"Duplicate parameter names in {names}")
    if item_class == PIPELINE_CLASS:
        concurrent = not any(el.tag.endswith("DisableConcurrentBuildsJobProperty") for el in root.iter())
    else:
        concurrent = (_text(root.find("concurrentBuild")) or "").strip() == "true"
    return JobConfig(
        xml=xml,
        item_class=item_class,
        description=_text(root.find("description")) or None,
        disabled=(_text(root.find("disabled")) or "").strip() == "true",
        concurrent=concurrent,
        params=tuple(params),
    )


def _param_def(node: ET.Element, name: str) -> ParamDef:
    kind = node.tag
    short = kind.rsplit(".", 1)[-1]
    description = _text(node.find("description")) or ""
    raw_default = _text(node.find("defaultValue"))
    if "Boolean" in short:
        return ParamDef(kind, name, description, (raw_default or "").strip() == "true")
    if "Choice" in short:
        choices_el = node.find("choices")
        choices = tuple((s.text or "") for s in choices_el.iter("string")) if choices_el is not None else ()
        if choices_el is not None and not choices and (choices_el.text or "").strip():
            choices = tuple(line for line in (choices_el.text or "").splitlines() if line)
        return ParamDef(kind, name, description, choices[0] if choices else "", choices)
    trim = (_text(node.find("trim")) or "").strip() == "true"
    default = raw_default or ""
    return ParamDef(kind, name, description, default.strip() if trim else default, (), trim)


def _set_disabled(xml: str, disabled: bool) -> str:
    value = "true" if disabled else "false"
    if re.search(r"<disabled>\s*\w*\s*</disabled>", xml):
        return re.sub(r"<disabled>\s*\w*\s*</disabled>", f"<disabled>{value}</disabled>", xml, count=1)
    return xml


def check_good_name(name: str) -> str | None:
    """Jenkins.checkGoodName: the reason a name is refused, or None when it is fine."""
    if not name.strip():
        return "No name is specified"
    if name in (".", ".."):
        return f"“{name}” is not an allowed name"
    for ch in name:
        if ch in _BAD_NAME_CHARS or ord(ch) < 32:
            return f"‘{ch}’ is an unsafe character"
    return None


# ---------------------------------------------------------------------------------------------
# The model: folders, jobs, queue items, builds


@dataclass(eq=False)
class _Item:
    name: str
    parent: _Folder | None
    config: JobConfig

    @property
    def full_name(self) -> str:
        parts: list[str] = []
        item: _Item | None = self
        while item is not None and item.parent is not None:
            parts.append(item.name)
            item = item.parent
        return "/".join(reversed(parts))

    @property
    def path(self) -> str:
        """URL path below the root, e.g. ``job/a/job/b/`` ('' for the root)."""
        full = self.full_name
        return "".join(f"job/{quote(part, safe='')}/" for part in full.split("/")) if full else ""

    @property
    def full_display_name(self) -> str:
        return " » ".join(self.full_name.split("/"))


@dataclass(eq=False)
class _Folder(_Item):
    children: dict[str, _Item] = field(default_factory=dict)

    def walk(self) -> Iterable[_Item]:
        for child in self.children.values():
            yield child
            if isinstance(child, _Folder):
                yield from child.walk()


@dataclass(eq=False)
class _Job(_Item):
    builds: dict[int, _Build] = field(default_factory=dict)
    next_build_number: int = 1


@dataclass(eq=False)
class _Build:
    job: _Job
    number: int
    queue_id: int
    params: tuple[ParamValue, ...]
    started_at: float
    script: BuildScript
    duration: float
    user: str
    aborted_at: float | None = None
    aborted_by: str | None = None

    @property
    def planned_end(self) -> float:
        return self.started_at + self.duration

    @property
    def end(self) -> float:
        """When the build stops (inf while it runs until stopped)."""
        return self.aborted_at if self.aborted_at is not None else self.planned_end

    def building(self, now: float) -> bool:
        return now < self.end

    def result(self, now: float) -> str | None:
        if self.building(now):
            return None
        return "ABORTED" if self.aborted_at is not None else self.script.result

    def duration_ms(self, now: float) -> int:
        return 0 if self.building(now) else round((self.end - self.started_at) * 1000)

    def url(self, base: str) -> str:
        return f"{base}{self.job.path}{self.number}/"

    def console(self, now: float) -> str:
        job = self.job
        lines = [
            f"Started by user {self.user}",
            "Running as SYSTEM",
            f"Building in workspace /var/jenkins_home/workspace/{job.full_name}",
            f"[{job.full_name.replace('/', '_')}] $ /bin/sh -xe /tmp/jenkins{self.queue_id}.sh",
        ]
        body = self._body_lines()
        at = min(now, self.end)
        elapsed = max(0.0, at - self.started_at)
        if not self.building(now) and self.aborted_at is None:
            shown = len(body)
        elif self.duration == _INFINITY:
            shown = min(len(body), int(elapsed))  # one line per emulated second
        elif self.duration <= 0:
            shown = len(body)
        else:
            shown = min(len(body), int(elapsed * (len(body) + 1) / self.duration))
        lines.extend(body[:shown])
        result = self.result(now)
        if result is not None:
            if result == "ABORTED":
                lines.append("Build was aborted")
                if self.aborted_by:
                    lines.append(f"Aborted by {self.aborted_by}")
            elif result == "FAILURE":
                lines.append("Build step 'Execute shell' marked build as failure")
            elif result == "UNSTABLE":
                lines.append("Build step 'Execute shell' changed build result to UNSTABLE")
            lines.append(f"Finished: {result}")
        return "".join(line + "\n" for line in lines)

    def _body_lines(self) -> list[str]:
        if self.script.console is not None:
            return self.script.console.splitlines()
        lines = ["+ ./build.sh", f"[sandbox] building {self.job.full_name}"]
        lines.extend(f"[sandbox] {p.name}={p.text}" for p in self.params if not p.secret)
        lines.append(f"[sandbox] {self.job.full_name} done")
        return lines


@dataclass(eq=False)
class _QueueItem:
    id: int
    job: _Job
    params: tuple[ParamValue, ...]
    user: str
    enqueued_at: float
    ready_at: float
    script: BuildScript
    cancelled_at: float | None = None
    build: _Build | None = None

    @property
    def waiting(self) -> bool:
        return self.cancelled_at is None and self.build is None

    @property
    def left_at(self) -> float | None:
        if self.cancelled_at is not None:
            return self.cancelled_at
        return None if self.build is None else self.build.started_at


# ---------------------------------------------------------------------------------------------
# ?tree=


TreeSpec: TypeAlias = dict[str, tuple["TreeSpec | None", "slice | None"]]


def parse_tree(spec: str) -> TreeSpec:
    """Parse Jenkins' ``tree`` query, e.g. ``jobs[name,url,jobs[name]]{0,10}``."""
    pos = 0

    def fields() -> TreeSpec:
        nonlocal pos
        out: TreeSpec = {}
        while pos < len(spec):
            match = re.compile(r"\s*([A-Za-z_$][\w$]*)\s*").match(spec, pos)
            if match is None:
                raise ValueError(f"bad tree at {pos}: {spec!r}")
            name = match.group(1)
            pos = match.end()
            sub: TreeSpec | None = None
            rng: slice | None = None
            if pos < len(spec) and spec[pos] == "[":
                pos += 1
                sub = fields()
                if pos >= len(spec) or spec[pos] != "]":
                    raise ValueError(f"unclosed [ in tree: {spec!r}")
                pos += 1
            if pos < len(spec) and spec[pos] == "{":
                close = spec.find("}", pos)
                if close < 0:
                    raise ValueError(f"unclosed {{ in tree: {spec!r}")
                rng = _range(spec[pos + 1 : close])
                pos = close + 1
            out[name] = (sub, rng)
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            break
        return out

    tree = fields()
    if pos != len(spec):
        raise ValueError(f"unexpected {spec[pos]!r} in tree: {spec!r}")
    return tree


def _range(text: str) -> slice:
    if "," not in text:
        n = int(text)
        return slice(n, n + 1)
    low, high = text.split(",", 1)
    return slice(int(low) if low.strip() else None, int(high) if high.strip() else None)


def apply_tree(value: Json, tree: TreeSpec) -> Json:
    if isinstance(value, list):
        return [apply_tree(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Json] = {}
    if "_class" in value:
        out["_class"] = value["_class"]
    for name, (sub, rng) in tree.items():
        if name not in value:
            continue
        v = value[name]
        if rng is not None and isinstance(v, list):
            v = v[rng]
        out[name] = apply_tree(v, sub) if sub is not None else _leaf(v)
    return out


def _leaf(value: Json) -> Json:
    # A bean named without sub-fields comes back as its class only (python-jenkins counts on it).
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    if isinstance(value, list):
        return [_leaf(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Requests and replies, free of aiohttp so the core stays synchronous and lock-friendly


@dataclass(frozen=True)
class _Call:
    method: str
    segments: tuple[str, ...]
    query: MultiMapping[str]
    form: MultiMapping[str]
    body: bytes
    content_type: str
    base: str
    user: str | None

    def param(self, name: str) -> str | None:
        """A request parameter, query string first (like a servlet's getParameter)."""
        value = self.query.get(name)
        return value if value is not None else self.form.get(name)


@dataclass
class _Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _Fail(Exception):
    """An error answer, raised from deep inside a route."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Server Error",
    503: "Service Unavailable",
}


def _error_page(status: int, message: str) -> bytes:
    reason = _REASONS.get(status, "Error")
    text = html.escape(message)
    return (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {text}</title>\n</head>\n<body><h2>HTTP ERROR {status} {text}</h2>\n"
        f"<table>\n<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{text}</td></tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n"
        f"</table>\n<!-- {reason} -->\n</body>\n</html>\n"
    ).encode()


def _json(data: Json, call: _Call | None = None) -> _Reply:
    if call is not None:
        tree = call.query.get("tree")
        if tree:
            try:
                data = apply_tree(data, parse_tree(tree))
            except ValueError as exc:
                raise _Fail(400, f"Failed to parse tree: {exc}") from exc
    return _Reply(body=json.dumps(data).encode(), content_type="application/json;charset=utf-8")


def _page(title: str) -> _Reply:
    text = html.escape(title)
    return _Reply(
        body=(
            f"<!DOCTYPE html><html><head><title>{text} [Jenkins]</title></head><body>{text}</body></html>"
        ).encode()
    )


def _not_found() -> _Fail:
    return _Fail(404, "Not Found")


def _redirect(location: str) -> _Reply:
    return _Reply(status=302, headers={"Location": location})


# ---------------------------------------------------------------------------------------------
# The emulator


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
        self.clock = Clock(time_scale)
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
            return _json(self._user_json(call), call)
        if head == "user" and len(rest) == 3 and rest[1:] == ("api", "json") and rest[0] == call.user:
            return _json(self._user_json(call), call)
        if head == "whoAmI" and rest == ("api", "json"):
            return _json(self._whoami_json(call), call)
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
            return _json(self._folder_json(folder, call, now), call)
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
            return _json(self._job_json(job, call, now), call)
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
            return _json(self._build_json(build, call.base, now), call)
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
            items = [self._queue_item_json(q, call.base, now) for q in self._waiting()]
            return _json({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}, call)
        if len(rest) >= 2 and rest[0] == "item" and rest[1].isdigit():
            item = self._visible_item(int(rest[1]), now)
            if item is None:
                raise _not_found()
            if rest[2:] == ("api", "json"):
                return _json(self._queue_item_json(item, call.base, now), call)
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
            node = self._node_json(call.base, now)
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
            return _json(self._node_json(call.base, now), call)
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
                start = self._start_time(item)
                if start is not None and start <= now:
                    self._start(item, start)
                    started = True
                    break

    def _start_time(self, item: _QueueItem) -> float | None:
        start = item.ready_at
        job = item.job
        if not job.config.concurrent and job.builds:
            last = job.builds[max(job.builds)]
            end = last.end
            if end == _INFINITY:
                return None
            start = max(start, end)
        return start

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
        found = self._permalink(job, ref, now)
        if found is None:
            raise _not_found()
        return found

    @staticmethod
    def _permalink(job: _Job, ref: str, now: float) -> _Build | None:
        def ok(build: _Build) -> bool:
            result = build.result(now)
            if ref == "lastBuild":
                return True
            if result is None:
                return False
            return {
                "lastCompletedBuild": True,
                "lastStableBuild": result == "SUCCESS",
                "lastSuccessfulBuild": result in ("SUCCESS", "UNSTABLE"),
                "lastFailedBuild": result == "FAILURE",
                "lastUnstableBuild": result == "UNSTABLE",
                "lastUnsuccessfulBuild": result != "SUCCESS",
            }[ref]

        for number in sorted(job.builds, reverse=True):
            if ok(job.builds[number]):
                return job.builds[number]
        return None

    def _estimated_duration(self, job: _Job, now: float) -> int:
        # Jenkins' Job.getEstimatedDurationCandidates: the last successful build, then up to 6 recent
        # completed ones (good ones first, failures as fallback), at most 3 in all.
        last_ok = self._permalink(job, "lastSuccessfulBuild", now)
        candidates = [] if last_ok is None else [last_ok]
        fallback = []
        for i, number in enumerate(sorted(job.builds, reverse=True)):
            if i >= 6 or len(candidates) >= 3:
                break
            build = job.builds[number]
            result = build.result(now)
            if result is None or build is last_ok:
                continue
            if result in ("SUCCESS", "UNSTABLE"):
                candidates.append(build)
            elif result == "FAILURE":
                fallback.append(build)
        while len(candidates) < 3 and fallback:
            candidates.append(fallback.pop(0))
        total = sum(b.duration_ms(now) for b in candidates)
        return -1 if not candidates or total == 0 else round(total / len(candidates))

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

    # -- JSON shapes ----------------------------------------------------------------------------

    def _user_json(self, call: _Call) -> dict[str, Json]:
        user = call.user or "anonymous"
        return {
            "_class": "hudson.model.User",
            "absoluteUrl": f"{call.base}user/{quote(user, safe='')}",
            "description": None,
            "fullName": user,
            "id": user,
            "property": [],
        }

    def _whoami_json(self, call: _Call) -> dict[str, Json]:
        user = call.user
        return {
            "_class": "hudson.security.WhoAmI",
            "anonymous": user is None,
            "authenticated": user is not None,
            "authorities": ["authenticated"] if user is not None else ["anonymous"],
            "details": None,
            "name": user or "anonymous",
            "toString": f"Username: {user or 'anonymous'}",
        }

    def _running(self, now: float) -> list[_Build]:
        return [
            item.build
            for item in sorted(self._queue.values(), key=lambda q: q.id)
            if item.build is not None and item.build.building(now)
        ]

    def _node_json(self, base: str, now: float) -> dict[str, Json]:
        """The built-in node. It has as many executors as builds run (at least two), because the
        emulator never makes a build wait for an executor (scripted queue waits stand for that)."""
        running = [self._build_ref(b, base) for b in self._running(now)]
        slots: list[dict[str, Json] | None] = [*running, *([None] * max(0, 2 - len(running)))]
        executors = [
            {"currentExecutable": ref, "idle": ref is None, "likelyStuck": False, "number": i, "progress": -1}
            for i, ref in enumerate(slots)
        ]
        return {
            "_class": "hudson.model.Hudson$MasterComputer",
            "actions": [],
            "assignedLabels": [{"name": "built-in"}],
            "description": "the Jenkins controller's built-in node",
            "displayName": "Built-In Node",
            "executors": executors,
            "icon": "symbol-computer",
            "iconClassName": "symbol-computer",
            "idle": not running,
            "jnlpAgent": False,
            "launchSupported": True,
            "manualLaunchAllowed": True,
            "monitorData": {},
            "numExecutors": len(executors),
            "offline": False,
            "offlineCause": None,
            "offlineCauseReason": "",
            "oneOffExecutors": [],
            "temporarilyOffline": False,
        }

    def _entry(self, item: _Item, base: str, now: float, deep: bool) -> dict[str, Json]:
        """An item as it appears in a folder's ``jobs`` list."""
        out: dict[str, Json] = {"_class": item.config.item_class, "name": item.name, "url": base + item.path}
        if isinstance(item, _Job):
            out["color"] = self._color(item, now)
        if deep:
            out["fullName"] = item.full_name
            out["displayName"] = item.name
            if isinstance(item, _Folder):
                out["jobs"] = [self._entry(c, base, now, deep) for c in item.children.values()]
        return out

    def _folder_json(self, folder: _Folder, call: _Call, now: float) -> dict[str, Json]:
        deep = bool(call.query.get("tree"))
        base = call.base
        jobs = [self._entry(c, base, now, deep) for c in folder.children.values()]
        view = {"_class": "hudson.model.AllView", "name": "all", "url": base + folder.path}
        if folder is self._root:
            return {
                "_class": "hudson.model.Hudson",
                "assignedLabels": [{"name": "built-in"}],
                "mode": "NORMAL",
                "nodeDescription": "the Jenkins controller's built-in node",
                "nodeName": "",
                "numExecutors": 2,
                "description": None,
                "jobs": jobs,
                "overallLoad": {},
                "primaryView": view,
                "quietDownReason": None,
                "quietingDown": False,
                "slaveAgentPort": -1,
                "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
                "url": base,
                "useCrumbs": True,
                "useSecurity": True,
                "views": [view],
            }
        view["name"] = "All"
        return {
            "_class": folder.config.item_class,
            "actions": [{}],
            "description": folder.config.description,
            "displayName": folder.name,
            "displayNameOrNull": None,
            "fullDisplayName": folder.full_display_name,
            "fullName": folder.full_name,
            "name": folder.name,
            "url": base + folder.path,
            "healthReport": [],
            "jobs": jobs,
            "primaryView": view,
            "views": [view],
        }

    @staticmethod
    def _color(job: _Job, now: float) -> str:
        if job.config.disabled:
            return "disabled"
        if not job.builds:
            return "notbuilt"
        last = job.builds[max(job.builds)]
        completed = [b for b in job.builds.values() if not b.building(now)]
        base = "notbuilt"
        if completed:
            result = max(completed, key=lambda b: b.number).result(now)
            base = {"SUCCESS": "blue", "UNSTABLE": "yellow", "FAILURE": "red", "ABORTED": "aborted"}.get(
                result or "", "notbuilt"
            )
        return base + "_anime" if last.building(now) else base

    def _build_ref(self, build: _Build | None, base: str) -> dict[str, Json] | None:
        if build is None:
            return None
        return {"_class": build.job.config.build_class, "number": build.number, "url": build.url(base)}

    def _job_json(self, job: _Job, call: _Call, now: float) -> dict[str, Json]:
        base = call.base
        numbers = sorted(job.builds, reverse=True)
        waiting = [q for q in self._waiting() if q.job is job]
        params_property = []
        if job.config.params:
            params_property = [
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": [p.to_json() for p in job.config.params],
                }
            ]
        links = {name: self._build_ref(self._permalink(job, name, now), base) for name in PERMALINKS}
        # allBuilds is only exported on request (python-jenkins asks for it past 100 builds)
        extra = (
            {"allBuilds": [self._build_ref(job.builds[n], base) for n in numbers]}
            if call.query.get("tree")
            else {}
        )
        return {
            "_class": job.config.item_class,
            "actions": [*params_property, {}, {"_class": "hudson.model.ViewJob$PropertyList"}],
            "description": job.config.description,
            "displayName": job.name,
            "displayNameOrNull": None,
            "fullDisplayName": job.full_display_name,
            "fullName": job.full_name,
            "name": job.name,
            "url": base + job.path,
            "buildable": not job.config.disabled,
            "builds": [self._build_ref(job.builds[n], base) for n in numbers[:100]],
            "color": self._color(job, now),
            "firstBuild": self._build_ref(job.builds[numbers[-1]], base) if numbers else None,
            "healthReport": [],
            "inQueue": bool(waiting),
            "keepDependencies": False,
            **links,
            "nextBuildNumber": job.next_build_number,
            "property": params_property,
            "queueItem": self._queue_item_json(waiting[0], base, now) if waiting else None,
            "concurrentBuild": job.config.concurrent,
            "disabled": job.config.disabled,
            "downstreamProjects": [],
            "labelExpression": None,
            "scm": {"_class": "hudson.scm.NullSCM"},
            "upstreamProjects": [],
            **extra,
        }

    @staticmethod
    def _actions(params: Sequence[ParamValue], user: str) -> list[dict[str, Json]]:
        actions: list[dict[str, Json]] = []
        if params:
            actions.append(
                {"_class": "hudson.model.ParametersAction", "parameters": [p.to_json() for p in params]}
            )
        actions.append(
            {
                "_class": "hudson.model.CauseAction",
                "causes": [
                    {
                        "_class": "hudson.model.Cause$UserIdCause",
                        "shortDescription": f"Started by user {user}",
                        "userId": user,
                        "userName": user,
                    }
                ],
            }
        )
        return actions

    def _queue_item_json(self, item: _QueueItem, base: str, now: float) -> dict[str, Json]:
        job = item.job
        out: dict[str, Json] = {
            "actions": self._actions(item.params, item.user),
            "blocked": False,
            "buildable": False,
            "id": item.id,
            "inQueueSince": round(item.enqueued_at * 1000),
            "params": "".join(f"\n{p.name}={'****' if p.secret else p.text}" for p in item.params),
            "stuck": False,
            "task": {
                "_class": job.config.item_class,
                "name": job.name,
                "url": base + job.path,
                "color": self._color(job, now),
            },
            "url": f"queue/item/{item.id}/",
            "why": None,
        }
        if item.build is not None or item.cancelled_at is not None:
            out["_class"] = "hudson.model.Queue$LeftItem"
            out["cancelled"] = item.cancelled_at is not None
            out["executable"] = self._build_ref(item.build, base)
            return {"_class": out.pop("_class"), **out}
        start = self._start_time(item)
        blocker = job.builds[max(job.builds)] if job.builds and not job.config.concurrent else None
        if blocker is not None and blocker.building(now) and (start is None or start > item.ready_at):
            eta = "" if blocker.end == _INFINITY else f" (ETA: {_seconds(blocker.end - now)})"
            out.update(blocked=True, why=f"Build #{blocker.number} is already in progress{eta}")
            return {"_class": "hudson.model.Queue$BlockedItem", **out}
        out.update(
            buildable=True,
            buildableStartMilliseconds=round(item.enqueued_at * 1000),
            pending=False,
            why="Waiting for next available executor",
        )
        return {"_class": "hudson.model.Queue$BuildableItem", **out}

    def _build_json(self, build: _Build, base: str, now: float) -> dict[str, Json]:
        job = build.job
        building = build.building(now)
        previous = max((n for n in job.builds if n < build.number), default=None)
        following = min((n for n in job.builds if n > build.number), default=None)
        out: dict[str, Json] = {
            "_class": job.config.build_class,
            "actions": [
                *self._actions(build.params, build.user),
                {},
                {"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"},
            ],
            "artifacts": [],
            "building": building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": build.duration_ms(now),
            "estimatedDuration": self._estimated_duration(job, now),
            "executor": {"_class": "hudson.model.Executor"} if building else None,
            "fullDisplayName": f"{job.full_display_name} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result(now),
            "timestamp": round(build.started_at * 1000),
            "url": build.url(base),
            "builtOn": "",
            "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None},
            "culprits": [],
            "nextBuild": self._build_ref(job.builds.get(following) if following else None, base),
            "previousBuild": self._build_ref(job.builds.get(previous) if previous else None, base),
        }
        if job.config.item_class == PIPELINE_CLASS:
            out["inProgress"] = building
            out["changeSets"] = []
            del out["changeSet"], out["builtOn"]
        return out


def _submitted_form(raw: str | None) -> dict[str, str]:
    """The parameters of a ``build`` form post (``json={"parameter": [{"name", "value"}]}``)."""
    if raw is None:
        raise _Fail(400, "Nothing is submitted")
    try:
        form = json.loads(raw)
        entries = form.get("parameter", [])
        if isinstance(entries, dict):
            entries = [entries]
        return {str(e["name"]): _java_text(e.get("value", "")) for e in entries}
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise _Fail(400, f"This page expects a form submission: {exc}") from exc


def _java_text(value: Json) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _seconds(value: float) -> str:
    return f"{value:.1f} sec" if value < 60 else f"{value / 60:.0f} min"


def _parse_delay(raw: str | None) -> float:
    """Jenkins' ``delay`` parameter (``10``, ``10sec``, ``500ms``, ``2min``)."""
    if not raw:
        return 0.0
    match = re.fullmatch(r"\s*(\d+)\s*(ms|sec|secs|s|min|mins|m)?\s*", raw)
    if match is None:
        raise _Fail(400, f"Invalid delay: {raw}")
    number = float(match.group(1))
    unit = match.group(2) or "sec"
    return number / 1000 if unit == "ms" else number * 60 if unit.startswith("m") else number


# ---------------------------------------------------------------------------------------------
# HTTP


JENKINS_EMULATOR = web.AppKey("jenkins_emulator", JenkinsEmulator)
"""Where the app keeps its :class:`JenkinsEmulator`."""

_Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


def emulator_of(app: web.Application) -> JenkinsEmulator:
    """The emulator behind an app made by :func:`create_jenkins_app`."""
    return app[JENKINS_EMULATOR]


def _to_response(reply: _Reply) -> web.Response:
    headers = CIMultiDict(reply.headers)
    if reply.status not in (204, 302) or reply.body:
        headers["Content-Type"] = reply.content_type
    return web.Response(status=reply.status, body=reply.body or None, headers=headers)


def _request_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/"


@web.middleware
async def _faults(request: web.Request, handler: _Handler) -> web.StreamResponse:
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
    return _to_response(_Reply(status=fault.status, body=_error_page(fault.status, message)))


@web.middleware
async def _security(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    emulator = request.app[JENKINS_EMULATOR]
    try:
        user, with_token = emulator.authenticate(request.headers.get("Authorization"))
    except _Fail as fail:
        return _to_response(
            _Reply(status=fail.status, body=_error_page(fail.status, fail.message), headers=fail.headers)
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
            return _to_response(_Reply(status=403, body=_error_page(403, message)))
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
        return _to_response(_Reply(status=403, body=body, headers=headers))
    return await handler(request)


async def _jenkins_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/_sandbox/"):
        return
    emulator = request.app[JENKINS_EMULATOR]
    response.headers["X-Jenkins"] = emulator.version
    response.headers["X-Hudson"] = "1.395"
    response.headers["X-Jenkins-Session"] = emulator.session
    response.headers["X-Content-Type-Options"] = "nosniff"


async def _jenkins(request: web.Request) -> web.StreamResponse:
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
    call = _Call(
        method=request.method,
        segments=segments,
        query=request.query,
        form=form,
        body=body,
        content_type=request.content_type,
        base=emulator.base_url(_request_base(request)),
        # the security middleware already let these credentials through
        user=emulator.authenticate(request.headers.get("Authorization"))[0],
    )
    return _to_response(emulator.handle(call))


# -- the control API ---------------------------------------------------------------------------


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


async def _control_script(request: web.Request) -> web.Response:
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


async def _control_create_job(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    text = await request.text() if request.can_read_body else ""
    try:
        emulator.create_job(request.match_info["job"], text or None)
    except ValueError as exc:
        return _control_error(str(exc), 409 if "exists" in str(exc) else 400)
    return web.json_response({"job": request.match_info["job"]}, status=201)


async def _control_faults(request: web.Request) -> web.Response:
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


async def _control_builds(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    base = emulator.base_url(_request_base(request))
    records = emulator.builds(request.query.get("job"), base)
    return web.json_response({"builds": [asdict(r) for r in records]})


async def _control_queue(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    return web.json_response({"items": [asdict(r) for r in emulator.queue_records()]})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[JENKINS_EMULATOR].reset()
    return web.json_response({"reset": True})


async def _control_clock(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    return web.json_response({"now": emulator.clock.now(), "time_scale": emulator.clock.time_scale})


async def _control_advance(request: web.Request) -> web.Response:
    emulator = request.app[JENKINS_EMULATOR]
    data = await _json_body(request)
    try:
        now = emulator.advance(float(data.get("seconds", 0)))
    except (TypeError, ValueError) as exc:
        return _control_error(str(exc))
    return web.json_response({"now": now, "time_scale": emulator.clock.time_scale})


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
