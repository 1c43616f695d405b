"""The ``response_url`` endpoints of the Slack emulator: what an app's post to one does to the channel.

A ``response_url`` (handed out with a slash command or an interaction) can post in the channel or
ephemerally, replace or delete the original message; each URL expires and has a number of uses, as
on Slack. The control API (``control``) hands them out and lists them.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from bot.sandbox.slack.methods import SlackWebApi
from bot.sandbox.slack.records import (
    BOT_ID,
    BOT_USER_ID,
    RESPONSE_URL_LIFETIME,
    RESPONSE_URL_USES,
    Ephemeral,
    Identity,
    JSONDict,
    Message,
    ResponseUrl,
)
from bot.sandbox.slack.wire import ApiError, Call, Content, json_response, read_payload


class SlackResponseUrls(SlackWebApi):
    """The workspace and Web API plus the ``response_url`` endpoints."""

    # -- response_url ----------------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        try:
            payload = await read_payload(request)
        except ApiError as refusal:
            return json_response(refusal.body(), 400)
        with self._lock:
            now = self.clock.now()
            entry = self._response_urls.get(rid)
            if entry is None or now - entry.created_at > RESPONSE_URL_LIFETIME:
                return json_response({"ok": False, "error": "expired_url"}, 404)
            if len(entry.uses) >= RESPONSE_URL_USES:
                return json_response({"ok": False, "error": "used_url"}, 404)
            try:
                outcome = self._respond(entry, payload, now)
                status, body = 200, {"ok": True}
            except ApiError as refusal:
                outcome, status, body = refusal.error, 400, refusal.body()
            use = {"time": now, "payload": payload, "status": status, "outcome": outcome}
            self._response_urls[rid] = replace(entry, uses=(*entry.uses, use))
            return json_response(body, status)

    def _respond(self, entry: ResponseUrl, payload: JSONDict, now: float) -> str:
        """Apply one response_url post; returns what it did, for the log."""
        call = Call("response_url", payload, Identity(BOT_USER_ID, BOT_ID), now)
        original = self._find(entry.channel_id, entry.message_ts) if entry.message_ts else None
        ephemeral_original = next(
            (
                e
                for e in self._ephemeral
                if entry.is_ephemeral and e.ts == entry.message_ts and e.channel == entry.channel_id
            ),
            None,
        )
        if call.flag("delete_original"):
            if original is not None:
                self._delete(original)
            elif ephemeral_original is not None:
                self._ephemeral.remove(ephemeral_original)
            else:
                raise ApiError("message_not_found")
            return "deleted_original"
        content = self._content(call)
        if not content.text and not content.blocks and not content.attachments:
            raise ApiError("no_text")
        if call.flag("replace_original") and (original is not None or ephemeral_original is not None):
            self._replace_original(original, ephemeral_original, content, now)
            return "replaced_original"
        thread_ts = call.text("thread_ts") or entry.thread_ts
        if call.text("response_type") == "in_channel":
            message = Message(
                channel=entry.channel_id,
                ts=self._ids.ts(now),
                user=BOT_USER_ID,
                text=content.text or "",
                blocks=content.blocks,
                attachments=content.attachments,
                thread_ts=thread_ts,
                bot=True,
            )
            self._store(message)
            return f"in_channel:{message.ts}"
        ephemeral = Ephemeral(
            entry.channel_id,
            entry.user_id,
            self._ids.ts(now),
            content.text or "",
            content.blocks,
            content.attachments,
            thread_ts,
            via="response_url",
        )
        self._ephemeral.append(ephemeral)
        return f"ephemeral:{ephemeral.ts}"

    def _replace_original(
        self, original: Message | None, ephemeral_original: Ephemeral | None, content: Content, now: float
    ) -> None:
        """``replace_original``: the message (edited, as Slack marks it) or the ephemeral, in place."""
        if original is not None:
            self._store(
                replace(
                    original,
                    text=content.text or "",
                    blocks=content.blocks,
                    attachments=content.attachments,
                    edited={"user": BOT_USER_ID, "ts": self._ids.ts(now)},
                )
            )
        elif ephemeral_original is not None:
            index = self._ephemeral.index(ephemeral_original)
            self._ephemeral[index] = replace(
                ephemeral_original,
                text=content.text or "",
                blocks=content.blocks,
                attachments=content.attachments,
            )
