"""Playbook templates: which placeholders a template uses, and the two ways of filling one in."""

from __future__ import annotations

import pytest

from bot.domain.template import (
    QUERY_FIELDS,
    check_template,
    placeholders,
    placeholders_in,
    promql_string,
    render,
    render_promql,
)

ERRORS = 'sum(rate(http_requests_total{service="{service}",namespace="{namespace}",code=~"5.."}[1m]))'


def test_placeholders_in_names_only_what_the_template_uses() -> None:
    assert placeholders_in(ERRORS) == {"service", "namespace"}
    assert placeholders_in('up{job="x"}') == frozenset()
    assert placeholders_in("{version}-{version}") == {"version"}
    assert placeholders("{version}-{env}-{version}") == ["version", "env", "version"]


def test_promql_braces_are_not_placeholders() -> None:
    assert placeholders_in('rate(x{code=~"5.."}[5m]) > {track}') == {"track"}
    assert render("a{b}c", {"b": "B"}) == "aBc"
    assert render('x{code="5"}', {}) == 'x{code="5"}'


def test_promql_values_are_escaped_and_job_paths_are_not() -> None:
    values = {"service": 'we"ird\\', "namespace": "shop"}
    assert render_promql(ERRORS, values) == ERRORS.replace("{service}", 'we\\"ird\\\\').replace(
        "{namespace}", "shop"
    )
    assert render("team/{service}", values) == 'team/we"ird\\'
    assert promql_string("a\nb") == "a\\nb"


def test_a_missing_value_is_an_error_unless_kept_for_the_batch() -> None:
    with pytest.raises(ValueError, match=r"no value for placeholder \{service\}"):
        render("{service}", {})
    with pytest.raises(ValueError, match=r"no value for placeholder \{namespace\}"):
        render_promql(ERRORS, {"service": "a"})
    batched = 'sum by (service) (x{service=~"{services}",env="{env}"})'
    assert render_promql(batched, {"env": "prod"}, keep_missing=True) == batched.replace("{env}", "prod")


def test_unknown_placeholders_are_refused_naming_the_allowed_ones() -> None:
    assert check_template("{track}", QUERY_FIELDS) == "{track}"
    with pytest.raises(ValueError, match=r"unknown placeholder \{track\} \(allowed: \{service\}"):
        check_template("{track}")
