"""The README's reference sections, rendered from the code they describe so that they cannot drift.

Each section sits in ``README.md`` between ``<!-- reference:NAME:start -->`` and
``<!-- reference:NAME:end -->`` and is rendered from one source of truth:

- ``playbook`` and ``config``: the JSON Schema of ``Playbook`` (what ``shipthread playbook schema``
  gives editors) and of ``Settings``, with each field's type, default, allowed values and the
  field's docstring;
- ``environment``: the config loader's own lists (``ENV_OVERRIDES``, ``SECRET_VARIABLES``);
- ``commands``: the slash-command grammar's ``USAGE`` (what ``/deploy help`` answers);
- ``cli``: the ``shipthread`` argument parser;
- ``metrics``: the instruments of ``bot.metrics.Metrics``.

``python -m bot.reference`` rewrites the sections in place; ``--check`` only compares and exits 1
on drift, as ``tests/test_readme.py`` does. The rest of the README is prose and left alone. The
field tables' schema walk is ``bot.reference_tables``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from bot import cli, config
from bot.domain import commands, playbook
from bot.metrics import Metrics
from bot.reference_tables import SchemaTable, cell

UPDATE_COMMAND: Final = "python -m bot.reference"
"""What to run when the README's reference is out of date (the test's message names it)."""

_SECRET_NOTES: Final[Mapping[str, str]] = {
    "SLACK_BOT_TOKEN": "Bot User OAuth Token (`xoxb-…`, *OAuth & Permissions*); always needed",
    "SLACK_SIGNING_SECRET": "Signing Secret (*Basic Information → App Credentials*); HTTP mode",
    "SLACK_APP_TOKEN": "App-Level Token with `connections:write` (`xapp-…`); `serve --socket-mode` only",
    "JENKINS_USER": "Jenkins user the builds are triggered as",
    "JENKINS_TOKEN": "that user's Jenkins API token",
}
"""What each secret is and where to find it: the models say nothing about secrets on purpose."""

_SKIPPED_SETTINGS: Final = frozenset({"secrets"})
"""Settings fields that are not config keys (secrets come from the environment only)."""


# ---------------------------------------------------------------------------------------------------
# Sections in the README


_MARKER = re.compile(
    r"(?P<start><!-- reference:(?P<name>[a-z]+):start -->\n)(?P<body>.*?)"
    r"(?P<end><!-- reference:(?P=name):end -->)",
    re.DOTALL,
)


def sections() -> dict[str, Callable[[], str]]:
    """Every section's renderer, by the name its markers use."""
    return {
        "commands": render_commands,
        "cli": render_cli,
        "playbook": lambda: render_schema(playbook.Playbook.model_json_schema()),
        "config": lambda: render_schema(config.Settings.model_json_schema(), skip=_SKIPPED_SETTINGS),
        "environment": render_environment,
        "metrics": render_metrics,
    }


class MissingSection(LookupError):
    """The README lacks the markers of a section."""


def rewrite(text: str) -> str:
    """``text`` with every reference section rendered afresh; ``MissingSection`` if one has no markers."""
    renderers = sections()
    found = {m.group("name") for m in _MARKER.finditer(text)}
    missing = sorted(set(renderers) - found)
    if missing:
        raise MissingSection(
            "README.md has no markers for "
            + ", ".join(missing)
            + ": add "
            + " ".join(f"<!-- reference:{n}:start --> <!-- reference:{n}:end -->" for n in missing)
        )

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in renderers:
            return match.group(0)
        return match.group("start") + renderers[name]().rstrip("\n") + "\n" + match.group("end")

    return _MARKER.sub(fill, text)


# ---------------------------------------------------------------------------------------------------
# Slash commands and the command line


def render_commands() -> str:
    """What ``/deploy help`` answers, word for word."""
    return f"```\n{commands.USAGE}\n```\n"


def render_cli() -> str:
    """One entry per ``shipthread`` command: its synopsis, what it does, and its options."""
    lines: list[str] = []
    for words, parser, summary in _commands(cli._build_parser(), ()):
        synopsis = " ".join(["shipthread", *words, *(_synopsis(a) for a in _arguments(parser))])
        lines.append(f"- `{synopsis}`: {summary}")
        for action in _arguments(parser):
            if action.help:
                lines.append(f"  - `{_synopsis(action, bare=True)}`: {cell(action.help)}")
    return "\n".join(lines) + "\n"


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...], summary: str = ""
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command a person can run: a parser with arguments of its own, or without subcommands."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if words and (_arguments(parser) or not subcommands):
        yield words, parser, summary or (parser.description or "")
    for action in subcommands:
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, child in action.choices.items():
            yield from _commands(child, (*words, name), helps.get(name, ""))


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction)
    ]


def _synopsis(action: argparse.Action, *, bare: bool = False) -> str:
    """``[--port PORT]``, ``[--upgrade]``, ``[paths ...]`` (``bare``: without the brackets of options)."""
    if not action.option_strings:
        name = str(action.metavar or action.dest)
        return f"[{name} ...]" if action.nargs in ("*", "?") else name
    flag = max(action.option_strings, key=len)
    shown = flag if action.nargs == 0 else f"{flag} {action.metavar or action.dest.upper()}"
    return shown if bare or action.required else f"[{shown}]"


# ---------------------------------------------------------------------------------------------------
# Playbook and config tables, from their JSON Schema


def render_schema(schema: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> str:
    """A Markdown table of every field of ``schema``, nested models flattened into dotted paths."""
    rows = SchemaTable(schema, skip).rows()
    header = "| Field | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n"
    return header + "".join(
        f"| `{r.path}` | {r.type} | {r.default} | {r.allowed} | {r.description} |\n" for r in rows
    )


# ---------------------------------------------------------------------------------------------------
# Environment variables and metrics


def render_environment() -> str:
    """Every variable the bot reads: the config file, endpoint overrides and secrets."""
    schema = SchemaTable(config.Settings.model_json_schema(), _SKIPPED_SETTINGS)
    settings = {r.path: r for r in schema.rows()}
    rows = [
        (
            "SHIPTHREAD_CONFIG",
            "config file",
            f"`{config.DEFAULT_CONFIG}` if it exists, else built-in defaults",
            "The config file to read; a file named here must exist.",
        )
    ]
    for variable, loc in config.ENV_OVERRIDES.items():
        key = ".".join(str(part) for part in loc)
        row = settings[key]
        # The field's docstring names its variable ("env `JENKINS_URL`"): here that goes without saying.
        said = re.sub(rf"[;,]?\s*env `{variable}`\.?", "", row.description).strip()
        said = said or schema.description(".".join(str(part) for part in loc[:-1]))
        said = said if not said or said.endswith(".") else said + "."
        rows.append((variable, f"overrides `{key}`", row.default, said))
    unknown = [name for name in config.SECRET_VARIABLES if name not in _SECRET_NOTES]
    if unknown:
        raise LookupError(f"describe the secret(s) {', '.join(unknown)} in bot/reference.py's _SECRET_NOTES")
    rows += [(name, "secret", "", _SECRET_NOTES[name] + ".") for name in config.SECRET_VARIABLES]
    header = "| Variable | What it is | Default | Description |\n|---|---|---|---|\n"
    return header + "".join(f"| `{v}` | {what} | {default} | {text} |\n" for v, what, default, text in rows)


_EXPOSED: Final[Mapping[str, tuple[str, ...]]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def render_metrics() -> str:
    """The series ``GET /metrics`` serves, as Prometheus names them, with labels and help."""
    lines = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_text in metric_families():
        exposed = ", ".join(f"`{name}{suffix}`" for suffix in _EXPOSED.get(kind, ("",)))
        shown = ", ".join(f"`{label}`" for label in labels)
        lines.append(f"| {exposed} | {kind} | {shown} | {cell(help_text)} |")
    return "\n".join(lines) + "\n"


def metric_families() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(name, type, label names, help) of every instrument of ``Metrics``, in declaration order."""
    families = []
    for instrument in vars(Metrics()).values():
        describe = getattr(instrument, "describe", None)
        if describe is None:
            continue
        for family in describe():
            # Label names are not part of a family with no samples yet: the instrument keeps them.
            labels = tuple(getattr(instrument, "_labelnames", ()))
            families.append((family.name, family.type, labels, family.documentation))
    return families


# ---------------------------------------------------------------------------------------------------
# The command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=UPDATE_COMMAND, description="Render the README's reference sections."
    )
    parser.add_argument("readme", nargs="?", default="README.md", help="the README to update")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when out of date")
    args = parser.parse_args(argv)
    path = Path(args.readme)
    text = path.read_text(encoding="utf-8")
    try:
        fresh = rewrite(text)
    except MissingSection as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if fresh == text:
        return 0
    if args.check:
        print(f"{path}: the reference is out of date: run `{UPDATE_COMMAND}` to update it", file=sys.stderr)
        return 1
    path.write_text(fresh, encoding="utf-8")
    print(f"{path}: reference updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
