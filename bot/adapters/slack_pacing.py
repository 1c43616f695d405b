"""How fast the notifier may talk to Slack: per channel for posts, per workspace for edits.

Slack paces ``chat.postMessage`` at about one message per second per channel and allows
``chat.update`` (Tier 3) about 50 calls a minute per workspace. The notifier stays under both
instead of relying on 429s: a post waits for its channel's gate, an edit for a token of the
workspace's edit bucket, and guard-tick redraws (``Priority.REDRAW``) only take a token while a
reserve is left, so a burst of sparkline redraws can never make a phase change wait. A 429 that
comes anyway blocks just what it names (that channel's posts, or edits) for ``Retry-After``.
The reads the notifier makes — looking a lost post up in ``conversations.history``/``replies``
(Tier 3) and listing channels with ``conversations.list`` (Tier 2) — take tokens of their own
buckets, so they cannot use up Slack's allowance either.

All figures are settings whose defaults are Slack's; tests scale Slack's limits in the emulator
and these by the same factor (``Pacing.scaled``) to run a minute's traffic in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.slack.outgoing import Priority


@dataclass(frozen=True, slots=True)
class Pacing:
    posts_per_second: float = 1.0
    """chat.postMessage per channel, sustained (Slack: about 1/s)."""
    updates_per_minute: float = 45.0
    """chat.update per workspace (Slack Tier 3: about 50/min; 45 leaves headroom)."""
    update_burst: int = 5
    """Edits that may go at once. With a 60 s sliding window on Slack's side, burst plus a
    minute's refill (5 + 45) stays within Tier 3's 50."""
    redraw_reserve: float = 2.0
    """Edit tokens a redraw must leave in the bucket for urgent and normal edits."""
    lookups_per_minute: float = 40.0
    """conversations.history / replies pages (Slack Tier 3: about 50/min each)."""
    listings_per_minute: float = 15.0
    """conversations.list pages (Slack Tier 2: about 20/min)."""
    read_burst: int = 3
    """Lookup or listing pages that may go at once."""

    def scaled(self, factor: float) -> Pacing:
        """The same pacing ``factor`` times faster (tests that scale Slack's limits alike)."""
        return replace(
            self,
            posts_per_second=self.posts_per_second * factor,
            updates_per_minute=self.updates_per_minute * factor,
            lookups_per_minute=self.lookups_per_minute * factor,
            listings_per_minute=self.listings_per_minute * factor,
        )


class Bucket:
    """A token bucket: ``rate`` tokens a second, up to ``burst``; a 429 empties it for a while.

    ``spent_at``: the bucket starts empty at that instant instead of full (see ``Pacer``).
    """

    def __init__(self, rate: float, burst: int, *, spent_at: float | None = None) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst) if spent_at is None else 0.0
        self._at: float | None = spent_at
        self._blocked = 0.0

    def wait(self, now: float, needed: float = 1.0) -> float:
        """Seconds until ``needed`` tokens are there (0: they are, and one is taken)."""
        if now < self._blocked:
            return self._blocked - now
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)
        needed = min(needed, self.burst)
        if self._tokens >= needed:
            self._tokens -= 1.0
            return 0.0
        return (needed - self._tokens) / self.rate

    def blocked(self, retry_after: float, now: float) -> None:
        self._blocked = max(self._blocked, now + retry_after)
        self._tokens = 0.0
        self._at = now


class Pacer:
    """Gates per channel and the workspace's edit bucket, on a monotonic clock given per call."""

    def __init__(self, pacing: Pacing, *, started_at: float | None = None) -> None:
        """``started_at``: this process's start, when its predecessor is taken to have just spent
        all it may send.

        A process cannot know what the one before it sent just before it died (a crash loop
        restarts in a fraction of a second): with ``started_at`` each channel's posts and the
        workspace's edits start with an empty allowance that refills from the start (the first post
        to a channel, and the first edit, wait one interval), so restarts together never send
        faster than one process may. The reads start full: they are the restart's own (finding lost
        posts, listing channels for ``/readyz``), and a crash loop does not repeat them in bursts.
        """
        self.pacing = pacing
        self._started_at = started_at
        self._posts: dict[str, Bucket] = {}
        """Per channel: a bucket of one post (``chat.postMessage`` has no burst to speak of)."""
        self._updates = self._spent(pacing.updates_per_minute / 60.0, pacing.update_burst)
        self.lookups = Bucket(pacing.lookups_per_minute / 60.0, pacing.read_burst)
        """``conversations.history`` / ``replies`` pages."""
        self.listings = Bucket(pacing.listings_per_minute / 60.0, pacing.read_burst)
        """``conversations.list`` pages."""

    def _spent(self, rate: float, burst: int) -> Bucket:
        """A bucket of what this process sends, taken to be spent at its start (the restart rule)."""
        return Bucket(rate, burst, spent_at=self._started_at)

    def _post_gate(self, channel: str) -> Bucket:
        gate = self._posts.get(channel)
        if gate is None:
            gate = self._posts[channel] = self._spent(self.pacing.posts_per_second, 1)
        return gate

    def post_wait(self, channel: str, now: float) -> float:
        """Seconds until a post to ``channel`` may go (0: it may, and the slot is taken)."""
        return self._post_gate(channel).wait(now)

    def update_wait(self, priority: int, now: float) -> float:
        """Seconds until an edit of ``priority`` may go (0: it may, and a token is taken)."""
        needed = 1.0 + (self.pacing.redraw_reserve if priority >= Priority.REDRAW else 0.0)
        return self._updates.wait(now, needed)

    def posts_rate_limited(self, channel: str, retry_after: float, now: float) -> None:
        self._post_gate(channel).blocked(retry_after, now)

    def updates_rate_limited(self, retry_after: float, now: float) -> None:
        self._updates.blocked(retry_after, now)
