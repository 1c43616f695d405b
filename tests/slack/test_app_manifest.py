"""The app manifest declares what the code registers and calls: no more, no less.

Slash commands and events come from the listener modules' own lists; the bot scopes are derived
from the Web API methods the code calls (found in the sources of the Slack layer, the Slack
adapters and ``bot.serve``), through Slack's documented method → scope table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.slack import listeners_commands, listeners_events

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *(ROOT / "bot" / "slack").glob("*.py"),
    *(ROOT / "bot" / "adapters").glob("slack_*.py"),
    ROOT / "bot" / "serve.py",
]

METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.list": ("channels:read", "groups:read"),
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.replies": ("channels:history", "groups:history"),
    "usergroups.list": ("usergroups:read",),
    "usergroups.users.list": ("usergroups:read",),
    "views.open": (),
    "views.publish": (),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}
"""Slack's required bot scopes per method (public and private channels where both apply)."""

SDK_HELPERS: dict[str, tuple[str, ...]] = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}
"""slack-sdk functions that are not one method each: the methods they call."""

FAMILIES = (
    "admin|api|apps|auth|bookmarks|bots|calls|canvases|chat|conversations|dialog|dnd|emoji|files|"
    "functions|pins|reactions|reminders|search|stars|team|usergroups|users|views|workflows"
)
"""Slack's Web API method families: a quoted ``"family.method"`` in the code is a call by name."""

_LITERAL = re.compile(rf'"((?:{FAMILIES})\.[A-Za-z][A-Za-z.]*)"')
_CLIENT_CALL = re.compile(r"client\.([a-z]+_[A-Za-z0-9_]+)\(")
"""Any ``client.<family>_<method>(`` (also ``self._client.…``): slack-sdk names each function after
its method (``views_open``, ``usergroups_users_list``); ``api_call`` is the by-name call above."""


def _methods() -> set[str]:
    found: set[str] = set()
    for source in SOURCES:
        text = source.read_text()
        found |= set(_LITERAL.findall(text))
        for name in _CLIENT_CALL.findall(text):
            if name == "api_call":
                continue
            found |= set(SDK_HELPERS.get(name, (name.replace("_", "."),)))
    return found


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_manifest_declares_the_commands_the_app_registers() -> None:
    declared = [c["command"] for c in _manifest()["features"]["slash_commands"]]
    assert sorted(declared) == sorted(listeners_commands.COMMANDS)
    for command in _manifest()["features"]["slash_commands"]:
        assert command["usage_hint"] and command["description"]


def test_the_manifest_subscribes_to_the_events_the_app_handles_and_turns_interactivity_on() -> None:
    settings = _manifest()["settings"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == sorted(listeners_events.EVENTS)
    assert settings["interactivity"]["is_enabled"] is True
    assert _manifest()["features"]["app_home"]["home_tab_enabled"] is True
    assert "socket_mode_enabled" in settings


def test_the_method_finder_sees_every_way_the_code_calls_slack() -> None:
    found = _methods()
    # By function (including the sdk's helper that is two methods), and by name through api_call.
    for method in ("views.open", "usergroups.users.list", "files.completeUploadExternal", "chat.update"):
        assert method in found, method
    assert not {m for m in found if m.startswith("api.")}


def test_the_bot_scopes_are_exactly_those_the_called_methods_need() -> None:
    methods = _methods()
    unknown = methods - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes of {sorted(unknown)} to METHOD_SCOPES (and the manifest)"
    needed = {scope for method in methods for scope in METHOD_SCOPES[method]} | {"commands"}
    assert sorted(_manifest()["oauth_config"]["scopes"]["bot"]) == sorted(needed)
