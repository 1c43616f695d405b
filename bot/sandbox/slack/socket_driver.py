"""The Slack driver over Socket Mode: the same requests as ``SlackDriver``, each sent as an envelope.

Split from ``driver`` because it adds a transport (the emulator's envelope queue and its acks) and
the steering of the app's connections, not new requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from bot.sandbox.slack.driver import JSON_TYPE, DriverResponse, SlackDriver
from bot.sandbox.slack.socket_records import INTERACTIVE, SLASH_COMMANDS

JSONDict = dict[str, Any]


class SocketModeDriver(SlackDriver):
    """Plays Slack towards an app connected over Socket Mode: each request travels as an envelope.

    The requests are ``SlackDriver``'s, built there once, so a test switches transports by
    switching drivers. Each is handed to the emulator (``POST /_sandbox/socket/envelopes``), which
    sends it over one of the app's WebSockets and again until it is acked; the call waits up to
    ``ack_wait`` real seconds for the ack. The answer is 200 with the ack's ``payload`` as its body
    (what Bolt's ``ack(...)`` said, e.g. a slash command's reply or a view's ``response_action``),
    or 408 when no ack came in time (still unacked, or dropped after the retries); ``envelope`` is
    the emulator's record either way. Socket Mode carries no signature, so there is no secret.
    """

    RESPONSE_PAYLOAD_INTERACTIONS: Final = frozenset({"view_submission", "block_suggestion"})
    """Interactions whose ack may carry an answer (Slack's ``accepts_response_payload``)."""

    def __init__(
        self,
        emulator_url: str,
        *,
        ack_wait: float = 5.0,
        verification_token: str = "sandbox-verification-token",  # noqa: S107 -- Slack's legacy field, unused by Bolt
        timeout: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            f"{emulator_url.rstrip('/')}/_sandbox/socket/envelopes",
            "socket-mode-signs-nothing",  # SignatureVerifier wants a secret; ``send`` never signs here
            emulator_url,
            verification_token=verification_token,
            timeout=max(timeout, ack_wait + 5.0),
            wall_clock=wall_clock,
        )
        self.ack_wait = ack_wait

    async def send(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        sent: JSONDict | None = None,
    ) -> DriverResponse:
        raise TypeError("Socket Mode carries envelopes, not signed HTTP requests (url_verification included)")

    async def _deliver(
        self, kind: str, sent: JSONDict, retry_num: int | None, retry_reason: str | None
    ) -> DriverResponse:
        accepts = kind == SLASH_COMMANDS or (
            kind == INTERACTIVE and sent.get("type") in self.RESPONSE_PAYLOAD_INTERACTIONS
        )
        answer = await self.emulator.post(
            "/_sandbox/socket/envelopes",
            {
                "type": kind,
                "payload": sent,
                "accepts_response_payload": accepts,
                "retry_attempt": retry_num or 0,
                "retry_reason": retry_reason or ("timeout" if retry_num else ""),
                "wait": self.ack_wait,
            },
        )
        envelope: JSONDict = answer["envelope"]
        ack = envelope.get("ack")
        if ack is None:
            return DriverResponse(408, "", {}, dict(sent), envelope)
        payload = ack.get("payload")
        body = "" if payload is None else json.dumps(payload)
        return DriverResponse(200, body, {"Content-Type": JSON_TYPE} if body else {}, dict(sent), envelope)

    # -- steering the connections ------------------------------------------------------------------

    async def disconnect(
        self,
        reason: str = "refresh_requested",
        *,
        connection_id: str | None = None,
        close: bool = False,
        notify: bool = True,
    ) -> list[str]:
        """Send Slack's ``disconnect`` to one connection or every open one; returns their ids.

        ``close`` hangs up after the message; ``notify=False`` hangs up without it.
        """
        request: JSONDict = {"reason": reason, "close": close, "notify": notify}
        if connection_id is not None:
            request["connection_id"] = connection_id
        answer = await self.emulator.post("/_sandbox/socket/disconnect", request)
        return [str(c) for c in answer["connections"]]

    async def connections(self, *, open_count: int | None = None, wait: float = 0.0) -> list[JSONDict]:
        """The app's connections; with ``open_count``, first wait up to ``wait`` s for that many open."""
        query = {} if open_count is None else {"open": str(open_count), "wait": str(wait)}
        return list((await self.emulator.get("/_sandbox/socket/connections", **query))["connections"])

    async def envelopes(self) -> list[JSONDict]:
        return list((await self.emulator.get("/_sandbox/socket/envelopes"))["envelopes"])

    async def log(self) -> list[JSONDict]:
        """Every ticket, connection, delivery, redelivery, ack, drop and disconnect, in order."""
        return list((await self.emulator.get("/_sandbox/socket/log"))["log"])
