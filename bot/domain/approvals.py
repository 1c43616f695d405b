"""Approval policy: who may approve a deployment, in which order, and when it is enough.

Four-eyes: the requester never counts, however many groups they belong to. Stages are collected in
order; a break-glass group may skip approvals with ``--emergency`` (audited loudly elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Vote:
    """One person's approve or reject on one deployment, at one stage."""

    deployment_id: str
    stage: int
    user: str
    approve: bool
    at: datetime
    reason: str | None = None
