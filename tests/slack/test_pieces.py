"""The small pure pieces: cutting text for Slack, the button codec, sparklines."""

from __future__ import annotations

from bot.domain import mrkdwn
from bot.sandbox.slack import check_message_blocks
from bot.slack import actions, blocks, limits, sparkline


def test_a_cut_never_splits_an_escape_or_a_mention_and_shows_a_marker() -> None:
    for pad in range(12):
        text = "x" * pad + mrkdwn.escape("<&>") * 50 + "<@U0ANN>" * 20
        cut = limits.clip_mrkdwn(text, 100)
        assert len(cut) <= 100 and cut.endswith(limits.MARKER)
        body = cut[: -len(limits.MARKER)]
        assert body.count("&") == body.count(";")
        assert body.count("<") == body.count(">")


def test_a_cut_inside_a_code_block_closes_it() -> None:
    cut = limits.clip_mrkdwn("```\n" + "line\n" * 1000 + "```", 300)
    assert cut.count("```") == 2 and len(cut) <= 300


def test_too_many_blocks_keep_the_buttons_and_say_how_many_were_left_out() -> None:
    many = [blocks.section(f"line {i}") for i in range(80)]
    fitted = list(limits.fit_blocks([*many, blocks.actions(blocks.button("Go", "a", "v"))]))
    assert check_message_blocks(fitted) == []
    assert (
        fitted[-1]["type"] == "actions" and "truncated: 32 more blocks" in fitted[-2]["elements"][0]["text"]
    )


def test_button_values_round_trip_and_garbage_is_none() -> None:
    value = actions.ButtonValue("d-7", 12, 3)
    assert actions.decode(actions.encode(value)) == value
    assert actions.encode(actions.ButtonValue("d-7", 1)) == '{"d":"d-7","v":1}'
    for junk in (
        None,
        "",
        "{",
        "[]",
        '{"d":1,"v":1}',
        '{"d":"x","v":true}',
        '{"d":"x","v":1,"z":0}',
        "x" * 3000,
    ):
        assert actions.decode(junk) is None


def test_production_is_named_prod_or_needs_approvals() -> None:
    assert actions.needs_confirm("production", False) and actions.needs_confirm("Prod-EU", False)
    assert actions.needs_confirm("staging", True) and not actions.needs_confirm("staging", False)


def test_a_sparkline_is_scaled_to_include_its_threshold() -> None:
    assert sparkline.sparkline([0.01, 0.01], [None, 1.0]) == "▁▁"
    assert sparkline.sparkline([1.0, None, 2.0], [None, 2.0]) == "▅·█"
    assert sparkline.marks(["pass", "fail", "inconclusive"]) == "✓✗·"
    assert sparkline.bar(0.5, 4) == "▓▓░░"


def test_links_only_to_http_with_no_markup_characters() -> None:
    assert blocks.link("javascript:alert(1)", "x") == "x"
    assert blocks.link("http://a/b|c<d>", "<y|z>") == "<http://a/b%7Cc%3Cd%3E|&lt;y¦z&gt;>"
    assert blocks.mention("shipthread") == "Shipthread" and blocks.mention("<!here>") == "@&lt;!here&gt;"
