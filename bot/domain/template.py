"""The placeholder templates of playbooks: ``{service}``, ``{env}``, ``{version}``, ``{namespace}``.

Jenkins job paths and parameters, the image and every guard check's PromQL are templates. Only
``{identifier}`` is a placeholder: any other brace is left alone, because PromQL label matchers
(``{code=~"5.."}``) are braces too. The rules live here, once: which placeholders a template uses
(the guard's batch key holds only those), whether they are allowed (checked when a playbook is
loaded, so an unknown one is never a surprise at deploy time), and how a template is filled in —
as written (job paths, images) or escaped for PromQL strings (guard queries).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

TEMPLATE_FIELDS: tuple[str, ...] = ("service", "env", "version", "namespace")
"""The placeholders a template may use."""
QUERY_FIELDS: tuple[str, ...] = (*TEMPLATE_FIELDS, "track")
"""A guard check's placeholders: ``{track}`` is the canary/stable track (or blue-green colour)."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PROMQL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def placeholders(template: str) -> list[str]:
    """The ``{identifier}`` placeholders of ``template``, in order, repeats included."""
    return _PLACEHOLDER.findall(template)


def placeholders_in(template: str) -> frozenset[str]:
    """Which placeholders ``template`` uses: what its rendering can depend on, nothing else."""
    return frozenset(_PLACEHOLDER.findall(template))


def check_template(template: str, fields: tuple[str, ...] = TEMPLATE_FIELDS) -> str:
    """``template`` itself, or ``ValueError`` naming the first placeholder that is not allowed."""
    for name in placeholders(template):
        if name not in fields:
            allowed = ", ".join("{" + f + "}" for f in fields)
            raise ValueError(f"unknown placeholder {{{name}}} (allowed: {allowed})")
    return template


def promql_string(value: str) -> str:
    """``value`` escaped for the inside of a PromQL double-quoted string."""
    return value.translate(_PROMQL_ESCAPES)


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{name}`` placeholders from ``values`` as written; one without a value is a
    ``ValueError``; other braces stay as written."""
    return _substitute(template, values, lambda value: value, _missing)


def render_promql(template: str, values: Mapping[str, str], *, keep_missing: bool = False) -> str:
    """A guard check's PromQL: placeholders filled with their values escaped for PromQL strings.

    A placeholder without a value is a ``ValueError``, or with ``keep_missing`` stays as written (the
    metrics adapter fills a batched query's ``{services}`` itself).
    """
    return _substitute(template, values, promql_string, _kept if keep_missing else _missing)


def _missing(name: str) -> str:
    raise ValueError(f"no value for placeholder {{{name}}}")


def _kept(name: str) -> str:
    return "{" + name + "}"


def _substitute(
    template: str, values: Mapping[str, str], escape: Callable[[str], str], missing: Callable[[str], str]
) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return escape(values[name]) if name in values else missing(name)

    return _PLACEHOLDER.sub(one, template)
