"""The slash-command grammar: every command and option, good and bad, and parse's totality."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.commands import (
    MAX_REASON,
    MAX_TEXT,
    USAGE,
    USAGES,
    Cancel,
    Command,
    Deploy,
    Envs,
    Help,
    History,
    Lock,
    ParseError,
    Rollback,
    Status,
    Unlock,
    parse,
)
from bot.domain.deployment import Strategy

COMMAND_TYPES = (Deploy, Status, History, Lock, Unlock, Envs, Cancel, Help, Rollback)

GOOD: list[tuple[str, str, Command]] = [
    # /deploy <service> <version> [to|in|on <env>] [--strategy …] [--emergency …]
    ("/deploy", "checkout 1.4.2", Deploy("checkout", "1.4.2")),
    ("/deploy", "checkout 1.4.2 to production", Deploy("checkout", "1.4.2", "production")),
    ("/deploy", "checkout v1.4.2 in staging", Deploy("checkout", "v1.4.2", "staging")),
    ("/deploy", "checkout 3f2a9c1 on qa-1", Deploy("checkout", "3f2a9c1", "qa-1")),
    ("/deploy", "checkout 1.0.0-rc.1+build.7 TO prod", Deploy("checkout", "1.0.0-rc.1+build.7", "prod")),
    ("/deploy", "api.v2_x 1_2 to eu.west-1", Deploy("api.v2_x", "1_2", "eu.west-1")),
    ("/deploy", "web 2 --strategy canary", Deploy("web", "2", strategy=Strategy.CANARY)),
    ("/deploy", "web 2 --strategy=Blue-Green", Deploy("web", "2", strategy=Strategy.BLUE_GREEN)),
    ("/deploy", "web 2 --STRATEGY ROLLING", Deploy("web", "2", strategy=Strategy.ROLLING)),
    ("/deploy", "web 2 --strategy recreate", Deploy("web", "2", strategy=Strategy.RECREATE)),
    ("/deploy", "web 2 --strategy blue_green", Deploy("web", "2", strategy=Strategy.BLUE_GREEN)),
    ("/deploy", 'web 2 --emergency "db is down"', Deploy("web", "2", emergency_reason="db is down")),
    ("/deploy", "web 2 --emergency='db is down'", Deploy("web", "2", emergency_reason="db is down")),
    ("/deploy", "web 2 --emergency=outage", Deploy("web", "2", emergency_reason="outage")),
    ("/deploy", "web 2 --emergency “it's down”", Deploy("web", "2", emergency_reason="it's down")),
    ("/deploy", 'web 2 --emergency ‘say "hi"’', Deploy("web", "2", emergency_reason='say "hi"')),
    ("/deploy", 'web 2 --emergency "  padded  "', Deploy("web", "2", emergency_reason="padded")),
    (
        "/deploy",
        'web 2 --emergency "a &amp; b &lt;!here&gt;"',
        Deploy("web", "2", emergency_reason="a & b <!here>"),
    ),
    ("/deploy", 'web 2 --emergency "&amp;lt;"', Deploy("web", "2", emergency_reason="&lt;")),
    (
        "/deploy",
        'web 2 --emergency "fire" --strategy canary to prod',
        Deploy("web", "2", "prod", Strategy.CANARY, "fire"),
    ),
    (
        "/deploy",
        "\n  web \t 2\u00a0\u00a0to\nprod  --strategy   rolling \n",
        Deploy("web", "2", "prod", Strategy.ROLLING),
    ),
    ("deploy", "web 2", Deploy("web", "2")),
    ("/DEPLOY", "web 2", Deploy("web", "2")),
    # quoting a word takes it literally: services named like subcommands, values spelled like keywords
    ("/deploy", '"status" 1.2', Deploy("status", "1.2")),
    ("/deploy", "'help' 1.2 to \"on\"", Deploy("help", "1.2", "on")),
    ("/deploy", 'web "to" to prod', Deploy("web", "to", "prod")),
    ("/deploy", 'we"b" 2', Deploy("web", "2")),
    # /deploy status [service]
    ("/deploy", "status", Status()),
    ("/deploy", "STATUS checkout", Status("checkout")),
    # /deploy history <service> [env]
    ("/deploy", "history checkout", History("checkout")),
    ("/deploy", "history checkout production", History("checkout", "production")),
    ("/deploy", "History checkout in production", History("checkout", "production")),
    # /deploy lock <env> [service] -- <reason>
    ("/deploy", "lock production -- incident 4711", Lock("production", None, "incident 4711")),
    (
        "/deploy",
        'lock production checkout --   db migration, don\'t deploy! "quoted" --x  ',
        Lock("production", "checkout", 'db migration, don\'t deploy! "quoted" --x'),
    ),
    ("/deploy", "lock prod --\nline one\nline two\n", Lock("prod", None, "line one\nline two")),
    ("/deploy", "lock prod -- a &amp; b", Lock("prod", None, "a & b")),
    ("/deploy", "lock prod -- " + "x" * MAX_REASON, Lock("prod", None, "x" * MAX_REASON)),
    # /deploy unlock <env> [service]
    ("/deploy", "unlock production", Unlock("production")),
    ("/deploy", "unlock production checkout", Unlock("production", "checkout")),
    # /deploy envs <service>
    ("/deploy", "envs checkout", Envs("checkout")),
    # /deploy cancel <id>
    ("/deploy", "cancel d-42", Cancel("d-42")),
    ("/deploy", "cancel #Ab12_x", Cancel("Ab12_x")),
    # /deploy help [topic], and /deploy alone
    ("/deploy", "help", Help()),
    ("/deploy", "HELP Lock", Help("lock")),
    ("/deploy", "help /rollback", Help("rollback")),
    ("/deploy", "", Help()),
    ("/deploy", "  \n\t ", Help()),
    # /rollback <service> [to <version>] [in <env>] [-- <reason>]
    ("/rollback", "checkout", Rollback("checkout")),
    ("/rollback", "checkout to 1.4.1", Rollback("checkout", "1.4.1")),
    ("/rollback", "checkout in production", Rollback("checkout", env="production")),
    ("/rollback", "checkout ON production To v1", Rollback("checkout", "v1", "production")),
    (
        "/rollback",
        "checkout to 1.4.1 in production -- 5xx after deploy",
        Rollback("checkout", "1.4.1", "production", "5xx after deploy"),
    ),
    ("/rollback", "checkout -- too slow", Rollback("checkout", reason="too slow")),
    ("/rollback", "checkout --   ", Rollback("checkout")),
    ("/rollback", "help", Help("rollback")),
    ("/rollback", "'help'", Rollback("help")),
]


@pytest.mark.parametrize(("command", "text", "expected"), GOOD, ids=[f"{c} {t!r}" for c, t, _ in GOOD])
def test_good_parses(command: str, text: str, expected: Command) -> None:
    assert parse(command, text) == expected


BAD: list[tuple[str, str, str, str]] = [
    # (command, text, expected message fragment, usage topic)
    ("/deploy", "checkout", "expected a version after 'checkout'", "deploy"),
    ("/deploy", "checkout to production", "expected a version after 'checkout'", "deploy"),
    ("/deploy", "checkout --strategy canary", "expected a version after 'checkout'", "deploy"),
    ("/deploy", "--strategy canary web 1", "expected a service after '/deploy'", "deploy"),
    ("/deploy", "-- why", "expected a service after '/deploy'", "deploy"),
    ("/deploy", "web 1 to", "expected an environment after 'to'", "deploy"),
    ("/deploy", "web 1 to --strategy canary", "expected an environment after 'to'", "deploy"),
    ("/deploy", "web 1 to a in b", "the environment is given twice ('a' and 'b')", "deploy"),
    ("/deploy", "web 1 prod", "unexpected 'prod' after '1'", "deploy"),
    (
        "/deploy",
        "web 1 --strategy fast",
        "unknown strategy 'fast': use rolling, recreate, canary or blue-green",
        "deploy",
    ),
    (
        "/deploy",
        "web 1 --strategy",
        "--strategy needs a value: use rolling, recreate, canary or blue-green",
        "deploy",
    ),
    ("/deploy", "web 1 --strategy=", "--strategy needs a value", "deploy"),
    ("/deploy", "web 1 --strategy to prod", "--strategy needs a value", "deploy"),
    ("/deploy", "web 1 --strategy canary --strategy rolling", "--strategy is given twice", "deploy"),
    ("/deploy", "web 1 --foo", "unknown option --foo", "deploy"),
    ("/deploy", "web 1 --foo=bar", "unknown option --foo", "deploy"),
    ("/deploy", "web 1 --emergency", "--emergency needs a reason", "deploy"),
    ("/deploy", "web 1 --emergency ''", "--emergency needs a reason", "deploy"),
    ("/deploy", "web 1 --emergency=   ", "--emergency needs a reason", "deploy"),
    ("/deploy", 'web 1 --emergency "a" --emergency "b"', "--emergency is given twice", "deploy"),
    ("/deploy", "web 1 --emergency db is down", "unexpected 'is': quote an emergency reason", "deploy"),
    (
        "/deploy",
        "web 1 --emergency " + "'" + "x" * (MAX_REASON + 1) + "'",
        "too long (501 characters",
        "deploy",
    ),
    ("/deploy", "web 1 -- a note", "deploy takes no reason after --", "deploy"),
    ("/deploy", "Checkout 1", "invalid service name 'Checkout'", "deploy"),
    ("/deploy", "Checkout 1", "did you mean 'checkout'?", "deploy"),
    ("/deploy", "check/out 1", "invalid service name 'check/out'", "deploy"),
    ("/deploy", "-web 1", "invalid service name '-web'", "deploy"),
    ("/deploy", "_web 1", "invalid service name '_web'", "deploy"),
    ("/deploy", "a" * 64 + " 1", "invalid service name", "deploy"),
    ("/deploy", '"" 1', "invalid service name ''", "deploy"),
    ("/deploy", "web\x00x 1", "invalid service name 'web\\x00x'", "deploy"),
    ("/deploy", "web 1 to Prod", "invalid environment name 'Prod'", "deploy"),
    ("/deploy", "web 1 to prod!", "invalid environment name 'prod!'", "deploy"),
    ("/deploy", "web 1.2/3", "invalid version '1.2/3'", "deploy"),
    ("/deploy", "web .1", "invalid version '.1'", "deploy"),
    ("/deploy", "web 1" + "0" * 128, "invalid version", "deploy"),
    ("/deploy", 'web "1 2"', "invalid version '1 2'", "deploy"),
    ("/deploy", 'web 1 --emergency "never closed', 'the quote " at character 19 is never closed', "deploy"),
    ("/deploy", "web 1 --emergency “never closed", "is never closed", "deploy"),
    ("/deploy", "web 1 --emergency 'mixed\"", "is never closed", "deploy"),
    ("/deploy", "status web prod", "unexpected 'prod' after 'web'", "status"),
    ("/deploy", "status --all", "unknown option --all", "status"),
    ("/deploy", "status -- why", "status takes no reason after --", "status"),
    ("/deploy", "status Web", "invalid service name 'Web'", "status"),
    ("/deploy", 'status "web', "is never closed", "status"),
    ("/deploy", "history", "expected a service after 'history'", "history"),
    ("/deploy", "history web in", "expected an environment after 'in'", "history"),
    ("/deploy", "history web prod extra", "unexpected 'extra' after 'prod'", "history"),
    ("/deploy", "lock production", "lock needs a reason after --", "lock"),
    ("/deploy", "lock production --", "lock needs a reason after --", "lock"),
    ("/deploy", "lock production checkout db is migrating", "lock needs a reason after --", "lock"),
    ("/deploy", "lock -- x", "expected an environment after 'lock'", "lock"),
    (
        "/deploy",
        "lock prod -- " + "x" * (MAX_REASON + 1),
        "the lock reason is too long (501 characters",
        "lock",
    ),
    ("/deploy", "lock prod --force -- x", "unknown option --force", "lock"),
    ("/deploy", "unlock", "expected an environment after 'unlock'", "unlock"),
    ("/deploy", "unlock prod -- done", "unlock takes no reason after --", "unlock"),
    ("/deploy", "unlock prod web extra", "unexpected 'extra'", "unlock"),
    ("/deploy", "envs", "expected a service after 'envs'", "envs"),
    ("/deploy", "envs web prod", "unexpected 'prod'", "envs"),
    ("/deploy", "cancel", "expected a deployment id after 'cancel'", "cancel"),
    ("/deploy", "cancel 4 2", "unexpected '2'", "cancel"),
    ("/deploy", "cancel #", "invalid deployment id '#'", "cancel"),
    ("/deploy", "cancel a.b", "invalid deployment id 'a.b'", "cancel"),
    ("/deploy", "help me", "there is no help on 'me': topics are deploy, status", "help"),
    ("/deploy", "help lock unlock", "unexpected 'unlock'", "help"),
    ("/rollback", "", "expected a service after '/rollback'", "rollback"),
    ("/rollback", "-- oops", "expected a service after '/rollback'", "rollback"),
    ("/rollback", "checkout to", "expected a version after 'to'", "rollback"),
    ("/rollback", "checkout to in prod", "expected a version after 'to'", "rollback"),
    ("/rollback", "checkout in", "expected an environment after 'in'", "rollback"),
    ("/rollback", "checkout to 1 to 2", "the version is given twice ('1' and '2')", "rollback"),
    ("/rollback", "checkout in a on b", "the environment is given twice ('a' and 'b')", "rollback"),
    ("/rollback", "checkout production", "unexpected 'production' after 'checkout'", "rollback"),
    ("/rollback", "checkout because slow", "unexpected 'because'", "rollback"),
    ("/rollback", "checkout --strategy canary", "unknown option --strategy", "rollback"),
    ("/rollback", "checkout to 1/2", "invalid version '1/2'", "rollback"),
    ("/rollback", "checkout -- " + "x" * (MAX_REASON + 1), "the rollback reason is too long", "rollback"),
    ("/rollback", "help me", "unexpected 'me'", "rollback"),
    ("/rollback", "'checkout", "is never closed", "rollback"),
]


@pytest.mark.parametrize(
    ("command", "text", "fragment", "topic"), BAD, ids=[f"{c} {t[:50]!r}" for c, t, _, _ in BAD]
)
def test_bad_parses(command: str, text: str, fragment: str, topic: str) -> None:
    result = parse(command, text)
    assert isinstance(result, ParseError), result
    assert fragment in result.message
    assert result.usage == USAGES[topic]


def test_unknown_command_gets_the_whole_usage() -> None:
    assert parse("/ship", "web 1") == ParseError("unknown command '/ship': use /deploy or /rollback", USAGE)


def test_too_long_text_is_refused_before_parsing() -> None:
    result = parse("/deploy", "web 1 --emergency " + "x" * MAX_TEXT)
    assert result == ParseError(
        f"the command is too long ({MAX_TEXT + 18} characters; at most {MAX_TEXT})", USAGES["deploy"]
    )
    assert isinstance(parse("/deploy", "web 1" + " " * (MAX_TEXT - 5)), Deploy)


def test_error_messages_shorten_and_expose_what_they_echo() -> None:
    result = parse("/deploy", "a\u200b" + "b" * 100 + " 1")
    assert isinstance(result, ParseError)
    assert "'a\\u200b" + "b" * 37 + "…'" in result.message


def test_usage_names_every_command_and_strategy() -> None:
    assert list(USAGES) == [
        "deploy",
        "status",
        "history",
        "lock",
        "unlock",
        "envs",
        "cancel",
        "help",
        "rollback",
    ]
    assert all(line in USAGE for line in USAGES.values())
    assert all(strategy.value in USAGES["deploy"] for strategy in Strategy)


# --- properties -----------------------------------------------------------------------------------

SOUP = st.sampled_from(
    [
        "status", "history", "lock", "unlock", "envs", "cancel", "help", "to", "in", "On", "--", "-",
        "--strategy", "--strategy=", "--emergency", "--emergency=", "=", '"', "'", "“", "”", "‘", "’",
        "&amp;", "&lt;", "&gt;", "&", "canary", "web", "1.2", "#", "\x00", "\n", "\u00a0", " ",
    ]
)  # fmt: skip


@settings(max_examples=400)
@given(
    command=st.sampled_from(["/deploy", "/rollback", "deploy", "/ROLLBACK"]) | st.text(max_size=10),
    text=st.text() | st.lists(SOUP | st.text(max_size=5), max_size=30).map(" ".join),
)
def test_parse_is_total(command: str, text: str) -> None:
    result = parse(command, text)
    assert isinstance(result, (ParseError, *COMMAND_TYPES))
    if isinstance(result, ParseError):
        assert result.message
        assert result.usage


@given(st.text(min_size=MAX_TEXT - 10, max_size=MAX_TEXT + 10))
def test_parse_is_total_near_the_length_limit(text: str) -> None:
    assert isinstance(parse("/deploy", text), (ParseError, *COMMAND_TYPES))


NAMES = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}", fullmatch=True)
VERSIONS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", fullmatch=True)
QUOTE_PAIRS = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ('"', "”"), ("’", "‘")]
REASONS = (
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\"'“”‘’"),
        min_size=1,
        max_size=80,
    )
    .map(str.strip)
    .filter(bool)
)
SPACES = st.lists(st.sampled_from([" ", "\t", "\n", "\u00a0", "\r\n"]), min_size=1, max_size=3).map("".join)
KEYWORDS = {"to", "in", "on", "status", "history", "lock", "unlock", "envs", "cancel", "help"}


def slack_escape(text: str) -> str:
    """What Slack does to the text of a slash command before sending it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def render_value(draw: st.DrawFn, value: str) -> str:
    """``value`` as a user might type it: bare, quoted, or quoted from somewhere in the middle on."""
    must_quote = value.lower() in KEYWORDS
    if not must_quote and draw(st.booleans()):
        return value
    opening, closing = draw(st.sampled_from(QUOTE_PAIRS))
    cut = 0 if must_quote else draw(st.integers(0, len(value)))
    return value[:cut] + opening + value[cut:] + closing


def random_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips, strict=True))


@st.composite
def deploys(draw: st.DrawFn) -> tuple[Deploy, str]:
    deploy = Deploy(
        service=draw(NAMES),
        version=draw(VERSIONS),
        env=draw(st.none() | NAMES),
        strategy=draw(st.none() | st.sampled_from(Strategy)),
        emergency_reason=draw(st.none() | REASONS),
    )
    tail: list[list[str]] = []
    if deploy.env is not None:
        keyword = random_case(draw, draw(st.sampled_from(["to", "in", "on"])))
        tail.append([keyword, draw(render_value(deploy.env))])
    if deploy.strategy is not None:
        option, value = random_case(draw, "--strategy"), random_case(draw, deploy.strategy.value)
        tail.append([f"{option}={value}"] if draw(st.booleans()) else [option, value])
    if deploy.emergency_reason is not None:
        option = random_case(draw, "--emergency")
        opening, closing = draw(st.sampled_from(QUOTE_PAIRS))
        quoted = opening + deploy.emergency_reason + closing
        tail.append([f"{option}={quoted}"] if draw(st.booleans()) else [option, quoted])
    words = [draw(render_value(deploy.service)), draw(render_value(deploy.version))]
    words += [word for part in draw(st.permutations(tail)) for word in part]
    text = "".join(draw(SPACES) + word for word in words)
    return deploy, slack_escape(text + draw(st.sampled_from(["", " ", "\n"])))


@settings(max_examples=300)
@given(deploys())
def test_a_rendered_deploy_parses_back_equal(case: tuple[Deploy, str]) -> None:
    deploy, text = case
    assert parse("/deploy", text) == deploy
