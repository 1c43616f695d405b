"""An emulator of the Kubernetes API server, good enough for the kubernetes client and kubectl.

It answers the real URLs (discovery, OpenAPI v3, ``/api/v1`` and ``/apis/apps/v1`` for Namespaces,
Pods, Services, Events, Deployments and ReplicaSets, with ``/scale`` and ``/status``, list, watch
and the four patch types; ServiceAccounts, ConfigMaps, Secrets and ``rbac.authorization.k8s.io``
Roles and RoleBindings as stored objects, ``k8s_config_kinds``) in JSON only, and runs a rollout
controller on a scaled clock (``k8s_rollout``). A control API under ``/_sandbox/`` lets tests steer it:

- ``POST /_sandbox/bad-images`` ``{"patterns": ["*:broken"]}``: images (fnmatch) whose pods never become ready
- ``POST /_sandbox/time-scale`` ``{"time_scale": 0.01}``: real seconds per emulated second
- ``POST /_sandbox/faults`` ``{"method": "GET", "path": "regex", "status": 500, "count": 1, "delay": 0}``:
  the next ``count`` matching requests answer ``status`` (``null``: none) after waiting ``delay`` real
  seconds; ``"retry_after": N`` adds that header (429 has 1 by default); ``DELETE`` clears them
- ``GET /_sandbox/calls``: the API requests received (method, path, query, content type, status)
- ``POST /_sandbox/reset``: back to a fresh cluster

Protobuf request bodies (what kubectl's generator commands such as ``kubectl create deployment``
send) are refused with ``415``: the emulator speaks JSON only. Responses are always JSON, whatever
``Accept`` prefers; client-go decodes by the response's content type.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml
from aiohttp import web

from bot.sandbox import k8s_discovery, k8s_openapi, k8s_tables
from bot.sandbox.k8s_admission import Admission, check_name_matches
from bot.sandbox.k8s_api import (
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    RESOURCES,
    ApiError,
    JsonDict,
    ResourceType,
    bad_request,
    conflict,
    gone,
    lookup,
    method_not_allowed,
    namespace_not_found,
    unsupported_media_type,
)
from bot.sandbox.k8s_patch import PatchError, json_patch, merge_patch, strategic_merge
from bot.sandbox.k8s_rollout import RolloutController, ScaledClock
from bot.sandbox.k8s_select import (
    FieldSelector,
    Selector,
    fields_match,
    format_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from bot.sandbox.k8s_store import Store

log = logging.getLogger(__name__)

PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_ONLY_MESSAGE = (
    "the body of the request was in an unknown format - this emulator speaks JSON only "
    f"({PROTOBUF} is not supported); use -f manifests or --output json"
)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_TICK_SECONDS = 0.05
_MAX_CALLS = 10_000
_MAX_WATCH_SECONDS = 1800.0


@dataclass
class Fault:
    """What the next ``remaining`` requests matching ``method`` and ``path`` (a regex) suffer."""

    path: re.Pattern[str]
    method: str = "*"
    status: int | None = 500
    delay: float = 0.0
    remaining: int = 1
    retry_after: int | None = None
    """``Retry-After`` seconds to send (429 sends 1 by default; clients retry such answers themselves)."""

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path.search(path) is not None


@dataclass(frozen=True)
class Call:
    """One API request the emulator received."""

    method: str
    path: str
    query: str
    content_type: str
    status: int


@dataclass
class KubernetesSandbox:
    """The emulator's whole state.

    Not thread-safe: touch it only from the server's event loop (from a test thread, go through the
    HTTP control API, or ``ServerThread.call``).
    """

    initial_time_scale: float = 1.0
    pod_startup_seconds: float = 0.25
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shutdown = asyncio.Event()  # set when the server stops: delayed answers and watches end
        self.clock = ScaledClock(self.initial_time_scale)
        self.store = Store(time.time)
        self.admission = Admission()
        self.controller = RolloutController(
            self.store, self.clock, self.admission, pod_startup_seconds=self.pod_startup_seconds
        )
        self._create_namespaces()

    def _create_namespaces(self) -> None:
        for name in self.namespaces:
            if self.store.find(NAMESPACES, "", name) is None:
                self.store.create(
                    NAMESPACES, self.admission.for_create(NAMESPACES, {"metadata": {"name": name}})
                )

    def reset(self) -> None:
        """A fresh cluster: no objects but the namespaces, no faults, no calls, the initial time scale."""
        self.store.clear()
        self.admission.reset()
        self.controller.reset()
        self.faults.clear()
        self.calls.clear()
        self.clock.set_time_scale(self.initial_time_scale)
        self._create_namespaces()

    def set_bad_images(self, patterns: Iterable[str]) -> None:
        self.controller.bad_images = [str(p) for p in patterns]

    def set_time_scale(self, time_scale: float) -> None:
        self.controller.reconcile()  # what happened so far happened at the old pace
        self.clock.set_time_scale(time_scale)

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None


KUBERNETES_SANDBOX = web.AppKey("kubernetes_sandbox", KubernetesSandbox)


def kubernetes_sandbox(app: web.Application) -> KubernetesSandbox:
    """The state behind an app made by ``create_kubernetes_app``."""
    return app[KUBERNETES_SANDBOX]


def _status_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error.status(), status=error.code, headers=headers)


def _success(rt: ResourceType, obj: JsonDict) -> JsonDict:
    details: JsonDict = {"name": obj["metadata"]["name"]}
    if rt.group:
        details["group"] = rt.group
    details |= {"kind": rt.plural, "uid": obj["metadata"]["uid"]}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


# What an API server says with each status code, so an injected fault reads like the real thing.
_FAULT_ANSWERS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason (sandbox fault injected)"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: sandbox fault injected"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "Operation cannot be fulfilled: sandbox fault injected"),
    410: ("Expired", "the resource version is too old (sandbox fault injected)"),
    422: ("Invalid", "the request is invalid (sandbox fault injected)"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    500: ("InternalError", "Internal error occurred: sandbox fault injected"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


def _fault_error(status: int, retry_after: int | None) -> ApiError:
    reason, message = _FAULT_ANSWERS.get(status, ("InternalError", f"sandbox fault injected (HTTP {status})"))
    details: JsonDict | None = {"causes": [{"message": "sandbox fault injected"}]} if status == 500 else None
    if retry_after is not None:
        details = {**(details or {}), "retryAfterSeconds": retry_after}
    return ApiError(status, reason, message, details)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    status = 500
    try:
        response = await _serve(request, handler, sandbox)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if len(sandbox.calls) >= _MAX_CALLS:
            del sandbox.calls[: _MAX_CALLS // 10]
        sandbox.calls.append(
            Call(
                request.method,
                request.path,
                request.query_string,
                request.headers.get("Content-Type", ""),
                status,
            )
        )


async def _serve(request: web.Request, handler: Handler, sandbox: KubernetesSandbox) -> web.StreamResponse:
    fault = sandbox.take_fault(request.method, request.path)
    if fault is not None:
        if fault.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sandbox.shutdown.wait(), fault.delay)
        if fault.status is not None:
            retry_after = (
                fault.retry_after if fault.retry_after is not None else (1 if fault.status == 429 else None)
            )
            headers = None if retry_after is None else {"Retry-After": str(retry_after)}
            return _status_response(_fault_error(fault.status, retry_after), headers)
    if request.content_type == PROTOBUF:
        return _status_response(unsupported_media_type(JSON_ONLY_MESSAGE))
    try:
        sandbox.controller.reconcile()
        return await handler(request)
    except ApiError as exc:
        return _status_response(exc)
    except web.HTTPException:
        raise
    except Exception:  # a bug in the emulator must not look like a dropped connection
        log.exception("kubernetes emulator failed on %s %s", request.method, request.path_qs)
        return _status_response(ApiError(500, "InternalError", "Internal error occurred: emulator failure"))


# discovery and OpenAPI


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _version(request: web.Request) -> web.Response:
    return web.json_response(k8s_discovery.version())


async def _api(request: web.Request) -> web.Response:
    return web.json_response(k8s_discovery.api_versions(request.host))


async def _apis(request: web.Request) -> web.Response:
    return web.json_response(k8s_discovery.api_group_list())


def _not_found_page() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


async def _api_group(request: web.Request) -> web.Response:
    group = k8s_discovery.api_group(request.match_info["group"])
    if group is None:
        raise _not_found_page()
    return web.json_response(group)


async def _resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group")
    gv = f"{group}/{request.match_info['version']}" if group else request.match_info["version"]
    listing = k8s_discovery.api_resource_list(gv)
    if listing is None:
        raise _not_found_page()
    return web.json_response(listing)


async def _openapi_index(request: web.Request) -> web.Response:
    return web.json_response(k8s_openapi.index())


async def _openapi_document(request: web.Request) -> web.Response:
    body = k8s_openapi.document_for_path(request.match_info["path"])
    if body is None:
        raise _not_found_page()
    return web.Response(body=body, content_type="application/json")


async def _openapi_v2(request: web.Request) -> web.Response:
    raise _not_found_page()


# the resource API


@dataclass(frozen=True)
class Target:
    """What a resource URL points at."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def ns(self) -> str:
        return self.namespace or ""


def _target(group_version: str, tail: str) -> Target:
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        candidate = lookup(group_version, parts[2])
        if candidate is not None and candidate.namespaced:
            namespace, parts = parts[1], parts[2:]
    rt = lookup(group_version, parts[0]) if parts else None
    if rt is None or len(parts) > 3:
        raise _not_found_page()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and rt.subresource(sub) is None:
        raise _not_found_page()
    if rt.namespaced and namespace is None and name is not None:
        raise _not_found_page()
    return Target(rt, namespace, name, sub)


async def _resource(request: web.Request) -> web.StreamResponse:
    group = request.match_info.get("group")
    gv = f"{group}/{request.match_info['version']}" if group else "v1"
    target = _target(gv, request.match_info["tail"])
    api = ResourceApi(request.app[KUBERNETES_SANDBOX], request, target)
    method = request.method
    if target.name is None:
        if method == "GET":
            if request.query.get("watch") in ("true", "1", "True"):
                return await api.watch()
            return api.list()
        if method == "POST":
            return await api.create()
        if method == "DELETE":
            return await api.delete_collection()
    elif target.subresource == "scale":
        if method == "GET":
            return web.json_response(api.scale_view(api.current()))
        if method in ("PUT", "PATCH"):
            return await api.write_scale()
    else:
        if method == "GET":
            return api.get()
        if method == "PUT":
            return await api.replace()
        if method == "PATCH":
            return await api.patch()
        if method == "DELETE" and target.subresource is None:
            return await api.delete()
    raise method_not_allowed()


def _dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _list_item(obj: JsonDict) -> JsonDict:
    """List items carry no kind/apiVersion on a real server."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class ResourceApi:
    """One request against one resource URL."""

    def __init__(self, sandbox: KubernetesSandbox, request: web.Request, target: Target):
        self.sandbox = sandbox
        self.store = sandbox.store
        self.request = request
        self.target = target
        self.rt = target.rt

    # reading

    def current(self) -> JsonDict:
        return self.store.get(self.rt, self.target.ns, self.target.name or "")

    def _selectors(self) -> tuple[Selector, FieldSelector]:
        query = self.request.query
        return parse_label_selector(query.get("labelSelector")), parse_field_selector(
            query.get("fieldSelector")
        )

    def get(self) -> web.Response:
        obj = self.current()
        if _wants_table(self.request) and self.target.subresource is None:
            return web.json_response(
                k8s_tables.table(self.rt, [obj], self.store.resource_version, self.request.query)
            )
        return web.json_response(obj)

    def list(self) -> web.Response:
        labels, fields = self._selectors()
        items = self.store.list(self.rt, self.target.namespace, labels, fields)
        version = str(self.store.resource_version)
        meta: JsonDict = {"resourceVersion": version}
        query = self.request.query
        start = 0
        if query.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(query["continue"]))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion"
                ) from exc
        limit = int(query.get("limit") or 0)
        if limit > 0 and len(items) > start + limit:
            token = json.dumps({"v": "meta.k8s.io/v1", "rv": version, "start": start + limit})
            meta |= {
                "continue": base64.b64encode(token.encode()).decode(),
                "remainingItemCount": len(items) - start - limit,
            }
            items = items[start : start + limit]
        else:
            items = items[start:]
        if _wants_table(self.request):
            table = k8s_tables.table(self.rt, items, self.store.resource_version, query)
            table["metadata"] = meta
            return web.json_response(table)
        return web.json_response(
            {
                "kind": f"{self.rt.kind}List",
                "apiVersion": self.rt.group_version,
                "metadata": meta,
                "items": [_list_item(i) for i in items],
            }
        )

    async def watch(self) -> web.StreamResponse:
        return await Watch(self.sandbox, self.request, self.target, *self._selectors()).run()

    # writing

    async def _body(self) -> Any:
        raw = await self.request.read()
        if self.request.content_type == "application/apply-patch+yaml":
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    async def _object_body(self) -> JsonDict:
        body = await self._body()
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if self.target.subresource != "scale":
            if api_version and api_version != self.rt.group_version:
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({self.rt.group_version})"
                )
            if kind and kind != self.rt.kind:
                raise bad_request(
                    f"the kind in the data ({kind}) does not match the expected kind ({self.rt.kind})"
                )
        return body

    def _require_namespace(self) -> None:
        if self.rt.namespaced and self.store.find(NAMESPACES, "", self.target.ns) is None:
            raise namespace_not_found(self.target.ns)

    def _create(self, body: JsonDict) -> web.Response:
        meta = body.setdefault("metadata", {})
        if self.rt.namespaced:
            if self.target.namespace is None:
                raise method_not_allowed()
            if meta.get("namespace") and meta["namespace"] != self.target.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = self.target.namespace
            self._require_namespace()
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))  # noqa: S311
            meta["name"] = f"{meta['generateName']}{suffix}"
        obj = self.sandbox.admission.for_create(self.rt, body)
        if _dry_run(self.request):
            if self.store.find(self.rt, self.target.ns, meta["name"]) is not None:
                raise ApiError(409, "AlreadyExists", f'{self.rt.qualified} "{meta["name"]}" already exists')
            obj["metadata"] |= {
                "uid": "00000000-0000-0000-0000-000000000000",
                "creationTimestamp": self.store.now(),
            }
            return self._answer(obj, body, status=201)
        return self._answer(self.store.create(self.rt, obj), body, status=201)

    def _answer(self, obj: JsonDict, written: JsonDict, status: int = 200) -> web.Response:
        """The stored object, with a ``Warning`` header per field the schema does not know."""
        response = web.json_response(obj, status=status)
        if self.target.subresource is None and self.request.query.get("fieldValidation") != "Ignore":
            for field in k8s_openapi.unknown_fields(self.rt, written):
                response.headers.add("Warning", f'299 - "unknown field \\"{field}\\""')
        return response

    async def create(self) -> web.Response:
        return self._create(await self._object_body())

    def _update(self, new: JsonDict, old: JsonDict) -> web.Response:
        check_name_matches(new, self.target.name or "", self.target.namespace)
        meta = new.setdefault("metadata", {})
        meta["name"] = self.target.name
        if self.target.namespace is not None:
            meta["namespace"] = self.target.namespace
        stored = self.sandbox.admission.for_update(self.rt, new, old, self.target.subresource)
        if _dry_run(self.request):
            if stored["metadata"].get("resourceVersion") not in (
                None,
                "",
                old["metadata"]["resourceVersion"],
            ):
                raise conflict(self.rt, self.target.name or "")
            return self._answer(stored, new)
        return self._answer(self.store.update(self.rt, stored), new)

    async def replace(self) -> web.Response:
        body = await self._object_body()
        return self._update(body, self.current())

    def _apply_patch(self, document: JsonDict, body: Any, subresource: str | None) -> JsonDict:
        content_type = self.request.content_type
        try:
            if content_type == "application/json-patch+json":
                result = json_patch(document, body)
            elif content_type == "application/merge-patch+json":
                result = merge_patch(document, body)
            elif content_type in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
                result = strategic_merge(document, body, k8s_openapi.patch_meta(self.rt, subresource))
            else:
                accepted = ", ".join(k8s_openapi.PATCH_TYPES)
                raise unsupported_media_type(
                    "the body of the request was in an unknown format - accepted media types include: "
                    f"{accepted} (got {content_type!r})"
                )
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "the patch did not produce a JSON object")
        return result

    async def patch(self) -> web.Response:
        body = await self._body()
        existing = self.store.find(self.rt, self.target.ns, self.target.name or "")
        if existing is None and self.request.content_type == "application/apply-patch+yaml":
            # server-side apply of an object that does not exist yet creates it
            if not isinstance(body, dict):
                raise bad_request("the apply configuration must be an object")
            body.setdefault("metadata", {})["name"] = self.target.name
            return self._create(body)
        old = self.current()
        patched = self._apply_patch(old, body, self.target.subresource)
        return self._update(patched, old)

    # scale

    def scale_view(self, obj: JsonDict) -> JsonDict:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": format_selector((obj.get("spec") or {}).get("selector")),
            },
        }

    async def write_scale(self) -> web.Response:
        old = self.current()
        if self.request.method == "PUT":
            scale = await self._object_body()
            check_name_matches(scale, self.target.name or "", self.target.namespace)
        else:
            scale = self._apply_patch(self.scale_view(old), await self._body(), "scale")
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{self.target.name}" is invalid: spec.replicas: '
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        version = (scale.get("metadata") or {}).get("resourceVersion")
        new["metadata"]["resourceVersion"] = version or old["metadata"]["resourceVersion"]
        stored = self.sandbox.admission.for_update(self.rt, new, old, None)
        if _dry_run(self.request):
            return web.json_response(self.scale_view(stored))
        return web.json_response(self.scale_view(self.store.update(self.rt, stored)))

    # deleting

    async def _delete_options(self) -> JsonDict:
        raw = await self.request.read()
        options: JsonDict = {}
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise bad_request(f"invalid DeleteOptions: {exc}") from exc
            if isinstance(parsed, dict):
                options = parsed
        if "propagationPolicy" in self.request.query:
            options["propagationPolicy"] = self.request.query["propagationPolicy"]
        return options

    def _delete_one(self, obj: JsonDict, options: JsonDict) -> JsonDict:
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise conflict(
                self.rt,
                meta["name"],
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise conflict(
                self.rt,
                meta["name"],
                "Precondition failed: the resourceVersion in the precondition does "
                "not match the resourceVersion of the object",
            )
        orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
        if orphan:
            self._orphan_dependents(obj)
        gone_obj = self.store.delete(self.rt, meta.get("namespace", ""), meta["name"])
        if self.rt is NAMESPACES:
            for rt in RESOURCES:
                if rt.namespaced:
                    for dependent in list(self.store.iter(rt, meta["name"])):
                        self.store.delete(rt, meta["name"], dependent["metadata"]["name"])
        return gone_obj

    def _orphan_dependents(self, owner: JsonDict) -> None:
        uid = owner["metadata"]["uid"]
        dependents = {DEPLOYMENTS: REPLICASETS, REPLICASETS: PODS}.get(self.rt)
        if dependents is None:
            return
        for obj in list(self.store.iter(dependents, owner["metadata"].get("namespace"))):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self.store.update(dependents, new, check_version=False)

    def _deleted_answer(self, obj: JsonDict) -> JsonDict:
        if self.rt in (NAMESPACES, PODS):
            answer = copy.deepcopy(obj)
            answer["metadata"]["deletionTimestamp"] = self.store.now()
            if self.rt is NAMESPACES:
                answer["status"] = {"phase": "Terminating"}
            return answer
        return _success(self.rt, obj)

    async def delete(self) -> web.Response:
        options = await self._delete_options()
        obj = self.current()
        if _dry_run(self.request) or "All" in (options.get("dryRun") or []):
            return web.json_response(self._deleted_answer(obj))
        return web.json_response(self._deleted_answer(self._delete_one(obj, options)))

    async def delete_collection(self) -> web.Response:
        options = await self._delete_options()
        labels, fields = self._selectors()
        items = self.store.list(self.rt, self.target.namespace, labels, fields)
        if not (_dry_run(self.request) or "All" in (options.get("dryRun") or [])):
            items = [self._delete_one(obj, options) for obj in items]
        return web.json_response(
            {
                "kind": f"{self.rt.kind}List",
                "apiVersion": self.rt.group_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [_list_item(i) for i in items],
            }
        )


class Watch:
    """A watch stream: one JSON event per line, ``{"type": ..., "object": ...}``, until timeoutSeconds."""

    def __init__(
        self,
        sandbox: KubernetesSandbox,
        request: web.Request,
        target: Target,
        labels: Selector,
        fields: FieldSelector,
    ):
        self.sandbox = sandbox
        self.store = sandbox.store
        self.request = request
        self.target = target
        self.labels = labels
        self.fields = fields
        self.as_table = _wants_table(request)
        self.headers_sent = False

    def _matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        if self.target.namespace is not None and obj["metadata"].get("namespace") != self.target.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def _translate(self, kind: str, obj: JsonDict, previous: JsonDict | None) -> str | None:
        """A label- or field-filtered watch sees objects enter (ADDED) and leave (DELETED) its selection."""
        now, before = self._matches(obj), self._matches(previous)
        if kind == "ADDED":
            return "ADDED" if now else None
        if kind == "DELETED":
            return "DELETED" if now or before else None
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        return "DELETED" if before else None

    async def run(self) -> web.StreamResponse:
        query = self.request.query
        timeout = min(float(query.get("timeoutSeconds") or _MAX_WATCH_SECONDS), _MAX_WATCH_SECONDS)
        version = query.get("resourceVersion") or ""
        initial = query.get("sendInitialEvents") == "true"
        start = None
        if version not in ("", "0") and not initial:
            try:
                start = int(version)
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {version!r}") from exc
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
        )
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        try:
            await self._stream(response, start, initial, asyncio.get_running_loop().time() + timeout)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: the watch is over
        return response

    async def _send(self, response: web.StreamResponse, kind: str, obj: JsonDict) -> None:
        if self.as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
            # kubectl get -w asks for Tables: one row per event, the columns with the first one only
            obj = k8s_tables.table(self.target.rt, [obj], self.store.resource_version, self.request.query)
            if self.headers_sent:
                obj["columnDefinitions"] = []
            self.headers_sent = True
        await response.write(
            json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
        )

    async def _stream(
        self, response: web.StreamResponse, start: int | None, initial: bool, deadline: float
    ) -> None:
        listener = self.store.listen()
        try:
            if start is None:
                cursor = self.store.resource_version
                for obj in self.store.list(self.target.rt, self.target.namespace, self.labels, self.fields):
                    await self._send(response, "ADDED", obj)
                if initial and self.request.query.get("allowWatchBookmarks") in ("true", "1"):
                    await self._send(response, "BOOKMARK", self._bookmark(cursor, initial_end=True))
            elif start < self.store.oldest_replayable:
                error = gone(f"too old resource version: {start} ({self.store.oldest_replayable})")
                await self._send(response, "ERROR", error.status())
                return
            else:
                cursor = start
            while not self.sandbox.shutdown.is_set():
                listener.clear()
                for event in self.store.events_since(cursor, self.target.rt):
                    cursor = event.resource_version
                    kind = self._translate(event.type, event.obj, event.previous)
                    if kind is not None:
                        await self._send(response, kind, event.obj)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.wait(), remaining)
        finally:
            self.store.unlisten(listener)

    def _bookmark(self, version: int, *, initial_end: bool = False) -> JsonDict:
        meta: JsonDict = {"resourceVersion": str(version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": self.target.rt.kind, "apiVersion": self.target.rt.group_version, "metadata": meta}


# the control API


async def _json_body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def _control_bad_images(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "POST":
        patterns = (await _json_body(request)).get("patterns")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise web.HTTPBadRequest(text='expected {"patterns": ["image-glob", ...]}')
        sandbox.set_bad_images(patterns)
    return web.json_response({"patterns": sandbox.controller.bad_images})


async def _control_time_scale(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "POST":
        value = (await _json_body(request)).get("time_scale")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise web.HTTPBadRequest(text='expected {"time_scale": <number > 0>}')
        sandbox.set_time_scale(float(value))
    return web.json_response({"time_scale": sandbox.clock.time_scale})


def _fault_json(fault: Fault) -> JsonDict:
    return {
        "method": fault.method,
        "path": fault.path.pattern,
        "status": fault.status,
        "delay": fault.delay,
        "count": fault.remaining,
        "retry_after": fault.retry_after,
    }


async def _control_faults(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "DELETE":
        sandbox.faults.clear()
    elif request.method == "POST":
        body = await _json_body(request)
        try:
            fault = Fault(
                path=re.compile(str(body.get("path", ".*"))),
                method=str(body.get("method", "*")).upper(),
                status=None if body.get("status", 500) is None else int(body.get("status", 500)),
                delay=float(body.get("delay", 0)),
                remaining=int(body.get("count", 1)),
                retry_after=None if body.get("retry_after") is None else int(body["retry_after"]),
            )
        except (re.error, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"invalid fault: {exc}") from exc
        sandbox.add_fault(fault)
    return web.json_response({"faults": [_fault_json(f) for f in sandbox.faults]})


async def _control_calls(request: web.Request) -> web.Response:
    sandbox = request.app[KUBERNETES_SANDBOX]
    if request.method == "DELETE":
        sandbox.calls.clear()
    return web.json_response({"calls": [asdict(c) for c in sandbox.calls]})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[KUBERNETES_SANDBOX].reset()
    return web.json_response({"ok": True})


async def _run_controller(app: web.Application) -> AsyncIterator[None]:
    """Reconcile on a timer as well, so watches see rollouts move without other requests."""
    sandbox = app[KUBERNETES_SANDBOX]

    async def loop() -> None:
        while True:
            try:
                sandbox.controller.reconcile()
                wait = sandbox.controller.seconds_to_next_event()
            except Exception:
                log.exception("kubernetes emulator: rollout controller failed")
                wait = None
            await asyncio.sleep(_TICK_SECONDS if wait is None else max(0.001, min(_TICK_SECONDS, wait)))

    task = asyncio.create_task(loop(), name="k8s-rollout-controller")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _on_shutdown(app: web.Application) -> None:
    sandbox = app[KUBERNETES_SANDBOX]
    sandbox.shutdown.set()
    sandbox.store.wake_all()


def create_kubernetes_app(
    *,
    time_scale: float = 1.0,
    pod_startup_seconds: float = 0.25,
    namespaces: Iterable[str] = DEFAULT_NAMESPACES,
) -> web.Application:
    """The emulator as an aiohttp app.

    ``time_scale`` is real seconds per emulated second: at 1.0 a rollout of a few replicas takes
    about a second (each pod starts ``pod_startup_seconds`` after it is created) and a progress
    deadline of 600 s takes ten minutes; at 1/600 that deadline passes in one second.
    ``namespaces`` exist from the start. The state is ``kubernetes_sandbox(app)``.
    """
    app = web.Application(middlewares=[_middleware])
    names = tuple(dict.fromkeys([*namespaces]))
    app[KUBERNETES_SANDBOX] = KubernetesSandbox(
        initial_time_scale=time_scale, pod_startup_seconds=pod_startup_seconds, namespaces=names
    )
    app.cleanup_ctx.append(_run_controller)
    app.on_shutdown.append(_on_shutdown)
    router = app.router
    # the kubernetes client asks for "/version/", "/apis/" …: both spellings are served, as go-restful does
    router.add_get("/version{_:/?}", _version)
    for probe in ("/healthz", "/livez", "/readyz"):
        router.add_get(probe, _healthy)
    router.add_get("/api{_:/?}", _api)
    router.add_get("/apis{_:/?}", _apis)
    router.add_get("/api/{version}{_:/?}", _resource_list)
    router.add_get("/apis/{group}{_:/?}", _api_group)
    router.add_get("/apis/{group}/{version}{_:/?}", _resource_list)
    router.add_get("/openapi/v3", _openapi_index)
    router.add_get("/openapi/v3/{path:.+}", _openapi_document)
    router.add_get("/openapi/v2", _openapi_v2)
    router.add_route("*", "/api/v1/{tail:.+}", _resource)
    router.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resource)
    router.add_route("*", "/_sandbox/bad-images", _control_bad_images)
    router.add_route("*", "/_sandbox/time-scale", _control_time_scale)
    router.add_route("*", "/_sandbox/faults", _control_faults)
    router.add_route("*", "/_sandbox/calls", _control_calls)
    router.add_post("/_sandbox/reset", _control_reset)
    return app
