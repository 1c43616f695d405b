"""The one redaction rule: registered secrets and credential shapes masked, everything else kept."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.domain.redact import FALLBACK_MASK, MASK, MIN_SECRET_CHARS, Redactor

SHAPES = Redactor()


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("password=hunter2", "hunter2"),
        ("export DB_PASSWORD='p@ss w0rd'", "p@ss"),
        ("run --token abc123def456 --token=abc123def456", "abc123def456"),
        ("docker login -u bot --password s3cr3t registry", "s3cr3t"),
        ('{"api_key": "k-12345678"}', "k-12345678"),
        ("Authorization: Basic c2hpcHRocmVhZDpzZWNyZXQ=", "c2hpcHRocmVhZDpzZWNyZXQ="),
        ("proxy-authorization: Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaAD", "YIIGhgYJKoZIhvcSAQ"),
        ("curl -H 'authorization: Bearer abc.def.ghi123'", "abc.def.ghi123"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.cGF5bG9hZA.c2ln upstream", "eyJhbGciOiJIUzI1NiJ9"),
        ("git clone https://bot:ghs_secretvalue@github.com/org/repo", "ghs_secretvalue"),
        ("using AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
        ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("SLACK=xoxb-1234567890-abcdefghij", "1234567890-abcdefghij"),
        ("xoxp-1234567890-user and xoxa-2-abcdefghijkl", "1234567890-user"),
        ("SOCKET=xapp-1-A0123456-1234567890-deadbeef", "A0123456-1234567890"),
        ("GITHUB_TOKEN: ghp_0123456789abcdefghijABCDEFGHIJ012345", "0123456789abcdefghijABCDEFGHIJ"),
        ("gho_0123456789abcdefghijABCDEFGHIJ012345", "0123456789abcdefghij"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "11ABCDEFG0123456789"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_credential_shapes_are_masked(line: str, hidden: str) -> None:
    out = SHAPES.redact(line)
    assert hidden not in out
    assert MASK in out


def test_a_mask_keeps_a_hint_of_what_was_there() -> None:
    assert SHAPES.redact("SLACK=xoxb-1234567890-abcdefghij") == f"SLACK=xoxb-{MASK}"
    assert SHAPES.redact("key AKIAIOSFODNN7EXAMPLE") == f"key AKIA{MASK}"
    assert SHAPES.redact("password=hunter2 next") == f"password={MASK} next"
    assert SHAPES.redact("Authorization: Basic c2hpcA==") == f"Authorization: Basic {MASK}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://bot:pa55word@db:5432/ship", f"postgresql+asyncpg://bot:{MASK}@db:5432/ship"),
        ("redis://:pa55word@cache/0", f"redis://:{MASK}@cache/0"),
        # an unencoded "@" in the password: masked to the last "@" of the authority
        ("postgresql://bot:p@ss@db/ship", f"postgresql://bot:{MASK}@db/ship"),
        ("https://jenkins.example.com:8443/job/x", "https://jenkins.example.com:8443/job/x"),
    ],
)
def test_a_url_keeps_its_user_and_loses_its_password(url: str, shown: str) -> None:
    assert SHAPES.redact(url) == shown


def test_an_error_quoting_a_postgres_url_is_masked_with_or_without_the_password_registered() -> None:
    error = (
        "OSError: connect to postgresql+asyncpg://shipthread:Pg%2Fpa55@db.internal:5432/ship failed; "
        "retrying with password Pg/pa55"
    )
    registered = Redactor(["Pg/pa55"])
    out = registered.redact(error)
    assert "Pg%2Fpa55" not in out and "Pg/pa55" not in out  # the encoded spelling is matched too
    assert "shipthread:" in out and "@db.internal:5432/ship" in out
    assert "Pg%2Fpa55" not in SHAPES.redact(error)  # the URL shape alone hides the URL's copy


def test_registered_secrets_are_masked_and_ordinary_text_is_kept() -> None:
    text = "deploying checkout 1.4.2 with tok-abcdef (commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a)"
    out = Redactor(["tok-abcdef", "", "ab"]).redact(text)
    assert out == f"deploying checkout 1.4.2 with {MASK} (commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a)"
    for kept in (
        "password=**** and Finished: SUCCESS",  # Jenkins' own mask
        "deploy --token ****",
        "<!channel> tests: 12 passed, 0 failed",
        "Jenkins refused our credentials for user 'shipthread' (HTTP 401)",
        "trigger checkout-build [dep-1:build:1]: queued as item 7",
    ):
        assert SHAPES.redact(kept) == kept


def test_short_secrets_are_ignored_and_the_longest_wins() -> None:
    redactor = Redactor(["admin", "x" * MIN_SECRET_CHARS, "token-123", "token-123-long"])
    assert redactor.secret_count == 3
    assert redactor.redact("admin token-123-long xxxxxx") == f"admin {MASK} {MASK}"
    assert redactor.redact("token-123-longer") == f"{MASK}er"


def test_secrets_may_come_from_a_generator_and_never_show_in_repr() -> None:
    redactor = Redactor(v for v in ["s3cr3t-value", "0th3r-value"])
    assert redactor.redact("a s3cr3t-value b 0th3r-value") == f"a {MASK} b {MASK}"
    assert "s3cr3t" not in repr(redactor)
    more = redactor.including(["third-value"])
    assert more.redact("third-value s3cr3t-value") == f"{MASK} {MASK}"


def test_a_secret_inside_the_mask_switches_to_the_other_mask() -> None:
    redactor = Redactor(["redacted"])
    assert redactor.mask == FALLBACK_MASK
    out = redactor.redact("the redacted word and password=hunter2")
    assert "redacted" not in out
    assert out == f"the {FALLBACK_MASK} word and password={FALLBACK_MASK}"


def test_the_fallback_mask_is_too_short_to_hold_a_secret() -> None:
    assert len(FALLBACK_MASK) < MIN_SECRET_CHARS
    assert Redactor(["[redac", "dacted]"]).mask == FALLBACK_MASK


def test_a_secret_rebuilt_around_a_mask_is_masked_again() -> None:
    # Masking "]aaaaaa" in "]aaaaaaaaaaaa" leaves "[redacted]aaaaaa", which spells it again.
    redactor = Redactor(["]aaaaaa"])
    out = redactor.redact("x]aaaaaaaaaaaa")
    assert "]aaaaaa" not in out
    assert out == f"x{MASK}"


def test_redact_data_masks_every_string_of_a_json_like_value() -> None:
    redactor = Redactor(["s3cr3t-value"])
    payload = {
        "text": "token s3cr3t-value",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "```xoxb-1234567890-abc```"}}],
        "n": 3,
        "ok": True,
        "none": None,
        "pair": ("s3cr3t-value", 1.5),
        "s3cr3t-value": "as a key",
    }
    out = redactor.redact_data(payload)
    assert out == {
        "text": f"token {MASK}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"```xoxb-{MASK}```"}}],
        "n": 3,
        "ok": True,
        "none": None,
        "pair": (MASK, 1.5),
        MASK: "as a key",
    }
    assert payload["text"] == "token s3cr3t-value"  # the input is left as it was


secret_text = st.text(min_size=MIN_SECRET_CHARS, max_size=24)
# Secrets made of the mask's own characters are the ones that can reappear across a mask's edge.
edgy_secret = st.text(alphabet="[]redacthin*:=@/ abx", min_size=MIN_SECRET_CHARS, max_size=14)
surroundings = st.text(max_size=60) | st.text(alphabet="[]redacthin*:=@/ abx\n", max_size=60)


@given(
    secrets=st.lists(secret_text | edgy_secret, min_size=1, max_size=3),
    parts=st.lists(surroundings, min_size=1, max_size=4),
    data=st.data(),
)
@example(secrets=["]aaaaaa"], parts=["x", "aaaaaa"], data=None)
@example(secrets=["redacted"], parts=["[", "]"], data=None)
@example(secrets=["d][red"], parts=["password=a ", " password=b"], data=None)
@example(secrets=["[hidde", "[redac"], parts=[""], data=None)
def test_redaction_is_idempotent_and_leaves_no_registered_secret(
    secrets: list[str], parts: list[str], data: st.DataObject | None
) -> None:
    # The text is the parts with secrets between them, whatever the parts are.
    pieces: list[str] = []
    for index, part in enumerate(parts):
        pieces.append(part)
        pick = data.draw(st.sampled_from(secrets)) if data is not None else secrets[index % len(secrets)]
        pieces.append(pick)
    text = "".join(pieces)
    redactor = Redactor(secrets)
    once = redactor.redact(text)
    for secret in secrets:
        assert secret not in once
    assert redactor.redact(once) == once


@given(text=st.text(max_size=200))
def test_shapes_only_redaction_is_idempotent(text: str) -> None:
    once = SHAPES.redact(text)
    assert SHAPES.redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "a.b-" * 25_000,
        "password" * 10_000,
        " --token" * 10_000,
        "a://b:" * 10_000,
        "authorization: " * 10_000,
    ],
)
def test_long_runs_take_linear_time(text: str) -> None:
    # An unbounded name before "password" took 46 s on 20,000 characters of "a.b-" (quadratic).
    started = time.perf_counter()
    SHAPES.redact(text)
    assert time.perf_counter() - started < 10
