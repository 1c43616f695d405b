"""Socket Mode's moving parts in the Slack emulator: tickets, the ``/link/`` WebSocket, deliveries, acks.

``SocketLinks`` holds the connections and envelopes and moves them on (redeliveries after the ack
deadline, one connection after another in turn); ``socket_mode.SocketMode`` adds its control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sandbox.slack.clock import Clock
from bot.sandbox.slack.records import APP_ID, JSONDict
from bot.sandbox.slack.socket_records import (
    CONNECTION_TIME,
    DEBUG_HOST,
    DEFAULT_APP_TOKEN,
    ENVELOPE_TYPES,
    Connection,
    Envelope,
    SocketSettings,
)
from bot.sandbox.slack.wire import ApiError, json_response

_POLL: Final = 0.02  # real seconds between looks at the deadlines; cheap, and quick enough for tests


@dataclass
class Sends:
    """Messages decided under the lock, sent after it is released (no await while holding it)."""

    items: list[tuple[web.WebSocketResponse, JSONDict]] = field(default_factory=list)


class SocketLinks:
    """Tickets, connections, envelopes and their log for one emulated app, under the emulator's lock."""

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

    def _plan(self, now: float) -> Sends:
        """Decide every due delivery, redelivery and drop; called with the lock held."""
        sends = Sends()
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
        await send_all(sends)

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
        sends = Sends()
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
                sends.items.append((ws, disconnect_message("too_many_websockets")))
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
        await send_all(sends)
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


def disconnect_message(reason: str) -> JSONDict:
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": DEBUG_HOST}}


async def send_all(sends: Sends) -> None:
    for ws, message in sends.items:
        # A socket that closed meanwhile loses the message, as a real one would; the ack deadline
        # brings the envelope back.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(message))
