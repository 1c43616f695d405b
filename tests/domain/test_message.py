"""Messages as data: text is escaped, mentions are built from ids only, ``str()`` is plain."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.message import Code, Mention, Message, Segment, Text, is_user_id, join
from bot.domain.mrkdwn import render

HOSTILE = "<!channel> <!here> <@U0ALICE> <https://evil.example|click> &lt; <!subteam^S1>"


def test_a_mention_and_hostile_text_are_both_right_in_one_message() -> None:
    message = Message.of("production is already locked by ", Mention("U0BOB"), ": ", Text(HOSTILE))
    assert render(message) == (
        "production is already locked by <@U0BOB>: &lt;!channel&gt; &lt;!here&gt; &lt;@U0ALICE&gt; "
        "&lt;https://evil.example|click&gt; &amp;lt; &lt;!subteam^S1&gt;"
    )
    assert str(message) == f"production is already locked by @U0BOB: {HOSTILE}"


@pytest.mark.parametrize(
    ("user_id", "rendered"),
    [
        ("U0BOB", "<@U0BOB>"),
        ("W123ABC", "<@W123ABC>"),
        ("shipthread", "Shipthread"),  # the bot by its name (mrkdwn.mention, as on the card)
        ("U1", "@U1"),
        ("u0bob", "@u0bob"),
        ("<!channel>", "@&lt;!channel&gt;"),
        ("U0BOB> <!here", "@U0BOB&gt; &lt;!here"),
        ("U0BOB\n", "@U0BOB\n"),
    ],
)
def test_only_a_slack_shaped_id_becomes_a_mention(user_id: str, rendered: str) -> None:
    assert render(Message.of(Mention(user_id))) == rendered


def test_code_is_escaped_and_cannot_be_closed_early() -> None:
    assert (
        render(Message.of("use ", Code("/rollback web to <version>")))
        == "use `/rollback web to &lt;version&gt;`"
    )
    assert render(Message.of(Code("a`<!here>`b"))) == "`a'&lt;!here&gt;'b`"
    assert render(Message.of("x", Code(""))) == "x"
    assert str(Message.of("use ", Code("/deploy cancel d-1"))) == "use /deploy cancel d-1"


def test_messages_compose() -> None:
    who = Message.of("by ", Mention("U0BOB"))
    assert "locked " + who + "." == Message.of("locked by ", Mention("U0BOB"), ".")
    assert Message.of("a", "b", Text(""), "c") == Message.of("abc") == Message((Text("abc"),))
    assert join("; ", ["one", Message.of(Mention("U0BOB")), Code("x")]) == Message.of(
        "one; ", Mention("U0BOB"), "; ", Code("x")
    )
    assert join("; ", []) == Message() and not Message.of("")
    assert str(Message.of(" or ").join(["a", "b", "c"])) == "a or b or c"


def test_user_id_shape() -> None:
    assert is_user_id("U0ALICE") and is_user_id("W0ALICE")
    assert not is_user_id("U0") and not is_user_id("C0DEPLOYS") and not is_user_id("U0ALICE ")


segments = st.one_of(
    st.text().map(Text),
    st.text().map(Code),
    st.text().map(Mention),
    st.from_regex(r"[UW][A-Z0-9]{2,10}", fullmatch=True).map(Mention),
)


@given(st.lists(segments, max_size=8))
def test_nothing_but_mentions_of_ids_is_ever_markup(parts: list[Segment]) -> None:
    message = Message.of(*parts)
    rendered = render(message)
    ids = {p.user_id for p in parts if isinstance(p, Mention) and is_user_id(p.user_id)}
    rest = re.sub(r"<@([UW][A-Z0-9]{2,})>", lambda m: "" if m[1] in ids else m[0], rendered)
    assert "<" not in rest and ">" not in rest
    assert rendered.count("<@") == sum(isinstance(p, Mention) and is_user_id(p.user_id) for p in parts)
