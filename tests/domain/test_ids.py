"""Deployment ids: 50 bits in 10 unambiguous characters, and what that buys."""

from __future__ import annotations

import re

import pytest

from bot.domain import ids

ID = re.compile(r"d[0-9a-hjkmnp-tv-z]{10}")


def test_alphabet_is_crockford_lowercase_without_ambiguous_letters() -> None:
    assert len(set(ids.ALPHABET)) == 32
    assert not set(ids.ALPHABET) & set("ilou")
    assert ids.ALPHABET.islower()


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (0, "d0000000000"),
        (1, "d0000000001"),
        (31, "d000000000z"),
        (32, "d0000000010"),
        (2**50 - 1, "dzzzzzzzzzz"),
    ],
)
def test_every_50_bit_value_is_ten_characters(bits: int, expected: str) -> None:
    assert ids.deployment_id("d", bits) == expected
    assert ID.fullmatch(expected)


@pytest.mark.parametrize("bits", [-1, 2**50])
def test_out_of_range_bits_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="50 bits"):
        ids.deployment_id("d", bits)


def test_distinct_bits_give_distinct_ids() -> None:
    values = [0, 1, 2**25, 2**49, 2**50 - 2, 123456789012345]
    assert len({ids.deployment_id("d", v) for v in values}) == len(values)


def test_collision_odds_are_the_birthday_bound() -> None:
    # The 24-bit ids of before: an even bet after about 4,800 deployments.
    assert 0.49 < ids.collision_odds(4_800, bits=24) < 0.51
    # What the docstring promises for 50 bits.
    assert 0.0004 < ids.collision_odds(1_000_000) < 0.0005
    assert 0.04 < ids.collision_odds(10_000_000) < 0.05
    assert ids.collision_odds(1) == 0.0
