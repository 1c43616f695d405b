"""``shipthread sandbox`` as a person runs it: one command, the whole story, exit 0 in under 2 minutes.

Run as a subprocess (the real console entry point), so the emulators, the demo service, the Debian
Prometheus and ``shipthread serve`` all start and stop as they do for a person. The transcript is
checked for every stage, in order, in the words the bot's own blocks render to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.sandbox.story import PROMETHEUS_VARIABLE, REASON, guarded_places, playbook, without_prometheus
from tests.support.prometheus import find_prometheus, missing_server

STAGES = (
    ("staging deploy requested", "alice> /deploy checkout 1.4.2 to staging"),
    ("build", "Build #1 succeeded"),
    ("guard window in staging", "Guard passed"),
    ("staging succeeded", "Phase: ✅ Succeeded"),
    ("production requested", "Phase: ⏳ Awaiting approval"),
    ("approval asked, with buttons", "Approval needed, stage 1"),
    ("buttons rendered", "[Approve] [Reject]"),
    ("self-approval refused", "someone else must approve (four-eyes)"),
    ("rejected", "Phase: 🚫 Rejected"),
    ("with its reason", REASON),
    ("second approval stage", "Approval needed, stage 2"),
    ("canary step 1", "Canary step 1"),
    ("canary step 2", "Canary step 2"),
    ("production succeeded", "Phase: ✅ Succeeded"),
    ("bad release requested", "alice> /deploy checkout 1.5.0-bad to staging"),
    ("guard breach", "Guard breached"),
    ("rolled back", "Rolled back"),
    ("guard lock", "locked for `checkout` (guard)"),
    ("deploy refused while locked", "staging is locked for checkout"),
    ("unlocked by the clean window", "unlocked (guard)"),
    ("history", "Last deployments of `checkout`"),
)


def sandbox(
    *args: str, environ: dict[str, str] | None = None, timeout: float = 170
) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", *args],
        env={**os.environ, **(environ or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


# Stages that are a line of the message the stage before them found, not a later message: they are
# looked for from where that message starts, so they cannot be matched in a later thread.
PART_OF_THE_STAGE_BEFORE = frozenset({"buttons rendered", "with its reason"})


def in_order(text: str, stages: tuple[tuple[str, str], ...]) -> None:
    """Every stage in order, allowing two neighbours to swap.

    The notifier sends a phase change on the card before a stage's reply when Slack's allowance is
    short (that is its priority rule), so under load the card's "Succeeded" may be printed before
    the guard's "Guard passed" that caused it — or a reply posted while the card's edit still waits
    for its allowance. Each stage is therefore looked for after the stage two back, and must still
    come after the one before it unless those two swapped. A line of the same message as the stage
    before it (`PART_OF_THE_STAGE_BEFORE`) is looked for from that message on.
    """
    ends = [0, 0]
    starts = [0]
    for name, words in stages:
        at = starts[-1] if name in PART_OF_THE_STAGE_BEFORE else ends[-2]
        found = text.find(words, at)
        assert found >= 0, f"stage {name!r} ({words!r}) missing after offset {at}:\n{text[at : at + 3000]}"
        starts.append(found)
        ends.append(max(found + len(words), ends[-1]) if found < ends[-1] else found + len(words))


@pytest.mark.timeout(200)  # the assertion on elapsed time, not the plugin, should report a slow story
def test_the_story_tells_every_stage_in_order_and_exits_0_within_two_minutes() -> None:
    if find_prometheus() is None:
        missing_server("prometheus")
    code, out, err, elapsed = sandbox()
    assert code == 0, f"{out[-3000:]}\n{err[-3000:]}"
    assert elapsed < 120, elapsed
    in_order(out, STAGES)
    assert "The story played to the end" in out
    assert "\x1b[" not in out  # not a terminal: no colours


def write_books(folder: Path, book: dict[str, Any]) -> Path:
    books = folder / "playbooks"
    books.mkdir()
    (books / "checkout.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
    return books


@pytest.mark.timeout(200)
def test_a_step_that_cannot_happen_fails_with_expected_and_saw(tmp_path: Path) -> None:
    # One approval stage only: after bob approves, the second stage the story waits for never comes.
    book = playbook(guarded=False)
    book["environments"]["production"]["approvals"] = [{"group": "tech-leads", "count": 1}]
    code, out, err, _ = sandbox(
        "--playbooks",
        str(write_books(tmp_path, book)),
        environ={PROMETHEUS_VARIABLE: "/nonexistent/prometheus"},
    )
    assert code == 1, out[-2000:]
    assert "bob presses [Approve]" in out
    assert "expected the thread to show “stage 2”" in err
    assert "saw the thread:" in err
    # Told as soon as the card is past approval (no stage can be asked then), not at the step's 30 s
    # timeout: by then the canary (two 2 s pauses) would long have succeeded.
    saw = next(line for line in err.splitlines() if "saw the thread:" in line)
    assert "Phase: ✅ Succeeded" not in saw, saw


@pytest.mark.timeout(200)
def test_without_prometheus_it_says_so_and_plays_only_what_needs_no_guard() -> None:
    code, out, err, _ = sandbox(environ={PROMETHEUS_VARIABLE: "/nonexistent/prometheus"})
    assert code == 0, f"{out[-3000:]}\n{err[-3000:]}"
    assert out.startswith(
        "Prometheus is not installed: sudo apt-get install -y --no-install-recommends prometheus"
    )
    unguarded = tuple(s for s in STAGES if "uard" not in s[0] + s[1] and "bad" not in s[1])
    unguarded = tuple(s for s in unguarded if s[0] not in ("rolled back", "deploy refused while locked"))
    in_order(out, unguarded)
    # No check was ever judged: no guard window, no breach, no pass; the bot says each step was skipped.
    assert "tick 1 of" not in out
    assert "Guard breached" not in out and "Guard passed" not in out
    skipped = [line for line in out.splitlines() if "Guard skipped" in line]
    assert skipped and all("no guard for this step" in line for line in skipped), skipped
    assert "Skipped, because Prometheus is not installed" in out


def test_without_prometheus_it_says_what_your_own_guards_will_do(tmp_path: Path) -> None:
    # The config cannot be read: the sandbox stops right after saying what it would judge.
    code, out, err, _ = sandbox(
        "--playbooks",
        str(write_books(tmp_path, playbook(guarded=True))),
        "--config",
        str(tmp_path / "missing.yaml"),
        environ={PROMETHEUS_VARIABLE: "/nonexistent/prometheus"},
        timeout=60,
    )
    assert code == 1 and "missing.yaml" in err, err
    assert "has none" not in out and "have none" not in out
    assert "guards are kept as written (checkout/staging, checkout/production)" in out
    assert "every tick is inconclusive, and past the guard's inconclusive_limit" in out
    assert "the deployment is held for a person" in out


def test_without_prometheus_unguarded_playbooks_of_your_own_are_called_yours(tmp_path: Path) -> None:
    books = write_books(tmp_path, playbook(guarded=False))
    guarded_step = playbook(guarded=True)
    guarded_step["environments"].pop("staging")
    guarded_step["environments"]["production"].pop("guard")
    guarded_step["environments"]["production"]["canary"]["steps"] = [25, {"weight": 50, "guard": "http"}]
    guarded_step["service"] = "cart"
    (books / "cart.yaml").write_text(yaml.safe_dump(guarded_step, sort_keys=False))

    assert guarded_places([playbook(guarded=False)]) == []
    assert guarded_places([guarded_step]) == ["cart/production"]
    assert "have none" in without_prometheus(books / "empty-or-missing")
    assert "(cart/production)" in without_prometheus(books)
    assert "the playbook has none" in without_prometheus(None)


@pytest.fixture(autouse=True)
def _no_ci_prometheus_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMETHEUS_VARIABLE, raising=False)
