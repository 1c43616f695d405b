"""Where a deployment stands: the phases of the state machine.

The phases are data (an enum) so that the transition table, the store and the Slack rendering all
speak the same closed vocabulary. Canary steps and the blue-green switch are not phases: they are
progress fields of ``deploying``/``verifying`` on the deployment itself.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """The phase of one deployment. Terminal phases never change again."""

    REQUESTED = "requested"
    """Parsed, authorized and stored; its thread is being opened and its policy evaluated."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Waiting for the environment's approval stages to be satisfied, in order."""
    BUILDING = "building"
    """The Jenkins build that produces (or verifies) the version is queued or running."""
    DEPLOYING = "deploying"
    """The new version is being rolled out on Kubernetes (a canary step, or the new colour)."""
    VERIFYING = "verifying"
    """The QoS guard is watching the new version for its window."""
    SUCCEEDED = "succeeded"
    """The version is live and passed its guard window. Terminal."""
    REJECTED = "rejected"
    """An approver said no. Nothing was built or deployed. Terminal."""
    EXPIRED = "expired"
    """Approvals did not arrive in time. Nothing was built or deployed. Terminal."""
    CANCELLED = "cancelled"
    """The requester (or an operator) cancelled it before anything was deployed. Terminal."""
    FAILED = "failed"
    """The build or the rollout start failed and nothing was changed in the cluster. Terminal."""
    ROLLING_BACK = "rolling_back"
    """Restoring what was live before, after a guard breach, a failed rollout or a /rollback."""
    ROLLED_BACK = "rolled_back"
    """The previous version is restored; the guard lock watches it. Terminal."""
    ROLLBACK_FAILED = "rollback_failed"
    """The rollback itself failed: a human must look. Terminal, and loud."""

    @property
    def terminal(self) -> bool:
        """True when no event can move the deployment any more."""
        return self in TERMINAL

    @property
    def active(self) -> bool:
        """True while the deployment holds its service and environment (at most one active)."""
        return self not in TERMINAL


TERMINAL: frozenset[Phase] = frozenset(
    {
        Phase.SUCCEEDED,
        Phase.REJECTED,
        Phase.EXPIRED,
        Phase.CANCELLED,
        Phase.FAILED,
        Phase.ROLLED_BACK,
        Phase.ROLLBACK_FAILED,
    }
)
