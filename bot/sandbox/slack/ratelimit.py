"""Slack's rate-limit tiers and the limiter that enforces them in the emulator.

Real Slack answers 429 with ``Retry-After`` per method tier and paces chat.postMessage per
channel; clients' retry handling is only tested if the emulator does the same. The figures live
here, apart from the handlers, so a test can read and change them through one value.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bot.sandbox.slack.records import JSONDict

TIERS: Final[Mapping[str, str]] = {
    # Slack's published tiers (docs.slack.dev/reference/methods; the Java SDK's MethodsRateLimits).
    "api.test": "special",
    "apps.connections.open": "tier1",
    "auth.test": "special",
    "chat.postMessage": "special",
    "chat.getPermalink": "special",
    "chat.update": "tier3",
    "chat.delete": "tier3",
    "chat.postEphemeral": "tier4",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
    "conversations.info": "tier3",
    "conversations.list": "tier2",
    "files.getUploadURLExternal": "tier4",
    "files.completeUploadExternal": "tier4",
    "reactions.add": "tier3",
    "users.info": "tier4",
    "users.lookupByEmail": "tier3",
    "usergroups.list": "tier2",
    "usergroups.users.list": "tier2",
    "views.open": "tier4",
    "views.push": "tier4",
    "views.update": "tier4",
    "views.publish": "tier4",
}

DEFAULT_PER_MINUTE: Final[Mapping[str, int]] = {
    # Slack's Tier 1 is "1+ per minute" where "a small amount of burst behavior is tolerated"; a
    # Socket Mode client opens a URL at start and again on every disconnect, so a strict 1 would hold
    # a reconnecting client (a refresh, a test's disconnects) back for a whole minute.
    "tier1": 5,
    "tier2": 20,
    "tier3": 50,
    "tier4": 100,
    # "hundreds of requests per minute" for auth.test and getPermalink; chat.postMessage's
    # workspace-wide cap ("several hundred per minute") on top of its per-channel pace.
    "special": 600,
}


@dataclass(frozen=True)
class RateLimits:
    """What the emulator allows per minute and per channel; changed by copying."""

    enabled: bool = True
    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PER_MINUTE))
    methods: Mapping[str, int] = field(default_factory=dict)
    """Per-method overrides of the tier figure, calls per minute."""
    post_per_second: float = 1.0
    """chat.postMessage to one channel: sustained pace."""
    post_burst: int = 4
    """chat.postMessage to one channel: how many may go at once before the pace applies."""

    def limit_for(self, method: str) -> int | None:
        if method in self.methods:
            return self.methods[method]
        tier = TIERS.get(method)
        return self.per_minute.get(tier) if tier else None

    def changed(self, patch: Mapping[str, Any]) -> RateLimits:
        """A copy with the control API's changes; raises ``ValueError`` on a bad figure."""
        unknown = set(patch) - {"enabled", "per_minute", "tiers", "methods", "post_per_second", "post_burst"}
        if unknown:
            raise ValueError(f"unknown rate limit settings: {', '.join(sorted(unknown))}")
        per_minute = dict(self.per_minute)
        for name, value in {**patch.get("per_minute", {}), **patch.get("tiers", {})}.items():
            key = name if str(name).startswith(("tier", "special")) else f"tier{name}"
            per_minute[key] = _positive_int(value, f"tier {name}")
        methods = dict(self.methods)
        for name, value in patch.get("methods", {}).items():
            methods[str(name)] = _positive_int(value, f"method {name}")
        post_per_second = float(patch.get("post_per_second", self.post_per_second))
        post_burst = _positive_int(patch.get("post_burst", self.post_burst), "post_burst")
        if post_per_second <= 0:
            raise ValueError("post_per_second must be > 0")
        return RateLimits(
            enabled=bool(patch.get("enabled", self.enabled)),
            per_minute=per_minute,
            methods=methods,
            post_per_second=post_per_second,
            post_burst=post_burst,
        )

    def to_json(self) -> JSONDict:
        return {
            "enabled": self.enabled,
            "per_minute": dict(self.per_minute),
            "methods": dict(self.methods),
            "post_per_second": self.post_per_second,
            "post_burst": self.post_burst,
        }


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number") from None
    if number < 1:
        raise ValueError(f"{what} must be at least 1")
    return number


class RateLimiter:
    """Sliding one-minute windows per method, and a token bucket per channel for chat.postMessage."""

    WINDOW: Final = 60.0

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._calls: dict[str, deque[float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # channel → (tokens, at)

    def reset(self, limits: RateLimits | None = None) -> None:
        if limits is not None:
            self.limits = limits
        self._calls.clear()
        self._buckets.clear()

    def method_wait(self, method: str, now: float) -> int:
        """Seconds to wait before ``method`` may be called (0: go, and the call is counted)."""
        limit = self.limits.limit_for(method)
        if not self.limits.enabled or limit is None:
            return 0
        window = self._calls.setdefault(method, deque())
        while window and window[0] <= now - self.WINDOW:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + self.WINDOW - now))
        window.append(now)
        return 0

    def post_wait(self, channel: str, now: float) -> int:
        """Seconds to wait before the next chat.postMessage to ``channel`` (0: go, and it is counted)."""
        if not self.limits.enabled:
            return 0
        rate, burst = self.limits.post_per_second, float(self.limits.post_burst)
        tokens, at = self._buckets.get(channel, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self._buckets[channel] = (tokens - 1.0, now)
        return 0
