"""Playbooks: the schema, the YAML loader's file:line:field messages, and `shipthread playbook ...`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot import playbooks
from bot.cli import main
from bot.config import load_settings
from bot.domain.deployment import Strategy
from bot.domain.playbook import GuardSpec, Playbook
from bot.errors import ConfigError, ConfigProblems, UnknownEnvironment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "playbooks"
EXAMPLE_CONFIG = ROOT / "config" / "shipthread.example.yaml"
BAD = ROOT / "tests" / "data" / "bad_playbooks"
BAD_CONFIG = BAD / "_config.yaml"

MINIMAL = """\
service: web
kubernetes:
  cluster: prod
  namespace: shop
  deployment: web
  container: app
  image: registry.example.com/web:{version}
environments:
  staging:
    channel: "#deploys"
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHIPTHREAD_CONFIG", "SHIPTHREAD_PLAYBOOKS", "SLACK_API_URL", "JENKINS_URL"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["playbook", *args])
    out, err = capsys.readouterr()
    return code, out, err


def playbook(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MINIMAL)
    data.update(changes)
    return data


# ---------------------------------------------------------------------------------------------------
# Every kind of mistake: exit 1 and file:line: field: message


MISTAKES = [
    ("broken-yaml", "broken-yaml.yaml:5: YAML syntax error: mapping values are not allowed here"),
    ("unknown-key", "unknown-key.yaml:8: kubernetes: unknown key 'replica' (did you mean 'replicas'?)"),
    ("missing-field", "missing-field.yaml:2: kubernetes: missing required field 'namespace'"),
    ("not-a-number", "not-a-number.yaml:14: environments.production.guard.checks[0].max: not a number"),
    (
        "too-many-approvals",
        "too-many-approvals.yaml:15: environments.production.approvals[1].count: "
        "approval count 3 is larger than group 'sre' (2 members)",
    ),
    (
        "duplicate-key",
        "duplicate-key.yaml:12: environments.staging: duplicate key 'channel' (first at line 10)",
    ),
    (
        "unknown-guard",
        "unknown-guard.yaml:17: environments.staging.guard: unknown guard 'htpp' (defined in guards: http)",
    ),
    ("wrong-name", "wrong-name.yaml:1: service: service 'checkout' does not match the file name"),
    (
        "requires-later",
        "requires-later.yaml:12: environments.staging.requires[0].succeeded_in: "
        "'production' comes after 'staging'",
    ),
    (
        "canary-on-rolling",
        "canary-on-rolling.yaml:12: environments.production.canary: canary settings need strategy: canary",
    ),
    (
        "unknown-placeholder",
        "unknown-placeholder.yaml:6: jenkins.parameters.BRANCH: unknown placeholder {branch}",
    ),
    ("secret-parameter", "secret-parameter.yaml:6: jenkins.parameters.API_TOKEN: secrets are read only from"),
    (
        "baseline-on-rolling",
        "baseline-on-rolling.yaml:13: guards.http.checks[0].baseline: baseline: stable needs strategy "
        "blue-green or canary, not rolling (used by 'staging')",
    ),
    (
        "fixed-time-check",
        "fixed-time-check.yaml:12: guards.http.checks[0].query: '@ 1700000000' pins the check",
    ),
    (
        "baseline-on-a-min",
        "baseline-on-a-min.yaml:14: guards.http.checks[0].baseline: a baseline judges higher values as "
        "worse, but this check has only a min",
    ),
    (
        "watch-without-bounds",
        "watch-without-bounds.yaml:10: guards.http.checks: no check has a min or max: after a rollback "
        "this guard watches the restored version with its absolute bounds only",
    ),
]


@pytest.mark.parametrize(("name", "expected"), MISTAKES, ids=[name for name, _ in MISTAKES])
def test_each_mistake_is_refused_with_file_line_and_field(
    capsys: pytest.CaptureFixture[str], name: str, expected: str
) -> None:
    path = BAD / f"{name}.yaml"
    code, out, err = run(capsys, "validate", str(path), "--config", str(BAD_CONFIG))
    assert code == 1
    problems = [line for line in err.splitlines() if line.startswith(str(path))]
    assert len(problems) == 1, err
    assert problems[0].startswith(f"{BAD}/{expected}"), problems[0]
    assert "Traceback" not in err
    assert f"ok: {path}" not in out


def test_approval_count_is_not_checked_against_a_group_of_unknown_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "leads" is a user-group handle: its size is Slack's business, so count 5 is not refused.
    _, _, err = run(capsys, "validate", str(BAD / "too-many-approvals.yaml"), "--config", str(BAD_CONFIG))
    assert "approvals[0]" not in err


def test_the_real_command_exits_1_without_a_traceback() -> None:
    files = [str(BAD / "not-a-number.yaml"), str(BAD / "broken-yaml.yaml"), str(BAD / "wrong-name.yaml")]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playbook", "validate", *files, "--config", str(BAD_CONFIG)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{BAD}/not-a-number.yaml:14: environments.production.guard.checks[0].max: not a number" in (
        result.stderr.splitlines()
    )
    assert f"{BAD}/broken-yaml.yaml:5: YAML syntax error" in result.stderr
    assert "shipthread: 3 problems found" in result.stderr


def test_the_real_command_accepts_the_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playbook", "validate", "playbooks/"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SHIPTHREAD_")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ok: playbooks/checkout.yaml" in result.stdout.splitlines()
    assert "ok: playbooks/payments.yaml" in result.stdout.splitlines()


def test_every_mistake_of_a_file_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(
        MINIMAL.replace("namespace: shop", "namespace: Shop_1").replace(
            'channel: "#deploys"', 'channel: "#deploys"\n    approval_ttl: soon\n    colour: blue'
        )
    )
    with pytest.raises(ConfigProblems) as caught:
        playbooks.load_playbook(path)
    assert [p.split(": ", 2)[:2] for p in caught.value.problems] == [
        [f"{path}:4", "kubernetes.namespace"],
        [f"{path}:11", "environments.staging.approval_ttl"],
        [f"{path}:12", "environments.staging"],
    ]
    assert "not a duration" in caught.value.problems[1]
    assert "unknown key 'colour'" in caught.value.problems[2]
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1: empty file"),
        ("- just\n- a list\n", ":1: a playbook is a mapping of keys"),
        (
            "service: !!python/object:os.system ls\n",
            ":1: YAML syntax error: could not determine a constructor",
        ),
        ("service: web\nservice: web\n", ":2: duplicate key 'service' (first at line 1)"),
        ("\tservice: web\n", ":1: YAML syntax error: found character '\\t'"),
    ],
)
def test_files_that_are_not_playbooks(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    with pytest.raises(ConfigProblems) as caught:
        playbooks.load_playbook(path)
    assert caught.value.problems[0].startswith(f"{path}{expected}"), caught.value.problems


def test_a_mistake_in_a_merged_anchor_points_at_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(
        MINIMAL
        + "  production: &prod\n"  # line 11
        + '    channel: "#deploys"\n'
        + "    approval_ttl: later\n"  # line 13
        + "  dr:\n"
        + "    <<: *prod\n"
        + "    approval_ttl: 1h\n"
    )
    with pytest.raises(ConfigProblems) as caught:
        playbooks.load_playbook(path)
    assert caught.value.problems == (
        f"{path}:13: environments.production.approval_ttl: not a duration: 'later' (use e.g. 30s, 5m, 1h30m)",
    )


def test_a_playbook_written_with_anchors_loads(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(
        MINIMAL + '  production: &prod\n    channel: "#prod"\n  dr:\n    <<: *prod\n    namespace: dr\n'
    )
    loaded = playbooks.load_playbook(path)
    assert loaded.environment("dr").channel == "#prod"
    assert loaded.target("dr").namespace == "dr"
    assert loaded.source is not None
    assert loaded.source.locate(("environments", "dr", "namespace")) == (
        15,
        ("environments", "dr", "namespace"),
    )


def test_load_playbooks_refuses_a_service_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(MINIMAL)
    (tmp_path / "web.yml").write_text(MINIMAL)
    with pytest.raises(ConfigProblems) as caught:
        playbooks.load_playbooks(tmp_path)
    assert caught.value.problems == (
        f"{tmp_path}/web.yml:1: service: service 'web' is also defined in {tmp_path}/web.yaml",
    )


def test_load_playbooks_from_a_folder_and_from_files() -> None:
    loaded = playbooks.load_playbooks(EXAMPLES)
    assert sorted(loaded) == ["checkout", "payments"]
    assert playbooks.load_playbooks([EXAMPLES / "payments.yaml"]).keys() == {"payments"}


@pytest.mark.parametrize(
    ("target", "expected"),
    [("missing.yaml", "missing.yaml: no such file or folder"), ("empty", "empty: no playbooks")],
)
def test_validate_names_paths_that_hold_no_playbook(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str, expected: str
) -> None:
    (tmp_path / "empty").mkdir()
    good = EXAMPLES / "checkout.yaml"
    code, out, err = run(
        capsys, "validate", str(tmp_path / target), str(good), "--config", str(EXAMPLE_CONFIG)
    )
    assert code == 1
    assert f"{tmp_path}/{expected}" in err
    assert f"ok: {good}" in out.splitlines()  # the other paths are still checked


# ---------------------------------------------------------------------------------------------------
# Defaults of `playbook validate`, and cross-validation against the config


def test_validate_defaults_to_playbooks_and_the_example_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "playbooks")
    (tmp_path / "config").mkdir()
    shutil.copy(EXAMPLE_CONFIG, tmp_path / "config" / "shipthread.example.yaml")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "validate")
    assert code == 0, err
    assert out.splitlines() == [
        "ok: playbooks/checkout.yaml",
        "ok: playbooks/payments.yaml",
        "ok: config/shipthread.example.yaml (config)",
    ]
    # A real config takes precedence over the example.
    (tmp_path / "config" / "shipthread.yaml").write_text("clusters: {}\n")
    code, _, err = run(capsys, "validate")
    assert code == 1
    assert "playbooks/checkout.yaml:14: kubernetes.cluster: unknown cluster 'prod-eu' (config: none)" in err


def test_validate_reads_shipthread_playbooks_and_shipthread_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "web.yaml").write_text(MINIMAL)
    config = tmp_path / "bot.yaml"
    config.write_text("clusters:\n  prod: {server: 'http://127.0.0.1:6443'}\n")
    monkeypatch.setenv("SHIPTHREAD_PLAYBOOKS", str(tmp_path / "books"))
    monkeypatch.setenv("SHIPTHREAD_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "validate")
    assert code == 0, err
    assert out.splitlines() == [f"ok: {tmp_path}/books/web.yaml", f"ok: {config} (config)"]


def test_validate_without_any_config_checks_the_playbooks_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "web.yaml").write_text(MINIMAL)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "validate", "web.yaml")
    assert code == 0
    assert out == "ok: web.yaml\n"
    assert "note: no config" in err


def test_validate_reports_a_broken_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text("slack:\n  bot_token: xoxb-123\n")
    code, _, err = run(capsys, "validate", str(EXAMPLES), "--config", str(config))
    assert code == 1
    assert f"{config}:2: slack.bot_token: secrets are read only from the environment" in err
    assert "xoxb-123" not in err


def test_cross_validate_names_every_reference_the_config_lacks(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(
        MINIMAL.replace('    channel: "#deploys"\n', "    cluster: dr\n    approvals:\n      - group: qa\n")
    )
    settings = load_settings(BAD_CONFIG, {})
    assert playbooks.cross_validate({"web": playbooks.load_playbook(path)}, settings) == [
        f"{path}:9: environments.staging: no channel: "
        "set channel here, or slack.default_channel in the config",
        f"{path}:10: environments.staging.cluster: unknown cluster 'dr' (config: prod)",
        f"{path}:12: environments.staging.approvals[0].group: "
        "unknown approver group 'qa' (config: sre, leads)",
    ]


def test_cross_validate_checks_freeze_windows_name_real_environments(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(
        "clusters: {prod: {context: prod}}\nfreeze_windows:\n"
        "  - {name: weekend, cron: '0 16 * * 5', duration: 64h, envs: [staging, prodution]}\n"
    )
    loaded = {"web": Playbook.model_validate(playbook())}
    assert playbooks.cross_validate(loaded, load_settings(config, {})) == [
        f"{config}:3: freeze_windows[0].envs[1]: no playbook defines environment 'prodution'"
    ]


def test_examples_pass_cross_validation_against_the_example_config() -> None:
    assert (
        playbooks.cross_validate(playbooks.load_playbooks(EXAMPLES), load_settings(EXAMPLE_CONFIG, {})) == []
    )


# ---------------------------------------------------------------------------------------------------
# The JSON Schema


def test_schema_is_json_schema_that_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Shipthread playbook"
    assert {"service", "kubernetes", "environments", "guards", "jenkins"} <= schema["properties"].keys()
    assert set(schema["required"]) == {"service", "kubernetes", "environments"}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert schema_errors(schema, schema, yaml.safe_load(path.read_text())) == [], path


def test_schema_rejects_what_the_model_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "schema")
    schema = json.loads(capsys.readouterr().out or json.dumps(playbooks.playbook_schema()))
    data = playbook(kubernetes={**playbook()["kubernetes"], "replica": 3})
    assert schema_errors(schema, schema, data) == ["kubernetes: unexpected 'replica'"]
    data = playbook(guards={"http": {"checks": [{"name": "x", "query": "q", "max": "lots"}]}})
    assert schema_errors(schema, schema, data) == ["guards.http.checks.0.max: no alternative matched"]
    durations = schema["$defs"]["GuardSpec"]["properties"]["window"]
    assert durations["default"] == "5m"
    assert schema_errors(schema, durations, "1h30m") == schema_errors(schema, durations, 90) == []


def test_the_schema_duration_pattern_agrees_with_the_model_and_cannot_backtrack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Editors run this pattern on every keystroke: it must answer a run of spaces at once.
    run(capsys, "schema")
    schema = json.loads(capsys.readouterr().out or json.dumps(playbooks.playbook_schema()))
    window = schema["$defs"]["GuardSpec"]["properties"]["window"]
    (text,) = [option for option in window["anyOf"] if option["type"] == "string"]
    pattern = re.compile(text["pattern"])
    for written in ("30s", "5m", "1h30m", "1h 30m", "2h5s", "PT5M"):
        assert pattern.search(written), written
        GuardSpec.model_validate({"checks": [{"name": "x", "query": "q", "max": 1}], "window": written})
    for hostile in (" " * 20_000 + "x", "1h" + " " * 20_000 + "x", "\t " * 10_000 + "5m!"):
        started = time.perf_counter()
        assert not pattern.search(hostile)
        assert time.perf_counter() - started < 0.1
    assert text["maxLength"] == 32


@pytest.mark.parametrize("field", ["min", "max", "max_increase", "max_ratio"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_threshold_is_a_finite_number(field: str, value: float) -> None:
    # `max: .nan` would make a guard that never fails: every comparison with NaN is False.
    check = {"name": "x", "query": "q{track}", "max": 1, "baseline": "stable", "max_ratio": 2}
    with pytest.raises(ValidationError) as refused:
        GuardSpec.model_validate({"checks": [{**check, field: value}]})
    errors = [(e["loc"], e["type"]) for e in refused.value.errors()]
    assert (("checks", 0, field), "finite_number") in errors, errors
    assert GuardSpec.model_validate({"checks": [check]}).checks[0].max == 1


def schema_errors(root: dict[str, Any], schema: dict[str, Any], value: Any, at: str = "") -> list[str]:
    """A tiny JSON Schema check (the subset pydantic emits): enough to see the schema is real."""
    if "$ref" in schema:
        return schema_errors(root, root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], value, at)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            if any(not schema_errors(root, option, value, at) for option in schema[key]):
                return []
            return [f"{at}: no alternative matched"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind and (not isinstance(value, kinds[kind]) or (kind in ("integer", "number") and value is True)):
        return [f"{at}: not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: not one of {schema['enum']}"]
    errors: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{at}: missing {name!r}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            where = f"{at}.{name}" if at else str(name)
            if name in properties:
                errors += schema_errors(root, properties[name], item, where)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{at}: unexpected {name!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(root, schema["additionalProperties"], item, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(root, schema["items"], item, f"{at}.{index}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{at}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{at}: above {schema['maximum']}")
    return errors


# ---------------------------------------------------------------------------------------------------
# The model and its helpers


@pytest.fixture(scope="module")
def checkout() -> Playbook:
    return playbooks.load_playbook(EXAMPLES / "checkout.yaml")


def test_templates_fill_jenkins_parameters_job_and_image(checkout: Playbook) -> None:
    assert checkout.template_params("1.4.2", "production") == {
        "VERSION": "1.4.2",
        "TARGET_ENV": "production",
        "SERVICE": "checkout",
    }
    assert checkout.job_path("1.4.2", "production") == "team/checkout-build"
    assert checkout.image("1.4.2", "staging") == "registry.example.com/checkout:1.4.2"


def test_queries_keep_promql_braces_and_use_the_environment_namespace(checkout: Playbook) -> None:
    guard = checkout.guard_for("staging")
    assert guard is not None
    queries = checkout.queries(guard, "1.4.2", "staging")
    assert queries["5xx ratio"].startswith(
        'sum(rate(http_requests_total{service="checkout",namespace="shop-staging",code=~"5.."}[1m]))'
    )
    assert "{" + "service}" not in queries["p99 latency"]


def test_environment_overrides_and_defaults(checkout: Playbook) -> None:
    staging, production = checkout.target("staging"), checkout.target("production")
    assert (staging.cluster, staging.namespace) == ("staging-eu", "shop-staging")
    assert (production.cluster, production.namespace) == ("prod-eu", "shop")
    assert checkout.default_environment == "staging"
    assert checkout.environment("production").strategy is Strategy.CANARY
    canary = checkout.environments["production"].canary
    assert canary is not None
    assert [s.weight for s in canary.steps] == [10, 50, 100]
    assert checkout.approval_ttl("production", timedelta(hours=1)) == timedelta(hours=2)
    assert checkout.approval_ttl("staging", timedelta(hours=1)) == timedelta(hours=1)
    with pytest.raises(
        UnknownEnvironment, match=r"checkout has no environment 'prod' \(known: staging, production\)"
    ):
        checkout.environment("prod")


def test_a_canary_step_may_bring_its_own_guard() -> None:
    gentle = {"checks": [{"name": "up", "query": "up", "min": 1}], "window": "1m", "interval": "10s"}
    loaded = Playbook.model_validate(
        playbook(
            guards={"strict": {"checks": [{"name": "errors", "query": "errors", "max": 0}]}},
            environments={
                "production": {
                    "channel": "C0123ABCD",
                    "strategy": "canary",
                    "guard": "strict",
                    "canary": {"steps": [{"weight": 5, "guard": gentle, "pause": "2m"}, 50]},
                }
            },
        )
    )
    first, second = loaded.guard_for("production", 0), loaded.guard_for("production", 1)
    assert isinstance(first, GuardSpec) and first.window == timedelta(minutes=1)
    assert second == loaded.guards["strict"] == loaded.guard_for("production")
    canary = loaded.environments["production"].canary
    assert canary is not None
    assert canary.steps[0].pause == timedelta(minutes=2)
    assert loaded.default_environment == "production"


def test_versions_that_cannot_be_image_tags_are_refused(checkout: Playbook) -> None:
    with pytest.raises(ValueError, match="not a valid version"):
        checkout.image("1.0; rm -rf /", "staging")


def messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Playbook.model_validate(data)
    return [str(error["msg"]) for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"environments": {"p": {"strategy": "canary"}}}, "strategy canary needs a 'canary' section"),
        (
            {"environments": {"p": {"strategy": "blue-green"}}},
            "strategy blue-green needs a 'blue_green' section",
        ),
        (
            {"environments": {"p": {"strategy": "canary", "canary": {"steps": [50, 10]}}}},
            "weights must increase",
        ),
        (
            {"environments": {"p": {"strategy": "canary", "canary": {"steps": [10, 100]}}}},
            "canary steps never wait",
        ),
        ({"environments": {"p": {"requires": [{"succeeded_in": "p"}]}}}, "cannot require itself"),
        ({"default_env": "qa"}, "unknown environment 'qa' (defined: staging)"),
        ({"environments": {"p": {"channel": "deploys"}}}, "not a Slack channel"),
        ({"jenkins": {"job": "/team/web/"}}, "not a job path"),
        ({"jenkins": {"job": "web", "parameters": {"RATIO": 1.10}}}, "quote this value"),
        ({"kubernetes": {**playbook()["kubernetes"], "image": "web:latest"}}, "must contain {version}"),
        (
            {"guards": {"g": {"checks": [{"name": "x", "query": "{job}", "max": 1}]}}},
            "unknown placeholder {job}",
        ),
        ({"guards": {"g": {"checks": [{"name": "x", "query": "q"}]}}}, "a check needs min, max or both"),
        (
            {"guards": {"g": {"checks": [{"name": "x", "query": "q", "max_ratio": 2}]}}},
            "max_ratio needs a baseline",
        ),
        (
            {"guards": {"g": {"checks": [{"name": "x", "query": "q", "max": 1, "baseline": "before"}]}}},
            "a baseline needs max_increase, max_ratio or both",
        ),
        (
            {
                "guards": {
                    "g": {"checks": [{"name": "x", "query": "q", "baseline": "stable", "max_increase": 0}]}
                }
            },
            "baseline: stable needs a {track} placeholder",
        ),
        (
            {"guards": {"g": {"checks": [{"name": "x", "query": "rate(q[5x])", "max": 1}]}}},
            "not a PromQL duration",
        ),
        ({"service": "Web_1"}, "not a valid name"),
    ],
)
def test_cross_field_rules(changes: dict[str, Any], expected: str) -> None:
    assert any(expected in message for message in messages(playbook(**changes))), messages(
        playbook(**changes)
    )


def test_jenkins_parameters_are_strings_on_the_wire() -> None:
    loaded = Playbook.model_validate(
        playbook(jenkins={"job": "web", "parameters": {"DRY_RUN": False, "SHARDS": 3, "TAG": "v{version}"}})
    )
    assert loaded.template_params("2.0.0", "staging") == {"DRY_RUN": "false", "SHARDS": "3", "TAG": "v2.0.0"}
    assert Playbook.model_validate(playbook()).template_params("2.0.0", "staging") == {}
    assert Playbook.model_validate(playbook()).job_path("2.0.0", "staging") is None


def test_a_stage_nobody_in_it_could_pass_is_a_warning_not_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    book = yaml.safe_load((EXAMPLES / "checkout.yaml").read_text())
    book["environments"]["production"]["approvals"] = [{"group": "sre", "count": 2}]
    path = tmp_path / "checkout.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    config = tmp_path / "shipthread.yaml"
    config.write_text(
        "clusters:\n  prod-eu: {context: prod-eu}\n  staging-eu: {context: staging-eu}\n"
        "approver_groups:\n  sre: [U0SRE00001, U0SRE00002]\n  tech-leads: [U0LEAD0001, U0LEAD0002]\n"
        "slack: {default_channel: C0DEPLOYS}\n"
    )
    code, out, err = run(capsys, "validate", str(path), "--config", str(config))
    assert code == 0, err
    assert f"ok: {path}" in out
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(f"{path}:") and "environments.production.approvals" in warnings[0]
    assert "needs all 2 members of group sre" in warnings[0]
