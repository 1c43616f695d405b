"""User text is data, never markup: hostile text through every command and refusal stays inert.

A person can type ``<!channel>``, ``<@U…>``, ``<url|label>`` or ``&lt;`` into any field: a service,
an environment, a version, an id, a reason. Whatever the engine then tells people (notifications,
the answers to commands, parse errors) is rendered here the way the Slack renderer renders it
(``mrkdwn.render`` for a ``Message``, ``mrkdwn.escape`` for a plain field) and must contain no
markup but the mentions we meant, built from the ids of the people who acted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from bot.domain import mrkdwn
from bot.domain.commands import Cancel, Deploy, Lock, ParseError, Rollback, Unlock, parse
from bot.domain.message import Message
from bot.domain.notifications import EnvLocked, EnvUnlocked, Refused, RollbackStarted
from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from tests.engine.stack import Stack, create_k8s_deployment, make_stack, playbook
from tests.support.prometheus import PrometheusServer

CHANNEL = "C0DEPLOYS"
REQUESTER = "U0FRANK"
ACTORS = frozenset({REQUESTER, "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"})
"""Everyone who acts here; U0ALICE only ever appears inside hostile text."""
WORDS = ("<!channel>", "<!here>", "<@U0ALICE>", "<https://evil.example|click>", "&lt;", "<!subteam^S1>")
HOSTILE = " ".join(WORDS)
IMAGE = "registry.example.com/{}:1.0.0"

# Every subcommand with ``{}`` in each place a person types a word (the grammar refuses most).
TEMPLATES = [
    ("/deploy", "{} 1.1.0"),
    ("/deploy", "checkout {}"),
    ("/deploy", "checkout 1.1.0 to {}"),
    ("/deploy", "checkout 1.1.0 --strategy {}"),
    ("/deploy", "checkout 1.1.0 --{}"),
    ("/deploy", "checkout 1.1.0 --emergency {}"),
    ("/deploy", "checkout 1.1.0 {}"),
    ("/deploy", "status {}"),
    ("/deploy", "history {}"),
    ("/deploy", "history checkout {}"),
    ("/deploy", "lock {} -- x"),
    ("/deploy", "lock staging {} -- x"),
    ("/deploy", "unlock {}"),
    ("/deploy", "unlock staging {}"),
    ("/deploy", "envs {}"),
    ("/deploy", "cancel {}"),
    ("/deploy", "help {}"),
    ("/deploy", "{} 1.1.0 'never closed"),
    ("/rollback", "{}"),
    ("/rollback", "checkout to {}"),
    ("/rollback", "checkout in {}"),
    ("/rollback", "checkout {}"),
    ("/{}", "checkout"),
]


@pytest.fixture
async def stack(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> AsyncIterator[Stack]:
    book = playbook("checkout", run, requires_staging=True, approvals=[{"group": "sre", "count": 1}])
    book["environments"]["staging"]["approvals"] = [{"group": "sre", "count": 1}]
    ghost = playbook("ghost", run)  # its Deployment does not exist: the cluster cannot be read
    built = await make_stack(tmp_path, prometheus, jenkins_server, k8s_server, [book, ghost], run=run)
    create_k8s_deployment(k8s_server.url, "checkout", IMAGE.format("checkout"))
    yield built
    await built.runtime.close()


class Said:
    """Everything a person would be shown: notifications, answers to commands, parse errors."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.answers: list[Any] = []

    async def command(self, command: str, typed: str, user: str = REQUESTER) -> Any:
        """What the Slack layer does with a slash command: Slack escapes the text, we parse, dispatch."""
        result = parse(command, mrkdwn.escape(typed))
        engine = self.stack.engine
        outcome: Any = result
        match result:
            case ParseError():
                pass
            case Deploy():
                outcome = await engine.deploy(result, user, CHANNEL)
            case Rollback():
                outcome = await engine.rollback(result, user, CHANNEL)
            case Lock():
                outcome = await engine.lock(result.env, result.service, result.reason, user, CHANNEL)
            case Unlock():
                outcome = await engine.unlock(result.env, result.service, user, CHANNEL)
            case Cancel():
                outcome = await engine.cancel(result.deployment_id, user, channel=CHANNEL)
            case _:
                return result  # status, history, envs, help: read-only answers the Slack layer draws
        self.answers.append(outcome)
        return outcome

    def answer(self, outcome: Any) -> Any:
        self.answers.append(outcome)
        return outcome

    def everything(self) -> list[Any]:
        return [*self.stack.chat.notifications, *self.answers]


def _fields(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """``(path, plain text, mrkdwn)`` of every text inside ``value``, rendered as the renderer will."""
    if isinstance(value, Message):
        yield path, str(value), mrkdwn.render(value)
    elif isinstance(value, str):
        yield path, value, mrkdwn.escape(value)
    elif isinstance(value, Enum) or value is None or isinstance(value, int | float):
        return
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _fields(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _fields(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _fields(item, f"{path}[{key!r}]")


def _problems(said: list[Any]) -> list[str]:
    problems = []
    for item in said:
        for path, plain, rendered in _fields(item, type(item).__name__):
            where = f"{path} = {plain!r}"
            if any(f"<@{actor}>" in plain for actor in ACTORS):
                problems.append(f"mention markup built into text: {where}")
            rest = rendered
            for actor in ACTORS:
                rest = rest.replace(f"<@{actor}>", "")
            if "<" in rest or ">" in rest:
                problems.append(f"markup in what would be posted: {where} -> {rendered!r}")
            if "&lt;" in plain and "&amp;lt;" not in rendered:
                problems.append(f"a typed &lt; would show as <: {where}")
            if "&amp;amp;" in rendered:
                problems.append(f"escaped twice: {where} -> {rendered!r}")
    return problems


async def test_hostile_text_in_every_field_never_becomes_markup(stack: Stack) -> None:
    said = Said(stack)
    engine = stack.engine
    stack.ratio("checkout", 0.0)

    # The grammar: hostile words in every place a person types one.
    for command, template in TEMPLATES:
        for word in (*WORDS, f'"{HOSTILE}"'):
            await said.command(command.format(word), template.format(word))

    # Locks: the lock, a second lock (refused, naming who holds it), deployments against it.
    assert (await said.command("/deploy", f"lock production -- {HOSTILE}", "U0BOB")).ok
    held = await said.command("/deploy", f"lock production -- {HOSTILE}", "U0CAROL")
    assert not held.ok
    await said.command("/deploy", f"lock production checkout -- {HOSTILE}", "U0CAROL")
    await said.command("/deploy", f'checkout 1.1.0 --emergency "{HOSTILE}"', "U0ERIN")  # manual holds
    await said.command("/deploy", "checkout 1.1.0")
    assert (await said.command("/deploy", "unlock production checkout", "U0BOB")).ok
    assert (await said.command("/deploy", "unlock production", "U0BOB")).ok
    await said.command("/deploy", "unlock production", "U0BOB")  # nothing left to lift

    # Requests refused by policy.
    await said.command("/deploy", f'checkout 1.1.0 --emergency "{HOSTILE}"')  # not break-glass
    await said.command("/deploy", "checkout 1.1.0 --strategy canary")
    await said.command("/deploy", "checkout 1.1.0 to production")  # staging first
    await said.command("/deploy", "ghost 1.1.0")  # the cluster cannot be read
    staged = await said.command("/deploy", "checkout 1.1.0 to staging")
    assert staged.ok, str(staged.message)
    did = staged.deployment.id
    await said.command("/deploy", "checkout 1.2.0 to staging")  # busy
    await said.command("/rollback", f"checkout in staging -- {HOSTILE}")  # nothing deployed yet
    await said.command("/deploy", f"cancel {did}", "U0BOB")  # not the requester
    said.answer(await engine.approve(did, REQUESTER))  # four-eyes
    said.answer(await engine.approve(did, "U0DAVE"))  # not in sre
    said.answer(await engine.reject(did, "U0BOB", " "))  # a rejection needs a reason
    assert said.answer(await engine.reject(did, "U0BOB", HOSTILE)).ok
    said.answer(await engine.approve(did, "U0CAROL"))  # no longer waiting
    await said.command("/deploy", f"cancel {did}")  # rejected, not cancellable
    said.answer(await engine.promote(did, "U0BOB"))  # not verifying

    # The engine's API takes what buttons carry too: hostile text in every argument.
    said.answer(await engine.deploy(Deploy(HOSTILE, "1.1.0"), REQUESTER, CHANNEL))
    said.answer(await engine.deploy(Deploy("checkout", HOSTILE), REQUESTER, CHANNEL))
    said.answer(await engine.deploy(Deploy("checkout", "1.1.0", env=HOSTILE), REQUESTER, CHANNEL))
    said.answer(await engine.rollback(Rollback(HOSTILE), REQUESTER, CHANNEL))
    said.answer(await engine.rollback(Rollback("checkout", env=HOSTILE), REQUESTER, CHANNEL))
    said.answer(await engine.rollback(Rollback("checkout", to_version=HOSTILE), REQUESTER, CHANNEL))
    said.answer(await engine.cancel(HOSTILE, REQUESTER, HOSTILE, CHANNEL))
    said.answer(await engine.promote(HOSTILE, REQUESTER, CHANNEL))
    said.answer(await engine.approve(HOSTILE, "U0BOB", CHANNEL))
    said.answer(await engine.reject(HOSTILE, "U0BOB", HOSTILE, CHANNEL))
    said.answer(await engine.unlock(HOSTILE, HOSTILE, "U0BOB", CHANNEL))

    # Rollbacks: nothing to undo, then one without a reason and one with a hostile one, each
    # guard-locking production; a person lifts the first lock, the guard the second.
    await said.command("/rollback", "checkout")
    await said.command("/rollback", "checkout to 0.9.0")  # not an approver (U0FRANK)
    # Only break-glass may name a version that never ran here (0.9.0, 0.8.0 never did).
    back = await said.command("/rollback", "checkout to 0.9.0", "U0ERIN")
    assert back.ok, str(back.message)
    assert (await stack.finish(back.deployment.id)).phase is Phase.ROLLED_BACK
    assert (await said.command("/deploy", "unlock production checkout", "U0BOB")).ok
    await stack.end_watches()
    back = await said.command("/rollback", f"checkout to 0.8.0 -- {HOSTILE}", "U0ERIN")
    assert back.ok, str(back.message)
    assert (await stack.finish(back.deployment.id)).phase is Phase.ROLLED_BACK
    await stack.end_watches()

    everything = said.everything()
    assert _problems(everything) == []

    # The lock refusal is both right and safe: a real mention of the holder, the reason inert.
    refusal = next(
        n for n in stack.chat.notifications if isinstance(n, Refused) and "already locked" in str(n.message)
    )
    text = mrkdwn.render(refusal.message)
    assert "<@U0BOB>" in text and "&lt;!channel&gt;" in text and "&amp;lt;" in text
    assert str(refusal.message).startswith("production is already locked by @U0BOB")
    # Every refusal path above was reached, and told the asker.
    told = " | ".join(str(n.message) for n in stack.chat.notifications if isinstance(n, Refused))
    for fragment in (
        "already locked",
        "is locked for checkout",
        "has no lock to lift",
        "not in the break-glass group",
        "no canary steps",
        "to have succeeded in staging",
        "cannot read what runs",
        "already being deployed",
        "has deployed nothing yet",
        "only the requester (@U0FRANK)",
        "four-eyes",
        "a rejection needs a reason",
        "not waiting for approvals",
        "not verifying",
        "no succeeded release",
        "an approver of production or break-glass may roll back",
        "no playbook for service",
        "has no environment",
        "not a valid version",
        "no deployment",
    ):
        assert fragment in told, fragment
    assert sum(isinstance(n, ParseError) for n in everything) > len(TEMPLATES)
    locked = [n for n in everything if isinstance(n, EnvLocked)]
    unlocked = [n for n in everything if isinstance(n, EnvUnlocked)]
    assert {n.kind for n in locked} == {"manual", "guard"} and {n.by for n in unlocked} >= {"U0BOB"}
    assert sum(isinstance(n, RollbackStarted) for n in everything) == 2
