"""Loading playbooks from YAML, checking them against the config, and the ``playbook`` commands.

A playbook is read with the line of every key kept (``bot.yaml_source.read_yaml``), validated by the
pure model ``bot.domain.playbook.Playbook``, and every mistake is reported as
``playbooks/checkout.yaml:14: environments.production.guard.checks[0].max: not a number``.
Mistakes that need the config (a cluster or approver group that does not exist, more approvals than
a group has people) are found by ``cross_validate``, with the same file-and-line messages.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.json_schema import GenerateJsonSchema

from bot.config import DEFAULT_CONFIG, load_settings
from bot.domain.approvals import validate_stages
from bot.domain.durations import format_duration
from bot.domain.located import Loc, SourceMap
from bot.domain.playbook import Playbook
from bot.errors import ConfigProblems
from bot.secret_scan import secret_locations
from bot.settings import Settings
from bot.yaml_source import located_errors, problem_at, problems_in_file_order, read_yaml

EXAMPLE_CONFIG = "config/shipthread.example.yaml"
"""Used by ``playbook validate`` for cross-validation when no real config is around (e.g. in CI)."""

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
PLAYBOOK_SUFFIXES = (".yaml", ".yml")


def load_playbook(path: str | os.PathLike[str]) -> Playbook:
    """The playbook in ``path``; ``ConfigProblems`` (a ``ConfigError``) listing every mistake.

    The service name must equal the file's name without its suffix.
    """
    shown = str(path)
    document = read_yaml(path)
    source, data = document.source, document.data
    if data is None:
        raise ConfigProblems(
            [f"{shown}:1: empty file: a playbook needs service, kubernetes and environments"]
        )
    if not isinstance(data, dict):
        raise ConfigProblems(
            [
                problem_at(
                    source, (), "a playbook is a mapping of keys (service, kubernetes, environments, ...)"
                )
            ]
        )
    found = _secrets(data) + _name_problem(Path(path).stem, data.get("service"))
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        found += located_errors(exc, Playbook)
    if found:
        raise ConfigProblems(problems_in_file_order(source, found))
    return playbook.with_source(source)


def _secrets(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    # Key names are judged only where a secret could sensibly be written, Jenkins parameters (a
    # guard may well be called "token-errors"); values (Slack tokens, URLs with passwords) anywhere.
    found = list(secret_locations(data, check_keys=False))
    jenkins = data.get("jenkins")
    if isinstance(jenkins, dict) and isinstance(jenkins.get("parameters"), dict):
        found += secret_locations(jenkins["parameters"], ("jenkins", "parameters"))
    return list(dict.fromkeys(found))


def _name_problem(stem: str, service: Any) -> list[tuple[Loc, str]]:
    if isinstance(service, str) and service != stem:
        message = (
            f"service {service!r} does not match the file name: "
            f"name the file {service}.yaml, or write service: {stem}"
        )
        return [(("service",), message)]
    return []


def playbook_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The playbook files named by ``paths``: files as given, folders' ``*.yaml``/``*.yml`` (sorted)."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[Path] = []
    problems: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in PLAYBOOK_SUFFIXES and p.is_file())
            if not found:
                problems.append(f"{item}: no playbooks (*.yaml, *.yml) in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{item}: no such file or folder")
    if problems:
        raise ConfigProblems(problems)
    return files


def load_playbooks(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> dict[str, Playbook]:
    """Every playbook in ``paths`` (a folder, a file, or several), by service name.

    ``ConfigProblems`` lists the mistakes of all files at once.
    """
    loaded, problems = _load_all(playbook_files(paths))
    if problems:
        raise ConfigProblems(problems)
    return loaded


def _load_all(files: Iterable[Path]) -> tuple[dict[str, Playbook], list[str]]:
    loaded: dict[str, Playbook] = {}
    problems: list[str] = []
    for file in files:
        try:
            playbook = load_playbook(file)
        except ConfigProblems as exc:
            problems += exc.problems
            continue
        other = loaded.get(playbook.service)
        if other is not None and other.source is not None:
            problems.append(
                problem_at(
                    playbook.source or SourceMap(str(file)),
                    ("service",),
                    f"service {playbook.service!r} is also defined in {other.source.path}",
                )
            )
            continue
        loaded[playbook.service] = playbook
    return loaded, problems


# ---------------------------------------------------------------------------------------------------
# Against the config


def cross_validate(playbooks: Mapping[str, Playbook], settings: Settings) -> list[str]:
    """Mistakes that only the config reveals, as ``path:line: field: message`` lines.

    Clusters and approver groups must exist; an approval count cannot exceed the size of a group
    made only of user ids; an environment needs a channel unless the config has a default one; a
    freeze window must name environments some playbook defines. (The break-glass group's existence
    is checked when the settings are loaded.)
    """
    problems: list[str] = []
    for playbook in playbooks.values():
        problems += playbook_problems(playbook, settings)
    problems += _freeze_problems(playbooks, settings)
    return problems


def playbook_problems(playbook: Playbook, settings: Settings) -> list[str]:
    """``cross_validate`` for one playbook."""
    source = playbook.source or SourceMap(f"playbook {playbook.service}")
    found: list[tuple[Loc, str]] = []
    clusters = ", ".join(settings.clusters) or "none"
    groups = ", ".join(settings.approver_groups) or "none"
    if playbook.kubernetes.cluster not in settings.clusters:
        found.append(
            (
                ("kubernetes", "cluster"),
                f"unknown cluster {playbook.kubernetes.cluster!r} (config: {clusters})",
            )
        )
    for name, env in playbook.environments.items():
        at: Loc = ("environments", name)
        if env.cluster is not None and env.cluster not in settings.clusters:
            found.append(((*at, "cluster"), f"unknown cluster {env.cluster!r} (config: {clusters})"))
        if env.channel is None and settings.slack.default_channel is None:
            found.append((at, "no channel: set channel here, or slack.default_channel in the config"))
        for index, stage in enumerate(env.approvals):
            where: Loc = (*at, "approvals", index)
            if stage.group not in settings.approver_groups:
                found.append(
                    ((*where, "group"), f"unknown approver group {stage.group!r} (config: {groups})")
                )
                continue
            size = settings.group_size(stage.group)
            if size is not None and stage.count > size:
                found.append(
                    (
                        (*where, "count"),
                        f"approval count {stage.count} is larger than group {stage.group!r} ({size} members)",
                    )
                )
    return problems_in_file_order(source, found)


def approval_warnings(playbook: Playbook, settings: Settings) -> list[str]:
    """Approval stages that some deployments could never get through, as warnings.

    Valid but probably unintended: e.g. a stage needing every member of a group, which nobody in
    that group can ever pass for their own deployment (the requester never counts). Judged only for
    groups listed as user ids; a Slack user group's members are known only at run time.
    """
    source = playbook.source or SourceMap(f"playbook {playbook.service}")
    warnings: list[str] = []
    for name, env in playbook.environments.items():
        if not env.approvals:
            continue
        members: dict[str, frozenset[str]] = {}
        for stage in env.approvals:
            ids = settings.approver_groups.get(stage.group, ())
            if settings.group_size(stage.group) is None:
                break  # a user group is involved: its members are known only at run time
            members[stage.group] = frozenset(ids)
        else:
            for message in validate_stages(env.approvals, members):
                warnings.append(
                    problem_at(source, ("environments", name, "approvals"), f"warning: {message}")
                )
    return warnings


def _freeze_problems(playbooks: Mapping[str, Playbook], settings: Settings) -> list[str]:
    if not playbooks:
        return []
    source = settings.source or SourceMap("config")
    defined = {env for playbook in playbooks.values() for env in playbook.environments}
    problems: list[str] = []
    for index, window in enumerate(settings.freeze_windows):
        for position, env in enumerate(window.envs):
            if env not in defined:
                loc = ("freeze_windows", index, "envs", position)
                problems.append(problem_at(source, loc, f"no playbook defines environment {env!r}"))
    return problems


# ---------------------------------------------------------------------------------------------------
# Commands


def validate_command(paths: list[str], config_path: str | None) -> int:
    """``shipthread playbook validate [PATHS] [--config FILE]``: 0 when everything is valid, else 1.

    Prints ``ok: <file>`` on stdout for each valid file and one ``file:line: field: message`` line
    per mistake on stderr. Paths default to ``$SHIPTHREAD_PLAYBOOKS`` or ``playbooks/``. The config
    used for cross-validation is ``--config``, else ``$SHIPTHREAD_CONFIG``, else
    ``config/shipthread.yaml``, else ``config/shipthread.example.yaml``; with none of them, the
    playbooks are checked on their own and a note says so.
    """
    targets = paths or [os.environ.get("SHIPTHREAD_PLAYBOOKS") or "playbooks"]
    errors: list[str] = []
    files: list[Path] = []
    for target in targets:  # one at a time, so a wrong path does not hide the others' mistakes
        try:
            files += playbook_files(target)
        except ConfigProblems as exc:
            errors += exc.problems
    playbooks, problems = _load_all(files)
    errors += problems
    settings, config_errors = _settings_for(config_path)
    for playbook in playbooks.values():
        cross = playbook_problems(playbook, settings) if settings is not None else []
        errors += cross
        if not cross:
            print(f"ok: {playbook.source.path if playbook.source else playbook.service}")
            for warning in approval_warnings(playbook, settings) if settings is not None else []:
                print(warning, file=sys.stderr)
    if settings is not None:
        config_errors += _freeze_problems(playbooks, settings)
        if settings.source is not None and not config_errors:
            print(f"ok: {settings.source.path} (config)")
    errors += config_errors
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"shipthread: {len(errors)} problem{'s' if len(errors) != 1 else ''} found", file=sys.stderr)
        return 1
    return 0


def _settings_for(config_path: str | None) -> tuple[Settings | None, list[str]]:
    explicit = config_path or os.environ.get("SHIPTHREAD_CONFIG") or None
    if explicit is None:
        explicit = next((p for p in (DEFAULT_CONFIG, EXAMPLE_CONFIG) if Path(p).is_file()), None)
    if explicit is None:
        print(
            f"note: no config ({DEFAULT_CONFIG} or {EXAMPLE_CONFIG}): "
            "clusters and approver groups not checked",
            file=sys.stderr,
        )
        return None, []
    try:
        return load_settings(explicit), []
    except ConfigProblems as exc:
        return None, list(exc.problems)


class _Schema(GenerateJsonSchema):
    """Pydantic's generator, with durations' defaults written as people write them ("5m", not "PT5M")."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def playbook_schema() -> dict[str, Any]:
    """The playbook JSON Schema (draft 2020-12), for editors and CI."""
    schema = Playbook.model_json_schema(schema_generator=_Schema)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "Shipthread playbook",
        "description": "playbooks/<service>.yaml: how Shipthread builds, deploys and guards one service.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }


def schema_command() -> int:
    """``shipthread playbook schema``: print the JSON Schema (redirect it to a file)."""
    print(json.dumps(playbook_schema(), indent=2))
    return 0
