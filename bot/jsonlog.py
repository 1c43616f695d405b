"""The serve process's log lines: one JSON object per line on stderr, secrets masked.

Each line carries the time, level, logger and message, the deployment id when the line concerns one
(given on the record, named in the message, or the deployment the background task works on), and
the formatted exception; the finished line is masked once more with the installed redactor
(``bot.logs``). Third-party chatter (aiohttp's access log, Bolt's per-request debug) is turned down.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from bot import logs
from bot.slack.work import deployment_context

_WORD = re.compile(r"[0-9a-z]+")
_ID_SHAPE = re.compile(r"^d(?:[0-9a-hjkmnp-tv-z]{10}|[0-9a-f]{6})$")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, deployment id, secrets masked.

    Records are redacted when made (``bot.logs``); the finished line is masked once more with the
    redactor installed at that moment, for records made before it was.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        deployment = _deployment_of(record, message)
        if deployment:
            line["deployment_id"] = deployment
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return logs.installed().redact(json.dumps(line, ensure_ascii=False, default=str))


def _deployment_of(record: logging.LogRecord, message: str) -> str | None:
    given = getattr(record, "deployment_id", None)
    if isinstance(given, str):
        return given
    # The engine names the deployment in its messages; redaction has already merged the arguments in.
    for word in _WORD.findall(message):
        if _ID_SHAPE.match(word) and any(c.isdigit() for c in word):
            return str(word)
    return deployment_context.get()


def configure_logging(level: int = logging.INFO) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO (every HTTP request of aiohttp's access log, Bolt's per-request
    # debug) would drown what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("shipthread.bolt").setLevel(logging.WARNING)
    return handler
