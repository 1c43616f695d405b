"""The resource API of the Kubernetes emulator: get, list, create, replace, patch, scale and delete.

One ``ResourceApi`` serves one request against one resource URL; watches are ``watch.Watch``.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import yaml
from aiohttp import web

from bot.sandbox.kubernetes import openapi, openapi_schemas, tables
from bot.sandbox.kubernetes.addressing import Target, dry_run, wants_table
from bot.sandbox.kubernetes.admission import check_name_matches
from bot.sandbox.kubernetes.patch import PatchError, json_patch, merge_patch, strategic_merge
from bot.sandbox.kubernetes.selector import (
    FieldSelector,
    Selector,
    format_selector,
    parse_field_selector,
    parse_label_selector,
)
from bot.sandbox.kubernetes.state import KubernetesSandbox
from bot.sandbox.kubernetes.vocabulary import (
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
    method_not_allowed,
    namespace_not_found,
    unsupported_media_type,
)
from bot.sandbox.kubernetes.watch import Watch


def success_status(rt: ResourceType, obj: JsonDict) -> JsonDict:
    details: JsonDict = {"name": obj["metadata"]["name"]}
    if rt.group:
        details["group"] = rt.group
    details |= {"kind": rt.plural, "uid": obj["metadata"]["uid"]}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def list_item(obj: JsonDict) -> JsonDict:
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
        if wants_table(self.request) and self.target.subresource is None:
            return web.json_response(
                tables.table(
                    self.rt, [obj], self.store.resource_version, self.request.query, now=self.store.instant()
                )
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
        if wants_table(self.request):
            table = tables.table(self.rt, items, self.store.resource_version, query, now=self.store.instant())
            table["metadata"] = meta
            return web.json_response(table)
        return web.json_response(
            {
                "kind": f"{self.rt.kind}List",
                "apiVersion": self.rt.group_version,
                "metadata": meta,
                "items": [list_item(i) for i in items],
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
        if dry_run(self.request):
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
            for field in openapi_schemas.unknown_fields(self.rt, written):
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
        if dry_run(self.request):
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
                result = strategic_merge(document, body, openapi_schemas.patch_meta(self.rt, subresource))
            else:
                accepted = ", ".join(openapi.PATCH_TYPES)
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
        if dry_run(self.request):
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
        return success_status(self.rt, obj)

    async def delete(self) -> web.Response:
        options = await self._delete_options()
        obj = self.current()
        if dry_run(self.request) or "All" in (options.get("dryRun") or []):
            return web.json_response(self._deleted_answer(obj))
        return web.json_response(self._deleted_answer(self._delete_one(obj, options)))

    async def delete_collection(self) -> web.Response:
        options = await self._delete_options()
        labels, fields = self._selectors()
        items = self.store.list(self.rt, self.target.namespace, labels, fields)
        if not (dry_run(self.request) or "All" in (options.get("dryRun") or [])):
            items = [self._delete_one(obj, options) for obj in items]
        return web.json_response(
            {
                "kind": f"{self.rt.kind}List",
                "apiVersion": self.rt.group_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [list_item(i) for i in items],
            }
        )
