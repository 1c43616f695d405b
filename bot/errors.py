"""Every error Shipthread raises on purpose, in one tree.

::

    ShipthreadError
    ├── ConfigError            bad config or playbook (file, line, field in the message); exit 1
    │   ├── ConfigProblems     one or more ``path:line: field: message`` lines
    │   └── StartupError       [bot.wiring] what an operator must fix before serve can start
    ├── TransientError         worth retrying: carries ``retry_in`` seconds (timeouts, 5xx, 429, 408)
    │   ├── Conflict           409: the object changed between our read and our write
    │   ├── StaleDeployment    the deployment changed since it was read: reload it and decide again
    │   ├── Busy               another deployment of the service holds the environment
    │   └── WorkspaceRefused   [bot.adapters.slack_wire] Slack refused the token or the app
    ├── PermanentError         retrying will not help (401/403, bad request, failed build)
    │   ├── NotFound           the thing asked for does not exist (404)
    │   │   ├── UnknownService       no playbook for the service
    │   │   ├── UnknownEnvironment   the playbook defines no such environment
    │   │   └── UnknownDeployment    the store has no such deployment
    │   ├── DuplicateDeployment      a deployment with this id is already stored
    │   └── SlackRefused       [bot.adapters.slack_wire] Slack refused this call for good
    ├── InvalidTransition      an event the deployment's phase does not accept (nothing changed)
    │   └── InvalidWatchTransition   the same for a post-rollback guard watch's status
    ├── LeaseHeld              another live engine holds the database
    ├── LeaseLost              this engine's lease was taken over
    └── RateLimited            [bot.adapters.slack_wire] Slack's 429: wait its turn, never retry in place

A ``[module]`` names where a class lives when it is not here: Slack's own answers and the server's
start-up refusal are kept beside the code that reads them (``tests/test_errors.py`` checks that
the drawing holds every subclass of ``ShipthreadError`` in ``bot``, each under its parent).

Adapters translate their library's exceptions into this tree at the edge with ``raise ... from exc``
(``bot.adapters.http_errors`` holds the one HTTP status mapping), so the engine decides "retry or give
up" without knowing which library failed. The pure domain raises from this tree too, which is why this
module imports nothing but the standard library, and nothing of ours.

Messages never contain secrets; they may contain user or CI text, so escape them before Slack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ShipthreadError(Exception):
    """Root of every error Shipthread raises on purpose."""


# ---------------------------------------------------------------------------------------------------
# Configuration


class ConfigError(ShipthreadError):
    """A config file or playbook is wrong. The message names file, line and field."""


MAX_PROBLEM_CHARS = 500
"""A message quotes the value it refuses: a 100 KB value must not become a 100 KB line."""


class ConfigProblems(ConfigError):
    """One or more mistakes in config files or playbooks, each a ``path:line: field: message`` line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(
            p if len(p) <= MAX_PROBLEM_CHARS else p[: MAX_PROBLEM_CHARS - 1] + "…" for p in problems
        )
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------------
# Worth retrying


class TransientError(ShipthreadError):
    """A failure that may go away: retry after ``retry_in`` seconds."""

    def __init__(self, message: str, *, retry_in: float = 1.0) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class Conflict(TransientError):
    """409: the object changed between our read and our write; read it again and re-apply."""

    def __init__(self, message: str, *, retry_in: float = 0.0) -> None:
        super().__init__(message, retry_in=retry_in)


class StaleDeployment(TransientError):
    """Someone else changed the deployment since it was read: reload it and decide again."""

    def __init__(self, deployment_id: str, expected_version_no: int) -> None:
        super().__init__(
            f"deployment {deployment_id} changed since version {expected_version_no} was read",
            retry_in=0.0,
        )
        self.deployment_id = deployment_id
        self.expected_version_no = expected_version_no


class Busy(TransientError):
    """Another deployment of the same service already holds the environment: wait for it to end.

    At most one deployment per (service, env) is past ``requested`` and not terminal; the engine
    keeps further requests queued as ``requested`` and tries again once the active one is done.
    """

    def __init__(self, service: str, env: str, deployment_id: str) -> None:
        super().__init__(f"{service} already has an active deployment in {env}", retry_in=5.0)
        self.service = service
        self.env = env
        self.deployment_id = deployment_id


# ---------------------------------------------------------------------------------------------------
# Not worth retrying


class PermanentError(ShipthreadError):
    """A failure that retrying will not fix."""


class NotFound(PermanentError):
    """The job, build, Deployment, deployment or lock asked for does not exist."""


class UnknownService(NotFound, LookupError):
    """No playbook for the service (a ``LookupError`` too, as a missing key is)."""


class UnknownEnvironment(NotFound, LookupError):
    """A playbook was asked about an environment it does not define."""

    def __init__(self, service: str, env: str, known: Sequence[str]) -> None:
        self.service, self.env = service, env
        super().__init__(f"{service} has no environment {env!r} (known: {', '.join(known)})")


class UnknownDeployment(NotFound):
    """An event or effect for a deployment the store does not have."""


class DuplicateDeployment(PermanentError):
    """A deployment with this id is already stored (ids come from the caller, who draws another)."""


# ---------------------------------------------------------------------------------------------------
# The engine's own refusals


class InvalidTransition(ShipthreadError):
    """An event that the deployment's phase does not accept; the deployment is unchanged.

    ``bot.domain.transitions`` builds it (the message says which events the phase accepts).
    """

    def __init__(
        self, message: str, *, deployment_id: str, phase: str, event_type: type, why: str | None
    ) -> None:
        super().__init__(message)
        self.deployment_id = deployment_id
        self.phase = phase
        self.event_type = event_type
        self.why = why


class InvalidWatchTransition(InvalidTransition):
    """An event that a post-rollback guard watch's status does not accept; the watch is unchanged.

    ``bot.domain.watch_transitions`` builds it; ``phase`` is the watch's status.
    """

    def __init__(
        self, message: str, *, watch_id: int | None, deployment_id: str, status: str, event_type: type
    ) -> None:
        super().__init__(message, deployment_id=deployment_id, phase=status, event_type=event_type, why=None)
        self.watch_id = watch_id
        self.status = status


class LeaseHeld(ShipthreadError):
    """Another live engine holds the database: this one must not run (the message names it)."""


class LeaseLost(ShipthreadError):
    """The engine's lease was taken over (it missed its heartbeats): it must stop working."""
