"""Secrets masked out of text: the one redaction rule of Shipthread, used by every path out of the process.

Chat messages, log records, audit rows, event payloads, effect errors and Jenkins console tails all go
through ``Redactor.redact`` (or ``Redactor.redact_data`` for JSON-like values), so a secret printed by
a build, embedded in an exception or pasted by a person never leaves the process. Two kinds of
things are masked:

- the secrets Shipthread holds, registered by value (``Redactor(secrets)``): the Slack tokens and
  signing secret, the Jenkins API token, the database password. Values under ``MIN_SECRET_CHARS``
  are ignored, they would mangle ordinary words; each value is also matched percent-encoded,
  JSON-escaped and mrkdwn-escaped, the forms in which URLs, payloads and Slack messages carry it
  (the last a backstop: text is redacted before it is escaped for Slack).
- well-known shapes of credentials, whoever they belong to: Slack (``xox?-``, ``xapp-``) and
  GitHub (``ghp_``/``gho_``/…, ``github_pat_``) tokens, AWS access key ids and secret keys,
  ``Authorization:`` header values, ``Bearer`` tokens, the password of ``scheme://user:password@host``
  (the user is kept), PEM private keys, ``--password VALUE`` flags and ``name=value`` / ``"name": value``
  pairs whose name says password, token, secret, api key, access key or credentials. The last one is a
  judgement call: it masks the odd harmless value (``tokens: 5``) and in return catches the
  ``DB_PASSWORD=...`` a build script echoes; masking too much is the cheap side of that trade.
  Jenkins' own ``****`` masks are left as they are.

A masked part becomes ``[redacted]``; a token keeps its kind as a hint (``xoxb-[redacted]``,
``AKIA[redacted]``), and a key/value pair its name (``password=[redacted]``). Redaction is idempotent,
and its result never contains a registered secret, whatever text surrounds it: masking can make a new
occurrence appear across a mask's edge (a secret starting with ``]``), so masking repeats until
nothing changes, merging touching masks, and gives up to a lone mask in the pathological case.

A URL about to be shown whole (a database URL in a message, a settings repr) has its password masked
by ``masked_url`` instead, as ``user:***@host``: the one place a URL's password is hidden.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from bot.domain.mrkdwn import escape

MASK = "[redacted]"
"""What a masked secret becomes."""

FALLBACK_MASK = "[...]"
"""The mask used instead when a registered secret is part of ``MASK`` (it would never go away); it is
shorter than any registered secret, so none can be part of it."""

MIN_SECRET_CHARS = 6
"""Registered values shorter than this are ignored: masking every ``admin`` would make text unreadable."""

_MAX_PASSES = 8
"""Masking normally settles in one or two passes; more means a secret built to fight the mask."""

T = TypeVar("T")

# Each shape is a regex whose group ``s`` is the part to mask (the whole match when it has none); the
# rest of the match (a header name, a token's prefix, a URL's user) stays, so people see what it was.
# Every repetition that could run before the part to mask is bounded: log lines and consoles can be
# long runs of word characters, and an unbounded prefix would make the search quadratic.
_VALUE_END = r"""[^\s"',;&]"""
_SHAPES: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----.*?(?:-----END [A-Z ]{0,40}PRIVATE KEY-----|\Z)", re.DOTALL
    ),
    # The header's value runs to the end of the line (or a quote): "Basic <b64>", "Bearer <jwt>", ...
    re.compile(
        r"(?i)\b(?:proxy-)?authorization[ \t]*[:=][ \t]*"
        r"(?:(?:basic|bearer|digest|token|negotiate)[ \t]+)?(?P<s>[^\s\"'][^\r\n\"']*)"
    ),
    re.compile(r"(?i)\bbearer[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{8,})"),
    # scheme://user:password@host: the password runs to the last "@" before a path or a space, so a
    # password with an unencoded "@" is masked whole.
    # A password already masked as "***" (``store.db.masked_url``) is left alone.
    re.compile(r"://[^/\s:@\"'<>]{0,256}:(?P<s>(?!\*+@)[^\s/\"'<>]{1,1024})@"),
    # NAME=value, NAME: value, "name": "value" where the name says it holds a secret (any prefix:
    # DB_PASSWORD, slack_signing_secret).
    re.compile(
        r"""(?ix)
        (?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)
        [\w.-]{0,64}["']?[ \t]*[=:][ \t]*["']?
        (?P<s>(?!\*+(?:[\s"',;&]|$))"""  # Jenkins' own "****" mask is left alone
        + _VALUE_END
        + "+)"
    ),
    re.compile(
        r"(?i)(?:^|(?<=\s))--?[\w-]{0,64}?(?:password|passwd|token|secret|api[_-]?key)[\w-]{0,64}[ \t]+"
        r"(?P<s>(?!\*+(?:\s|$))[^\s-]\S*)"
    ),
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)(?P<s>[A-Z0-9]{16})\b"),
    # An AWS secret access key: 40 base64 characters with both cases (a git sha has no capitals).
    re.compile(
        r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
    ),
    re.compile(r"\b(?:xox[abposr]-|xapp-)(?P<s>[A-Za-z0-9-]{10,})"),
    re.compile(r"\bgh[pousr]_(?P<s>[A-Za-z0-9]{30,})"),
    re.compile(r"\bgithub_pat_(?P<s>[A-Za-z0-9_]{22,})"),
)


class Redactor:
    """Masks the registered ``secrets`` and the well-known credential shapes. Immutable; share it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        given = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)
        values = {v for s in given for v in _spellings(s)}
        # Longest first: of two overlapping secrets the longer is the one to see whole (spans are merged
        # anyway, the order only keeps the search predictable).
        self._secrets: tuple[str, ...] = tuple(sorted(values, key=lambda v: (-len(v), v)))
        self._given = given
        self.mask = FALLBACK_MASK if any(v in MASK for v in self._secrets) else MASK

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self._given)} secrets)"

    @property
    def secret_count(self) -> int:
        """How many secrets are registered (long enough to be masked)."""
        return len(self._given)

    def including(self, secrets: Iterable[str]) -> Redactor:
        """A redactor masking these secrets as well."""
        return Redactor([*self._given, *secrets])

    def redact(self, text: str) -> str:
        """``text`` with every registered secret and credential shape masked."""
        for _ in range(_MAX_PASSES):
            masked = self._pass(text)
            if masked == text:
                return text
            text = masked
        return self.mask  # the text keeps rebuilding a secret around the masks: show nothing of it

    def redact_data(self, value: T) -> T:
        """``value`` with every string inside it redacted (dict keys too), for JSON-like payloads.

        Mappings come back as dicts, lists as lists, tuples as tuples, dataclass instances (a
        notification, say) as copies with their fields redacted; other values unchanged.
        """
        result: Any = self._data(value)
        return result  # type: ignore[no-any-return]

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {self._data(k): self._data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._data(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._data(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changed = {}
            for item in dataclasses.fields(value):
                if item.init:
                    old = getattr(value, item.name)
                    new = self._data(old)
                    if new is not old:
                        changed[item.name] = new
            return dataclasses.replace(value, **changed) if changed else value
        return value

    def _pass(self, text: str) -> str:
        merged: list[list[int]] = []
        for start, end in sorted(self._spans(text)):
            if merged and start <= merged[-1][1]:  # overlapping or touching: one mask for both
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return text
        out: list[str] = []
        kept = 0
        for start, end in merged:
            out += (text[kept:start], self.mask)
            kept = end
        out.append(text[kept:])
        return "".join(out)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        for secret in self._secrets:
            at = text.find(secret)
            while at >= 0:
                yield at, at + len(secret)
                at = text.find(secret, at + 1)
        for shape in _SHAPES:
            for match in shape.finditer(text):
                group = "s" if "s" in shape.groupindex else 0
                if match.start(group) < match.end(group):
                    yield match.span(group)
        # Masks already there take part in the merge, so a new mask never ends up beside an old one
        # (two masks side by side could spell a secret between them).
        at = text.find(self.mask)
        while at >= 0:
            yield at, at + len(self.mask)
            at = text.find(self.mask, at + 1)


def masked_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: the only form of a URL fit to print or log.

    The user and host stay exactly as written; a URL that cannot be parsed is shown as ``***``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _spellings(secret: str) -> set[str]:
    """The forms a secret travels in: as is, percent-encoded (URLs), JSON-escaped (payloads) and
    escaped for Slack's mrkdwn (``&<>`` as entities)."""
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], escape(secret)}
