"""Log records with secrets masked, whichever handler writes them.

A log line leaves the process like a chat message does, and exceptions are what carries secrets
into logs: a connection error quoting a URL with its password, a library repeating a request. So
once ``install`` has run, every record is redacted by ``bot.domain.redact`` as it is made: its
message (formatted with its arguments, which are then dropped), its traceback (formatted into
``exc_text``; the exception object itself is dropped, so no handler can format it afresh) and its
stack. That is the log record factory, which covers handlers added later too (pytest's, a JSON
formatter's). The same redaction also sits as a filter on the root logger's handlers, for records
the factory never saw (made before ``install``, or rebuilt with ``logging.makeLogRecord``).

The redactor is process-wide state, kept here and nowhere else: ``bot.container.build`` installs the
one built from the settings' secrets; before that, only credential shapes are masked.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.domain.redact import Redactor

_redactor = Redactor()
_traceback = logging.Formatter()


def install(redactor: Redactor) -> None:
    """Redact every log record from now on with ``redactor`` (replacing the one installed before)."""
    global _redactor
    _redactor = redactor
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(factory))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def installed() -> Redactor:
    """The redactor log records go through."""
    return _redactor


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Mask secrets in ``record``'s message, traceback and stack, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what there is, the handler would fail the same way
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redactor.redact(message)
    record.args = ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = _traceback.formatException(record.exc_info)
    record.exc_info = None
    if record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record (with the installed redactor) and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, _redactor)
        return True


class _RedactingFactory:
    """The log record factory: the previous factory's record, redacted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self._inner(*args, **kwargs)
        redact_record(record, _redactor)
        return record
