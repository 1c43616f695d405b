"""The buttons Shipthread puts in threads: their action ids and the value codec.

Each button's value carries the deployment id and the ``version_no`` the message was rendered for,
so the handler (a later issue) can recognise a click on a stale card: if the deployment moved on
since, the click is refused instead of acting on a state the clicker never saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

APPROVE: Final = "shipthread.approve"
REJECT: Final = "shipthread.reject"
CANCEL: Final = "shipthread.cancel"
ROLLBACK: Final = "shipthread.rollback"
PROMOTE: Final = "shipthread.promote"
ABORT: Final = "shipthread.abort"
UNLOCK: Final = "shipthread.unlock"

ACTION_IDS: Final = frozenset({APPROVE, REJECT, CANCEL, ROLLBACK, PROMOTE, ABORT, UNLOCK})

PRODUCTION_NAMES: Final = frozenset({"production", "prod"})


def needs_confirm(env: str, approvals_required: bool) -> bool:
    """Whether Roll back / Abort ask "are you sure?" first: the one rule for it.

    Production is an environment named ``production`` or ``prod`` (any case, ``prod-eu`` too), or
    any environment whose deployments needed approvals: where people must agree to deploy, undoing
    is just as serious. An environment without approvals gets one-click buttons.
    """
    name = env.strip().lower()
    return approvals_required or name in PRODUCTION_NAMES or name.startswith(("prod-", "production-"))


@dataclass(frozen=True, slots=True)
class ButtonValue:
    """What a button says it was rendered for."""

    deployment_id: str
    version_no: int
    lock_id: int | None = None


def encode(value: ButtonValue) -> str:
    """Compact JSON: ``{"d": id, "v": version_no}`` (plus ``"l"`` for an unlock's lock id)."""
    payload: dict[str, object] = {"d": value.deployment_id, "v": value.version_no}
    if value.lock_id is not None:
        payload["l"] = value.lock_id
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def decode(raw: object) -> ButtonValue | None:
    """The value a click sent back, or None for anything that is not one of ours."""
    if not isinstance(raw, str) or len(raw) > 2000:
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not set(payload) <= {"d", "v", "l"}:
        return None
    dep, version, lock = payload.get("d"), payload.get("v"), payload.get("l")
    # bool is an int in Python but not in JSON: true/false is no version number.
    if not isinstance(dep, str) or not dep or not isinstance(version, int) or isinstance(version, bool):
        return None
    if lock is not None and (not isinstance(lock, int) or isinstance(lock, bool)):
        return None
    return ButtonValue(dep, version, lock)
