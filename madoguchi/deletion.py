"""Deletion records (R8.1, R8.2, R4.4): every purge writes what it deleted, where, how many, by
which method, when, and who was responsible (and, where the city asks for one, a witness).

Purges call ``record`` in the same transaction as the deletion they describe, so a deletion is
never without its record and a record never describes a deletion that was rolled back.
"""

from __future__ import annotations

import json
from datetime import datetime

from . import dates
from .crypto import new_row_id
from .extensions import db
from .models import DeletionRecord, Staff

SYSTEM_NAME = "自動処理（madoguchi purge）"


def record(
    *,
    kind: str,
    medium: str,
    count: int,
    method: str,
    responsible: Staff | None = None,
    responsible_name: str | None = None,
    witness_name: str | None = None,
    outcome: str = "done",
    details: dict | None = None,
    now: datetime | None = None,
) -> DeletionRecord:
    """Write one deletion record. ``details`` must hold no personal value (ids, counts, provider
    answers); a scheduled run without a person names the job as responsible."""
    entry = DeletionRecord(
        id=new_row_id(),
        kind=kind,
        medium=medium,
        count=count,
        method=method,
        executed_at=now or dates.now(),
        responsible_id=responsible.id if responsible is not None else None,
        responsible_name=(responsible.name if responsible is not None else responsible_name or SYSTEM_NAME)[
            :100
        ],
        witness_name=witness_name[:100] if witness_name else None,
        outcome=outcome,
        details=json.dumps(details or {}, ensure_ascii=False, sort_keys=True, default=str),
    )
    db.session.add(entry)
    db.session.flush()
    return entry
