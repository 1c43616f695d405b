"""The buttons Shipthread puts in threads: their action ids and the value codec.

Each button's value carries the deployment id and the ``version_no`` the message was rendered for,
so the handler (a later issue) can recognise a click on a stale card: if the deployment moved on
since, the click is refused instead of acting on a state the clicker never saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, TypeGuard

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
    step: int | None = None
    """The canary step it was drawn at (a Promote judges that step, not the next one)."""
    stage: int | None = None
    """The 0-based approval stage it was drawn at (an Approve votes in that stage only)."""


_OPTIONAL: Final = {"l": "lock_id", "s": "step", "a": "stage"}
"""Short keys of the optional fields; a value without them (drawn by an older version) still decodes."""


def encode(value: ButtonValue) -> str:
    """Compact JSON: ``{"d": id, "v": version_no}``, plus ``"l"`` (an unlock's lock id), ``"s"``
    (canary step) and ``"a"`` (approval stage) when set."""
    payload: dict[str, object] = {"d": value.deployment_id, "v": value.version_no}
    for short, name in _OPTIONAL.items():
        if getattr(value, name) is not None:
            payload[short] = getattr(value, name)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def decode(raw: object) -> ButtonValue | None:
    """The value a click sent back, or None for anything that is not one of ours."""
    if not isinstance(raw, str) or len(raw) > 2000:
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not set(payload) <= {"d", "v", *_OPTIONAL}:
        return None
    dep, version = payload.get("d"), payload.get("v")
    # bool is an int in Python but not in JSON: true/false is no version number.
    if not isinstance(dep, str) or not dep or not _is_int(version):
        return None
    optional = {name: payload.get(short) for short, name in _OPTIONAL.items()}
    if any(v is not None and not _is_int(v) for v in optional.values()):
        return None
    return ButtonValue(dep, version, **optional)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
