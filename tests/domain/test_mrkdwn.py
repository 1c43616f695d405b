"""Escaping for Slack mrkdwn: user and CI text never pings, links or breaks a block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.mrkdwn import SECTION_LIMIT, code_block, escape


def test_only_the_three_specials_are_escaped() -> None:
    assert escape("a & b <!channel> <@U123> <https://evil|bank> *bold* `x`") == (
        "a &amp; b &lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|bank&gt; *bold* `x`"
    )


def test_a_jenkins_console_cannot_mention_anyone() -> None:
    console = "Building...\nERROR: <!here> deploy failed, ask <!subteam^S0SRE|sre>\nFinished: FAILURE"
    block = code_block(console)
    assert "<!" not in block and "&lt;!here&gt;" in block
    assert block.startswith("```\n") and block.endswith("\n```")


@given(st.text())
def test_escaped_text_has_no_angle_brackets_and_round_trips(text: str) -> None:
    out = escape(text)
    assert "<" not in out and ">" not in out
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@given(st.text(alphabet="<>&ab\n`", max_size=5000))
def test_code_blocks_fit_a_section_and_keep_the_end(text: str) -> None:
    block = code_block(text)
    assert len(block) <= SECTION_LIMIT
    inner = block[4:-4]
    assert "```" not in inner and "<" not in inner and ">" not in inner
    if text and len(escape(text.replace("```", "'''"))) <= SECTION_LIMIT - 10:
        assert inner == escape(text.replace("```", "'''"))
