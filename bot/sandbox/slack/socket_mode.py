"""Socket Mode in the Slack emulator: ``apps.connections.open``, the ``/link/`` WebSocket, envelopes, acks.

Shipthread can run without a public URL (``shipthread serve --socket-mode``); that path is only
tested if something plays Slack's side of Socket Mode towards Bolt's real
``AsyncSocketModeHandler``. This module is that side, as slack-sdk's ``SocketModeClient`` reads it:

- ``apps.connections.open`` with an app-level token (``xapp-...``; a bot token is
  ``not_allowed_token_type``) answers ``{"ok": true, "url": "ws://HOST:PORT/link/?ticket=...&app_id=..."}``.
  A ticket opens one connection; a used or unknown one is refused (HTTP 401, our best reading).
- On connect the app gets ``hello`` (``num_connections``, ``debug_info``, ``connection_info``); then
  envelopes ``{envelope_id, type, payload, accepts_response_payload[, retry_attempt, retry_reason]}``
  with type ``slash_commands``, ``interactive`` or ``events_api``; it acks ``{envelope_id[, payload]}``.
  The client's pings are answered by aiohttp (autoping).
- An envelope not acked within ``ack_timeout`` emulated seconds (Slack: about 3 s) is sent again,
  with the same ``envelope_id``, ``retry_attempt`` one higher and ``retry_reason: "timeout"``, to the
  next open connection of the app in turn; after ``max_retries`` it is dropped. An envelope with no
  connection to go to waits for one.
- Up to ``max_connections`` (Slack: 10) at once; one more is told ``too_many_websockets`` and closed.
  ``POST /_sandbox/socket/disconnect`` sends ``{"type": "disconnect", "reason": "refresh_requested"}``;
  a connection told so gets no new envelopes (the client is expected to open a new one); it can
  also hang up, with or without that message.

What goes in (``POST /_sandbox/socket/envelopes``, used by ``driver.SocketModeDriver``) and
everything that happens (connections, deliveries, redeliveries, acks, drops) is recorded and served
under ``/_sandbox/socket``, so tests can assert exactly-once handling. Times are the emulator's
clock; waits for a test (``wait=``) are real seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import WSCloseCode, web

from bot.sandbox.slack.socket_links import Sends, SocketLinks, disconnect_message, send_all
from bot.sandbox.slack.wire import ApiError, json_response, read_payload

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SocketMode(SocketLinks):
    """The Socket Mode side of one emulated app: tickets, connections, envelopes and their log.

    Shares the emulator's clock and lock: the Web API handler (``open_url``) runs under that lock
    already, and tests may read the records from another thread through the public methods.
    """

    def routes(self) -> list[tuple[str, str, Route]]:
        """The control routes, relative to ``/_sandbox/``."""
        return [
            ("GET", "socket", self._ctl_state),
            ("POST", "socket", self._ctl_state),
            ("GET", "socket/connections", self._ctl_connections),
            ("POST", "socket/disconnect", self._ctl_disconnect),
            ("GET", "socket/envelopes", self._ctl_envelopes),
            ("POST", "socket/envelopes", self._ctl_enqueue),
            ("GET", "socket/envelopes/{envelope_id}", self._ctl_envelope),
            ("GET", "socket/log", self._ctl_log),
        ]

    async def _ctl_state(self, request: web.Request) -> web.Response:
        """GET: settings, connections and the log; POST changes settings and adds ``app_tokens``."""
        if request.method == "POST":
            try:
                payload = await read_payload(request)
                tokens = payload.pop("app_tokens", [])
                if not isinstance(tokens, list):
                    raise ValueError("app_tokens must be a list")
                for token in tokens:
                    self.add_app_token(str(token))
                with self._lock:
                    self.settings = self.settings.changed(payload)
            except (ValueError, TypeError, ApiError) as exc:
                return json_response({"ok": False, "error": str(exc)}, 400)
        with self._lock:
            return json_response(
                {
                    "ok": True,
                    "settings": self.settings.to_json(),
                    "connections": self.connections(),
                    "log": self.log(),
                }
            )

    async def _ctl_connections(self, request: web.Request) -> web.Response:
        """``?open=N&wait=S``: wait up to S real seconds for N open connections (a client reconnecting)."""
        try:
            wanted = int(request.query["open"]) if "open" in request.query else None
            wait = float(request.query.get("wait", 0))
        except ValueError:
            return json_response({"ok": False, "error": "open and wait must be numbers"}, 400)
        if wanted is not None:
            await self._until(
                lambda: sum(c.state == "open" for c in self._connections.values()) == wanted, wait
            )
        return json_response({"ok": True, "connections": self.connections()})

    async def _ctl_disconnect(self, request: web.Request) -> web.Response:
        """Tell one connection (``connection_id``) or all open ones to go; ``close`` also hangs up.

        ``notify: false`` with ``close`` hangs up without a word, as a dropped link does.
        """
        try:
            payload = await read_payload(request) if request.can_read_body else {}
        except ApiError as refusal:
            return json_response(refusal.body(), 400)
        reason = str(payload.get("reason") or "refresh_requested")
        target = payload.get("connection_id")
        notify = bool(payload.get("notify", True))
        sends = Sends()
        with self._lock:
            now = self._clock.now()
            chosen = [c for c in self._connections.values() if c.state == "open" and target in (None, c.id)]
            for connection in chosen:
                self._connections[connection.id] = replace(
                    connection, state="draining", disconnect_reason=reason
                )
                sends.items.append((self._sockets[connection.id], disconnect_message(reason)))
                self._note(
                    "disconnect" if notify else "hang_up", now, connection_id=connection.id, reason=reason
                )
        if notify:
            await send_all(sends)
        if payload.get("close") or not notify:
            for ws, _ in sends.items:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode())
        return json_response({"ok": True, "connections": [c.id for c in chosen]})

    async def _ctl_envelopes(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "envelopes": self.envelopes()})

    async def _ctl_enqueue(self, request: web.Request) -> web.Response:
        """Hand the app an envelope; with ``wait`` (real seconds), answer once it is acked or dropped."""
        try:
            payload = await read_payload(request)
            body = payload.get("payload")
            if not isinstance(body, dict):
                raise ValueError("payload must be an object")
            envelope_id = self.enqueue(
                str(payload.get("type", "")),
                body,
                accepts_response_payload=bool(payload.get("accepts_response_payload", False)),
                retry_attempt=int(payload.get("retry_attempt") or 0),
                retry_reason=str(payload.get("retry_reason") or ""),
            )
            wait = float(payload.get("wait", 0))
        except (ValueError, TypeError, ApiError) as exc:
            return json_response({"ok": False, "error": str(exc)}, 400)
        await self.pump()
        return await self._answer_envelope(envelope_id, wait)

    async def _ctl_envelope(self, request: web.Request) -> web.Response:
        try:
            wait = float(request.query.get("wait", 0))
        except ValueError:
            return json_response({"ok": False, "error": "wait must be a number"}, 400)
        return await self._answer_envelope(request.match_info["envelope_id"], wait)

    async def _answer_envelope(self, envelope_id: str, wait: float) -> web.Response:
        def settled() -> bool:
            found = self._envelopes.get(envelope_id)
            return found is None or found.settled

        await self._until(settled, wait)
        found = self.envelope(envelope_id)
        if found is None:
            return json_response({"ok": False, "error": "envelope_not_found"}, 404)
        return json_response({"ok": True, "envelope": found})

    async def _ctl_log(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "log": self.log()})
