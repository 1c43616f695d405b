"""The retry policy of every adapter, declared once with tenacity.

Exponential backoff with jitter, bounded both in attempts and in total time, retrying only
``TransientError`` (a ``PermanentError`` fails at once), honouring the error's own ``retry_in``
(e.g. Retry-After) when that is longer, and logging each attempt. No hand-written retry loops.
Every retried attempt and every final failure is also told to the observers installed with
``observe`` (``/metrics`` counts them there, where they happen), by the system the call went to,
which each call site names (``System``: a metric label, so one of a fixed few).
Also the two facts every adapter's error mapping needs to tell transient from permanent: the delay a
``Retry-After`` header asks for, and whether a failure is a certificate the bot does not trust.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from bot.errors import TransientError

T = TypeVar("T")
log = logging.getLogger("shipthread.retry")


class RetryObserver(Protocol):
    """Told of the adapters' retries and failures (``system``: jenkins, kubernetes, prometheus, slack)."""

    def adapter_retried(self, system: str, what: str, error: BaseException) -> None: ...

    def adapter_failed(self, system: str, what: str, error: BaseException) -> None: ...


_observers: list[RetryObserver] = []
"""Process-wide, as logging's handlers are: every adapter retries through ``retry``."""


def observe(observer: RetryObserver) -> Callable[[], None]:
    """Tell ``observer`` of every retry and final failure from now on; returns its removal."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


System = Literal["jenkins", "kubernetes", "prometheus", "slack"]
"""The systems an adapter calls, as the retry metrics label them (never free text)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one adapter tries before it gives up with the last TransientError."""

    attempts: int = 4
    total_s: float = 20.0
    initial_s: float = 0.2
    max_wait_s: float = 5.0
    jitter_s: float = 0.2


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
    )

    def wait(state: RetryCallState) -> float:
        delay = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError):
            delay = max(delay, min(exc.retry_in, policy.max_wait_s))
        return float(delay)

    return wait


def _log_attempt(what: str, system: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, state.attempt_number, exc, wait)
        if exc is not None:
            for observer in list(_observers):
                observer.adapter_retried(system, what, exc)

    return before_sleep


async def retry(policy: RetryPolicy, what: str, call: Callable[[], Awaitable[T]], *, system: System) -> T:
    """Await ``call()`` until it succeeds, raises a non-transient error, or the policy is spent.

    When the policy is spent the last ``TransientError`` is re-raised unchanged. ``system`` is what
    the observers are told the call went to.
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_s),
        wait=_wait(policy),
        retry=retry_if_exception_type(TransientError),
        before_sleep=_log_attempt(what, system),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except Exception as exc:  # told, then raised unchanged: the caller decides what a failure means
        for observer in list(_observers):
            observer.adapter_failed(system, what, exc)
        raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc``, if that is what it is.

    Client libraries wrap it several times (urllib3's MaxRetryError keeps it as ``reason``, requests
    and python-jenkins chain it), and it must not pass for a timeout or an unreachable host: no retry
    makes an untrusted certificate trusted.
    """
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None
