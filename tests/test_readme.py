"""The README tells the truth: its reference is the code's, its commands run, its alert rules load.

The reference sections are regenerated from the models, grammar, parser and metrics
(``bot.reference``) and compared with the file; every ``shipthread …`` line in its shell blocks must
parse with the real argument parser; ``docs/alerts.yaml`` must load in ``promtool`` and fire (and
stay quiet) as its unit tests below say, on metric names the bot really exports.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from bot import cli, config, reference
from bot.domain.playbook import Duration
from tests.support.prometheus import missing_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ALERTS = ROOT / "docs" / "alerts.yaml"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_reference_sections_match_the_code() -> None:
    text = _readme()
    fresh = reference.rewrite(text)
    if fresh != text:
        changed = [
            name
            for name, render in reference.sections().items()
            if f"<!-- reference:{name}:start -->\n{render().rstrip()}\n<!-- reference:{name}:end -->"
            not in text
        ]
        pytest.fail(
            f"README.md's reference is out of date ({', '.join(changed)}): "
            f"run `{reference.UPDATE_COMMAND}` to update the README",
            pytrace=False,
        )


def test_every_section_has_its_markers() -> None:
    with pytest.raises(reference.MissingSection, match="playbook"):
        reference.rewrite(_readme().replace("<!-- reference:playbook:start -->", ""))


def test_the_update_command_rewrites_a_stale_readme(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(re.sub(r"`shipthread_outbox_depth`", "`gone`", _readme()), encoding="utf-8")
    assert reference.main([str(stale), "--check"]) == 1
    assert reference.main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == _readme()
    assert reference.main([str(stale), "--check"]) == 0


# -- the schema tables, on a model made for the purpose -----------------------------------------------


class _Mode(StrEnum):
    """How it goes."""

    FAST = "fast"
    SLOW = "slow"


class _Inner(BaseModel):
    """An inner part; more words for the code's readers."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    weight: int = Field(ge=1, le=100)
    """Percent."""
    pause: Duration = timedelta(minutes=2)


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """The | name."""
    mode: _Mode = _Mode.SLOW
    parts: dict[str, _Inner] = Field(default_factory=dict)
    extra: _Inner | None = None
    """Another one, written in place."""
    tags: tuple[str, ...] = ()
    note: str = ""


def test_schema_tables_show_path_type_default_allowed_and_description() -> None:
    table = reference.render_schema(_Outer.model_json_schema())
    rows = [line for line in table.splitlines()[2:]]
    assert rows == [
        "| `name` | string | required | not empty | The \\| name. |",
        "| `mode` | string | `slow` | `fast`, `slow` | How it goes. |",
        "| `parts` | map of `<part>` to mapping |  |  | An inner part. |",
        "| `parts.<part>.weight` | integer | required | ≥ 1, ≤ 100 | Percent. |",
        "| `parts.<part>.pause` | duration | `2m` | 30s, 5m, 1h30m (or ISO 8601, e.g. PT5M), up to 720h |  |",
        "| `extra` | mapping | none |  | Another one, written in place. Fields as under `parts.<part>`. |",
        "| `tags` | list of string | empty |  |  |",
        '| `note` | string | `""` |  |  |',
    ]


def test_config_table_leaves_secrets_to_the_environment_table() -> None:
    text = _readme()
    assert "`secrets" not in text
    for variable in config.SECRET_VARIABLES:
        assert f"| `{variable}` | secret |" in text


# -- commands written in the README -------------------------------------------------------------------


def _shell_lines(text: str) -> list[str]:
    """Commands in ``sh``/``console`` blocks, continuation lines joined, prompts removed."""
    lines: list[str] = []
    for block in re.findall(r"```(?:sh|console)\n(.*?)```", text, re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.removeprefix("$ ").strip()
            if line:
                lines.append(line)
    return lines


def _shipthread_commands(text: str) -> list[list[str]]:
    commands = []
    for line in _shell_lines(text):
        for part in re.split(r"&&|;", line):
            words = shlex.split(part, comments=True)
            if words and words[0] == "shipthread":
                commands.append(words[1:])
    return commands


def test_every_shipthread_command_in_the_readme_parses() -> None:
    found = _shipthread_commands(_readme())
    assert len(found) >= 5, found
    parser = cli._build_parser()
    for argv in found:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README: `shipthread {' '.join(argv)}` is not a valid command", pytrace=False)


def test_a_wrong_command_would_be_caught() -> None:
    with pytest.raises(SystemExit):
        cli._build_parser().parse_args(["serve", "--no-such-flag"])


def test_the_first_commands_are_set_up_plus_sandbox_then_the_test_gate() -> None:
    lines = _shell_lines(_readme())
    for line in lines[:2]:
        assert line.endswith("pip install -e . && shipthread sandbox"), line
    assert "python3-venv prometheus" in lines[0] and "python3 -m venv .venv" in lines[0]
    # Ubuntu 22.04's python3 is 3.10, below requires-python: its variant builds the venv with 3.11.
    assert "python3.11 python3.11-venv prometheus" in lines[1] and "python3.11 -m venv .venv" in lines[1]
    assert lines[2] == "bash .ci/run"
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# -- the alert rules ---------------------------------------------------------------------------------


def _promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        missing_server("prometheus")  # promtool ships in the same Debian package
        raise AssertionError("unreachable")
    return found


def test_alert_rules_use_only_metrics_the_bot_exports() -> None:
    exported = {
        f"{name}{suffix}"
        for name, kind, _, _ in reference.metric_families()
        for suffix in reference._EXPOSED.get(kind, ("",))
    }
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    used = {
        word
        for group in rules["groups"]
        for rule in group["rules"]
        for word in re.findall(r"\bshipthread_[a-z_]+", rule["expr"])
    }
    assert used, "the rules should watch the bot's own metrics"
    assert used <= exported, f"not exported by bot.metrics: {sorted(used - exported)}"


def test_alert_rules_load_in_promtool() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


_RULE_TESTS = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # An effect stuck from minute 0: its age grows a minute a minute.
      - series: 'shipthread_outbox_oldest_age_seconds{{instance="bot:3000", job="shipthread"}}'
        values: '0+60x30'
      - series: 'up{{instance="bot:3000", job="shipthread"}}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 12m
        alertname: ShipthreadOutboxStuck
        exp_alerts: []
      - eval_time: 20m
        alertname: ShipthreadOutboxStuck
        exp_alerts:
          - exp_labels: {{severity: page}}
            exp_annotations:
              summary: "Shipthread has an effect waiting for 20m 0s"
              description: >-
                The oldest effect in Shipthread's outbox has waited over 10 minutes. Look at the bot's
                logs ("effect ... will be retried: ...") and shipthread_adapter_errors_total by kind to
                see which system is refusing, and at /readyz.
      - eval_time: 20m
        alertname: ShipthreadDown
        exp_alerts: []
  - interval: 1m
    input_series:
      # Effects done within seconds, and a bot that stops answering at minute 5.
      - series: 'shipthread_outbox_oldest_age_seconds{{instance="bot:3000", job="shipthread"}}'
        values: '0 3 0 5 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'up{{instance="bot:3000", job="shipthread"}}'
        values: '1 1 1 1 1 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 20m
        alertname: ShipthreadOutboxStuck
        exp_alerts: []
      - eval_time: 12m
        alertname: ShipthreadDown
        exp_alerts:
          - exp_labels: {{severity: page, instance: "bot:3000", job: shipthread}}
            exp_annotations:
              summary: "Shipthread's /metrics has not answered for 5 minutes"
              description: "The scrape of bot:3000 fails: check the pod and GET /healthz."
"""


def test_alert_rules_fire_on_a_stuck_outbox_and_not_on_a_busy_one(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yaml"
    tests.write_text(_RULE_TESTS.format(rules=ALERTS), encoding="utf-8")
    result = subprocess.run(
        [_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
