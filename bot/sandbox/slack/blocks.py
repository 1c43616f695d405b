"""Block Kit limits as Slack enforces them, for the Slack emulator.

Slack refuses a message or view that breaks a Block Kit limit and says where, with a JSON pointer
("no more than 50 items allowed [json-pointer:/blocks]"). The emulator must refuse the same
payloads, or a renderer that passes against it fails in production. Limits are from
PLATFORM_NOTES.md and Slack's Block Kit reference; the sentences are the ones Slack writes where
we found them recorded ("no more than N items allowed", "must be less than N+1 characters",
"unsupported type: X", "missing required field: X"). The duplicate-id sentences are our own
wording: we found no recording of Slack's.

Everything here is pure: a checker returns the list of problems (empty means accepted), and
``with_ids`` gives blocks the ``block_id``/``action_id``/``emoji`` fields Slack adds on store.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from bot.sandbox.slack.block_limits import (
    ACTIONS_ELEMENTS,
    BLOCK_TYPES,
    BUTTON_TEXT,
    BUTTON_URL,
    BUTTON_VALUE,
    CHOICE_OPTIONS,
    CHOICES,
    CONFIRM_BUTTON,
    CONFIRM_TEXT,
    CONFIRM_TITLE,
    CONTEXT_ELEMENTS,
    HEADER_TEXT,
    ID_LENGTH,
    IMAGE_ALT_TEXT,
    INPUT_LABEL,
    INPUTS,
    INTERACTIVE_ELEMENTS,
    MARKDOWN_TEXT,
    MESSAGE_BLOCKS,
    OPTION_TEXT,
    OPTION_VALUE,
    OVERFLOW_OPTIONS,
    PICKERS,
    PLACEHOLDER,
    PRIVATE_METADATA,
    SECTION_FIELD_TEXT,
    SECTION_FIELDS,
    SECTION_TEXT,
    SELECT_OPTIONS,
    SELECTS,
    SURFACE_BLOCKS,
    TEXT_TYPES,
    VIEW_TITLE,
)

Problems = list[str]


def at(message: str, pointer: str) -> str:
    """One problem, worded as Slack words it."""
    return f"{message} [json-pointer:{pointer}]"


def check_message_blocks(blocks: object, pointer: str = "/blocks") -> Problems:
    """The problems Slack finds in a message's ``blocks`` (chat.postMessage/update/postEphemeral)."""
    return _check_blocks(blocks, pointer, MESSAGE_BLOCKS)


def check_view(view: object, *, kinds: frozenset[str] = frozenset({"modal", "home"})) -> Problems:
    """The problems Slack finds in a view for views.open/push/update/publish.

    Slack prefixes every refused view with a schema line, then names each problem.
    """
    problems = _view_problems(view, kinds)
    if problems:
        return [at("failed to match all allowed schemas", "/view"), *problems]
    return []


def _view_problems(view: object, kinds: frozenset[str]) -> Problems:
    if not isinstance(view, Mapping):
        return [at("must provide an object", "/view")]
    problems: Problems = []
    kind = view.get("type")
    if kind is None:
        problems.append(at("missing required field: type", "/view"))
    elif kind not in kinds:
        problems.append(at(f"must be one of {', '.join(sorted(kinds))}", "/view/type"))
    if kind == "modal":
        if "title" not in view:
            problems.append(at("missing required field: title", "/view"))
        for field in ("title", "submit", "close"):
            if field in view and view[field] is not None:
                problems += _text(view[field], f"/view/{field}", VIEW_TITLE, plain_only=True)
    for field in ("callback_id", "external_id"):
        problems += _length(view.get(field), f"/view/{field}", ID_LENGTH)
    problems += _length(view.get("private_metadata"), "/view/private_metadata", PRIVATE_METADATA)
    blocks = view.get("blocks")
    if blocks is None:
        problems.append(at("missing required field: blocks", "/view"))
    else:
        problems += _check_blocks(blocks, "/view/blocks", SURFACE_BLOCKS)
    if kind == "modal" and view.get("submit") is None and isinstance(blocks, list):
        for i, block in enumerate(blocks):
            if isinstance(block, Mapping) and block.get("type") == "input":
                problems.append(
                    at("must define `submit` to use an `input` block in modals", f"/view/blocks/{i}")
                )
                break
    return problems


def _check_blocks(blocks: object, pointer: str, limit: int) -> Problems:
    if not isinstance(blocks, list):
        return [at("must provide an array", pointer)]
    problems: Problems = []
    if len(blocks) > limit:
        problems.append(at(f"no more than {limit} items allowed", pointer))
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, Mapping):
            problems.append(at("must provide an object", here))
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str):
                problems.append(at("must be a string", f"{here}/block_id"))
            else:
                problems += _length(block_id, f"{here}/block_id", ID_LENGTH)
                if block_id in seen_block_ids:
                    problems.append(at(f"duplicate block_id: {block_id}", f"{here}/block_id"))
                seen_block_ids.add(block_id)
        problems += _check_block(block, here)
    return problems


def _check_block(block: Mapping[str, Any], here: str) -> Problems:
    kind = block.get("type")
    if kind is None:
        return [at("missing required field: type", here)]
    if kind not in BLOCK_TYPES:
        return [at(f"unsupported type: {kind}", f"{here}/type")]
    checker = _BLOCK_CHECKERS.get(str(kind))
    return checker(block, here) if checker else []


def _section(block: Mapping[str, Any], here: str) -> Problems:
    problems: Problems = []
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        problems.append(at("must define either `text` or `fields`", here))
    if text is not None:
        problems += _text(text, f"{here}/text", SECTION_TEXT)
    if fields is not None:
        if not isinstance(fields, list):
            problems.append(at("must provide an array", f"{here}/fields"))
        else:
            if len(fields) > SECTION_FIELDS:
                problems.append(at(f"no more than {SECTION_FIELDS} items allowed", f"{here}/fields"))
            for j, field in enumerate(fields):
                problems += _text(field, f"{here}/fields/{j}", SECTION_FIELD_TEXT)
    accessory = block.get("accessory")
    if accessory is not None:
        problems += _element(accessory, f"{here}/accessory")
    return problems


def _header(block: Mapping[str, Any], here: str) -> Problems:
    if "text" not in block:
        return [at("missing required field: text", here)]
    return _text(block["text"], f"{here}/text", HEADER_TEXT, plain_only=True)


def _markdown(block: Mapping[str, Any], here: str) -> Problems:
    text = block.get("text")
    if not isinstance(text, str):
        return [at("missing required field: text", here)]
    return _length(text, f"{here}/text", MARKDOWN_TEXT)


def _actions(block: Mapping[str, Any], here: str) -> Problems:
    elements = block.get("elements")
    if not isinstance(elements, list):
        return [at("missing required field: elements", here)]
    problems: Problems = []
    if len(elements) > ACTIONS_ELEMENTS:
        problems.append(at(f"no more than {ACTIONS_ELEMENTS} items allowed", f"{here}/elements"))
    seen_action_ids: set[str] = set()
    for j, element in enumerate(elements):
        problems += _element(element, f"{here}/elements/{j}")
        action_id = element.get("action_id") if isinstance(element, Mapping) else None
        if isinstance(action_id, str):
            if action_id in seen_action_ids:
                problems.append(at(f"duplicate action_id: {action_id}", f"{here}/elements/{j}/action_id"))
            seen_action_ids.add(action_id)
    return problems


def _context(block: Mapping[str, Any], here: str) -> Problems:
    elements = block.get("elements")
    if not isinstance(elements, list):
        return [at("missing required field: elements", here)]
    problems: Problems = []
    if len(elements) > CONTEXT_ELEMENTS:
        problems.append(at(f"no more than {CONTEXT_ELEMENTS} items allowed", f"{here}/elements"))
    for j, element in enumerate(elements):
        where = f"{here}/elements/{j}"
        if not isinstance(element, Mapping):
            problems.append(at("must provide an object", where))
        elif element.get("type") in TEXT_TYPES:
            problems += _text(element, where, SECTION_TEXT)
        elif element.get("type") != "image":
            problems.append(at(f"unsupported type: {element.get('type')}", f"{where}/type"))
    return problems


def _image(block: Mapping[str, Any], here: str) -> Problems:
    problems: Problems = []
    if "image_url" not in block and "slack_file" not in block:
        problems.append(at("missing required field: image_url", here))
    if "alt_text" not in block:
        problems.append(at("missing required field: alt_text", here))
    problems += _length(block.get("alt_text"), f"{here}/alt_text", IMAGE_ALT_TEXT)
    return problems


def _input(block: Mapping[str, Any], here: str) -> Problems:
    problems: Problems = []
    if "label" not in block:
        problems.append(at("missing required field: label", here))
    else:
        problems += _text(block["label"], f"{here}/label", INPUT_LABEL, plain_only=True)
    if "element" not in block:
        problems.append(at("missing required field: element", here))
    else:
        problems += _element(block["element"], f"{here}/element")
    if block.get("hint") is not None:
        problems += _text(block["hint"], f"{here}/hint", INPUT_LABEL, plain_only=True)
    return problems


_BLOCK_CHECKERS: Final[Mapping[str, Callable[[Mapping[str, Any], str], Problems]]] = {
    "section": _section,
    "header": _header,
    "markdown": _markdown,
    "actions": _actions,
    "context": _context,
    "image": _image,
    "input": _input,
}


def _element(element: object, here: str) -> Problems:
    if not isinstance(element, Mapping):
        return [at("must provide an object", here)]
    kind = element.get("type")
    if kind is None:
        return [at("missing required field: type", here)]
    if kind not in INTERACTIVE_ELEMENTS and kind != "image":
        return [at(f"unsupported type: {kind}", f"{here}/type")]
    problems = _length(element.get("action_id"), f"{here}/action_id", ID_LENGTH)
    if kind == "button":
        if "text" not in element:
            problems.append(at("missing required field: text", here))
        else:
            problems += _text(element["text"], f"{here}/text", BUTTON_TEXT, plain_only=True)
        problems += _length(element.get("value"), f"{here}/value", BUTTON_VALUE)
        problems += _length(element.get("url"), f"{here}/url", BUTTON_URL)
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            problems.append(at("must be one of danger, primary", f"{here}/style"))
    if (kind in SELECTS or kind in INPUTS or kind in PICKERS) and element.get("placeholder") is not None:
        problems += _text(element["placeholder"], f"{here}/placeholder", PLACEHOLDER, plain_only=True)
    if kind in ("static_select", "multi_static_select"):
        problems += _options(element.get("options"), f"{here}/options", SELECT_OPTIONS, required=False)
    if kind in CHOICES:
        problems += _options(element.get("options"), f"{here}/options", CHOICE_OPTIONS, required=True)
    if kind == "overflow":
        problems += _options(element.get("options"), f"{here}/options", OVERFLOW_OPTIONS, required=True)
    if element.get("confirm") is not None:
        problems += _confirm(element["confirm"], f"{here}/confirm")
    return problems


def _options(options: object, here: str, limit: int, *, required: bool) -> Problems:
    if options is None:
        return [at("missing required field: options", here.rsplit("/", 1)[0])] if required else []
    if not isinstance(options, list):
        return [at("must provide an array", here)]
    problems: Problems = []
    if len(options) > limit:
        problems.append(at(f"no more than {limit} items allowed", here))
    for k, option in enumerate(options):
        where = f"{here}/{k}"
        if not isinstance(option, Mapping):
            problems.append(at("must provide an object", where))
            continue
        problems += _text(option.get("text"), f"{where}/text", OPTION_TEXT)
        problems += _length(option.get("value"), f"{where}/value", OPTION_VALUE)
    return problems


def _confirm(confirm: object, here: str) -> Problems:
    if not isinstance(confirm, Mapping):
        return [at("must provide an object", here)]
    problems: Problems = []
    for field, limit in (("title", CONFIRM_TITLE), ("text", CONFIRM_TEXT)):
        if field not in confirm:
            problems.append(at(f"missing required field: {field}", here))
        else:
            problems += _text(confirm[field], f"{here}/{field}", limit, plain_only=field == "title")
    for field in ("confirm", "deny"):
        if field in confirm:
            problems += _text(confirm[field], f"{here}/{field}", CONFIRM_BUTTON, plain_only=True)
    return problems


def _text(obj: object, here: str, limit: int, *, plain_only: bool = False) -> Problems:
    if not isinstance(obj, Mapping):
        return [at("must provide an object", here)]
    kind = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        return [at(f"must be one of {', '.join(allowed)}", f"{here}/type")]
    text = obj.get("text")
    if not isinstance(text, str):
        return [at("missing required field: text", here)]
    if text == "":
        return [at("must be more than 0 characters", f"{here}/text")]
    return _length(text, f"{here}/text", limit)


def _length(value: object, here: str, limit: int) -> Problems:
    if isinstance(value, str) and len(value) > limit:
        return [at(f"must be less than {limit + 1} characters", here)]
    return []


def with_ids(blocks: Sequence[Any], new_id: Callable[[], str]) -> list[Any]:
    """The blocks as Slack stores them: every block has a ``block_id``, every interactive element
    an ``action_id``, every ``plain_text`` an ``emoji`` flag. The input is not changed."""
    stored = copy.deepcopy(list(blocks))
    for block in stored:
        if not isinstance(block, dict):
            continue
        block.setdefault("block_id", new_id())
        for element in _interactive(block):
            element.setdefault("action_id", new_id())
    for obj in _objects(stored):
        if obj.get("type") == "plain_text":
            obj.setdefault("emoji", True)
    return stored


def _interactive(block: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    candidates: list[Any] = []
    if isinstance(block.get("elements"), list) and block.get("type") == "actions":
        candidates += block["elements"]
    candidates += [block.get("accessory"), block.get("element")]
    for element in candidates:
        if isinstance(element, dict) and element.get("type") in INTERACTIVE_ELEMENTS:
            yield element


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _objects(child)


def interactive_elements(blocks: Sequence[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (block_id, element) a user can act on, in the order Slack shows them."""
    for block in blocks:
        if isinstance(block, dict):
            for element in _interactive(block):
                yield str(block.get("block_id", "")), element
