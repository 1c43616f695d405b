"""Deployment ids: short enough to type in ``/deploy cancel <id>``, wide enough never to run out.

An id is the configured prefix and ``ID_CHARS`` characters of lowercase Crockford base32 (digits and
letters without ``i``, ``l``, ``o`` and ``u``, so nothing read aloud or copied by eye is ambiguous),
50 random bits. By the birthday bound, ``p ≈ 1 - exp(-n² / 2·2⁵⁰)`` that two of ``n`` ids are
equal: about 0.04 % over 1 million deployments and about 4 % over 10 million. The store refuses a
taken id and the engine simply draws another, so even that rare collision costs one retry, never an
error. (The ids they replace had 24 bits: an even bet on a collision after about 4,800.)

Pure: the random bits come from the caller (``secrets.randbits(ID_BITS)`` in the engine).
"""

from __future__ import annotations

import math

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
"""Crockford's base32 alphabet, lowercase: 32 symbols, 5 bits each."""

ID_CHARS = 10
ID_BITS = 5 * ID_CHARS


def deployment_id(prefix: str, bits: int) -> str:
    """``prefix`` and ``bits`` (0 ≤ bits < 2**ID_BITS) as ``ID_CHARS`` base32 characters."""
    if not 0 <= bits < 1 << ID_BITS:
        raise ValueError(f"an id takes {ID_BITS} bits, not {bits}")
    chars = []
    for _ in range(ID_CHARS):
        bits, digit = divmod(bits, 32)
        chars.append(ALPHABET[digit])
    return prefix + "".join(reversed(chars))


def collision_odds(deployments: int, bits: int = ID_BITS) -> float:
    """The chance that at least two of ``deployments`` random ids of ``bits`` bits are equal."""
    return -math.expm1(-deployments * (deployments - 1) / (2.0 * 2.0**bits))
