"""People's records in the store: approval votes, environment locks, the audit log, Slack threads.

A part of ``Repository`` (``bot.store.base``): each call one transaction; "first one wins" writes
(a vote) are ``INSERT ... ON CONFLICT DO NOTHING`` and report whether they won.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry
from bot.domain.locks import Lock
from bot.errors import NotFound
from bot.store import rows as convert
from bot.store import sql
from bot.store.base import StoreBase
from bot.store.models import (
    NAME,
    ApprovalRow,
    AuditRow,
    LockRow,
    SlackRefRow,
)


@dataclass(frozen=True, slots=True)
class SlackRef:
    """Where a deployment's Slack thread lives."""

    deployment_id: str
    channel: str
    parent_ts: str


class RecordQueries(StoreBase):
    # -- approvals --------------------------------------------------------------------------------

    async def add_vote(self, vote: Vote) -> bool:
        """Record a vote; False (and nothing written) if this user already voted so at this stage.

        One vote per person and stage, with one exception: a rejection replaces the same person's
        approval (an approver who spots a problem after approving must be able to stop it). Raises
        ``NotFound`` if the deployment does not exist.
        """
        try:
            async with self._sessions.begin() as session:
                inserted = await session.execute(
                    sql.insert(session, ApprovalRow)
                    .values(convert.vote_values(vote) | {"reason": self._text(vote.reason)})
                    .on_conflict_do_nothing(index_elements=["deployment_id", "stage", "user_id"])
                    .returning(ApprovalRow.id)
                )
                if inserted.first() is not None:
                    return True
                if vote.approve:
                    return False
                changed = await session.execute(
                    update(ApprovalRow)
                    .where(
                        ApprovalRow.deployment_id == vote.deployment_id,
                        ApprovalRow.stage == vote.stage,
                        ApprovalRow.user_id == vote.user,
                        ApprovalRow.approve.is_(True),
                    )
                    .values(approve=False, at=vote.at, reason=self._text(vote.reason))
                    .execution_options(synchronize_session=False)
                )
                return sql.rowcount(changed) == 1
        except IntegrityError as exc:  # only the foreign key is left to violate
            raise NotFound(f"deployment {vote.deployment_id} not found") from exc

    async def votes_for(self, deployment_id: str) -> list[Vote]:
        """Every vote on the deployment, in the order they were cast."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalRow)
                .where(ApprovalRow.deployment_id == deployment_id)
                .order_by(ApprovalRow.at, ApprovalRow.id)
            )
            return [convert.to_vote(row) for row in rows]

    # -- locks ------------------------------------------------------------------------------------

    async def add_lock(self, lock: Lock) -> Lock:
        """Store a lock; returns it with its new ``id`` (any id given is ignored)."""
        row = LockRow(**(convert.lock_values(lock) | {"reason": self._redactor.redact(lock.reason)}))
        try:
            return await self._inserted(row, convert.to_lock)
        except IntegrityError as exc:
            raise NotFound(f"deployment {lock.deployment_id} not found") from exc

    async def release_lock(self, lock_id: int, by: str, at: datetime) -> bool:
        """Release a held lock; False if there is no such lock or it was already released."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(LockRow)
                .where(LockRow.id == lock_id, LockRow.released_at.is_(None))
                .values(released_at=at, released_by=by)
                .execution_options(synchronize_session=False)
            )
            return sql.rowcount(result) == 1

    async def get_lock(self, lock_id: int) -> Lock | None:
        async with self._sessions() as session:
            row = await session.get(LockRow, lock_id)
            return None if row is None else convert.to_lock(row)

    async def active_locks(self, env: str | None = None) -> list[Lock]:
        """Locks not yet released (of ``env``, or all), oldest first."""
        query = select(LockRow).where(LockRow.released_at.is_(None))
        if env is not None:
            query = query.where(LockRow.env == env)
        async with self._sessions() as session:
            found = await session.scalars(query.order_by(LockRow.created_at, LockRow.id))
            return [convert.to_lock(row) for row in found]

    # -- audit ------------------------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append to the audit log; returns the entry with its ``id``."""
        detail = dict(entry.detail)
        target = self._text(entry.target)
        outcome = self._redactor.redact(entry.outcome)
        # The indexed columns are VARCHAR(NAME): a longer refusal is kept whole in the detail.
        if target is not None and len(target) > NAME:
            detail["target"], target = target, _fit(target, NAME)
        if len(outcome) > NAME:
            detail["outcome"], outcome = outcome, _fit(outcome, NAME)
        row = AuditRow(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            channel=entry.channel,
            target=target,
            outcome=outcome,
            detail=self._redactor.redact_data(detail),
        )
        return await self._inserted(row, convert.to_audit)

    async def audit_entries(self, limit: int = 50, target: str | None = None) -> list[AuditEntry]:
        """The latest ``limit`` audit entries (about ``target``, or all), newest first."""
        query = select(AuditRow)
        if target is not None:
            query = query.where(AuditRow.target == target)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit))
            return [convert.to_audit(row) for row in rows]

    # -- slack threads ----------------------------------------------------------------------------

    async def set_slack_ref(self, deployment_id: str, channel: str, parent_ts: str) -> None:
        """Remember (or move) the deployment's thread. Raises ``NotFound`` for an unknown deployment."""
        try:
            async with self._sessions.begin() as session:
                stmt = sql.insert(session, SlackRefRow).values(
                    deployment_id=deployment_id, channel=channel, parent_ts=parent_ts
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["deployment_id"], set_={"channel": channel, "parent_ts": parent_ts}
                    )
                )
        except IntegrityError as exc:
            raise NotFound(f"deployment {deployment_id} not found") from exc

    async def get_slack_ref(self, deployment_id: str) -> SlackRef | None:
        async with self._sessions() as session:
            row = await session.get(SlackRefRow, deployment_id)
            return None if row is None else SlackRef(row.deployment_id, row.channel, row.parent_ts)


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a visible ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
