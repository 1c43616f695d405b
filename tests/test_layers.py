"""The import-linter layers cover every package, and the emulators keep to their public faces.

Why it exists: a `layers` contract only judges the modules it names, so a new package that nobody
placed would sit outside every rule. import-linter's ``exhaustive`` flag catches that when
``lint-imports`` runs; this test catches it in the test run too, and says where to put the name.
It also holds the two rules import-linter cannot say: code outside an emulator's package imports
only its face (``bot.sandbox.slack``, not ``bot.sandbox.slack.records``), and no module imports
another module's private (``_name``) names inside the sandbox.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
SANDBOX = BOT / "sandbox"
FACED = ("slack", "jenkins", "kubernetes", "memory", "story")
"""The sandbox packages that have one public face: their ``__init__``."""


def _contracts() -> list[dict[str, Any]]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        document = tomllib.load(file)
    contracts: list[dict[str, Any]] = document["tool"]["importlinter"]["contracts"]
    return contracts


def _layers_of(container: str) -> dict[str, Any]:
    found = [c for c in _contracts() if c["type"] == "layers" and c.get("containers") == [container]]
    assert len(found) == 1, f"one layers contract for {container}, found {len(found)}"
    return found[0]


def _placed(contract: dict[str, Any]) -> set[str]:
    return {name.strip(" ()") for layer in contract["layers"] for name in re.split(r"[|:]", layer)}


def _children(package: Path) -> set[str]:
    """The modules and subpackages directly in ``package``, as import-linter sees them."""
    names = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return names


def test_every_module_of_bot_is_placed_in_the_layers() -> None:
    contract = _layers_of("bot")
    missing = _children(BOT) - _placed(contract)
    assert not missing, f"place {sorted(missing)} in the 'Bot layers' contract of pyproject.toml"
    assert contract.get("exhaustive") is True


def test_every_module_of_the_sandbox_is_placed_in_its_layers() -> None:
    contract = _layers_of("bot.sandbox")
    missing = _children(SANDBOX) - _placed(contract)
    assert not missing, f"place {sorted(missing)} in the 'Sandbox layers' contract of pyproject.toml"
    assert contract.get("exhaustive") is True


def test_the_layers_name_nothing_that_is_gone() -> None:
    for container, package in (("bot", BOT), ("bot.sandbox", SANDBOX)):
        contract = _layers_of(container)
        names = [n for layer in contract["layers"] for n in re.split(r"[|:]", layer)]
        optional = {n.strip(" ()") for n in names if "(" in n}
        gone = _placed(contract) - optional - _children(package)
        assert not gone, f"{container}: the layers name {sorted(gone)}, which do not exist"


def _imports(paths: Iterator[Path]) -> Iterator[tuple[Path, ast.ImportFrom | ast.Import]]:
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom | ast.Import):
                yield path, node


def _python_files() -> Iterator[Path]:
    for top in ("bot", "tests", "bench"):
        yield from (ROOT / top).rglob("*.py")


def _package_of(path: Path) -> str | None:
    """The faced sandbox package a file belongs to, if any."""
    parts = path.relative_to(ROOT).parts
    if parts[:2] == ("bot", "sandbox") and len(parts) > 3 and parts[2] in FACED:
        return parts[2]
    return None


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, a relative one resolved against ``path``'s package."""
    if not node.level:
        return node.module or ""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported_modules(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Every module the statement imports: ``from bot.sandbox.slack import records`` imports the
    submodule ``bot.sandbox.slack.records`` when there is one and the face does not export the name
    (``view_state`` is both a module and the function the face exports under that name)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    module = _absolute(path, node)
    found = [module]
    folder = ROOT.joinpath(*module.split("."))
    exported = _exported(folder / "__init__.py")
    for alias in node.names:
        submodule = (folder / f"{alias.name}.py").is_file() or (folder / alias.name / "__init__.py").is_file()
        if submodule and alias.name not in exported:
            found.append(f"{module}.{alias.name}")
    return found


def _exported(init: Path) -> set[str]:
    """The names a package's ``__init__`` lists in ``__all__`` (none when it has no such file)."""
    if not init.is_file():
        return set()
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            names = getattr(node.value, "elts", [])
            return {e.value for e in names if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def test_the_emulators_are_imported_only_through_their_faces() -> None:
    deep = re.compile(rf"^bot\.sandbox\.({'|'.join(FACED)})\.")
    wrong: list[str] = []
    for path, node in _imports(_python_files()):
        for module in _imported_modules(path, node):
            inside = deep.match(module)
            if inside and _package_of(path) != inside.group(1):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert not wrong, "import from the package's face instead:\n" + "\n".join(wrong)


def test_the_face_rule_sees_submodules_named_through_the_face_and_relative_imports() -> None:
    # The rule above judges the modules these statements really import, not the text after "from".
    story = SANDBOX / "story" / "play.py"
    for source, module in [
        ("from bot.sandbox.slack import records", "bot.sandbox.slack.records"),
        ("from ..slack import records", "bot.sandbox.slack.records"),
        ("from ..slack.records import User", "bot.sandbox.slack.records"),
        ("from . import play", "bot.sandbox.story.play"),
    ]:
        node = ast.parse(source).body[0]
        assert isinstance(node, ast.ImportFrom)
        assert module in _imported_modules(story, node), source
    face = ast.parse("from bot.sandbox.slack import SlackEmulator").body[0]
    assert isinstance(face, ast.ImportFrom)
    assert _imported_modules(story, face) == ["bot.sandbox.slack"]


def test_no_private_name_is_imported_across_sandbox_modules() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {node.module}"
        for path, node in _imports(SANDBOX.rglob("*.py"))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot.sandbox")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not wrong, "make the name public inside its package, or move it:\n" + "\n".join(wrong)


def test_each_face_declares_what_it_exports() -> None:
    for name in FACED:
        face = ast.parse((SANDBOX / name / "__init__.py").read_text())
        exported = [
            node
            for node in face.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        ]
        assert exported, f"bot.sandbox.{name} has no __all__"
