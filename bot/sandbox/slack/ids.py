"""Identifiers, timestamps and cursors that look like Slack's, for the emulator.

Message ``ts`` values must be unique and strictly increasing even when the clock stands still,
and pagination cursors must round-trip; clients parse both, so they are made in one place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from decimal import Decimal, InvalidOperation

from bot.sandbox.slack.wire import ApiError


def decimal_ts(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(value) from None
    if not number.is_finite():
        raise ValueError(value)
    return number


class Ids:
    """Identifiers that look like Slack's, unique and reproducible within one emulator."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last_ts = 0

    def next(self, prefix: str, width: int = 9) -> str:
        n = next(self._counter)
        digits = _base36(n + 36**5).rjust(width - len(prefix), "0")
        return prefix + digits

    def short(self) -> str:
        n = next(self._counter)
        return (
            base64.b32encode(hashlib.sha1(str(n).encode(), usedforsecurity=False).digest())
            .decode()[:5]
            .rstrip("=")
            .lower()
        )

    def hex(self, length: int = 8) -> str:
        return hashlib.sha1(str(next(self._counter)).encode(), usedforsecurity=False).hexdigest()[:length]

    def ts(self, now: float) -> str:
        """A message ts: seconds.micro, strictly increasing even when the clock stands still."""
        micros = max(int(now * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _base36(n: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, rem = divmod(n, 36)
        out = alphabet[rem] + out
    return out or "0"


def encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def decode_cursor(cursor: str) -> Decimal:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if not raw.startswith("next_ts:"):
        raise ApiError("invalid_cursor")
    try:
        return decimal_ts(raw.removeprefix("next_ts:"))
    except ValueError:
        raise ApiError("invalid_cursor") from None
