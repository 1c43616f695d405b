"""PromQL text with its quoted strings blanked, positions kept: the one place that knows PromQL quoting.

Both the guard's look-back reading (``bot.domain.settling``) and the batching rewrite
(``bot.adapters.promql``) scan a query for keywords, selectors and brackets; a label value such as
``path="/by (x)[5m]"`` must not count as code. Blanking the inside of each string (not removing it)
keeps every offset, so a position found in the blanked text is a position in the query.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
"""PromQL's three string forms: double and single quotes with backslash escapes, raw backticks."""


def blank_strings(text: str) -> str:
    """``text`` with every quoted string's inside replaced by spaces (its quotes and length kept)."""
    return _STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], text)
