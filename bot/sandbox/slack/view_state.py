"""The ``view.state.values`` Slack sends with a view submission, from the view and a person's answers.

The drivers build it the way Slack does, so an app reads a submission as it would from Slack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

JSONDict = dict[str, Any]


_STATE_KEYS: Final[Mapping[str, str]] = {
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
}
_OPTION_ONE: Final = frozenset({"static_select", "external_select", "radio_buttons"})
_OPTION_MANY: Final = frozenset({"multi_static_select", "multi_external_select", "checkboxes"})


def view_state(blocks: list[Any], values: Mapping[str, Any]) -> JSONDict:
    """``view.state.values`` as Slack sends it on submission: every input block, typed per element.

    Raises ``KeyError`` for a key of ``values`` that names no input of the view.
    """
    state: JSONDict = {}
    used: set[str] = set()
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        element = block.get("element")
        if not isinstance(element, dict):
            continue
        block_id, action_id = str(block.get("block_id")), str(element.get("action_id"))
        given = values.get(block_id)
        value: Any = None
        if isinstance(given, Mapping) and "type" not in given and action_id in given:
            value = given[action_id]
            used.add(block_id)
        elif action_id in values:
            value = values[action_id]
            used.add(action_id)
        state[block_id] = {action_id: _element_state(element, value)}
    unknown = set(values) - used
    if unknown:
        raise KeyError(f"no input named {', '.join(sorted(unknown))} in the view")
    return state


def _element_state(element: JSONDict, value: Any) -> JSONDict:
    kind = str(element.get("type"))
    if isinstance(value, Mapping) and "type" in value:
        return dict(value)
    if kind in _OPTION_ONE:
        return {"type": kind, "selected_option": _option(element, value) if value is not None else None}
    if kind in _OPTION_MANY:
        chosen = [] if value is None else [value] if isinstance(value, str) else list(value)
        return {"type": kind, "selected_options": [_option(element, v) for v in chosen]}
    if kind in _STATE_KEYS:
        key = _STATE_KEYS[kind]
        if key.endswith("s") and value is None:
            value = []
        return {"type": kind, key: value}
    return {"type": kind, "value": None if value is None else str(value)}


def _option(element: JSONDict, value: Any) -> JSONDict:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options", [])
    for option in options:
        if isinstance(option, dict) and option.get("value") == value:
            return dict(option)
    return {"text": {"type": "plain_text", "text": str(value), "emoji": True}, "value": str(value)}
