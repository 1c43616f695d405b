"""The discovery documents kubectl reads before anything else: ``/version``, ``/api``, ``/apis``, ….

kubectl (and client-go's RESTMapper) turn ``deploy``, ``deployment/web`` or ``rs`` into URLs from
these lists; short names, verbs and subresources must be right or commands fail before any request.
Aggregated discovery (``as=APIGroupDiscoveryList``) is not offered: the plain documents are always
answered, and client-go falls back to them.
"""

from __future__ import annotations

from bot.sandbox.kubernetes.vocabulary import GROUP_VERSIONS, SUBRESOURCE_VERBS, JsonDict, resources_of

KUBERNETES_VERSION = ("1", "37", "v1.37.0")


def version() -> JsonDict:
    major, minor, git = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(int(minor) - 1),
        "gitVersion": git,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> JsonDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> JsonDict:
    versions = [
        {"groupVersion": gv, "version": gv.split("/")[1]}
        for gv in GROUP_VERSIONS
        if gv.startswith(f"{name}/")
    ]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def group_names() -> list[str]:
    return sorted({gv.split("/")[0] for gv in GROUP_VERSIONS if "/" in gv})


def api_group_list() -> JsonDict:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name) for name in group_names()]}


def api_group(name: str) -> JsonDict | None:
    if name not in group_names():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def api_resource_list(group_version: str) -> JsonDict | None:
    types = resources_of(group_version)
    if not types:
        return None
    resources: list[JsonDict] = []
    for rt in types:
        entry: JsonDict = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: JsonDict = {
                "name": f"{rt.plural}/{sub.name}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind,
                "verbs": list(SUBRESOURCE_VERBS),
            }
            if sub.name == "scale":
                sub_entry |= {"group": sub.group, "version": sub.version}
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
