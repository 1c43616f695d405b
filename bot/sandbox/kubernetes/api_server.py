"""An emulator of the Kubernetes API server, good enough for the kubernetes client and kubectl.

It answers the real URLs (discovery, OpenAPI v3, ``/api/v1`` and ``/apis/apps/v1`` for Namespaces,
Pods, Services, Events, Deployments and ReplicaSets, with ``/scale`` and ``/status``, list, watch
and the four patch types; ServiceAccounts, ConfigMaps, Secrets and ``rbac.authorization.k8s.io``
Roles and RoleBindings as stored objects, ``config_kinds``) in JSON only, and runs a rollout
controller on a scaled clock (``rollout``). A control API under ``/_sandbox/`` lets tests steer it:

- ``POST /_sandbox/bad-images`` ``{"patterns": ["*:broken"]}``: images (fnmatch) whose pods never become ready
- ``POST /_sandbox/time-scale`` ``{"time_scale": 0.01}``: real seconds per emulated second (0 freezes
  the clock: it then moves only by ``kubernetes_sandbox(app).clock.advance``)
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
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from aiohttp import web

from bot.sandbox.kubernetes import discovery, openapi
from bot.sandbox.kubernetes.addressing import not_found_page, target_of
from bot.sandbox.kubernetes.control import (
    control_bad_images,
    control_calls,
    control_faults,
    control_reset,
    control_time_scale,
)
from bot.sandbox.kubernetes.resources import ResourceApi
from bot.sandbox.kubernetes.state import DEFAULT_NAMESPACES, KUBERNETES_SANDBOX, Call, KubernetesSandbox
from bot.sandbox.kubernetes.vocabulary import ApiError, JsonDict, method_not_allowed, unsupported_media_type

log = logging.getLogger(__name__)

PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_ONLY_MESSAGE = (
    "the body of the request was in an unknown format - this emulator speaks JSON only "
    f"({PROTOBUF} is not supported); use -f manifests or --output json"
)
_TICK_SECONDS = 0.05
_MAX_CALLS = 10_000


def _status_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error.status(), status=error.code, headers=headers)


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
    return web.json_response(discovery.version())


async def _api(request: web.Request) -> web.Response:
    return web.json_response(discovery.api_versions(request.host))


async def _apis(request: web.Request) -> web.Response:
    return web.json_response(discovery.api_group_list())


async def _api_group(request: web.Request) -> web.Response:
    group = discovery.api_group(request.match_info["group"])
    if group is None:
        raise not_found_page()
    return web.json_response(group)


async def _resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group")
    gv = f"{group}/{request.match_info['version']}" if group else request.match_info["version"]
    listing = discovery.api_resource_list(gv)
    if listing is None:
        raise not_found_page()
    return web.json_response(listing)


async def _openapi_index(request: web.Request) -> web.Response:
    return web.json_response(openapi.index())


async def _openapi_document(request: web.Request) -> web.Response:
    body = openapi.document_for_path(request.match_info["path"])
    if body is None:
        raise not_found_page()
    return web.Response(body=body, content_type="application/json")


async def _openapi_v2(request: web.Request) -> web.Response:
    raise not_found_page()


# the resource API


async def _resource(request: web.Request) -> web.StreamResponse:
    group = request.match_info.get("group")
    gv = f"{group}/{request.match_info['version']}" if group else "v1"
    target = target_of(gv, request.match_info["tail"])
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
    deadline of 600 s takes ten minutes; at 1/600 that deadline passes in one second; at 0 the
    clock stands still until advanced (``kubernetes_sandbox(app).clock.advance``), and the
    controllers then catch up over the whole jump.
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
    router.add_route("*", "/_sandbox/bad-images", control_bad_images)
    router.add_route("*", "/_sandbox/time-scale", control_time_scale)
    router.add_route("*", "/_sandbox/faults", control_faults)
    router.add_route("*", "/_sandbox/calls", control_calls)
    router.add_post("/_sandbox/reset", control_reset)
    return app
