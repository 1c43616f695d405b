"""Which button still means something in which phase, derived from the transition table.

A card's buttons are rendered for one state of a deployment (its ``version_no``, canary ``step`` and
approval stage); by the time someone clicks, the deployment may have moved on. Some buttons keep
their meaning across moves — Cancel, Abort and Roll back act on *the deployment* and are worth doing
in any phase that accepts them — while others are a judgment on *one moment*: a Promote is "this
step looks fine", an Approve is "yes to this stage". Clicking those on an older rendering must not
promote the next canary step (which nobody has looked at) or vote in the next stage.

The phases are read off ``bot.domain.transitions.TRANSITIONS`` so that the Slack layer (is this
click stale?) and the orchestrator (may this deployment be cancelled or rolled back now?) cannot
drift from the state machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from bot.domain import transitions
from bot.domain.deployment import Deployment
from bot.domain.events import ApprovalRecorded, Promoted, Rejected
from bot.domain.phases import Phase
from bot.domain.transitions import accepting

CANCELLABLE: Final = transitions.CANCELLABLE
"""Nothing is deployed yet: the deployment can simply stop (requested, awaiting approval, building)."""
ROLLBACKABLE: Final = transitions.ROLLBACKABLE
"""Something is live and being rolled out or watched: undoing it is a rollback (deploying, verifying)."""


class Button(StrEnum):
    """What a person can click on a deployment's card or thread."""

    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    ROLLBACK = "rollback"
    """Undo: the live deployment, or a succeeded release (a new rollback deployment)."""
    PROMOTE = "promote"
    ABORT = "abort"
    """Roll the live deployment back now."""


MEANINGFUL: Final[Mapping[Button, frozenset[Phase]]] = {
    Button.APPROVE: accepting(ApprovalRecorded),
    Button.REJECT: accepting(Rejected),
    Button.CANCEL: CANCELLABLE,
    Button.ROLLBACK: ROLLBACKABLE | {Phase.SUCCEEDED},
    Button.PROMOTE: accepting(Promoted),
    Button.ABORT: ROLLBACKABLE,
}
"""The phases in which each button can still do what it said."""

MOMENT_BOUND: Final = frozenset({Button.APPROVE, Button.PROMOTE})
"""Buttons that judge one rendered moment (an approval stage, a canary step), not the deployment."""


def still_applies(
    button: Button,
    dep: Deployment,
    rendered_for: int,
    *,
    step: int | None = None,
    stage: int | None = None,
) -> bool:
    """Does a click on ``button``, rendered for ``dep`` at ``version_no == rendered_for`` (and at
    canary ``step`` / approval ``stage``, when the button carries them), still mean what it said?

    The exact rendering always does. After the deployment moved on, Cancel, Abort, Roll back and
    Reject still apply wherever their phase accepts them (saying no, or undoing, late is allowed);
    Approve and Promote apply only at the stage or step they were rendered for, and a button that
    does not say which (rendered before buttons carried it) is stale once anything changed.
    """
    if dep.version_no == rendered_for:
        return True  # exactly what the clicker saw: the engine judges the rest
    if dep.phase not in MEANINGFUL[button]:
        return False
    if button is Button.APPROVE:
        return stage is not None and stage == dep.approval_stage
    if button is Button.PROMOTE:
        return step is not None and step == dep.step
    return True
