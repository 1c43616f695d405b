"""What a request to the Kubernetes emulator points at and asks for: the resource URL, dry run, Tables.

Shared by the resource handlers and the watch, which read a request the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.sandbox.kubernetes.vocabulary import ApiError, ResourceType, lookup


def not_found_page() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


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


def target_of(group_version: str, tail: str) -> Target:
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        candidate = lookup(group_version, parts[2])
        if candidate is not None and candidate.namespaced:
            namespace, parts = parts[1], parts[2:]
    rt = lookup(group_version, parts[0]) if parts else None
    if rt is None or len(parts) > 3:
        raise not_found_page()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and rt.subresource(sub) is None:
        raise not_found_page()
    if rt.namespaced and namespace is None and name is not None:
        raise not_found_page()
    return Target(rt, namespace, name, sub)


def dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")
