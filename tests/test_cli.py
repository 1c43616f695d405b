"""The command line as a newcomer meets it: help, python -m bot, and the emulators command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jenkins
from slack_sdk import WebClient

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_help_lists_the_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("playbook", "db", "sandbox"):
        assert command in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "shipthread"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("shipthread ")


def test_unknown_subcommand_is_a_usage_error_not_a_traceback() -> None:
    result = _run("deploy-now")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_an_error_message_never_carries_a_token_it_quotes() -> None:
    # The database name here is a GitHub token shape: the error quotes the URL, the redactor masks it.
    token = "ghp_" + "a1B2c3D4e5" * 4
    result = _run("db", "upgrade", "--url", f"postgresql+asyncpg://bot:hunter2pw@127.0.0.1:1/{token}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach the database" in result.stderr
    assert token not in result.stderr and "hunter2pw" not in result.stderr


def test_validate_the_shipped_playbooks() -> None:
    result = _run("playbook", "validate", "playbooks/")
    assert result.returncode == 0, result.stderr
    schema = json.loads(_run("playbook", "schema").stdout)
    assert schema["title"] == "Shipthread playbook" and "properties" in schema


def test_sandbox_emulators_prints_one_line_each_and_serves_real_clients() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "emulators", "--host", "127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(urls) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            name, url = line.split()
            urls[name] = url
        assert set(urls) == {"slack", "jenkins", "kubernetes"}, (
            proc.stderr.read() if proc.poll() is not None else urls
        )
        slack = WebClient(token="xoxb-sandbox", base_url=f"{urls['slack']}/api/")
        assert slack.auth_test()["ok"]
        server = jenkins.Jenkins(urls["jenkins"], username="shipthread", password="sandbox-token", timeout=5)
        assert server.get_whoami()["id"] == "shipthread"
        with urllib.request.urlopen(f"{urls['kubernetes']}/version", timeout=5) as resp:
            assert json.load(resp)["major"] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_emulators_on_a_port_base(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # find three free ports in a row, roughly
        sock.bind(("127.0.0.1", 0))
        base = sock.getsockname()[1]
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "emulators", "--port-base", str(base)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    try:
        first = proc.stdout.readline().split()
        if not first:  # a port of the range was taken: the command says so and exits 1
            assert proc.wait(timeout=10) == 1
            assert "cannot start" in proc.stderr.read()
            return
        assert first == ["slack", f"http://127.0.0.1:{base}"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
