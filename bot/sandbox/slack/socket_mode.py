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

What goes in (``POST /_sandbox/socket/envelopes``, used by ``slack_driver.SocketModeDriver``) and
everything that happens (connections, deliveries, redeliveries, acks, drops) is recorded and served
under ``/_sandbox/socket``, so tests can assert exactly-once handling. Times are the emulator's
clock; waits for a test (``wait=``) are real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sandbox.slack_clock import Clock
from bot.sandbox.slack_records import APP_ID, JSONDict
from bot.sandbox.slack_wire import ApiError, json_response, read_payload

SLASH_COMMANDS: Final = "slash_commands"
INTERACTIVE: Final = "interactive"
EVENTS_API: Final = "events_api"
ENVELOPE_TYPES: Final = frozenset({SLASH_COMMANDS, INTERACTIVE, EVENTS_API})
DEFAULT_APP_TOKEN: Final = "xapp-1-A0SHIPTHREAD-sandbox"  # the sandbox's well-known app-level token
DEBUG_HOST: Final = "applink-sandbox"
CONNECTION_TIME: Final = 18_060
"""``approximate_connection_time`` in ``hello``: the seconds Slack means to keep a connection."""

_POLL: Final = 0.02  # real seconds between looks at the deadlines; cheap, and quick enough for tests

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class SocketSettings:
    """How patient the emulator's Socket Mode is; changed by copying (``changed``)."""

    ack_timeout: float = 3.0
    """Emulated seconds an envelope waits for its ack before it is sent again."""
    max_retries: int = 3
    """Redeliveries after the first delivery; then the envelope is dropped."""
    max_connections: int = 10

    def changed(self, patch: Mapping[str, Any]) -> SocketSettings:
        unknown = set(patch) - {"ack_timeout", "max_retries", "max_connections"}
        if unknown:
            raise ValueError(f"unknown Socket Mode settings: {', '.join(sorted(unknown))}")
        settings = SocketSettings(
            ack_timeout=float(patch.get("ack_timeout", self.ack_timeout)),
            max_retries=int(patch.get("max_retries", self.max_retries)),
            max_connections=int(patch.get("max_connections", self.max_connections)),
        )
        if settings.ack_timeout <= 0 or settings.max_retries < 0 or settings.max_connections < 1:
            raise ValueError("ack_timeout must be > 0, max_retries >= 0 and max_connections >= 1")
        return settings

    def to_json(self) -> JSONDict:
        return {
            "ack_timeout": self.ack_timeout,
            "max_retries": self.max_retries,
            "max_connections": self.max_connections,
        }


@dataclass(frozen=True)
class Connection:
    id: str
    opened_at: float
    state: str = "open"
    """``open``; ``draining`` once told to disconnect (no new envelopes); ``closed``."""
    closed_at: float | None = None
    disconnect_reason: str | None = None

    def to_json(self) -> JSONDict:
        return {
            "id": self.id,
            "app_id": APP_ID,
            "state": self.state,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "disconnect_reason": self.disconnect_reason,
        }


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    payload: JSONDict
    accepts_response_payload: bool
    created_at: float
    first_retry_attempt: int = 0
    """A driver may hand in an envelope that is itself a retry (``retry_num``)."""
    first_retry_reason: str = ""
    state: str = "queued"
    """``queued`` (waiting for a connection), ``sent``, ``acked`` or ``dropped``."""
    deadline: float | None = None
    attempts: tuple[JSONDict, ...] = ()
    acks: tuple[JSONDict, ...] = ()

    @property
    def settled(self) -> bool:
        return self.state in ("acked", "dropped")

    def wire(self, retry_attempt: int, retry_reason: str) -> JSONDict:
        """The envelope as it goes over the socket; Slack puts retry fields on events and on retries."""
        message: JSONDict = {
            "envelope_id": self.id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == EVENTS_API or retry_attempt > 0:
            message["retry_attempt"] = retry_attempt
            message["retry_reason"] = retry_reason
        return message

    def to_json(self) -> JSONDict:
        return {
            "envelope_id": self.id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
            "state": self.state,
            "created_at": self.created_at,
            "attempts": list(self.attempts),
            "acks": list(self.acks),
            "ack": self.acks[0] if self.state == "acked" else None,
        }


@dataclass
class _Sends:
    """Messages decided under the lock, sent after it is released (no await while holding it)."""

    items: list[tuple[web.WebSocketResponse, JSONDict]] = field(default_factory=list)


class SocketMode:
    """The Socket Mode side of one emulated app: tickets, connections, envelopes and their log.

    Shares the emulator's clock and lock: the Web API handler (``open_url``) runs under that lock
    already, and tests may read the records from another thread through the public methods.
    """

    def __init__(
        self,
        clock: Clock,
        lock: threading.RLock,
        *,
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        settings: SocketSettings | None = None,
    ) -> None:
        self._clock = clock
        self._lock = lock
        self._app_tokens = set(app_tokens)
        self.settings = settings or SocketSettings()
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._connections: dict[str, Connection] = {}
        self._serial = 0
        self._turn = 0
        self._forget()

    def _forget(self) -> None:
        self._tickets: dict[str, float] = {}
        self._envelopes: dict[str, Envelope] = {}
        self._log: list[JSONDict] = []

    def reset(self) -> None:
        """Forget tickets, envelopes and the log; open connections stay open (they are live sockets)."""
        with self._lock:
            self._forget()
            self._connections = {k: c for k, c in self._connections.items() if c.state != "closed"}

    # -- tokens and the Web API method ---------------------------------------------------------

    def add_app_token(self, token: str) -> None:
        if not token.startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp-")
        with self._lock:
            self._app_tokens.add(token)

    def is_app_token(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and token in self._app_tokens

    def open_url(self, origin: str, now: float) -> JSONDict:
        """``apps.connections.open``'s answer: a WebSocket URL with a fresh single-use ticket."""
        if not origin.startswith(("http://", "https://")):
            raise ApiError("internal_error")
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets[ticket] = now
            self._note("ticket", now)
        base = "ws" + origin.removeprefix("http")  # http → ws, https → wss
        return {"url": f"{base.rstrip('/')}/link/?ticket={ticket}&app_id={APP_ID}"}

    # -- reading (thread-safe) -------------------------------------------------------------------

    def connections(self) -> list[JSONDict]:
        with self._lock:
            return [c.to_json() for c in self._connections.values()]

    def envelopes(self) -> list[JSONDict]:
        with self._lock:
            return [e.to_json() for e in self._envelopes.values()]

    def envelope(self, envelope_id: str) -> JSONDict | None:
        with self._lock:
            found = self._envelopes.get(envelope_id)
            return found.to_json() if found else None

    def log(self) -> list[JSONDict]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    # -- delivering --------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: JSONDict,
        *,
        accepts_response_payload: bool,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Queue an envelope for the app; it goes out on the next look at the queue."""
        if kind not in ENVELOPE_TYPES:
            raise ValueError(f"type must be one of {', '.join(sorted(ENVELOPE_TYPES))}")
        with self._lock:
            now = self._clock.now()
            envelope = Envelope(
                str(uuid.uuid4()),
                kind,
                payload,
                accepts_response_payload,
                now,
                first_retry_attempt=retry_attempt,
                first_retry_reason=retry_reason,
            )
            self._envelopes[envelope.id] = envelope
            self._note("envelope", now, envelope_id=envelope.id, type=kind)
            return envelope.id

    def _pick(self) -> str | None:
        """The next open connection in turn (Slack spreads envelopes over an app's connections)."""
        routable = [c.id for c in self._connections.values() if c.state == "open"]
        if not routable:
            return None
        chosen = routable[self._turn % len(routable)]
        self._turn += 1
        return chosen

    def _plan(self, now: float) -> _Sends:
        """Decide every due delivery, redelivery and drop; called with the lock held."""
        sends = _Sends()
        for envelope in list(self._envelopes.values()):
            if envelope.state == "sent" and envelope.deadline is not None and now >= envelope.deadline:
                if len(envelope.attempts) > self.settings.max_retries:
                    self._envelopes[envelope.id] = replace(envelope, state="dropped", deadline=None)
                    self._note("dropped", now, envelope_id=envelope.id, attempts=len(envelope.attempts))
                    continue
                envelope = replace(envelope, state="queued", deadline=None)
                self._envelopes[envelope.id] = envelope
            if envelope.state != "queued":
                continue
            connection_id = self._pick()
            if connection_id is None:
                continue
            retry = len(envelope.attempts)
            retry_attempt = envelope.first_retry_attempt + retry
            retry_reason = "timeout" if retry else envelope.first_retry_reason
            attempt = {
                "retry_attempt": retry_attempt,
                "retry_reason": retry_reason,
                "connection_id": connection_id,
                "time": now,
            }
            self._envelopes[envelope.id] = replace(
                envelope,
                state="sent",
                deadline=now + self.settings.ack_timeout,
                attempts=(*envelope.attempts, attempt),
            )
            self._note(
                "redelivered" if retry else "delivered",
                now,
                envelope_id=envelope.id,
                connection_id=connection_id,
                retry_attempt=retry_attempt,
            )
            sends.items.append((self._sockets[connection_id], envelope.wire(retry_attempt, retry_reason)))
        return sends

    async def pump(self) -> None:
        """Send whatever is due now."""
        with self._lock:
            sends = self._plan(self._clock.now())
        await _send_all(sends)

    async def watch(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp ``cleanup_ctx``: keep looking at deadlines while the emulator serves."""

        async def loop() -> None:
            while True:
                await self.pump()
                await asyncio.sleep(_POLL)

        task = asyncio.create_task(loop(), name="slack-socket-mode-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close_all(self, app: web.Application) -> None:
        """aiohttp ``on_shutdown``: close the sockets, else the server waits for them to end."""
        with self._lock:
            sockets = list(self._sockets.values())
        for ws in sockets:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def _until(self, done: Callable[[], bool], wait: float) -> None:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            with self._lock:
                if done():
                    return
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(_POLL)

    # -- the WebSocket -----------------------------------------------------------------------------

    async def link(self, request: web.Request) -> web.StreamResponse:
        """``GET /link/?ticket=...&app_id=...``: one Socket Mode connection, for as long as it lasts."""
        ticket = request.query.get("ticket", "")
        with self._lock:
            now = self._clock.now()
            valid = self._tickets.pop(ticket, None) is not None and request.query.get("app_id") == APP_ID
            if not valid:
                self._note("refused", now, reason="invalid_ticket")
                return json_response({"ok": False, "error": "invalid_ticket"}, 401)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sends = _Sends()
        with self._lock:
            now = self._clock.now()
            self._serial += 1
            connection = Connection(f"c{self._serial}", now)
            live = sum(1 for c in self._connections.values() if c.state != "closed")
            self._connections[connection.id] = connection
            self._sockets[connection.id] = ws
            self._note("connected", now, connection_id=connection.id)
            full = live >= self.settings.max_connections
            if full:
                sends.items.append((ws, _disconnect("too_many_websockets")))
                self._connections[connection.id] = replace(
                    connection, state="draining", disconnect_reason="too_many_websockets"
                )
                self._note("disconnect", now, connection_id=connection.id, reason="too_many_websockets")
            else:
                hello = {
                    "type": "hello",
                    "num_connections": live + 1,
                    "debug_info": {
                        "host": DEBUG_HOST,
                        "build_number": 1,
                        "approximate_connection_time": CONNECTION_TIME,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
                sends.items.append((ws, hello))
        await _send_all(sends)
        try:
            if full:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too_many_websockets")
            else:
                await self.pump()
                async for message in ws:
                    if message.type == WSMsgType.TEXT:
                        self._received(connection.id, message.data)
        finally:
            with self._lock:
                now = self._clock.now()
                self._sockets.pop(connection.id, None)
                current = self._connections.get(connection.id, connection)
                self._connections[connection.id] = replace(current, state="closed", closed_at=now)
                self._note("closed", now, connection_id=connection.id, code=ws.close_code)
        return ws

    def _received(self, connection_id: str, text: str) -> None:
        """An ack (or anything else the app sends); the first ack settles the envelope."""
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        with self._lock:
            now = self._clock.now()
            envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
            if not isinstance(message, dict) or not isinstance(envelope_id, str):
                self._note("unreadable", now, connection_id=connection_id, text=text[:200])
                return
            envelope = self._envelopes.get(envelope_id)
            if envelope is None:
                self._note("unknown_ack", now, connection_id=connection_id, envelope_id=envelope_id)
                return
            ack = {
                "time": now,
                "connection_id": connection_id,
                "payload": message.get("payload"),
                "retry_attempt": envelope.attempts[-1]["retry_attempt"] if envelope.attempts else None,
            }
            event = {"acked": "duplicate_ack", "dropped": "late_ack"}.get(envelope.state, "ack")
            state = envelope.state if event != "ack" else "acked"
            self._envelopes[envelope_id] = replace(
                envelope,
                state=state,
                deadline=None if state == "acked" else envelope.deadline,
                acks=(*envelope.acks, ack),
            )
            self._note(event, now, envelope_id=envelope_id, connection_id=connection_id)

    def _note(self, event: str, now: float, **details: Any) -> None:
        self._log.append({"event": event, "time": now, **details})

    # -- control API -------------------------------------------------------------------------------

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
        sends = _Sends()
        with self._lock:
            now = self._clock.now()
            chosen = [c for c in self._connections.values() if c.state == "open" and target in (None, c.id)]
            for connection in chosen:
                self._connections[connection.id] = replace(
                    connection, state="draining", disconnect_reason=reason
                )
                sends.items.append((self._sockets[connection.id], _disconnect(reason)))
                self._note(
                    "disconnect" if notify else "hang_up", now, connection_id=connection.id, reason=reason
                )
        if notify:
            await _send_all(sends)
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


def _disconnect(reason: str) -> JSONDict:
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": DEBUG_HOST}}


async def _send_all(sends: _Sends) -> None:
    for ws, message in sends.items:
        # A socket that closed meanwhile loses the message, as a real one would; the ack deadline
        # brings the envelope back.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(message))
