"""Secrets stay out of files: the keys and values of a config or playbook that look like credentials.

Secrets (``SECRET_VARIABLES``) come from the environment only. A file holding anything that looks
like one (a key named like a token or password, a Slack token, a URL with a password) is refused,
each finding with a message saying where the secret belongs instead, so a token never lands in a
repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.domain.located import Loc

SECRET_VARIABLES: tuple[str, ...] = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "JENKINS_USER",
    "JENKINS_TOKEN",
)
"""The only place secrets come from."""

_SECRET_KEY = re.compile(r"token|secret|passw|credential|private[_-]?key|api[_-]?key", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^\s*(xox[abposr]-|xapp-)")
_NAMED_BY_PEOPLE: frozenset[Loc] = frozenset({("approver_groups",), ("clusters",)})
"""Mappings whose keys are names people chose (a group may be called "token-team")."""


def _secret_hint(loc: Loc) -> str:
    key = str(loc[-1]).lower()
    section = str(loc[0]).lower() if len(loc) > 1 else ""
    if section == "slack" or "slack" in key:
        if "sign" in key:
            return "SLACK_SIGNING_SECRET"
        return "SLACK_APP_TOKEN" if "app" in key else "SLACK_BOT_TOKEN"
    if section == "jenkins" or "jenkins" in key:
        return "JENKINS_USER" if "user" in key else "JENKINS_TOKEN"
    return ", ".join(SECRET_VARIABLES)


def secret_locations(data: Any, loc: Loc = (), *, check_keys: bool = True) -> Iterator[tuple[Loc, str]]:
    """Keys (unless ``check_keys`` is false) and values of ``data`` that look like secrets, each with
    a message saying where the secret belongs instead."""
    if isinstance(data, Mapping):
        judge_keys = check_keys and loc not in _NAMED_BY_PEOPLE
        for key, value in data.items():
            here = (*loc, key)
            is_user = loc[:1] == ("jenkins",) and str(key).lower() in ("user", "username")
            if judge_keys and isinstance(key, str) and (_SECRET_KEY.search(key) or is_user):
                yield (
                    here,
                    f"secrets are read only from the environment, never from files: set {_secret_hint(here)}",
                )
            else:
                yield from secret_locations(value, here, check_keys=check_keys)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from secret_locations(item, (*loc, index), check_keys=check_keys)
    elif isinstance(data, str):
        if _SECRET_VALUE.match(data):
            yield loc, "this looks like a Slack token: secrets are read only from the environment"
        elif "://" in data and _url_password(data):
            yield loc, "a password in a URL: put the URL in the environment (e.g. SHIPTHREAD_DATABASE_URL)"


def _url_password(text: str) -> bool:
    try:
        return bool(urlsplit(text.strip()).password)
    except ValueError:
        return False
