"""What can happen to a deployment: the events the state machine consumes.

Events are the only input of ``bot.domain.transitions.apply``. The engine turns everything it learns
(a click in Slack, a Jenkins poll, a rollout status, a guard tick, a timer) into one of these frozen
values, and the store keeps them as ``(type name, JSON payload)`` rows, which is why the codec below
lives next to the classes: one closed vocabulary for the table, the store, the audit log and the chat.

Events say *what happened*, never *what to do*: the maths that decides them (how many approvals make
a stage, whether a guard window breached) lives elsewhere, and the transition table decides what
follows from them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeAlias

from bot.domain.measurements import TickOutcome

# ---------------------------------------------------------------------------------------------------
# Approvals


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalsRequired:
    """The environment's policy asks for approvals: open the first stage."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalsSkipped:
    """No approval is needed: the policy asks for none, or the break-glass path was taken.

    ``emergency_reason`` is set for ``--emergency`` (it is kept on the deployment and audited).
    """

    emergency_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRecorded:
    """``user`` approved stage ``stage``; more approvals are still needed overall.

    ``stage_complete`` is True when this vote satisfied the stage and the next one opens. The
    engine counts votes (``bot.domain.approvals``); this event only records its conclusion.
    """

    user: str
    stage: int
    stage_complete: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalsComplete:
    """``user``'s approval satisfied the last stage: the deployment may go ahead."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """``user`` rejected the deployment, giving ``reason``."""

    user: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalExpired:
    """The approvals did not arrive before the policy's deadline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """``user`` cancelled the deployment before anything was deployed."""

    user: str
    reason: str | None = None


# ---------------------------------------------------------------------------------------------------
# Build


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildQueued:
    """Jenkins accepted the build request and queued it as item ``queue_item``."""

    queue_item: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildStarted:
    """The queued build left the queue and runs as build ``number``."""

    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildSucceeded:
    """The build finished with SUCCESS (``number`` is None when it was never seen running)."""

    number: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildSkipped:
    """No build is needed: the playbook has no job, or the artifact already exists."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRetried:
    """The build was lost for a reason worth retrying (queue item cancelled, agent gone).

    The engine decides whether a failure is worth a new attempt; this starts attempt + 1.
    """

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildFailed:
    """The build failed (FAILURE, UNSTABLE, ABORTED, or could not be triggered at all)."""

    reason: str


# ---------------------------------------------------------------------------------------------------
# Rollout


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutStarted:
    """The cluster accepted the change for ``step`` (the Deployment was patched)."""

    step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutCompleted:
    """Every replica of ``step`` is updated and available: the guard may start watching."""

    step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutFailed:
    """The rollout started but did not complete (progress deadline exceeded, pods crash-looping)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployRefused:
    """The cluster refused the first change (forbidden, invalid, not found): nothing was changed.

    Only meaningful at step 0; once a step is live a failure must roll back (``RolloutFailed``).
    """

    reason: str


# ---------------------------------------------------------------------------------------------------
# QoS guard


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardTicked:
    """One guard tick was evaluated with ``outcome``; the window is still open."""

    outcome: TickOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardPassed:
    """The last guard window passed clean (or a person accepted a held one): done."""

    user: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardBreached:
    """The guard window breached with ``on_breach: rollback``: restore the previous version."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardHeld:
    """The guard cannot decide alone: it stays on the new version, paused, until a person acts.

    Sent for an inconclusive window, and for a breach with ``on_breach: lock`` (``lock`` True:
    the environment is locked as well).
    """

    reason: str
    lock: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Promoted:
    """Go on to the next step: the next canary weight, or the blue-green switch.

    ``user`` is None when the guard promoted by itself. ``final`` is True for the canary's last
    promotion, which moves all traffic to the new version (the main Deployment is updated).
    """

    user: str | None = None
    final: bool = False


# ---------------------------------------------------------------------------------------------------
# Rollback


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackRequested:
    """A person (``user``) or the engine (None) asked to restore ``to_version`` or the previous one."""

    user: str | None = None
    reason: str
    to_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackCompleted:
    """The rollback finished: ``version`` is live again."""

    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackFailed:
    """The rollback itself failed: a human must look."""

    reason: str


Event: TypeAlias = (
    ApprovalsRequired
    | ApprovalsSkipped
    | ApprovalRecorded
    | ApprovalsComplete
    | Rejected
    | ApprovalExpired
    | Cancelled
    | BuildQueued
    | BuildStarted
    | BuildSucceeded
    | BuildSkipped
    | BuildRetried
    | BuildFailed
    | RolloutStarted
    | RolloutCompleted
    | RolloutFailed
    | DeployRefused
    | GuardTicked
    | GuardPassed
    | GuardBreached
    | GuardHeld
    | Promoted
    | RollbackRequested
    | RollbackCompleted
    | RollbackFailed
)
"""Any event of a deployment."""

EVENT_TYPES: tuple[type[Event], ...] = (
    ApprovalsRequired,
    ApprovalsSkipped,
    ApprovalRecorded,
    ApprovalsComplete,
    Rejected,
    ApprovalExpired,
    Cancelled,
    BuildQueued,
    BuildStarted,
    BuildSucceeded,
    BuildSkipped,
    BuildRetried,
    BuildFailed,
    RolloutStarted,
    RolloutCompleted,
    RolloutFailed,
    DeployRefused,
    GuardTicked,
    GuardPassed,
    GuardBreached,
    GuardHeld,
    Promoted,
    RollbackRequested,
    RollbackCompleted,
    RollbackFailed,
)
"""Every event class, in the order of the lifecycle."""

EVENTS_BY_NAME: Mapping[str, type[Event]] = types.MappingProxyType({t.__name__: t for t in EVENT_TYPES})
"""Event classes by the type name the store persists."""

# ---------------------------------------------------------------------------------------------------
# Codec: (type name, JSON payload) for the store

JSONScalar: TypeAlias = str | int | float | bool | None
"""The JSON values an event payload holds (events are flat on purpose)."""


class EventPayloadError(ValueError):
    """A stored event could not be decoded: unknown type, missing, unknown or mistyped field."""


def event_type_name(event: Event) -> str:
    """The name the store persists for ``event``'s type (the class name, stable on purpose)."""
    return type(event).__name__


def event_to_payload(event: Event) -> dict[str, JSONScalar]:
    """``event``'s fields as a JSON object: enums as their values, datetimes as ISO 8601."""
    payload: dict[str, JSONScalar] = {}
    for field in fields(event):
        value = getattr(event, field.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        payload[field.name] = value
    return payload


def event_from_payload(type_name: str, payload: Mapping[str, object]) -> Event:
    """The event stored as ``(type_name, payload)``; the inverse of ``event_to_payload``.

    Strict on purpose: a row that does not decode exactly is a bug or a bad migration, and
    guessing would replay a different history.
    """
    cls = EVENTS_BY_NAME.get(type_name)
    if cls is None:
        raise EventPayloadError(f"unknown event type {type_name!r}")
    hints = typing.get_type_hints(cls)
    declared = fields(cls)
    unknown = sorted(set(payload) - {f.name for f in declared})
    if unknown:
        raise EventPayloadError(f"{type_name}: unknown field(s) {', '.join(unknown)}")
    missing = [f.name for f in declared if f.name not in payload and f.default is MISSING]
    if missing:
        raise EventPayloadError(f"{type_name}: missing field(s) {', '.join(missing)}")
    kwargs: dict[str, Any] = {
        f.name: _decode(payload[f.name], hints[f.name], f"{type_name}.{f.name}")
        for f in declared
        if f.name in payload
    }
    return cls(**kwargs)


def _decode(value: object, hint: object, where: str) -> object:
    """``value`` from JSON as the annotated type ``hint`` (the few types events use)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(value, option, where)
            except EventPayloadError:
                continue
        raise EventPayloadError(f"{where}: {value!r} is not a {hint}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        # bool is an int in Python but not in JSON: refuse true/false where a number is meant.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is datetime:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError as exc:
                raise EventPayloadError(f"{where}: {value!r} is not an ISO 8601 datetime") from exc
    elif isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError as exc:
            raise EventPayloadError(f"{where}: {value!r} is not one of {[m.value for m in hint]}") from exc
    else:
        raise EventPayloadError(f"{where}: cannot decode fields of type {hint}")
    name = getattr(hint, "__name__", hint)
    raise EventPayloadError(f"{where}: expected {name}, got {value!r}")
