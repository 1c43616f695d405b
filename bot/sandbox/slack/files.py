"""The Slack emulator's external file uploads: the flow behind slack-sdk's ``files_upload_v2``.

Slack takes a file in three steps, and so does the emulator:

1. ``files.getUploadURLExternal(filename, length)`` answers a ``file_id`` and an ``upload_url``
   (here ``/upload/v1/<file_id>`` on the emulator itself);
2. the client POSTs the bytes there (raw, or as a multipart form); Slack answers 200
   ``OK - <length>``, anything else is a failure;
3. ``files.completeUploadExternal(files=[{id, title}], channel_id, thread_ts, initial_comment)``
   shares the files: a message carrying them appears in the channel (in the thread with
   ``thread_ts``). It can be called once per file.

Both methods are Tier 4 (``ratelimit``). Refusals use Slack's documented names where Slack
documents them: ``invalid_arguments`` (a missing or malformed field), ``alt_txt_too_large`` (over
1000 characters), ``file_upload_size_restricted`` (over ``max_file_bytes``, 1 GB as slack-sdk's
own check), ``channel_not_found``, ``not_in_channel``. For a file id that was never handed out
or is already shared we answer ``file_not_found``, and for one whose bytes never arrived (or not
as many as announced) ``file_upload_not_complete``: our best reading, Slack documents neither.
The control API gives the files back (``GET /_sandbox/files``, ``/_sandbox/files/<id>/content``)
so a test can check what was uploaded, bytes included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Unpack

from aiohttp import web

from bot.sandbox.slack.control import SlackControlApi
from bot.sandbox.slack.methods import Handler
from bot.sandbox.slack.records import BOT_USER_ID, TEAM_DOMAIN, JSONDict, Message
from bot.sandbox.slack.state import WorkspaceOptions
from bot.sandbox.slack.wire import ApiError, Call, json_response, missing

MAX_FILE_BYTES: Final = 1024 * 1024 * 1024
MAX_ALT_TEXT: Final = 1000


@dataclass(frozen=True)
class StoredFile:
    """One file from ``getUploadURLExternal`` on: its announced size, its bytes once uploaded."""

    id: str
    name: str
    length: int
    created: float
    user: str
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    shared: bool = False

    def to_json(self, *, content: bool = False) -> JSONDict:
        out: JSONDict = {
            "id": self.id,
            "created": int(self.created),
            "timestamp": int(self.created),
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": _mimetype(self.name),
            "filetype": self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "binary",
            "user": self.user,
            "size": len(self.data) if self.data is not None else 0,
            "url_private": f"https://files.slack.com/files-pri/T0SANDBOX-{self.id}/{self.name}",
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{self.user}/{self.id}/{self.name}",
        }
        if self.alt_txt:
            out["alt_txt"] = self.alt_txt
        if content:
            out.update(channel=self.channel, thread_ts=self.thread_ts, shared=self.shared)
        return out


def _mimetype(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "txt": "text/plain"}.get(
        ext, "application/octet-stream"
    )


class SlackFilesApi(SlackControlApi):
    """The workspace, Web API and control API, plus external file uploads."""

    max_file_bytes: int = MAX_FILE_BYTES

    def __init__(self, **workspace: Unpack[WorkspaceOptions]) -> None:
        self._files: dict[str, StoredFile] = {}
        super().__init__(**workspace)

    def _file_methods(self) -> dict[str, Handler]:
        return {
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }

    def _file_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/upload/v1/{file_id}", self._upload),
            ("GET", "/_sandbox/files", self._ctl_files),
            ("GET", "/_sandbox/files/{file_id}/content", self._ctl_file_content),
        ]

    def _reset_files(self) -> None:
        with self._lock:
            self._files.clear()

    def files(self) -> list[JSONDict]:
        """Every file handed an upload URL, oldest first, with where it was shared."""
        with self._lock:
            return [f.to_json(content=True) for f in self._files.values()]

    def file_content(self, file_id: str) -> bytes | None:
        with self._lock:
            stored = self._files.get(file_id)
            return stored.data if stored else None

    # -- Web API ----------------------------------------------------------------------------------

    def _files_get_upload_url_external(self, call: Call) -> JSONDict:
        filename = call.required("filename")
        if call.text("length") is None:
            raise missing("length")
        length = call.number("length", 0)
        if length <= 0:
            raise ApiError("invalid_arguments", messages=["[ERROR] length must be a positive integer"])
        alt = call.text("alt_txt")
        if alt is not None and len(alt) > MAX_ALT_TEXT:
            raise ApiError("alt_txt_too_large")
        if length > self.max_file_bytes:
            raise ApiError("file_upload_size_restricted")
        file_id = self._ids.next("F", 10)
        self._files[file_id] = StoredFile(file_id, filename, length, call.now, call.identity.user_id, alt)
        return {"upload_url": f"{call.origin}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, call: Call) -> JSONDict:
        try:
            items = call.structured("files")
        except ValueError:
            raise ApiError("invalid_arguments", messages=["[ERROR] files must be a JSON array"]) from None
        if items is None:
            raise missing("files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ApiError("invalid_arguments", messages=["[ERROR] files must be a non-empty array"])
        chosen: list[StoredFile] = []
        for item in items:
            stored = self._files.get(str(item.get("id", "")))
            if stored is None or stored.shared or stored.user != call.identity.user_id:
                raise ApiError("file_not_found")
            if stored.data is None or len(stored.data) != stored.length:
                raise ApiError("file_upload_not_complete")
            chosen.append(replace(stored, title=str(item.get("title") or stored.name)))
        channel_ref = call.text("channel_id") or call.text("channels")
        thread_ts = call.text("thread_ts")
        if channel_ref is not None:
            if "," in channel_ref:
                if thread_ts is not None:  # a reply goes to one thread of one channel
                    raise ApiError("invalid_arguments", messages=["[ERROR] thread_ts needs one channel"])
                channel_ref = channel_ref.split(",", 1)[0]
            channel = self._channel(channel_ref)
            if not channel.is_member:
                raise ApiError("not_in_channel")
            orphaned = False
            if thread_ts is not None:
                parent = self._find(channel.id, thread_ts)
                orphaned = parent is None or not parent.top_level or parent.tombstone
            chosen = [replace(f, channel=channel.id, thread_ts=thread_ts) for f in chosen]
            message = Message(
                channel=channel.id,
                ts=self._ids.ts(call.now),
                user=call.identity.user_id or BOT_USER_ID,
                text=call.text("initial_comment") or "",
                thread_ts=thread_ts,
                orphaned=orphaned,
                bot=call.identity.bot_id is not None,
                files=tuple(f.to_json() for f in chosen),
            )
            self._store(message)
        for stored in chosen:
            self._files[stored.id] = replace(stored, shared=True)
        return {"files": [{"id": f.id, "title": f.title} for f in chosen]}

    # -- the upload URL and the control API -------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if request.content_type == "multipart/form-data":
            data = b""
            async for part in await request.multipart():
                if getattr(part, "filename", None) or getattr(part, "name", None) == "file":
                    data = bytes(await part.read())  # type: ignore[union-attr]
                    break
        else:
            data = await request.read()
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None or stored.shared:
                return web.Response(status=404, text="Not Found")
            self._files[file_id] = replace(stored, data=data)
        return web.Response(status=200, text=f"OK - {len(data)}")

    async def _ctl_files(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "files": self.files()})

    async def _ctl_file_content(self, request: web.Request) -> web.Response:
        with self._lock:
            stored = self._files.get(request.match_info["file_id"])
        if stored is None or stored.data is None:
            return json_response({"ok": False, "error": "file_not_found"}, 404)
        return web.Response(body=stored.data, content_type=_mimetype(stored.name))
