"""Slack thread state: what each message of each thread should say, and what Slack shows.

The notifier writes the *desired* content of a thread's messages here in one transaction with the
card's new state (``record``), and a sender brings Slack up to date from it (``pending``,
``attempting``, ``sent``, ``failed``). Because messages are upserted by (thread, key), the same
notification twice — the outbox retrying a ``Notify`` after a crash — lands on the same rows: a
new revision of a message already posted, that is an edit, never a second post. A restart finds
the thread (the card's ``ts``) and everything not yet delivered.

Rows are plain values outside this module (``Desired``, ``OutMessage``); ``thread_id`` is a
deployment id or ``channel:<channel>`` for top-level posts outside any deployment. A thread
recorded before anyone knew its channel has channel ``""`` (``NO_CHANNEL``): its card state and
messages are kept, but nothing of it is pending until a later ``record`` names the channel.

``pending`` lists only what may be sent: never a reply whose thread has no posted card (it could
not be posted, and a thousand of them behind a card Slack refused would crowd out every other
thread). A message Slack refused for a reason about its channel (the bot not invited, the
channel missing) is parked, not lost: ``rearm`` makes it pending again once the channel is fixed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.store import sql
from bot.store.models import SlackMessageRow, SlackThreadRow

NO_CHANNEL = ""
"""The channel of a thread recorded before its channel was known."""


@dataclass(frozen=True, slots=True)
class Desired:
    """A message as it should look now (from the renderer's ``Outgoing``)."""

    key: str
    text: str
    blocks: tuple[Mapping[str, Any], ...]
    priority: int
    top_level: bool = False
    """Posted into the channel rather than the thread: the card, or a post outside any thread."""


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    channel: str
    card_state: Mapping[str, Any] | None
    channel_id: str | None = None
    """The channel's id once something was posted there."""


@dataclass(frozen=True, slots=True)
class OutMessage:
    """A stored message with where it goes and what Slack has of it."""

    id: int
    thread_id: str
    channel: str
    """As configured: ``#name`` or an id."""
    key: str
    seq: int
    top_level: bool
    priority: int
    text: str
    blocks: tuple[Mapping[str, Any], ...]
    revision: int
    sent_revision: int
    ts: str | None
    attempted_at: datetime | None
    pending_since: datetime | None
    error: str | None
    parent_ts: str | None = None
    """The ts of the thread's top-level message, once posted (what a reply hangs under)."""
    channel_id: str | None = None
    """The channel's id, once the thread's first message was posted."""

    @property
    def posted(self) -> bool:
        return self.ts is not None


class ThreadStore:
    """The ``slack_threads`` and ``slack_messages`` tables, on the bot's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._writing = asyncio.Lock()
        """One write at a time from this process: they are short, and SQLite has one writer anyway
        (writers queueing on its file lock instead time out under a burst)."""

    async def thread(self, thread_id: str) -> Thread | None:
        async with self._sessions() as session:
            row = await session.get(SlackThreadRow, thread_id)
            return None if row is None else Thread(row.thread_id, row.channel, row.card_state, row.channel_id)

    async def record(
        self,
        thread_id: str,
        channel: str,
        card_state: Mapping[str, Any] | None,
        messages: Sequence[Desired],
        at: datetime,
    ) -> dict[str, int]:
        """Store the card's state and each message's desired content, in one transaction.

        A message whose content is unchanged keeps its revision (nothing to send); a changed one
        gets the next revision and becomes pending; a new key gets the thread's next sequence
        number. The thread keeps the channel it was opened in (or takes ``channel`` if it had
        none yet). A pending message keeps the most urgent priority it was given: a redraw
        must not push a phase change still waiting back behind the other redraws. Returns each
        key's revision now.
        """
        revisions: dict[str, int] = {}
        async with self._writing, self._sessions.begin() as session:
            thread = await _open_thread(session, thread_id, channel, card_state, at)
            existing = await _existing(session, thread_id, [m.key for m in messages])
            for message in messages:
                blocks = [dict(b) for b in message.blocks]
                row = existing.get(message.key)
                if row is None:
                    existing[message.key] = _add_message(session, thread, message, blocks, at)
                    revisions[message.key] = 1
                elif row.text != message.text or row.blocks != blocks:
                    await _revise(session, row, message, blocks, at)
                    revisions[message.key] = row.revision + 1
                else:
                    revisions[message.key] = row.revision
        return revisions

    async def pending(self, limit: int = 1000) -> list[OutMessage]:
        """Messages Slack is behind on that may be sent now (oldest pending first), each with its
        thread's parent ts: top-level messages, and replies whose thread's card is posted."""
        parent = aliased(SlackMessageRow)
        has_parent = exists().where(
            parent.thread_id == SlackMessageRow.thread_id, parent.top_level.is_(True), parent.ts.is_not(None)
        )
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(SlackMessageRow)
                    .join(SlackThreadRow, SlackThreadRow.thread_id == SlackMessageRow.thread_id)
                    .where(
                        SlackMessageRow.pending.is_(True),
                        SlackThreadRow.channel != NO_CHANNEL,
                        or_(SlackMessageRow.top_level.is_(True), has_parent),
                    )
                    .order_by(SlackMessageRow.pending_since, SlackMessageRow.id)
                    .limit(limit)
                )
            )
            return await self._with_threads(session, rows)

    async def messages(self, thread_id: str) -> list[OutMessage]:
        """Every message of a thread in thread order (tests, and what a person asks about)."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(SlackMessageRow)
                    .where(SlackMessageRow.thread_id == thread_id)
                    .order_by(SlackMessageRow.seq)
                )
            )
            return await self._with_threads(session, rows)

    async def attempting(self, message_id: int, at: datetime) -> None:
        """Mark a post as under way before calling Slack (a lost answer is looked up, not reposted)."""
        async with self._writing, self._sessions.begin() as session:
            await session.execute(
                update(SlackMessageRow).where(SlackMessageRow.id == message_id).values(attempted_at=at)
            )

    async def sent(
        self, message_id: int, revision: int, ts: str, at: datetime, channel_id: str | None = None
    ) -> None:
        """Slack shows ``revision`` (or later content was adopted) under ``ts`` in ``channel_id``."""
        shown = case(
            (SlackMessageRow.sent_revision > revision, SlackMessageRow.sent_revision), else_=revision
        )
        behind = SlackMessageRow.revision > shown
        async with self._writing, self._sessions.begin() as session:
            # One statement: a new revision stored meanwhile (``record``) must stay pending.
            await session.execute(
                update(SlackMessageRow)
                .where(SlackMessageRow.id == message_id)
                .values(
                    ts=ts,
                    sent_revision=shown,
                    pending=behind,
                    pending_since=case((behind, SlackMessageRow.pending_since), else_=None),
                    updated_at=at,
                )
            )
            if channel_id is not None:
                thread_of = select(SlackMessageRow.thread_id).where(SlackMessageRow.id == message_id)
                await session.execute(
                    update(SlackThreadRow)
                    .where(SlackThreadRow.thread_id == thread_of.scalar_subquery())
                    .where(SlackThreadRow.channel_id.is_(None))
                    .values(channel_id=channel_id)
                )

    async def failed(self, message_id: int, revision: int, error: str, at: datetime) -> None:
        """Slack refused ``revision`` for good: keep why, and stop trying until the content changes."""
        async with self._writing, self._sessions.begin() as session:
            # Only that revision: newer content stored meanwhile gets its own try.
            await session.execute(
                update(SlackMessageRow)
                .where(SlackMessageRow.id == message_id, SlackMessageRow.revision == revision)
                .values(error=error, pending=False, pending_since=None, updated_at=at)
            )

    async def parked_channels(self, errors: Iterable[str]) -> list[str]:
        """The channels (as configured) of threads holding a message refused for one of ``errors``."""
        async with self._sessions() as session:
            found = await session.scalars(
                select(SlackThreadRow.channel)
                .join(SlackMessageRow, SlackMessageRow.thread_id == SlackThreadRow.thread_id)
                .where(_refused_for(errors))
                .distinct()
            )
            return sorted(found)

    async def rearm(self, channel: str, errors: Iterable[str], at: datetime) -> int:
        """Make the messages of ``channel``'s threads refused for one of ``errors`` pending again
        (the channel was fixed); returns how many."""
        threads = select(SlackThreadRow.thread_id).where(SlackThreadRow.channel == channel)
        async with self._writing, self._sessions.begin() as session:
            result = await session.execute(
                update(SlackMessageRow)
                .where(_refused_for(errors), SlackMessageRow.thread_id.in_(threads))
                .values(pending=True, error=None, pending_since=at, updated_at=at)
                .execution_options(synchronize_session=False)
            )
            return sql.rowcount(result)

    async def _with_threads(self, session: AsyncSession, rows: list[SlackMessageRow]) -> list[OutMessage]:
        ids = {row.thread_id for row in rows}
        if not ids:
            return []
        threads = {
            t.thread_id: t
            for t in await session.scalars(select(SlackThreadRow).where(SlackThreadRow.thread_id.in_(ids)))
        }
        parents: dict[str, str] = {}
        for thread_id, ts in await session.execute(
            select(SlackMessageRow.thread_id, SlackMessageRow.ts)
            .where(SlackMessageRow.thread_id.in_(ids), SlackMessageRow.top_level.is_(True))
            .order_by(SlackMessageRow.seq)
        ):
            if ts is not None:
                parents.setdefault(thread_id, ts)
        return [
            OutMessage(
                id=row.id,
                thread_id=row.thread_id,
                channel=threads[row.thread_id].channel,
                key=row.key,
                seq=row.seq,
                top_level=row.top_level,
                priority=row.priority,
                text=row.text,
                blocks=tuple(row.blocks),
                revision=row.revision,
                sent_revision=row.sent_revision,
                ts=row.ts,
                attempted_at=row.attempted_at,
                pending_since=row.pending_since,
                error=row.error,
                parent_ts=parents.get(row.thread_id),
                channel_id=threads[row.thread_id].channel_id,
            )
            for row in rows
        ]


def _refused_for(errors: Iterable[str]) -> Any:
    """Messages given up on for one of ``errors`` (Slack's error names, kept in ``error``) whose
    latest revision Slack does not show."""
    return and_(
        SlackMessageRow.pending.is_(False),
        SlackMessageRow.revision > SlackMessageRow.sent_revision,
        or_(*(SlackMessageRow.error.contains(error, autoescape=True) for error in errors)),
    )


# -- the steps of ``record`` ---------------------------------------------------------------------


async def _open_thread(
    session: AsyncSession, thread_id: str, channel: str, card_state: Mapping[str, Any] | None, at: datetime
) -> SlackThreadRow:
    """The thread's row, created if new and locked for this transaction, with the card's new state."""
    # Write first: on SQLite a transaction that read before writing cannot wait for the
    # write lock (it fails "database is locked" at once); one that starts writing can.
    await session.execute(
        sql.insert(session, SlackThreadRow)
        .values(thread_id=thread_id, channel=channel, card_state=None, next_seq=0, created_at=at)
        .on_conflict_do_nothing(index_elements=["thread_id"])
    )
    thread = await session.get(SlackThreadRow, thread_id, with_for_update=True, populate_existing=True)
    assert thread is not None
    if channel != NO_CHANNEL and thread.channel == NO_CHANNEL:
        thread.channel = channel
    if card_state is not None:
        thread.card_state = dict(card_state)
    return thread


async def _existing(session: AsyncSession, thread_id: str, keys: list[str]) -> dict[str, SlackMessageRow]:
    rows = await session.scalars(
        select(SlackMessageRow).where(SlackMessageRow.thread_id == thread_id, SlackMessageRow.key.in_(keys))
    )
    return {row.key: row for row in rows}


def _add_message(
    session: AsyncSession,
    thread: SlackThreadRow,
    message: Desired,
    blocks: list[dict[str, Any]],
    at: datetime,
) -> SlackMessageRow:
    """A new key: revision 1, pending, with the thread's next sequence number."""
    row = SlackMessageRow(
        thread_id=thread.thread_id,
        key=message.key,
        seq=thread.next_seq,
        top_level=message.top_level,
        priority=message.priority,
        text=message.text,
        blocks=blocks,
        revision=1,
        sent_revision=0,
        ts=None,
        attempted_at=None,
        pending=True,
        pending_since=at,
        error=None,
        updated_at=at,
    )
    thread.next_seq += 1
    session.add(row)
    return row


async def _revise(
    session: AsyncSession, row: SlackMessageRow, message: Desired, blocks: list[dict[str, Any]], at: datetime
) -> None:
    """New content for a stored message: the next revision, pending, keeping the more urgent priority."""
    # One statement, not read-modify-write: the sender may be marking this row
    # sent at the same moment, and its change must not hide this one.
    await session.execute(
        update(SlackMessageRow)
        .where(SlackMessageRow.id == row.id)
        .values(
            text=message.text,
            blocks=blocks,
            revision=SlackMessageRow.revision + 1,
            priority=case(
                (
                    and_(SlackMessageRow.pending.is_(True), SlackMessageRow.priority < message.priority),
                    SlackMessageRow.priority,
                ),
                else_=message.priority,
            ),
            error=None,  # new content deserves a new try
            pending=True,
            pending_since=case((SlackMessageRow.pending.is_(True), SlackMessageRow.pending_since), else_=at),
            updated_at=at,
        )
        .execution_options(synchronize_session=False)
    )
