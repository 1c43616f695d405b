"""Hostile playbooks and config: every one ends in ``file:line: message``, fast, never a traceback.

The loader reads files people edit by hand and files CI generates; either may hold a stray control
character, an infinite number, an alias bomb or bytes that are not UTF-8. Each defect found once has a
regression test below; the property-based test mutates the shipped examples thousands of times and
holds the same promise for everything else.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.config import load_settings
from bot.errors import ConfigProblems
from bot.playbooks import load_playbook

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "playbooks").glob("*.yaml"))
EXAMPLE_CONFIG = ROOT / "config" / "shipthread.example.yaml"
CHECKOUT = (ROOT / "playbooks" / "checkout.yaml").read_text()
CONFIG = EXAMPLE_CONFIG.read_text()

LOADER_SECONDS = 1.0
"""How long loading one file may take, however hostile it is."""


def bomb(levels: int = 7, fan_out: int = 10) -> str:
    """The billion-laughs shape: each level a list of ``fan_out`` aliases of the level before."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * fan_out)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


def problems_of(load: Callable[[Path], object], path: Path) -> tuple[str, ...]:
    """The located problems ``load`` finds in ``path``, asserting the loader's promises on the way."""
    started = time.perf_counter()
    with pytest.raises(ConfigProblems) as caught:
        load(path)
    elapsed = time.perf_counter() - started
    assert elapsed < LOADER_SECONDS, f"{path.name} took {elapsed:.2f} s"
    located = re.compile(rf"^{re.escape(str(path))}:\d+: \S")
    assert caught.value.problems
    assert all(located.match(p) for p in caught.value.problems), caught.value.problems
    return caught.value.problems


def load_config(path: Path) -> object:
    return load_settings(path, {})


def written(tmp_path: Path, text: str | bytes, name: str = "checkout.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------
# The defects of issue 8, one test each


HOSTILE_PLAYBOOKS = [
    pytest.param(
        CHECKOUT.replace("service: checkout", "service: checkout\x01"),
        r":3: control character '\\x01' is not allowed in YAML",
        id="control-character",
    ),
    pytest.param(
        CHECKOUT.replace("rollout_timeout: 10m", "rollout_timeout: .inf"),
        r":19: kubernetes.rollout_timeout: not a finite number of seconds: inf",
        id="infinite-duration",
    ),
    pytest.param(
        CHECKOUT.replace("rollout_timeout: 10m", "rollout_timeout: .nan"),
        r":19: kubernetes.rollout_timeout: not a finite number of seconds: nan",
        id="nan-duration",
    ),
    pytest.param(
        CHECKOUT.replace("rollout_timeout: 10m", 'rollout_timeout: "' + " " * 2000 + 'x"'),
        r":19: kubernetes.rollout_timeout: not a duration: 'x' \(use e.g. 30s, 5m, 1h30m\)",
        id="duration-after-a-run-of-spaces",
    ),
    pytest.param(
        CHECKOUT.replace("rollout_timeout: 10m", 'rollout_timeout: "1h' + " " * 2000 + '30m"'),
        r":19: kubernetes.rollout_timeout: not a duration: 2005 characters is too long",
        id="duration-with-a-run-of-spaces-inside",
    ),
    pytest.param(
        CHECKOUT.replace("rollout_timeout: 10m", 'rollout_timeout: "  1h  x  "'),
        r":19: kubernetes.rollout_timeout: not a duration: '1h  x' \(use e.g. 30s, 5m, 1h30m\)",
        id="duration-with-spaces-and-a-stray-letter",
    ),
    pytest.param(
        CHECKOUT.replace("max: 0.02", "max: .nan"),
        r":33: guards.http.checks\[0\].max: not a finite number",
        id="nan-maximum",
    ),
    pytest.param(
        CHECKOUT.replace("max: 0.02", "min: .nan"),
        r":33: guards.http.checks\[0\].min: not a finite number",
        id="nan-minimum",
    ),
    pytest.param(
        CHECKOUT.replace("max: 0.8", "max: .inf"),
        r":38: guards.http.checks\[1\].max: not a finite number",
        id="infinite-maximum",
    ),
    pytest.param(
        CHECKOUT.replace("approval_ttl: 2h", "approval_ttl: 99999999999999"),
        r":57: environments.production.approval_ttl: 99999999999999 seconds is out of range "
        r"\(a duration is 0s to 720h, 30 days\)",
        id="huge-duration",
    ),
    pytest.param(
        CHECKOUT.replace("approval_ttl: 2h", "approval_ttl: 99999999999h"),
        r":57: environments.production.approval_ttl: 99999999999h is out of range",
        id="huge-duration-in-hours",
    ),
    pytest.param(
        CHECKOUT.replace("approval_ttl: 2h", "approval_ttl: P99999999999D"),
        r":57: environments.production.approval_ttl: ",
        id="huge-iso-duration",
    ),
    pytest.param(
        CHECKOUT.replace("approval_ttl: 2h", "approval_ttl: 721h"),
        r":57: environments.production.approval_ttl: 721h is out of range \(a duration is 0s to 720h",
        id="duration-just-over-the-range",
    ),
    pytest.param(
        CHECKOUT + "x: " + "[" * 1000 + "\n",
        r":64: nested more than 32 levels deep",
        id="deep-flow-nesting",
    ),
    pytest.param(
        CHECKOUT + "".join(f"{'  ' * level}k{level}:\n" for level in range(200)),
        r":\d+: nested more than 32 levels deep",
        id="deep-block-nesting",
    ),
    pytest.param("x: &a [*a]\n", r":1: alias \*a refers to a value that contains it", id="self-alias"),
    pytest.param(bomb(), r":\d: aliases expand this file to more than 5000 values", id="alias-bomb-7x10"),
    pytest.param(
        bomb(levels=30, fan_out=2),
        r":\d+: aliases expand this file to more than 5000 values",
        id="bomb-30x2",
    ),
    pytest.param(
        CHECKOUT + "numbers: [" + ", ".join(["1"] * 10_000) + "]\n",
        r":64: this file holds more than 5000 values",
        id="too-many-values",
    ),
    pytest.param(
        CHECKOUT.replace("Checkout API", "Caf\xe9 API").encode("latin-1"),
        r":4: not UTF-8 text: byte 0xe9 at byte offset \d+ \(invalid continuation byte\)",
        id="latin-1",
    ),
    pytest.param(
        CHECKOUT + "#" * 1_100_000 + "\n",
        r":1: larger than 131072 bytes \(128 KiB\): not a config file",
        id="over-1-MB",
    ),
    pytest.param(
        CHECKOUT.replace("description: Checkout API (cart to order)", "description: 2024-02-30"),
        r":4: YAML syntax error: cannot read this value \(day is out of range for month\)",
        id="impossible-date",
    ),
    pytest.param(
        CHECKOUT.replace("description: Checkout API (cart to order)", "description: !!timestamp soon"),
        r":4: YAML syntax error: cannot read this value",
        id="timestamp-tag-on-text",
    ),
    pytest.param(
        CHECKOUT.replace("failure_limit: 1 ", "failure_limit: " + "9" * 5000 + " "),
        r":25: YAML syntax error: cannot read this value \(.*digits",
        id="5000-digit-number",
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("text", "expected"), HOSTILE_PLAYBOOKS)
def test_a_hostile_playbook_is_refused_with_file_and_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    path = written(tmp_path, text)
    found = problems_of(load_playbook, path)
    assert any(re.match(re.escape(str(path)) + expected, p) for p in found), found


HOSTILE_CONFIGS = [
    pytest.param(
        CONFIG.replace("break_glass: platform", "break_glass: platform\x1b"),
        r":\d+: control character '\\x1b' is not allowed in YAML",
        id="control-character",
    ),
    pytest.param(
        CONFIG.replace("approval_ttl: 1h ", "approval_ttl: 99999999999999 "),
        r":\d+: approval_ttl: 99999999999999 seconds is out of range",
        id="huge-duration",
    ),
    pytest.param(
        CONFIG.replace("  timeout: 10s\n", "  timeout: -.inf\n", 1),
        r":\d+: slack.timeout: not a finite number of seconds: -inf",
        id="infinite-timeout",
    ),
    pytest.param(
        CONFIG.replace("approval_ttl: 1h ", "approval_ttl: -5 "),
        r":\d+: approval_ttl: -5 seconds is out of range \(a duration is 0s to 720h, 30 days\)",
        id="negative-duration",
    ),
    pytest.param(
        CONFIG.replace("approval_ttl: 1h ", 'approval_ttl: "' + " " * 20_000 + 'x" '),
        r":\d+: approval_ttl: not a duration: 'x' \(use e.g. 30s, 5m, 1h30m\)",
        id="duration-after-a-run-of-spaces",
    ),
    pytest.param(
        CONFIG + "x: &a {y: *a}\n", r":\d+: alias \*a refers to a value that contains it", id="self-alias"
    ),
    pytest.param(bomb(), r":\d: aliases expand this file", id="alias-bomb"),
    pytest.param(CONFIG.encode() + b"\nx: \xff\n", r":\d+: not UTF-8 text: byte 0xff", id="not-utf-8"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("text", "expected"), HOSTILE_CONFIGS)
def test_a_hostile_config_is_refused_with_file_and_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    path = written(tmp_path, text, "shipthread.yaml")
    found = problems_of(load_config, path)
    assert any(re.match(re.escape(str(path)) + expected, p) for p in found), found


SLOW_SHAPES = {
    # What the pure-Python scanner spends the most time a byte on.
    "words": lambda size: "service: " + "a " * (size // 2 - 10) + "\n",
    "blank-lines": lambda size: "\n" * size,
    "escapes": lambda size: 'service: "' + "\\t" * (size // 2 - 10) + '"\n',
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("size", [130_000, 999_000])
@pytest.mark.parametrize("shape", sorted(SLOW_SHAPES))
def test_the_largest_file_of_the_slowest_shape_is_answered_within_a_second(
    tmp_path: Path, shape: str, size: int
) -> None:
    path = written(tmp_path, SLOW_SHAPES[shape](size))
    found = problems_of(load_playbook, path)
    assert all(len(p) <= 500 for p in found), "a message quoting a huge value is cut short"


def test_durations_at_the_ends_of_the_range_load(tmp_path: Path) -> None:
    text = CHECKOUT.replace("approval_ttl: 2h", "approval_ttl: 720h").replace(
        "rollout_timeout: 10m", "rollout_timeout: 2592000"
    )
    loaded = load_playbook(written(tmp_path, text))
    assert loaded.environment("production").approval_ttl == timedelta(days=30)
    assert loaded.kubernetes.rollout_timeout == timedelta(days=30)


def test_look_backs_and_freezes_may_be_longer_than_a_timeout_but_not_forever(tmp_path: Path) -> None:
    # "staging first within 90 days" and a six-week freeze are sensible; they have their own range.
    text = CHECKOUT.replace("succeeded_in: staging ", "succeeded_in: staging\n        within: 2160h ")
    production = load_playbook(written(tmp_path, text)).environment("production")
    assert production.requires[0].within == timedelta(days=90)
    text = CHECKOUT.replace("succeeded_in: staging ", "succeeded_in: staging\n        within: 9000h ")
    found = problems_of(load_playbook, written(tmp_path, text))
    assert "within: 9000h is out of range (a duration is 0s to 8784h, 366 days)" in found[0], found

    config = written(tmp_path, CONFIG.replace("duration: 64h ", "duration: 1008h "), "shipthread.yaml")
    assert load_settings(config, {}).freeze_windows[0].duration == timedelta(weeks=6)
    config.write_text(CONFIG.replace("duration: 64h ", "duration: .inf "))
    found = problems_of(load_config, config)
    assert "freeze_windows[0].duration: not a finite number of seconds: inf" in found[0], found


def test_anchors_that_expand_modestly_still_load(tmp_path: Path) -> None:
    # Anchors are supported (operators share a guard or an environment that way); only aliases
    # that refer to their own container or blow the file up are refused.
    text = CHECKOUT.replace("  http:\n", "  http: &http\n", 1).replace(
        "\nenvironments:", "  copy: *http\n\nenvironments:"
    )
    loaded = load_playbook(written(tmp_path, text))
    assert loaded.guards["copy"] == loaded.guards["http"]


# ---------------------------------------------------------------------------------------------------
# The real command on the named hostile files

CLI_CASES: list[tuple[str, str | bytes, str]] = [
    ("control.yaml", CHECKOUT.replace("service: checkout", "service: checkout\x01"), ":3: control character"),
    ("inf.yaml", CHECKOUT.replace("rollout_timeout: 10m", "rollout_timeout: .inf"), ":19: kubernetes."),
    ("deep.yaml", CHECKOUT + "x: " + "[" * 1000 + "\n", ":64: nested more than 32 levels deep"),
    ("alias.yaml", "x: &a [*a]\n", ":1: alias *a refers to a value that contains it"),
    ("bomb.yaml", bomb(), ": aliases expand this file to more than 5000 values"),
    ("latin1.yaml", "service: caf\xe9\n".encode("latin-1"), ":1: not UTF-8 text"),
    (
        "spaces.yaml",
        CHECKOUT.replace("rollout_timeout: 10m", 'rollout_timeout: "' + " " * 2000 + 'x"'),
        ":19: kubernetes.rollout_timeout: not a duration",
    ),
    ("big.yaml", CHECKOUT + "#" * 1_100_000 + "\n", ":1: larger than 131072 bytes (128 KiB)"),
]


@pytest.mark.timeout(60)
def test_the_real_command_refuses_each_named_hostile_file_quickly(tmp_path: Path) -> None:
    for name, text, expected in CLI_CASES:
        path = written(tmp_path, text, name)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "bot", "playbook", "validate", str(path), "--config", str(EXAMPLE_CONFIG)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
        )
        elapsed = time.perf_counter() - started
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, (name, result.stderr)
        lines = result.stderr.splitlines()
        assert any(re.match(rf"^{re.escape(str(path))}:\d+: ", line) for line in lines), (name, lines)
        assert any(expected in line for line in lines), (name, lines)
        # Interpreter and pydantic start-up included; the loader's own share is held under a
        # second by the tests above.
        assert elapsed < 5.0, f"{name}: {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------------
# The property: any mutation of the examples loads, or is refused with file:line, within a second

HOSTILE_TOKENS: tuple[bytes, ...] = (
    *(bytes([c]) for c in (0x00, 0x01, 0x07, 0x08, 0x0B, 0x0C, 0x1B, 0x7F)),
    "\x85".encode(),
    "\u2028".encode(),
    "\ufeff".encode(),
    b"\t",
    b"\r",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b".inf",
    b"-.inf",
    b".nan",
    b"1e400",
    b"1.0e+400",
    b"-1",
    b"99999999999999",
    b"9" * 5000,
    b"99999999999h",
    b"P99999999999D",
    b"2024-02-30",
    b"!!timestamp soon",
    b"!!binary ?!",
    b"!!python/object:os.system",
    b"!!set {a, b}",
    b"&a",
    b"*a",
    b"&a [*a]",
    b"&a {k: *a}",
    b"<<: *a",
    b"<<: [1]",
    b"[[[[",
    b"]]",
    b"{{",
    b"}",
    b"[" * 200,
    b"{a: " * 100,
    b"? [a, b]\n",
    b": ",
    b"- ",
    b"~",
    b'"',
    b"'",
    b"#",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"|\n",
    b">-\n",
    b"\\",
    b'"\\x"',
    b'"\\ud800"',
    b'"' + b" " * 2000 + b'x"',  # a quoted run of spaces: what a backtracking duration regex chokes on
    b'"1h' + b" " * 500 + b'"',
    b'"' + b"\t " * 300 + b'5m"',
)

WHITESPACE_RUNS: tuple[bytes, ...] = (b" ", b"\t", b" \t")
TAILS: tuple[bytes, ...] = (b"", b"x", b"5m", b"1h", b"1h30m", b"s", b"P")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _block_deep(depth: int) -> bytes:
    return b"".join(b"\n" + b"  " * (level + 1) + b"k:" for level in range(depth)) + b" 1\n"


def _bomb_bytes(levels: int) -> bytes:
    return ("\n" + bomb(levels, 10)).encode()


@st.composite
def mutants(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` after one to four byte- or line-level mutations."""
    data = original
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                (
                    "insert",
                    "value",
                    "spaces",
                    "duplicate",
                    "delete",
                    "truncate",
                    "indent",
                    "deep",
                    "block",
                    "bomb",
                )
            )
        )
        lines = data.split(b"\n")
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "insert":
            where = draw(st.integers(0, len(data)))
            data = data[:where] + draw(st.sampled_from(HOSTILE_TOKENS)) + data[where:]
        elif kind == "value":  # a hostile scalar where a value was
            key, sep, _ = lines[at].partition(b": ")
            lines[at] = key + (sep or b": ") + draw(st.sampled_from(HOSTILE_TOKENS))
            data = b"\n".join(lines)
        elif kind == "spaces":  # a quoted value with a long run of whitespace before, inside or after
            key, sep, _ = lines[at].partition(b": ")
            run = draw(st.sampled_from(WHITESPACE_RUNS)) * draw(st.integers(1, 3000))
            head, tail = draw(st.sampled_from(TAILS)), draw(st.sampled_from(TAILS))
            lines[at] = key + (sep or b": ") + b'"' + head + run + tail + b'"'
            data = b"\n".join(lines)
        elif kind == "duplicate":  # the same key twice, or a list item twice
            data = b"\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
        elif kind == "delete":
            data = b"\n".join(lines[:at] + lines[at + 1 :])
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "indent":
            lines[at] = b" " * draw(st.integers(0, 9)) + lines[at].lstrip(b" ")
            data = b"\n".join(lines)
        elif kind == "deep":
            key, sep, _ = lines[at].partition(b": ")
            lines[at] = key + (sep or b": ") + _deep(draw(st.integers(0, 60)))
            data = b"\n".join(lines)
        elif kind == "block":
            key = lines[at].split(b":")[0] or b"x"
            lines[at] = key + b":" + _block_deep(draw(st.integers(0, 60)))
            data = b"\n".join(lines)
        else:
            data += _bomb_bytes(draw(st.integers(1, 8)))
    return data


def holds_the_promise(load: Callable[[Path], object], path: Path, data: bytes) -> None:
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        load(path)
    except ConfigProblems as exc:
        located = re.compile(rf"^{re.escape(str(path))}:\d+: \S")
        assert exc.problems, data
        for problem in exc.problems:
            assert located.match(problem), (problem, data)
        event(re.sub(r"[:'(\[].*", "", exc.problems[0].removeprefix(f"{path}:").split(": ", 1)[1])[:40])
    else:
        event("loaded")
    elapsed = time.perf_counter() - started
    assert elapsed < LOADER_SECONDS, (elapsed, data)


_FUZZ = settings(
    max_examples=700,
    deadline=timedelta(seconds=LOADER_SECONDS),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutants")


@pytest.mark.timeout(120)
@_FUZZ
@given(data=st.data())
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_mutant_of_an_example_playbook_loads_or_is_refused_with_its_line(
    fuzz_dir: Path, example: Path, data: st.DataObject
) -> None:
    # Named like the original, so that a mutant which survives is judged as that service's playbook.
    holds_the_promise(load_playbook, fuzz_dir / example.name, data.draw(mutants(example.read_bytes())))


@pytest.mark.timeout(120)
@_FUZZ
@given(mutant=mutants(EXAMPLE_CONFIG.read_bytes()))
def test_every_mutant_of_the_example_config_loads_or_is_refused_with_its_line(
    fuzz_dir: Path, mutant: bytes
) -> None:
    holds_the_promise(load_config, fuzz_dir / "shipthread.yaml", mutant)
