"""What a Slack channel reference looks like: an id (``C0123ABCD``) or a ``#name``.

One rule for the playbooks and config (which refuse anything else when they load) and for the Slack
adapter (which resolves names and uses ids as they are). Slack channel names are lowercase, so an
uppercase ``C``/``G``/``D`` (public, private, direct) followed by letters and digits is always an id.
"""

from __future__ import annotations

import re

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
"""A conversation id: public (``C``), private (``G``) or direct (``D``)."""
CHANNEL_NAME = re.compile(r"^#[a-z0-9][a-z0-9._-]{0,79}$")
"""A channel name as people write it, ``#`` included (Slack allows 80 characters)."""


def is_channel_id(ref: str) -> bool:
    """Is ``ref`` a conversation id (rather than a name)?"""
    return CHANNEL_ID.match(ref) is not None


def is_channel_ref(ref: str) -> bool:
    """Is ``ref`` an id or a ``#name``: what a playbook or the config may name?"""
    return is_channel_id(ref) or CHANNEL_NAME.match(ref) is not None
