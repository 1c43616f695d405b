"""``shipthread sandbox --interactive`` through a pseudo-terminal, as a person types into it.

With the person's own playbook and config (``--playbooks DIR --config FILE``): a production
environment with one approval stage, approver group ``leads`` (bob), a cluster name the sandbox
points at its Kubernetes emulator. alice deploys, bob presses the Approve button by its number,
the deployment succeeds; ``quit`` stops everything and exits 0.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import yaml

from bot.sandbox.story import PROMETHEUS_VARIABLE, playbook

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def own_files(folder: Path) -> tuple[Path, Path]:
    book = playbook(guarded=False)
    book["kubernetes"]["cluster"] = "prod-eu"
    production = book["environments"]["production"]
    production["approvals"] = [{"group": "leads", "count": 1}]
    production["requires"] = []
    production["channel"] = "#releases"  # not in the emulator: the sandbox must create it
    books = folder / "playbooks"
    books.mkdir()
    (books / "checkout.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
    config = folder / "shipthread.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": {"prod-eu": {"context": "prod-eu"}},
                "approver_groups": {"leads": ["U0BOB"], "oncall": ["U0CAROL"]},
                "break_glass": "oncall",
            }
        )
    )
    return books, config


def test_a_deploy_approved_by_pressing_a_numbered_button_then_quit(tmp_path: Path) -> None:
    books, config = own_files(tmp_path)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "sandbox", "--interactive", "--playbooks", str(books), "--config", str(config)],
        env={**os.environ, PROMETHEUS_VARIABLE: "/nonexistent/prometheus"},
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )
    try:
        child.expect_exact("alice> ", timeout=90)
        child.sendline("/deploy checkout 2.0.0 to production")
        child.expect(r"\[(\d+) Approve\]", timeout=30)
        number = child.match.group(1)
        child.sendline("as bob")
        child.expect_exact("bob> ")
        child.sendline(f"press {number}")
        child.expect("Succeeded", timeout=60)
        child.sendline("threads")
        child.expect(r"1\. .*checkout 2\.0\.0 → production")
        child.sendline("quit")
        child.expect(pexpect.EOF, timeout=40)
    finally:
        seen = ANSI.sub("", child.before or "") if isinstance(child.before, str) else ""
        child.close()
    assert child.exitstatus == 0, seen[-2000:]
