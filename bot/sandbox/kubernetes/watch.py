"""Watches: one JSON event per line from the store's log, filtered the way a selector sees objects.

A watch of a label or field selection sees objects enter (ADDED) and leave (DELETED) it, as on a
real API server; bookmarks and ``sendInitialEvents`` follow client-go's expectations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from bot.sandbox.kubernetes import tables
from bot.sandbox.kubernetes.addressing import Target, wants_table
from bot.sandbox.kubernetes.selector import FieldSelector, Selector, fields_match, labels_match
from bot.sandbox.kubernetes.state import KubernetesSandbox
from bot.sandbox.kubernetes.vocabulary import JsonDict, bad_request, gone

_MAX_WATCH_SECONDS = 1800.0


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
        self.as_table = wants_table(request)
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
            obj = tables.table(
                self.target.rt,
                [obj],
                self.store.resource_version,
                self.request.query,
                now=self.store.instant(),
            )
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
