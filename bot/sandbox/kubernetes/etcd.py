"""The emulator's etcd: objects by kind, namespace and name, one resourceVersion counter, a watch log.

Every write goes through ``create`` / ``update`` / ``delete`` here, so ``metadata.resourceVersion``
(a global, increasing counter, as a string), ``metadata.generation`` (bumped when anything but
metadata and status changes) and the watch events always agree. The store is touched only from
the server's event loop; watchers are woken through ``asyncio.Event`` objects they register.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.sandbox.kubernetes.selector import FieldSelector, Selector, fields_match, labels_match
from bot.sandbox.kubernetes.vocabulary import (
    JsonDict,
    ResourceType,
    already_exists,
    conflict,
    not_found,
    rfc3339,
)

WATCH_LOG_SIZE = 20_000
_FIRST_RESOURCE_VERSION = 1000


@dataclass(frozen=True)
class StoredEvent:
    """One change, as watches replay it: the object after the change, and before it (if any)."""

    resource_version: int
    resource: ResourceType
    type: str  # ADDED, MODIFIED, DELETED
    obj: JsonDict
    previous: JsonDict | None


def controller_uid(obj: JsonDict | None) -> str | None:
    """The uid of the owner reference marked ``controller: true``, if any."""
    for ref in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _without_meta_and_status(obj: JsonDict) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """All objects of the emulated cluster."""

    def __init__(self, clock: Callable[[], float]):
        """``clock``: the emulator's epoch seconds (its ``ScaledClock``), never the wall clock."""
        self._clock = clock
        self._stepping_at: float | None = None
        self._objects: dict[ResourceType, dict[tuple[str, str], JsonDict]] = {}
        self._counter = itertools.count(_FIRST_RESOURCE_VERSION)
        self._resource_version = next(self._counter)
        self._log: deque[StoredEvent] = deque(maxlen=WATCH_LOG_SIZE)
        self._listeners: set[asyncio.Event] = set()
        # controller uid → keys of its dependents, so controllers find their pods without a scan
        self._dependents: dict[str, dict[tuple[ResourceType, str, str], None]] = {}
        self._by_uid: dict[str, tuple[ResourceType, str, str]] = {}

    @property
    def resource_version(self) -> int:
        return self._resource_version

    @property
    def oldest_replayable(self) -> int:
        """Watches from a resourceVersion older than this get ``410 Gone``."""
        return (
            self._log[0].resource_version - 1
            if len(self._log) == self._log.maxlen
            else _FIRST_RESOURCE_VERSION
        )

    def instant(self) -> float:
        """The time a write is stamped with: the controller step's instant while one runs, else now."""
        return self._clock() if self._stepping_at is None else self._stepping_at

    def now(self) -> str:
        return rfc3339(self.instant())

    @contextmanager
    def stepping_at(self, at: float) -> Iterator[None]:
        """Stamp the writes made inside with ``at``: a jump of the clock replays each controller
        step at its own instant, so what it writes must carry that instant too."""
        self._stepping_at = at
        try:
            yield
        finally:
            self._stepping_at = None

    # reads

    def find(self, rt: ResourceType, namespace: str, name: str) -> JsonDict | None:
        """The stored object itself (callers must not mutate it), or None."""
        return self._objects.get(rt, {}).get((namespace if rt.namespaced else "", name))

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonDict:
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return copy.deepcopy(obj)

    def iter(self, rt: ResourceType, namespace: str | None = None) -> Iterator[JsonDict]:
        """Stored objects (not copies) in name order, optionally in one namespace."""
        for (ns, _), obj in sorted(self._objects.get(rt, {}).items()):
            if namespace is None or ns == namespace:
                yield obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        labels: Selector = (),
        fields: FieldSelector = (),
    ) -> list[JsonDict]:
        return [
            copy.deepcopy(obj)
            for obj in self.iter(rt, namespace)
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]

    # writes

    def _next_version(self) -> str:
        self._resource_version = next(self._counter)
        return str(self._resource_version)

    def dependents(self, rt: ResourceType, owner_uid: str) -> builtins.list[JsonDict]:
        """Stored objects of kind ``rt`` controlled by ``owner_uid``, oldest first (not copies)."""
        found = (
            self._objects[rt].get((ns, name))
            for kind, ns, name in self._dependents.get(owner_uid, {})
            if kind is rt
        )
        return [obj for obj in found if obj is not None]

    def by_uid(self, uid: str) -> tuple[ResourceType, JsonDict] | None:
        """The kind and stored object (not a copy) with this uid, if it still exists."""
        key = self._by_uid.get(uid)
        if key is None:
            return None
        rt, namespace, name = key
        obj = self.find(rt, namespace, name)
        return None if obj is None else (rt, obj)

    def _index(self, rt: ResourceType, before: JsonDict | None, after: JsonDict | None) -> None:
        old_uid, new_uid = controller_uid(before), controller_uid(after)
        obj = after or before
        assert obj is not None
        key = (rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if old_uid is not None and old_uid != new_uid:
            self._dependents.get(old_uid, {}).pop(key, None)
        if new_uid is not None:
            self._dependents.setdefault(new_uid, {})[key] = None

    def _record(self, rt: ResourceType, kind: str, obj: JsonDict, previous: JsonDict | None) -> None:
        self._log.append(StoredEvent(self._resource_version, rt, kind, copy.deepcopy(obj), previous))
        for listener in self._listeners:
            listener.set()

    def create(self, rt: ResourceType, obj: JsonDict) -> JsonDict:
        """Store a new object, filling in the metadata the server owns; returns a copy."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        bucket = self._objects.setdefault(rt, {})
        if key in bucket:
            raise already_exists(rt, meta["name"])
        if not rt.namespaced:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_version()
        meta["creationTimestamp"] = self.now()
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(transient, None)
        bucket[key] = obj
        self._by_uid[meta["uid"]] = (rt, key[0], key[1])
        self._index(rt, None, obj)
        self._record(rt, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def update(self, rt: ResourceType, obj: JsonDict, *, check_version: bool = True) -> JsonDict:
        """Replace a stored object; a stale ``metadata.resourceVersion`` is a 409 Conflict.

        The server-owned metadata (uid, creationTimestamp, generation) is kept from the stored
        object; ``generation`` grows when anything but metadata and status changed. Writing an
        identical object changes nothing, not even the resourceVersion (as the API server does).
        """
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        current = self.find(rt, meta.get("namespace", ""), name)
        if current is None:
            raise not_found(rt, name)
        current_meta = current["metadata"]
        wanted_version = meta.get("resourceVersion")
        if check_version and wanted_version and wanted_version != current_meta["resourceVersion"]:
            raise conflict(rt, name)
        if meta.get("uid") and meta["uid"] != current_meta["uid"]:
            raise conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, "
                f"UID in object meta: {current_meta['uid']}",
            )
        new = copy.deepcopy(obj)
        new_meta = new.setdefault("metadata", {})
        for owned in ("uid", "creationTimestamp", "namespace", "deletionTimestamp"):
            if owned in current_meta:
                new_meta[owned] = current_meta[owned]
            else:
                new_meta.pop(owned, None)
        new_meta["resourceVersion"] = current_meta["resourceVersion"]
        if rt.has_generation:
            generation = int(current_meta.get("generation", 1))
            if _without_meta_and_status(new) != _without_meta_and_status(current):
                generation += 1
            new_meta["generation"] = generation
        if new == current:
            return copy.deepcopy(current)
        new_meta["resourceVersion"] = self._next_version()
        self._objects[rt][(new_meta.get("namespace", ""), name)] = new
        self._index(rt, current, new)
        self._record(rt, "MODIFIED", new, copy.deepcopy(current))
        return copy.deepcopy(new)

    def delete(self, rt: ResourceType, namespace: str, name: str) -> JsonDict:
        key = (namespace if rt.namespaced else "", name)
        current = self._objects.get(rt, {}).pop(key, None)
        if current is None:
            raise not_found(rt, name)
        self._index(rt, current, None)
        self._by_uid.pop(current["metadata"]["uid"], None)
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = self._next_version()
        self._record(rt, "DELETED", gone, current)
        return copy.deepcopy(gone)

    def clear(self) -> None:
        """Forget every object (the control API's reset); resourceVersions keep growing."""
        for rt, bucket in list(self._objects.items()):
            for namespace, name in list(bucket):
                self.delete(rt, namespace, name)

    # watches

    def events_since(
        self, resource_version: int, rt: ResourceType | None = None
    ) -> builtins.list[StoredEvent]:
        """Events (of one kind) after ``resource_version``, oldest first; the log is scanned from its end."""
        found = []
        for event in reversed(self._log):
            if event.resource_version <= resource_version:
                break
            if rt is None or event.resource is rt:
                found.append(event)
        found.reverse()
        return found

    def listen(self) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.add(event)
        return event

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def wake_all(self) -> None:
        """Wake every watcher (used at shutdown so streams end promptly)."""
        for listener in self._listeners:
            listener.set()
