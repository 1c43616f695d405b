"""The error tree: the drawing in ``bot.errors`` is the tree the classes form, and it holds them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import bot
from bot import errors
from bot.errors import ShipthreadError

_NODE = re.compile(r"^(?P<indent>[\s│]*)(?:[├└]── )?(?P<name>[A-Z]\w+)\b(?:\s+\[(?P<module>[\w.]+)\])?")

_NOT_IMPORTABLE = ("bot.__main__", "bot.store.migrations")
"""``python -m bot`` runs the command line when imported; the migrations are scripts alembic runs."""


def _drawn() -> dict[str, tuple[str | None, str]]:
    """Class name → the parent the docstring's drawing gives it (None for the root), and its module."""
    doc = inspect.getdoc(errors) or ""
    block = doc.split("::", 1)[1].strip("\n").split("\n\n", 1)[0]
    parents: dict[str, tuple[str | None, str]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = _NODE.match(line.strip("\n"))
        assert match, line
        depth = len(match.group("indent")) + (4 if "── " in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        module = match.group("module") or errors.__name__
        parents[match.group("name")] = (stack[-1][1] if stack else None, module)
        stack.append((depth, match.group("name")))
    return parents


def _every_error_class() -> set[type[ShipthreadError]]:
    """``ShipthreadError`` and every subclass of it, once every module of ``bot`` is imported."""
    for module in pkgutil.walk_packages(bot.__path__, prefix="bot."):
        if not module.name.startswith(_NOT_IMPORTABLE):
            importlib.import_module(module.name)
    found: set[type[ShipthreadError]] = set()
    todo: list[type[ShipthreadError]] = [ShipthreadError]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.add(cls)
            todo += cls.__subclasses__()
    return found


def test_the_drawing_is_the_tree_of_the_classes() -> None:
    classes = {cls.__name__: cls for cls in _every_error_class()}
    drawn = _drawn()
    assert set(drawn) == set(classes)
    for name, (parent, module) in drawn.items():
        cls = classes[name]
        assert cls.__module__ == module, f"{name} lives in {cls.__module__}, drawn in {module}"
        ours = [base.__name__ for base in cls.__bases__ if issubclass(base, ShipthreadError)]
        assert ours == ([parent] if parent else []), name


def test_no_other_module_of_the_bot_defines_an_error_of_its_own_tree() -> None:
    # Errors Shipthread raises on purpose live in bot.errors; Slack's own answers (a rate limit, a refused
    # call or workspace) and the server's start-up refusal are kept beside the code that reads them.
    allowed = {"RateLimited", "SlackRefused", "WorkspaceRefused", "StartupError"}
    found = sorted(
        f"{cls.__module__}: {cls.__name__}"
        for cls in _every_error_class()
        if cls.__module__ != errors.__name__ and cls.__name__ not in allowed
    )
    assert found == []
