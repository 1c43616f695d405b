"""Jenkins' JSON shapes for the emulator's ``api/json`` answers: jobs, folders, builds, queue items, nodes.

Why it exists: python-jenkins and the bot read these answers field by field, so their shapes copy
Jenkins' (``_class`` names, permalinks, ``why`` of a waiting item, ``estimatedDuration``). They are
pure functions of the emulator's model and the emulated now, kept apart from the routes that serve them.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from bot.sandbox.jenkins.calls import Call
from bot.sandbox.jenkins.config import PIPELINE_CLASS, Json, ParamValue
from bot.sandbox.jenkins.model import PERMALINKS, Build, Folder, Item, Job, QueueItem, permalink, start_time
from bot.sandbox.jenkins.steering import INFINITY


def user_json(call: Call) -> dict[str, Json]:
    user = call.user or "anonymous"
    return {
        "_class": "hudson.model.User",
        "absoluteUrl": f"{call.base}user/{quote(user, safe='')}",
        "description": None,
        "fullName": user,
        "id": user,
        "property": [],
    }


def whoami_json(call: Call) -> dict[str, Json]:
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


def node_json(running_builds: Sequence[Build], base: str) -> dict[str, Json]:
    """The built-in node. It has as many executors as builds run (at least two), because the
    emulator never makes a build wait for an executor (scripted queue waits stand for that)."""
    running = [build_ref(b, base) for b in running_builds]
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


def entry(item: Item, base: str, now: float, deep: bool) -> dict[str, Json]:
    """An item as it appears in a folder's ``jobs`` list."""
    out: dict[str, Json] = {"_class": item.config.item_class, "name": item.name, "url": base + item.path}
    if isinstance(item, Job):
        out["color"] = color(item, now)
    if deep:
        out["fullName"] = item.full_name
        out["displayName"] = item.name
        if isinstance(item, Folder):
            out["jobs"] = [entry(c, base, now, deep) for c in item.children.values()]
    return out


def folder_json(folder: Folder, call: Call, now: float, *, is_root: bool) -> dict[str, Json]:
    deep = bool(call.query.get("tree"))
    base = call.base
    jobs = [entry(c, base, now, deep) for c in folder.children.values()]
    view = {"_class": "hudson.model.AllView", "name": "all", "url": base + folder.path}
    if is_root:
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


def color(job: Job, now: float) -> str:
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


def build_ref(build: Build | None, base: str) -> dict[str, Json] | None:
    if build is None:
        return None
    return {"_class": build.job.config.build_class, "number": build.number, "url": build.url(base)}


def job_json(job: Job, call: Call, now: float, waiting: Sequence[QueueItem]) -> dict[str, Json]:
    base = call.base
    numbers = sorted(job.builds, reverse=True)
    params_property = []
    if job.config.params:
        params_property = [
            {
                "_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": [p.to_json() for p in job.config.params],
            }
        ]
    links = {name: build_ref(permalink(job, name, now), base) for name in PERMALINKS}
    # allBuilds is only exported on request (python-jenkins asks for it past 100 builds)
    extra = {"allBuilds": [build_ref(job.builds[n], base) for n in numbers]} if call.query.get("tree") else {}
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
        "builds": [build_ref(job.builds[n], base) for n in numbers[:100]],
        "color": color(job, now),
        "firstBuild": build_ref(job.builds[numbers[-1]], base) if numbers else None,
        "healthReport": [],
        "inQueue": bool(waiting),
        "keepDependencies": False,
        **links,
        "nextBuildNumber": job.next_build_number,
        "property": params_property,
        "queueItem": queue_item_json(waiting[0], base, now) if waiting else None,
        "concurrentBuild": job.config.concurrent,
        "disabled": job.config.disabled,
        "downstreamProjects": [],
        "labelExpression": None,
        "scm": {"_class": "hudson.scm.NullSCM"},
        "upstreamProjects": [],
        **extra,
    }


def actions(params: Sequence[ParamValue], user: str) -> list[dict[str, Json]]:
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


def queue_item_json(item: QueueItem, base: str, now: float) -> dict[str, Json]:
    job = item.job
    out: dict[str, Json] = {
        "actions": actions(item.params, item.user),
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
            "color": color(job, now),
        },
        "url": f"queue/item/{item.id}/",
        "why": None,
    }
    if item.build is not None or item.cancelled_at is not None:
        out["_class"] = "hudson.model.Queue$LeftItem"
        out["cancelled"] = item.cancelled_at is not None
        out["executable"] = build_ref(item.build, base)
        return {"_class": out.pop("_class"), **out}
    start = start_time(item)
    blocker = job.builds[max(job.builds)] if job.builds and not job.config.concurrent else None
    if blocker is not None and blocker.building(now) and (start is None or start > item.ready_at):
        eta = "" if blocker.end == INFINITY else f" (ETA: {_seconds(blocker.end - now)})"
        out.update(blocked=True, why=f"Build #{blocker.number} is already in progress{eta}")
        return {"_class": "hudson.model.Queue$BlockedItem", **out}
    out.update(
        buildable=True,
        buildableStartMilliseconds=round(item.enqueued_at * 1000),
        pending=False,
        why="Waiting for next available executor",
    )
    return {"_class": "hudson.model.Queue$BuildableItem", **out}


def build_json(build: Build, base: str, now: float) -> dict[str, Json]:
    job = build.job
    building = build.building(now)
    previous = max((n for n in job.builds if n < build.number), default=None)
    following = min((n for n in job.builds if n > build.number), default=None)
    out: dict[str, Json] = {
        "_class": job.config.build_class,
        "actions": [
            *actions(build.params, build.user),
            {},
            {"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"},
        ],
        "artifacts": [],
        "building": building,
        "description": None,
        "displayName": f"#{build.number}",
        "duration": build.duration_ms(now),
        "estimatedDuration": estimated_duration(job, now),
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
        "nextBuild": build_ref(job.builds.get(following) if following else None, base),
        "previousBuild": build_ref(job.builds.get(previous) if previous else None, base),
    }
    if job.config.item_class == PIPELINE_CLASS:
        out["inProgress"] = building
        out["changeSets"] = []
        del out["changeSet"], out["builtOn"]
    return out


def estimated_duration(job: Job, now: float) -> int:
    # Jenkins' Job.getEstimatedDurationCandidates: the last successful build, then up to 6 recent
    # completed ones (good ones first, failures as fallback), at most 3 in all.
    last_ok = permalink(job, "lastSuccessfulBuild", now)
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


def _seconds(value: float) -> str:
    return f"{value:.1f} sec" if value < 60 else f"{value / 60:.0f} min"
