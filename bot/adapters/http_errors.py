"""The one mapping from an HTTP status to Shipthread's error tree, for every adapter that speaks HTTP.

Jenkins, the Kubernetes API and Prometheus all answer over HTTP, and the engine's only question of a
failure is "retry or give up" (``bot.errors``). The answer depends on the status alone, so it is
written once, here:

=========================  ====================  ==========================================
status                     error                 why
=========================  ====================  ==========================================
408, 429, 5xx              ``TransientError``    the server is slow, busy or broken for now
409                        ``Conflict``          the object changed under us: read, re-apply
404                        ``NotFound``          the job, build or object is not there
401, 403, 400, 422, other  ``PermanentError``    credentials, permissions or the request
=========================  ====================  ==========================================

One adapter reads a status differently and says so where it does: Jenkins answers 409 to a build
of a disabled job ("is not buildable"), which ``bot.adapters.jenkins`` makes a ``PermanentError``.

A transient error waits what the ``Retry-After`` header asks (seconds or an HTTP date), else 1 s; a
conflict is worth retrying at once. Each adapter writes its own message (naming its server and what it
was doing); the class comes from here.
"""

from __future__ import annotations

from bot.adapters.retrying import retry_after
from bot.errors import Conflict, NotFound, PermanentError, ShipthreadError, TransientError

_RETRY_SOON = frozenset({408, 429})
"""Request Timeout and Too Many Requests: the two 4xx that say "later", not "never"."""


def error_class(status: int) -> type[ShipthreadError]:
    """Which error of the tree an answer with ``status`` is (see the module's table)."""
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status in _RETRY_SOON or status >= 500:
        return TransientError
    return PermanentError


def is_transient(status: int) -> bool:
    """Whether retrying an answer with ``status`` may help."""
    return issubclass(error_class(status), TransientError)


def error_for_status(status: int, message: str, retry_after_header: str | None = None) -> ShipthreadError:
    """The error for an answer with ``status``: ``message`` as its text, retry delay from the header."""
    kind = error_class(status)
    if kind is Conflict:
        return Conflict(message, retry_in=retry_after(retry_after_header, default=0.0))
    if kind is TransientError:
        return TransientError(message, retry_in=retry_after(retry_after_header))
    return kind(message)
