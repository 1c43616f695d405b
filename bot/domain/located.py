"""Where a value was written: locations in a document, the lines of a file, cross-field mistakes.

The models say what is valid; the loader (``bot.yaml_source``) reads files keeping the line of every
key, so that a mistake is reported as ``path:line: field.path: message``. These are the pure pieces
both share: a location (``Loc``), how people read one (``dotted``), where each location sits in its
file (``SourceMap``), and ``FieldErrors``, the ``ValueError`` a model raises for mistakes that span
fields, carrying each one's location so the loader points at the offending key's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Loc = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the root."""


class FieldErrors(ValueError):
    """Cross-field mistakes, each with its location relative to the model that found it."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        self.problems: tuple[tuple[Loc, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{dotted(loc) or '(top)'}: {message}" for loc, message in self.problems))


def dotted(loc: Iterable[str | int]) -> str:
    """``environments.production.guard.checks[0].max``: a location as people read it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each key and list item of a loaded file was written (1-based lines).

    Filled by the loader, read when a message must name a line; not part of any value's meaning.
    """

    path: str
    lines: Mapping[Loc, int] = field(default_factory=dict)
    """Every location present in the file, the root ``()`` included."""

    def locate(self, loc: Iterable[str | int]) -> tuple[int, Loc]:
        """The line of the deepest part of ``loc`` present in the file, and that part.

        Parts absent from the file are skipped: a missing field's name, or the tags pydantic adds
        for union members, which the person never wrote.
        """
        found: Loc = ()
        for part in loc:
            if (*found, part) in self.lines:
                found = (*found, part)
        return self.lines.get(found, self.lines.get((), 1)), found
