"""Batching one guard check of many services into one PromQL query.

When N deployments are guarded at once, the same check template is rendered N times, differing only
in ``service="…"``. If the template's shape allows it, we send one query with ``service=~"a|b|c"``
and every aggregation grouped ``by (service)``, then split the answer by its ``service`` label, so
requests per tick grow with the number of query shapes, not with the number of deployments.

The rewrite is deliberately conservative: anything whose label set we cannot reason about
(``without``, vector matching modifiers, functions that drop or invent labels, a ``{service}``
placeholder anywhere but a ``service="{service}"`` matcher, a selector without that matcher) is not
batched and runs one query each.
"""

from __future__ import annotations

import re

from bot.domain.promql_text import blank_strings

_SERVICE_MATCHER = re.compile(r'service\s*=\s*"\{service\}"')
_AGGREGATION = re.compile(r"\b(sum|avg|min|max|count|group|stddev|stdvar)\b")
_BY_CLAUSE = re.compile(r"\s*by\s*\(([^)]*)\)")
_UNBATCHABLE = re.compile(
    r"\b(without|on|ignoring|group_left|group_right|topk|bottomk|quantile|count_values|scalar|vector"
    r"|absent|absent_over_time|label_replace|label_join|sort|sort_desc|limitk|limit_ratio)\b"
)
_SELECTOR = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
_NOT_METRICS = frozenset({"by", "bool", "offset", "and", "or", "unless", "inf", "nan"})


def _matching_paren(masked: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "(":
            depth += 1
        elif masked[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _every_selector_has_service(template: str, masked: str) -> bool:
    """Whether each vector selector holds the ``service="{service}"`` matcher.

    A selector without it spans every service in the single query; grouped ``by (service)`` in the
    batch it would be split per service, so "a's errors over all requests" would silently become
    "a's errors over a's requests".
    """
    if any(not _SERVICE_MATCHER.search(template, s.start(), s.end()) for s in _SELECTOR.finditer(masked)):
        return False
    # A bare metric name (no braces at all) selects every service too. Blank what is not code
    # (matchers, grouping labels, durations) and look for a name that calls nothing and has no braces.
    code = _SELECTOR.sub(lambda m: "{" + " " * (len(m.group(0)) - 2) + "}", masked)
    code = _RANGE.sub(" ", _BY_CLAUSE.sub(" ", code))
    for name in _IDENT.finditer(code):
        follows = code[name.end() :].lstrip()[:1]
        if follows not in ("(", "{") and name.group(0).lower() not in _NOT_METRICS:
            return False
    return True


def _with_service(labels: str) -> str:
    names = [n.strip() for n in labels.split(",") if n.strip()]
    if "service" not in names:
        names.append("service")
    return ", ".join(names)


def batch_template(template: str) -> str | None:
    """The ``by (service)`` form of ``template`` with a ``{services}`` regex placeholder, or None.

    ``{services}`` is to be replaced by an escaped RE2 alternation of the service names.
    """
    placeholders = template.count("{service}")
    if placeholders == 0 or len(_SERVICE_MATCHER.findall(template)) != placeholders:
        return None
    masked = blank_strings(template)  # keywords inside label values are not code
    if not _every_selector_has_service(template, masked):
        return None
    # Selectors' braces hold label matchers, not keywords: blank them too before looking for keywords.
    code = re.sub(r"\{[^}]*\}", lambda m: " " * len(m.group(0)), masked)
    if _UNBATCHABLE.search(code):
        return None
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied right to left
    found = False
    for match in _AGGREGATION.finditer(code):
        found = True
        pos = match.end()
        by_before = _BY_CLAUSE.match(code, pos)
        if by_before:
            edits.append(
                (
                    by_before.start(1),
                    by_before.end(1),
                    _with_service(template[by_before.start(1) : by_before.end(1)]),
                )
            )
            pos = by_before.end()
        rest = code[pos:]
        stripped = rest.lstrip()
        if not stripped.startswith("("):
            return None
        open_at = pos + (len(rest) - len(stripped))
        close_at = _matching_paren(code, open_at)
        if close_at is None:
            return None
        by_after = _BY_CLAUSE.match(code, close_at + 1)
        if by_after:
            edits.append(
                (
                    by_after.start(1),
                    by_after.end(1),
                    _with_service(template[by_after.start(1) : by_after.end(1)]),
                )
            )
        elif not by_before:
            edits.append((match.end(), match.end(), " by (service)"))
    if not found:
        return None
    out = template
    for start, end, text in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + text + out[end:]
    return _SERVICE_MATCHER.sub('service=~"{services}"', out)


def services_regex(services: list[str]) -> str:
    """An RE2 alternation matching exactly these names, escaped for a PromQL string."""
    escaped = [re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", s) for s in sorted(set(services))]
    return "|".join(escaped).replace("\\", "\\\\").replace('"', '\\"')
