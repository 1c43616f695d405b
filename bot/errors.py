"""The short tree of errors Shipthread raises outside the pure domain.

::

    ShipthreadError
    ├── ConfigError            bad config or playbook (file, line, field in the message); exit 1
    ├── TransientError         worth retrying: carries ``retry_in`` seconds (timeouts, 5xx, 429, 409)
    └── PermanentError         retrying will not help (404, 401/403, bad request, failed build)
        └── NotFound           the thing asked for does not exist

Adapters translate their library's exceptions into this tree at the edge with ``raise ... from exc``,
so the engine decides "retry or give up" without knowing which library failed.
Messages never contain secrets; they may contain user or CI text, so escape them before Slack.
"""

from __future__ import annotations


class ShipthreadError(Exception):
    """Root of every error Shipthread raises on purpose."""


class ConfigError(ShipthreadError):
    """A config file or playbook is wrong. The message names file, line and field."""


class TransientError(ShipthreadError):
    """A failure that may go away: retry after ``retry_in`` seconds."""

    def __init__(self, message: str, *, retry_in: float = 1.0) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class PermanentError(ShipthreadError):
    """A failure that retrying will not fix."""


class NotFound(PermanentError):
    """The job, build, Deployment, deployment or lock asked for does not exist."""
