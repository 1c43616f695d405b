"""The engine lease rule: when a holder is gone, and what a refused engine is told."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.lease import TTL, Holder, Holding, held_message, is_free

T0 = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)
BOOT = "6f1c0f5e-8f7e-4c55-9d8b-2f3c1a0b9e11"
PID_NS = 4026531836
ME = Holder("host-a", BOOT, PID_NS, 100, "proc-me", "inst-me", T0)


def holding(
    host: str = "host-a",
    pid: int = 200,
    process: str = "proc-other",
    beat: float = 0,
    boot: str | None = BOOT,
    pid_ns: int | None = PID_NS,
) -> Holding:
    at = T0 + timedelta(seconds=beat)
    holder = Holder(host, boot, pid_ns, pid, process, "inst-other", T0 - timedelta(hours=1))
    return Holding(holder, at, at + TTL)


def running(*pids: int) -> Callable[[int], bool]:
    return lambda pid: pid in pids


def test_a_live_holder_on_this_host_keeps_it() -> None:
    assert not is_free(holding(pid=200), ME, T0 + timedelta(seconds=5), running(200))


def test_a_dead_holder_on_this_host_is_free_at_once() -> None:
    assert is_free(holding(pid=200), ME, T0 + timedelta(seconds=1), running())


def test_a_holder_on_another_host_keeps_it_until_it_expires() -> None:
    held = holding(host="host-b", pid=200)
    # Another host's pids mean nothing here: never asked.
    assert not is_free(held, ME, held.expires_at - timedelta(microseconds=1), running())
    assert is_free(held, ME, held.expires_at, running(200))


@pytest.mark.parametrize(("process", "free"), [("proc-other", True), ("proc-me", False)])
def test_our_own_pid_is_an_earlier_process_unless_it_is_this_one(process: str, free: bool) -> None:
    # A container restarted in its pod runs as pid 1 again; two engines of one process do not.
    held = holding(pid=ME.pid, process=process)
    assert is_free(held, ME, T0 + timedelta(seconds=1), running(ME.pid)) is free


@pytest.mark.parametrize(
    ("boot", "pid_ns"),
    [
        pytest.param(BOOT, PID_NS + 1, id="another-pid-namespace"),  # `--network host` containers
        pytest.param("0b6e4a53-1d7c-4b0e-a3f1-7c0d5e9f2a44", PID_NS, id="another-boot"),
        pytest.param(None, PID_NS, id="boot-unknown"),
        pytest.param(BOOT, None, id="pid-namespace-unknown"),
    ],
)
def test_a_holder_whose_pids_we_cannot_see_keeps_it_until_it_expires(
    boot: str | None, pid_ns: int | None
) -> None:
    # Same host name, and our own pid (both pid 1 in their containers): still not "a restarted
    # process", because its pid 1 is not ours to look at.
    for pid, process in ((ME.pid, "proc-other"), (200, "proc-other")):
        held = holding(pid=pid, process=process, boot=boot, pid_ns=pid_ns)
        assert not is_free(held, ME, held.expires_at - timedelta(microseconds=1), running())
        assert is_free(held, ME, held.expires_at, running())


def test_the_message_says_why_a_holder_under_our_host_name_is_waited_for() -> None:
    held = holding(pid=ME.pid, pid_ns=PID_NS + 1)
    message = held_message(held, T0 + timedelta(seconds=2), ME)
    assert "host host-a, pid 100" in message
    assert "another PID namespace or boot (another container?)" in message
    assert "namespace" not in held_message(holding(host="host-b"), T0, ME)


def test_our_own_lease_is_ours() -> None:
    held = Holding(ME, T0, T0 + TTL)
    assert is_free(held, ME, T0, running(ME.pid))


def test_the_message_names_the_holder_and_the_way_out() -> None:
    held = holding(host="host-b", pid=4242)
    message = held_message(held, T0 + timedelta(seconds=7))
    assert "host host-b, pid 4242" in message
    assert "running since 2024-07-01T11:00:00+00:00" in message
    assert "last heartbeat 2024-07-01T12:00:00+00:00 (7 s ago)" in message
    assert "after 2024-07-01T12:00:30+00:00" in message
    assert "one engine per database" in message
