"""Log records are redacted whichever handler writes them: messages, arguments, tracebacks, stacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot import logs
from bot.domain.redact import MASK, Redactor

SECRET = "8f2b6c0e4a1d9f7b3c5e8a2d6f0b4c9e"
DB_URL = "postgresql+asyncpg://shipthread:Pg-pa55word@db:5432/ship"


@pytest.fixture
def installed() -> Iterator[logging.Logger]:
    """The redactor installed as production installs it, and the shapes-only one again afterwards."""
    before = logs.installed()
    logs.install(Redactor([SECRET]))
    yield logging.getLogger("shipthread.test_logs")
    logs.install(before)


def _stream_handler() -> tuple[logging.Handler, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    return handler, out


def test_messages_arguments_and_tracebacks_are_redacted_for_a_handler_added_later(
    installed: logging.Logger,
) -> None:
    handler, out = _stream_handler()
    installed.addHandler(handler)  # added after install: the record factory covers it anyway
    installed.setLevel(logging.DEBUG)
    try:
        installed.debug("signing with %s", SECRET)
        installed.info(f"connecting to {DB_URL}")
        try:
            raise ConnectionError(f"cannot reach {DB_URL} (secret {SECRET})")
        except ConnectionError:
            installed.exception("effect %s failed", "dep-1:build:1")
        installed.warning("where am I, %s?", SECRET, stack_info=True)
    finally:
        installed.removeHandler(handler)
    text = out.getvalue()
    assert SECRET not in text and "Pg-pa55word" not in text
    assert f"signing with {MASK}" in text
    assert f"shipthread:{MASK}@db:5432/ship" in text
    assert "effect dep-1:build:1 failed\nTraceback (most recent call last):" in text
    assert f"ConnectionError: cannot reach postgresql+asyncpg://shipthread:{MASK}@db:5432/ship" in text
    assert "Stack (most recent call last):" in text


def test_a_record_keeps_no_raw_arguments_or_exception(
    installed: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=installed.name)
    try:
        raise RuntimeError(SECRET)
    except RuntimeError:
        installed.exception("failed with %r", {"token": SECRET})
    (record,) = caplog.records
    assert record.args == () and record.exc_info is None  # nothing left to format afresh
    assert SECRET not in record.getMessage() and SECRET not in (record.exc_text or "")
    assert SECRET not in caplog.text
    assert f"RuntimeError: {MASK}" in caplog.text


def test_root_handlers_filter_records_the_factory_never_saw(installed: logging.Logger) -> None:
    handler, out = _stream_handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logs.install(Redactor([SECRET]))  # installing again puts the filter on the root's handlers
        handler.handle(logging.makeLogRecord({"msg": "forwarded %s", "args": (SECRET,), "levelname": "INFO"}))
    finally:
        root.removeHandler(handler)
    assert out.getvalue().endswith(f" forwarded {MASK}\n")
    assert sum(isinstance(f, logs.RedactingFilter) for f in handler.filters) == 1


def test_installing_again_replaces_the_redactor_and_keeps_one_factory(installed: logging.Logger) -> None:
    factory = logging.getLogRecordFactory()
    logs.install(Redactor(["another-secret"]))
    assert logging.getLogRecordFactory() is factory
    handler, out = _stream_handler()
    installed.addHandler(handler)
    try:
        installed.warning("%s and %s", SECRET, "another-secret")
    finally:
        installed.removeHandler(handler)
    assert out.getvalue().endswith(f"{SECRET} and {MASK}\n")


def test_a_bad_format_string_still_comes_out_redacted(installed: logging.Logger) -> None:
    record = logging.getLogRecordFactory()(
        installed.name, logging.ERROR, __file__, 1, "%d items", (SECRET,), None
    )
    assert SECRET not in record.getMessage()
    assert MASK in record.getMessage()
