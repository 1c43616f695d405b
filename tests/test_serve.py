"""``shipthread serve`` refuses to start on what an operator must fix, and says what, in their words.

The running server is tested end to end in ``tests/slack``; here are the start-up checks (run as
the real command, in a subprocess) and the JSON log lines.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bot.jsonlog import JsonFormatter
from bot.store.migrate import upgrade

BOOK = {
    "service": "checkout",
    "kubernetes": {
        "cluster": "main",
        "namespace": "shop",
        "deployment": "checkout",
        "container": "app",
        "image": "registry.example.com/checkout:{version}",
    },
    "environments": {"production": {"channel": "C0DEPLOYS"}},
}


def _files(tmp_path: Path, book: dict[str, Any] | None = None) -> dict[str, str]:
    (tmp_path / "playbooks").mkdir()
    text = yaml.safe_dump(book or BOOK, sort_keys=False)
    (tmp_path / "playbooks" / "checkout.yaml").write_text(text)
    (tmp_path / "shipthread.yaml").write_text(
        yaml.safe_dump({"clusters": {"main": {"server": "http://127.0.0.1:9"}}})
    )
    return {
        "SHIPTHREAD_CONFIG": str(tmp_path / "shipthread.yaml"),
        "SHIPTHREAD_PLAYBOOKS": str(tmp_path / "playbooks"),
        "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "JENKINS_URL": "http://127.0.0.1:9",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
    }


def _run(tmp_path: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SHIPTHREAD_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**env, **environ},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_broken_playbook_stops_the_start_with_the_validate_message(tmp_path: Path) -> None:
    book = json.loads(json.dumps(BOOK))
    book["environments"]["production"]["approvals"] = [{"group": "sre", "count": "two"}]
    environ = _files(tmp_path, book)
    served = _run(tmp_path, environ, "serve", "--port", "0")
    validated = _run(tmp_path, environ, "playbook", "validate")
    assert served.returncode == validated.returncode == 1
    problem = next(line for line in validated.stderr.splitlines() if "checkout.yaml:" in line)
    assert "count" in problem and "not a whole number" in problem
    assert problem in served.stderr.splitlines()


def test_an_unmigrated_database_is_refused_with_what_to_run(tmp_path: Path) -> None:
    served = _run(tmp_path, _files(tmp_path), "serve", "--port", "0")
    assert served.returncode == 1
    assert "run `shipthread db upgrade`" in served.stderr
    assert "Traceback" not in served.stderr


async def test_missing_slack_secrets_are_named(tmp_path: Path) -> None:
    environ = _files(tmp_path)
    await upgrade(environ["SHIPTHREAD_DATABASE_URL"])
    served = _run(tmp_path, environ, "serve", "--port", "0")
    assert served.returncode == 1
    assert "SLACK_BOT_TOKEN is not set" in served.stderr
    socket = _run(tmp_path, {**environ, "SLACK_BOT_TOKEN": "xoxb-1-2"}, "serve", "--socket-mode")
    assert socket.returncode == 1 and "SLACK_APP_TOKEN is not set" in socket.stderr


def test_log_lines_are_json_with_the_deployment_id_and_no_secret() -> None:
    record = logging.LogRecord(
        "shipthread.engine",
        logging.INFO,
        __file__,
        1,
        "%s BuildQueued: token xoxb-123-456-abcdefabcdef",
        ("dx4k9m2p7q1",),
        None,
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["deployment_id"] == "dx4k9m2p7q1"
    assert line["level"] == "info" and line["logger"] == "shipthread.engine"
    assert "xoxb-123-456-abcdefabcdef" not in line["message"]
