"""Settings: defaults, the config file, environment overrides, and secrets kept out of files and logs."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import DEFAULT_DATABASE_URL, ConcurrencyPolicy, Settings, load_settings
from bot.domain.locks import FreezeWindow
from bot.domain.redact import masked_url
from bot.errors import ConfigError, ConfigProblems

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "shipthread.example.yaml"

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-secret-bot",
    "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    "SLACK_APP_TOKEN": "xapp-1-secret-app",
    "JENKINS_USER": "deploy-bot-user",
    "JENKINS_TOKEN": "11aa22bb33cc44dd55ee",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shipthread.yaml"
    path.write_text(text)
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigProblems) as caught:
        load_settings(path, environ or {})
    assert isinstance(caught.value, ConfigError)
    return caught.value.problems


def test_without_a_config_file_the_defaults_apply(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./shipthread.db"
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.jenkins.url is None and settings.prometheus.url is None
    assert settings.playbooks_dir == "playbooks"
    assert settings.concurrency is ConcurrencyPolicy.REFUSE
    assert settings.approval_ttl == timedelta(hours=1)
    assert settings.source is None
    assert settings.secrets.slack_bot_token is None


def test_the_default_file_is_read_when_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "shipthread.yaml").write_text("concurrency: queue\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    assert settings.concurrency is ConcurrencyPolicy.QUEUE
    assert settings.source is not None and settings.source.path == "config/shipthread.yaml"


def test_shipthread_config_names_the_file_and_it_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "approval_ttl: 30m\n")
    assert load_settings(None, {"SHIPTHREAD_CONFIG": str(path)}).approval_ttl == timedelta(minutes=30)
    with pytest.raises(ConfigProblems, match=r"nowhere\.yaml: no such file"):
        load_settings(None, {"SHIPTHREAD_CONFIG": str(tmp_path / "nowhere.yaml")})
    with pytest.raises(ConfigProblems, match=r"nowhere\.yaml: no such file"):
        load_settings(tmp_path / "nowhere.yaml", {})


def test_the_example_config_loads() -> None:
    settings = load_settings(EXAMPLE_CONFIG, {})
    assert settings.clusters["prod-eu"].context == "prod-eu"
    assert settings.break_glass == "platform"
    assert settings.group_size("sre") == 3
    assert settings.group_size("tech-leads") is None  # it includes a user-group handle
    assert settings.group_size("nobody") is None
    assert settings.freezes() == (
        FreezeWindow(
            "weekend",
            "0 16 * * fri",
            timedelta(hours=64),
            ("production",),
            "No production changes over the weekend",
        ),
    )


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "database_url: sqlite+aiosqlite:///file.db\n"
        "slack: {api_url: 'https://slack.example/api/', timeout: 3}\n"
        "jenkins: {url: 'https://jenkins.example/'}\nprometheus: {url: 'http://prom:9090'}\n",
    )
    settings = load_settings(
        path,
        {
            "SHIPTHREAD_DATABASE_URL": "postgresql+asyncpg://bot@db/shipthread",
            "SLACK_API_URL": "http://127.0.0.1:8001/api",
            "JENKINS_URL": "http://127.0.0.1:8002/",
            "PROMETHEUS_URL": "http://127.0.0.1:9090",
            "KUBECONFIG": "/etc/shipthread/kubeconfig",
            "SHIPTHREAD_PLAYBOOKS": "/etc/shipthread/playbooks",
            "JENKINS_TOKEN": "",  # empty variables count as unset
        },
    )
    assert settings.database_url == "postgresql+asyncpg://bot@db/shipthread"
    assert settings.slack.api_url == "http://127.0.0.1:8001/api/"  # slack-sdk needs the trailing slash
    assert settings.slack.timeout == timedelta(seconds=3)  # the rest of the section is kept
    assert settings.jenkins.url == "http://127.0.0.1:8002/"
    assert settings.prometheus.url == "http://127.0.0.1:9090"
    assert settings.kubeconfig == "/etc/shipthread/kubeconfig"
    assert settings.playbooks_dir == "/etc/shipthread/playbooks"
    assert settings.secrets.jenkins_token is None


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "{}\n"), {"JENKINS_URL": "jenkins.local"}) == (
        "environment variable JENKINS_URL: not an http(s) URL: 'jenkins.local'",
    )


def test_secrets_come_from_the_environment_and_never_show(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(write(tmp_path, "slack: {default_channel: '#deploys'}\n"), SECRETS)
    assert settings.secrets.slack_bot_token is not None
    assert settings.secrets.slack_bot_token.get_secret_value() == SECRETS["SLACK_BOT_TOKEN"]
    assert settings.secrets.jenkins_user is not None
    assert settings.secrets.jenkins_user.get_secret_value() == SECRETS["JENKINS_USER"]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s / %r", settings, settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), caplog.text, repr(settings.secrets)]
    for value in SECRETS.values():
        assert not any(value in text for text in shown), value


def test_a_database_password_from_the_environment_is_redacted_in_repr() -> None:
    url = "postgresql+asyncpg://bot:s3cr3t-pw@db:5432/shipthread"
    settings = load_settings(None, {"SHIPTHREAD_DATABASE_URL": url, "SHIPTHREAD_CONFIG": str(EXAMPLE_CONFIG)})
    assert settings.database_url == url
    assert "s3cr3t-pw" not in repr(settings)
    assert masked_url(url) == "postgresql+asyncpg://bot:***@db:5432/shipthread"
    assert masked_url(DEFAULT_DATABASE_URL) == DEFAULT_DATABASE_URL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "slack:\n  bot_token: xoxb-1-2\n",
            ":2: slack.bot_token: secrets are read only from the environment, "
            "never from files: set SLACK_BOT_TOKEN",
        ),
        (
            "slack:\n  signing_secret: abc\n",
            ":2: slack.signing_secret: secrets are read only from the environment, "
            "never from files: set SLACK_SIGNING_SECRET",
        ),
        (
            "jenkins:\n  url: https://ci/\n  user: bot\n",
            ":3: jenkins.user: secrets are read only from the "
            "environment, never from files: set JENKINS_USER",
        ),
        (
            "jenkins:\n  api_token: abc\n",
            ":2: jenkins.api_token: secrets are read only from the environment, "
            "never from files: set JENKINS_TOKEN",
        ),
        ("clusters:\n  prod:\n    password: hunter2\n", ":3: clusters.prod.password: secrets are read only"),
        (
            "slack:\n  default_channel: xapp-1-A0-123\n",
            ":2: slack.default_channel: this looks like a Slack token",
        ),
        ("database_url: postgresql://bot:pw@db/x\n", ":1: database_url: a password in a URL"),
    ],
)
def test_a_secret_in_a_config_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    found = problems(path)
    assert found[0].startswith(f"{path}{expected}"), found
    for value in ("xoxb-1-2", "hunter2", "xapp-1-A0-123", ":pw@"):
        assert value not in found[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "break_glass: admins\napprover_groups: {sre: [U0SRE00001]}\n",
            ":1: break_glass: unknown group 'admins' (approver_groups: sre)",
        ),
        (
            "approver_groups:\n  sre: [U0SRE00001, sre-team]\n",
            ":2: approver_groups.sre[1]: not a Slack user or user group: 'sre-team'",
        ),
        (
            "approver_groups:\n  sre: [U0SRE00001, U0SRE00001]\n",
            ":2: approver_groups.sre[1]: U0SRE00001 is listed twice",
        ),
        (
            "freeze_windows:\n  - name: w\n    cron: '0 16 * *'\n    duration: 1h\n",
            ":3: freeze_windows[0].cron: cron '0 16 * *' has 4 fields, needs 5",
        ),
        (
            "freeze_windows:\n  - name: w\n    cron: '0 16 * 13 *'\n    duration: 1h\n",
            ":3: freeze_windows[0].cron: cron '0 16 * 13 *': month '13' is not in 1-12",
        ),
        (
            "freeze_windows:\n  - name: w\n    cron: '0 16 * * fry'\n    duration: 1h\n",
            ":3: freeze_windows[0].cron: cron '0 16 * * fry': day of week 'fry' is not in 0-7",
        ),
        (
            "freeze_windows:\n  - {name: w, cron: '@weekly'}\n",
            ":2: freeze_windows[0]: missing required field 'duration'",
        ),
        ("clusters:\n  prod: {}\n", ":2: clusters.prod: give either context"),
        (
            "clusters:\n  prod: {context: p, insecure: true}\n",
            ":2: clusters.prod.insecure: insecure applies only",
        ),
        ("concurrency: wait\n", ":1: concurrency: must be one of 'queue' or 'refuse'"),
        ("slack:\n  timeout: soon\n", ":2: slack.timeout: not a duration"),
        ("slack:\n  api_url: slack.com\n", ":2: slack.api_url: not an http(s) URL"),
        ("prometheus:\n  ur1: http://prom\n", ":2: prometheus: unknown key 'ur1' (did you mean 'url'?)"),
        ("- a\n- list\n", ":1: the config must be a mapping of keys"),
        ("slack:\n  timeout: 1\n  timeout: 2\n", ":3: slack: duplicate key 'timeout' (first at line 2)"),
    ],
)
def test_config_mistakes_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    found = problems(path)
    assert found[0].startswith(f"{path}{expected}"), found


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # Before, a lighter check of the config's own let these through; the freeze then failed at run time.
        ("0 0 31 2 *", "cron '0 0 31 2 *': never matches: day of month 31 never occurs in month 2"),
        ("30-10 * * * *", "cron '30-10 * * * *': minute range 30-10 is backwards (30 > 10)"),
        ("* * * * fri-mon", "cron '* * * * fri-mon': day of week range fri-mon is backwards (5 > 1)"),
        ("² * * * *", "cron '² * * * *': bad minute '²'"),
        ("@sometimes", "cron '@sometimes': unknown macro '@sometimes'"),
    ],
)
def test_a_freeze_cron_is_checked_by_the_parser_that_runs_it(
    tmp_path: Path, cron: str, expected: str
) -> None:
    path = write(tmp_path, f"freeze_windows:\n  - name: w\n    cron: '{cron}'\n    duration: 1h\n")
    found = problems(path)
    assert found[0].startswith(f"{path}:3: freeze_windows[0].cron: {expected}"), found


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # Something that is no number and no name is "bad", as before issue 13: a range is no answer to it.
        ("0 0 ? * *", "cron '0 0 ? * *': bad day of month '?'"),
        ("0 0 * * 1-?", "cron '0 0 * * 1-?': bad day of week '?'"),
        ("-5 * * * *", "cron '-5 * * * *': bad minute ''"),
        # A number or a word the field has no place for is told the field's range.
        ("0 0 32 * *", "cron '0 0 32 * *': day of month '32' is not in 1-31"),
        ("0 0 * * fry", "cron '0 0 * * fry': day of week 'fry' is not in 0-7"),
        # One spelling of the fields, in the field count too.
        (
            "0 16 * *",
            "cron '0 16 * *' has 4 fields, needs 5 (minute, hour, day of month, month, day of week)",
        ),
    ],
)
def test_cron_messages_say_bad_for_what_is_no_value_and_spell_fields_one_way(
    tmp_path: Path, cron: str, expected: str
) -> None:
    path = write(tmp_path, f"freeze_windows:\n  - name: w\n    cron: '{cron}'\n    duration: 1h\n")
    found = problems(path)
    assert found[0] == f"{path}:3: freeze_windows[0].cron: {expected}", found


def test_an_approver_is_a_user_id_by_the_same_rule_as_mentions(tmp_path: Path) -> None:
    # The config had a second pattern of its own, whose "$" let a trailing newline through.
    path = write(tmp_path, 'approver_groups:\n  sre: ["U0SRE00001\\n"]\n')
    found = problems(path)
    assert found[0].startswith(f"{path}:2: approver_groups.sre[0]: not a Slack user or user group"), found


def test_a_url_password_is_masked_in_one_way_everywhere() -> None:
    from bot import config
    from bot.store import db

    # One masker, bot.domain.redact's: config and the store keep no alias or copy of their own.
    assert not hasattr(config, "redact_url") and not hasattr(db, "masked_url")
    for url, shown in [
        ("postgresql+asyncpg://bot:t0p%40secret@db:5432/ship", "postgresql+asyncpg://bot:***@db:5432/ship"),
        ("postgresql://bot:pw@[::1]:5432/ship", "postgresql://bot:***@[::1]:5432/ship"),
        ("postgresql://bot:pw@DB.example/ship", "postgresql://bot:***@DB.example/ship"),
        ("http://[::1", "***"),
    ]:
        assert masked_url(url) == shown


def test_cron_expressions_the_scheduler_understands_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "freeze_windows:\n"
        "  - {name: a, cron: '*/15 8-18 * jan-mar,dec mon-fri', duration: 15m}\n"
        "  - {name: b, cron: '0 0 1,15 * 0', duration: 1h30m, reason: payroll}\n"
        "  - {name: c, cron: '@daily', duration: 90}\n",
    )
    windows = load_settings(path, {}).freezes()
    assert [w.duration for w in windows] == [
        timedelta(minutes=15),
        timedelta(minutes=90),
        timedelta(seconds=90),
    ]
    assert windows[1].envs == () and windows[1].reason == "payroll"


def test_an_empty_section_means_its_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "slack:\n  # default_channel: '#deploys'\njenkins:\nbreak_glass:\n")
    settings = load_settings(path, {"JENKINS_URL": "http://127.0.0.1:8080/"})
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.jenkins.url == "http://127.0.0.1:8080/"
    assert settings.break_glass is None


def test_an_override_does_not_hide_a_malformed_section(tmp_path: Path) -> None:
    path = write(tmp_path, "jenkins: https://ci.example/\n")
    assert problems(path, {"JENKINS_URL": "http://127.0.0.1:8080/"}) == (
        f"{path}:1: jenkins: must be a mapping (key: value)",
    )


def test_names_people_chose_are_not_taken_for_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path, "approver_groups:\n  token-team: [U0TOKEN001]\nclusters:\n  secret-lab: {context: lab}\n"
    )
    settings = load_settings(path, {})
    assert settings.group_size("token-team") == 1
    assert "secret-lab" in settings.clusters


def test_a_password_in_a_bad_url_is_not_echoed(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "{}\n"), {"PROMETHEUS_URL": "ftp://bot:s3cr3t@prom/"})
    assert found == ("environment variable PROMETHEUS_URL: not an http(s) URL: 'ftp://bot:***@prom/'",)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.database_url = "sqlite+aiosqlite:///other.db"  # type: ignore[misc]
