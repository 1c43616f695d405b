"""Loading Shipthread's settings: the config file, then the environment.

Settings come from ``config/shipthread.yaml`` (or ``$SHIPTHREAD_CONFIG``), then the environment:
endpoint variables (``SLACK_API_URL``, ``JENKINS_URL``, ...) override the file, and secrets
(``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``, ``SLACK_APP_TOKEN``, ``JENKINS_USER``,
``JENKINS_TOKEN``) come from the environment only. A config file holding anything that looks like
a secret is refused (``bot.secret_scan``), so a token never lands in a repository. Every mistake is
reported as ``path:line: field: message`` (``bot.yaml_source``), or names the environment variable
it came from.

The parts live by job: the YAML reader and located errors in ``bot.yaml_source``, secret scanning in
``bot.secret_scan``, the settings models in ``bot.settings``. The names the CLI, the server and the
tests use are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.domain.located import Loc, SourceMap
from bot.errors import ConfigProblems
from bot.secret_scan import SECRET_VARIABLES, secret_locations
from bot.settings import DEFAULT_DATABASE_URL, ConcurrencyPolicy, Secrets, Settings
from bot.yaml_source import YamlDocument, located_errors, problem_at, read_yaml

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DATABASE_URL",
    "ENV_OVERRIDES",
    "SECRET_VARIABLES",
    "ConcurrencyPolicy",
    "Settings",
    "load_settings",
]

DEFAULT_CONFIG = "config/shipthread.yaml"

ENV_OVERRIDES: Mapping[str, Loc] = {
    "SHIPTHREAD_DATABASE_URL": ("database_url",),
    "SLACK_API_URL": ("slack", "api_url"),
    "JENKINS_URL": ("jenkins", "url"),
    "PROMETHEUS_URL": ("prometheus", "url"),
    "KUBECONFIG": ("kubeconfig",),
    "SHIPTHREAD_PLAYBOOKS": ("playbooks_dir",),
}
"""Environment variables that override a config key (empty values are ignored)."""


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``path`` (default ``$SHIPTHREAD_CONFIG``, else ``config/shipthread.yaml`` if it
    exists, else defaults only), overridden by the environment; ``ConfigProblems`` on any mistake.

    A file named explicitly (argument or ``SHIPTHREAD_CONFIG``) must exist; the default one may not.
    """
    env = os.environ if environ is None else environ
    chosen = str(path) if path is not None else env.get("SHIPTHREAD_CONFIG") or None
    if chosen is None and Path(DEFAULT_CONFIG).is_file():
        chosen = DEFAULT_CONFIG
    document = YamlDocument({}, SourceMap("(no config file)")) if chosen is None else read_yaml(chosen)
    source = document.source
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigProblems(
            [problem_at(source, (), "the config must be a mapping of keys (slack, clusters, ...)")]
        )
    secrets = [problem_at(source, loc, message) for loc, message in secret_locations(data)]
    if secrets:
        raise ConfigProblems(secrets)
    data, from_env = _with_environment(data, env)
    data["secrets"] = Secrets.from_environ(env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigProblems(_settings_problems(exc, source, from_env)) from None
    return settings.with_source(source) if chosen is not None else settings


def _with_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """A copy of ``data`` with the environment's overrides, and which variable set which key."""
    # An empty key ("slack:" with its lines commented out) means the defaults, not a mistake.
    merged = {key: value for key, value in data.items() if value is not None}
    from_env: dict[Loc, str] = {}
    for variable, loc in ENV_OVERRIDES.items():
        value = environ.get(variable)
        if not value:
            continue
        target: Any = merged
        for part in loc[:-1]:
            section = target.get(part, {})
            if not isinstance(section, dict):
                break  # the file's section is malformed: let validation say so
            copy = dict(section)
            target[part] = copy
            target = copy
        else:
            target[loc[-1]] = value
            from_env[loc] = variable
    return merged, from_env


def _settings_problems(exc: ValidationError, source: SourceMap, from_env: Mapping[Loc, str]) -> list[str]:
    """Pydantic's errors in file order, naming the environment variable for values that came from one."""
    problems: list[tuple[int, str]] = []
    for loc, message in located_errors(exc, Settings):
        variable = next((v for key, v in from_env.items() if loc[: len(key)] == key), None)
        if variable is None:
            problems.append((source.locate(loc)[0], problem_at(source, loc, message)))
        else:
            problems.append((0, f"environment variable {variable}: {message}"))
    return [text for _, text in sorted(problems, key=lambda pair: pair[0])]
