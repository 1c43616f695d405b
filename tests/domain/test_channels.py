"""The one rule for Slack channel references, as playbooks, config and the Slack adapter read them."""

from __future__ import annotations

import pytest

from bot.adapters.slack_channels import is_channel_id as adapter_is_channel_id
from bot.domain.channels import is_channel_id, is_channel_ref


@pytest.mark.parametrize("ref", ["C0DEPLOYS", "G0SECRET", "D0ALICE", "C0123ABCD"])
def test_ids_are_ids_for_the_playbook_and_the_adapter_alike(ref: str) -> None:
    assert is_channel_id(ref) and adapter_is_channel_id(ref) and is_channel_ref(ref)


@pytest.mark.parametrize("ref", ["#deploys", "deploys", "#Deploys", "c0deploys", "#", "X0DEPLOYS", "C"])
def test_names_and_mistakes_are_not_ids(ref: str) -> None:
    assert not is_channel_id(ref) and not adapter_is_channel_id(ref)


def test_a_playbook_names_an_id_or_a_hash_name() -> None:
    assert is_channel_ref("#deploys-staging") and is_channel_ref("D0ALICE")
    assert not is_channel_ref("deploys") and not is_channel_ref("#" + "a" * 81)
