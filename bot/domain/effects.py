"""What the engine must do after a transition: side effects as data.

The state machine never acts; it returns these values next to the new deployment, and the engine
performs them through its ports after the new state is stored. Each effect has an idempotency
``key`` computed from the deployment id, what it does and the step or attempt it belongs to, never
from time or chance: re-applying the same event to the same deployment gives the same keys, so a
retry, a duplicate Slack delivery or a restart can look the key up and never run an effect twice.
Adapters pass the key on where the outside system can carry it (a Jenkins build parameter, an
annotation on the Kubernetes object) so they can find their own earlier work after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from bot.domain.events import (
    Event,
    EventPayloadError,
    event_from_payload,
    event_to_payload,
    event_type_name,
)


def idempotency_key(deployment_id: str, what: str, *parts: int | str) -> str:
    """``d1:build:2``: the deployment, what the effect does, and the step or attempt it is for."""
    return ":".join((deployment_id, what, *(str(p) for p in parts)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify:
    """Tell the deployment's thread what happened: update the parent card, reply with the stage.

    Carries the event so the chat can say who did it and why; it renders the rest from the stored
    deployment. ``version_no`` is the deployment's new version, so each transition notifies once.
    """

    deployment_id: str
    version_no: int
    event: Event

    @property
    def kind(self) -> str:
        """What happened, as the event's type name (the same word the store and audit log use)."""
        return event_type_name(self.event)

    @property
    def key(self) -> str:
        """One notification per stored version of the deployment."""
        return idempotency_key(self.deployment_id, "notify", self.version_no)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestApprovals:
    """Ask the approvers of stage ``stage`` (mention them, post Approve / Reject buttons)."""

    deployment_id: str
    stage: int

    @property
    def key(self) -> str:
        """One request per approval stage."""
        return idempotency_key(self.deployment_id, "approvals", self.stage)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleApprovalExpiry:
    """Schedule ``ApprovalExpired`` for the policy's deadline (the scheduler knows the deadline)."""

    deployment_id: str

    @property
    def key(self) -> str:
        """One deadline per deployment."""
        return idempotency_key(self.deployment_id, "approval-expiry")


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerBuild:
    """Start the playbook's Jenkins job for the version (attempt ``attempt``)."""

    deployment_id: str
    attempt: int

    @property
    def key(self) -> str:
        """One build per attempt: a retry of the effect finds its build, a new attempt does not."""
        return idempotency_key(self.deployment_id, "build", self.attempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortBuild:
    """Stop the build of ``attempt``: cancel queue item ``queue_item`` or stop build ``number``.

    Both may be None when the build was triggered but not yet seen; the adapter then finds it by
    the ``TriggerBuild`` key it carries.
    """

    deployment_id: str
    attempt: int
    queue_item: int | None
    number: int | None

    @property
    def key(self) -> str:
        """One abort per build attempt."""
        return idempotency_key(self.deployment_id, "abort-build", self.attempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRollout:
    """Roll out step ``step``: set the image (rolling), the next canary weight, or the new colour."""

    deployment_id: str
    step: int

    @property
    def key(self) -> str:
        """One rollout per step."""
        return idempotency_key(self.deployment_id, "rollout", self.step)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromoteCanary:
    """Promote the canary: the main Deployment gets the new version (step ``step``)."""

    deployment_id: str
    step: int

    @property
    def key(self) -> str:
        """One promotion per step."""
        return idempotency_key(self.deployment_id, "promote", self.step)


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchTraffic:
    """Blue-green: point the Service's selector at the new colour (step ``step``)."""

    deployment_id: str
    step: int

    @property
    def key(self) -> str:
        """One switch per step."""
        return idempotency_key(self.deployment_id, "switch", self.step)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartGuard:
    """Start ticking the QoS guard over step ``step``; its window starts at the transition's time."""

    deployment_id: str
    step: int

    @property
    def key(self) -> str:
        """One guard window per step."""
        return idempotency_key(self.deployment_id, "guard", self.step)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRollback:
    """Restore ``to_version``, or (None) what was live before: ``rollout undo`` to the prior revision."""

    deployment_id: str
    to_version: str | None

    @property
    def key(self) -> str:
        """A deployment rolls back at most once."""
        return idempotency_key(self.deployment_id, "rollback")


@dataclass(frozen=True, slots=True, kw_only=True)
class LockForGuard:
    """Lock the deployment's environment with a guard lock, for ``reason``.

    After a rollback (``after_rollback``) the guard watches the restored version and lifts the lock
    by itself after a clean window; after a held breach (``on_breach: lock``) a person lifts it.
    """

    deployment_id: str
    step: int
    reason: str
    after_rollback: bool

    @property
    def key(self) -> str:
        """At most one lock per held step, and one after the rollback."""
        if self.after_rollback:
            return idempotency_key(self.deployment_id, "guard-lock", "rollback")
        return idempotency_key(self.deployment_id, "guard-lock", self.step)


Effect: TypeAlias = (
    Notify
    | RequestApprovals
    | ScheduleApprovalExpiry
    | TriggerBuild
    | AbortBuild
    | StartRollout
    | PromoteCanary
    | SwitchTraffic
    | StartGuard
    | StartRollback
    | LockForGuard
)
"""Any side effect the engine performs."""

EFFECT_TYPES: tuple[type[Effect], ...] = (
    Notify,
    RequestApprovals,
    ScheduleApprovalExpiry,
    TriggerBuild,
    AbortBuild,
    StartRollout,
    PromoteCanary,
    SwitchTraffic,
    StartGuard,
    StartRollback,
    LockForGuard,
)
"""Every effect class."""


# ---------------------------------------------------------------------------------------------------
# Codec: effects are kept in the store's outbox with the transition that caused them, so an effect
# that a crash interrupted is found and finished at restart.

EFFECTS_BY_NAME = {t.__name__: t for t in EFFECT_TYPES}
"""Effect classes by the type name the outbox persists."""


def effect_to_payload(effect: Effect) -> tuple[str, dict[str, object]]:
    """``(type name, JSON object)`` for ``effect``; a Notify's event is nested with its own codec."""
    payload: dict[str, object] = {}
    for f in fields(effect):
        value = getattr(effect, f.name)
        if f.name == "event":
            payload["event"] = {"type": event_type_name(value), "payload": event_to_payload(value)}
        else:
            payload[f.name] = value
    return type(effect).__name__, payload


def effect_from_payload(type_name: str, payload: Mapping[str, object]) -> Effect:
    """The inverse of ``effect_to_payload``; raises ``EventPayloadError`` on anything unexpected."""
    cls = EFFECTS_BY_NAME.get(type_name)
    if cls is None:
        raise EventPayloadError(f"unknown effect type {type_name!r}")
    kwargs: dict[str, Any] = dict(payload)
    if "event" in kwargs:
        nested = kwargs["event"]
        if not isinstance(nested, Mapping) or not isinstance(nested.get("payload"), Mapping):
            raise EventPayloadError(f"{type_name}.event: not an encoded event")
        kwargs["event"] = event_from_payload(str(nested.get("type")), nested["payload"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise EventPayloadError(f"{type_name}: {exc}") from exc
