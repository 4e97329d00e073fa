"""Retention periods and the purge (R8.1; 002 第11, 004 別紙⑦第12条, 003 第22条).

Each kind of record has a period in the configuration; ``purge_kind`` deletes what is past it so it
cannot be read again, and writes a deletion record (``deletion.record``: items, medium, count,
method, date and time, responsible person, witness) in the same transaction. Running a purge again
finds nothing more to delete and writes nothing: it is idempotent.

Kinds defined here: ``bookings`` (the applicant's personal data once every booking of theirs has
ended and the period has passed), ``call_notes`` (a call's note and caller number; the call row
stays for the statistics), ``messages`` (sent or undeliverable e-mail and SMS), ``audit_entries``
(``audit.purge_expired``). Other kinds plug in with ``register`` (and their own CLI command under
``madoguchi purge``, like ``madoguchi purge recordings``).

"Cannot be read again" (docs/compliance.md): deleted SQLite rows are overwritten in place
(``PRAGMA secure_delete``) and the WAL is truncated after the purge (``compact``); PostgreSQL's dead
rows are vacuumed. Copies in backups age out with the backups (``madoguchi backup prune``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, func, select, text, update

from . import audit, dates, deletion
from .audit import AuditTag
from .extensions import db
from .models import (
    Applicant,
    Booking,
    BookingEvent,
    Call,
    DeletionRecord,
    Hold,
    LookupFailure,
    OutboundMessage,
    Staff,
)
from .models import Status as BookingStatus
from .printing.deletion_report import DeletionRow

BATCH = 500
OPEN_STATUSES = (BookingStatus.BOOKED.value, BookingStatus.ARRIVED.value)


@dataclass(frozen=True)
class Purged:
    count: int
    details: dict


@dataclass(frozen=True)
class Kind:
    """One kind of record with a retention period. ``find`` counts what is due (dry run); ``purge``
    deletes it and returns the count and non-personal details."""

    name: str
    items: str  # 削除した情報の項目, as printed in the deletion report
    setting: str  # the configuration key holding the period in days
    method: str  # how, before the database's own part is added (see ``_method``)
    find: Callable[[datetime], int]
    purge: Callable[[datetime], Purged]


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def cutoff(kind: Kind, now: datetime | None = None) -> datetime:
    return (now or dates.now()) - timedelta(days=int(current_app.config[kind.setting]))


def medium() -> str:
    dialect = db.session.get_bind().dialect.name
    return {"sqlite": "データベース（SQLite）", "postgresql": "データベース（PostgreSQL）"}.get(
        dialect, f"データベース（{dialect}）"
    )


def _method(base: str) -> str:
    if db.session.get_bind().dialect.name == "sqlite":
        return f"{base}。secure_delete により削除領域をゼロで上書きし、WAL を切り詰め"
    return f"{base}。削除後に VACUUM を実行"


# ---- bookings: the applicant's personal data ------------------------------------------------------
def _expired_applicants(before: datetime) -> list[str]:
    """Applicants with at least one booking, none still open (booked/arrived), no hold, and whose
    last booking ended (was last changed) before ``before``."""
    open_count = func.sum(case((Booking.status.in_(OPEN_STATUSES), 1), else_=0))
    query = (
        select(Booking.applicant_id)
        .where(~Booking.applicant_id.in_(select(Hold.applicant_id)))
        .group_by(Booking.applicant_id)
        .having(open_count == 0, func.max(Booking.updated_at) < before)
    )
    return list(db.session.scalars(query))


def _dependents(target: str) -> list:
    """Foreign keys that point at ``target`` from tables not handled by name below: they are
    unlinked (set NULL); a non-nullable one is a table the purge does not know, and stops it."""
    handled = {"bookings", "holds", "booking_events", "outbound_messages"}
    found = []
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == target and table.name not in handled:
                if not fk.parent.nullable:
                    raise RuntimeError(f"retention does not know how to purge {table.name}.{fk.parent.name}")
                found.append(fk.parent)
    return found


def _find_bookings(now: datetime) -> int:
    return len(_expired_applicants(cutoff(KINDS["bookings"], now)))


def _purge_bookings(now: datetime) -> Purged:
    ids = _expired_applicants(cutoff(KINDS["bookings"], now))
    counts = {"applicants": 0, "bookings": 0, "booking_events": 0, "outbound_messages": 0, "unlinked": 0}
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        booking_ids = select(Booking.id).where(Booking.applicant_id.in_(batch))
        for column in _dependents("bookings"):
            counts["unlinked"] += _run(
                update(column.table).where(column.in_(booking_ids)).values({column.name: None})
            )
        for column in _dependents("applicants"):
            counts["unlinked"] += _run(
                update(column.table).where(column.in_(batch)).values({column.name: None})
            )
        counts["outbound_messages"] += _run(
            delete(OutboundMessage).where(OutboundMessage.booking_id.in_(booking_ids))
        )
        counts["booking_events"] += _run(delete(BookingEvent).where(BookingEvent.booking_id.in_(booking_ids)))
        counts["bookings"] += _run(delete(Booking).where(Booking.applicant_id.in_(batch)))
        numbers = select(Applicant.reservation_number_bidx).where(Applicant.id.in_(batch))
        _run(delete(LookupFailure).where(LookupFailure.number_bidx.in_(numbers)))
        counts["applicants"] += _run(delete(Applicant).where(Applicant.id.in_(batch)))
    return Purged(counts["applicants"], counts)


def _run(statement) -> int:
    return db.session.execute(statement.execution_options(synchronize_session=False)).rowcount or 0


# ---- call notes and caller numbers -----------------------------------------------------------------
def _call_filter(now: datetime):
    return (Call.started_at < cutoff(KINDS["call_notes"], now)) & (
        Call.note_ct.is_not(None) | Call.caller_ct.is_not(None) | Call.caller_bidx.is_not(None)
    )


def _find_call_notes(now: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(Call).where(_call_filter(now))) or 0


def _purge_call_notes(now: datetime) -> Purged:
    count = _run(update(Call).where(_call_filter(now)).values(note_ct=None, caller_ct=None, caller_bidx=None))
    return Purged(count, {"calls": count})


# ---- messages --------------------------------------------------------------------------------------
FINISHED_MESSAGES = ("sent", "undeliverable")


def _message_filter(now: datetime):
    return OutboundMessage.status.in_(FINISHED_MESSAGES) & (
        OutboundMessage.created_at < cutoff(KINDS["messages"], now)
    )


def _find_messages(now: datetime) -> int:
    return (
        db.session.scalar(select(func.count()).select_from(OutboundMessage).where(_message_filter(now))) or 0
    )


def _purge_messages(now: datetime) -> Purged:
    count = _run(delete(OutboundMessage).where(_message_filter(now)))
    return Purged(count, {"outbound_messages": count})


# ---- the access log --------------------------------------------------------------------------------
def _find_audit(now: datetime) -> int:
    from .models import AuditEntry

    before = cutoff(KINDS["audit_entries"], now)
    return db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.at < before)) or 0


def _purge_audit(now: datetime) -> Purged:
    count = audit.purge_expired(now)
    return Purged(count, {"audit_entries": count})


register(
    Kind(
        "bookings",
        "交付対象者の個人情報（予約管理番号・氏名・氏名カナ・生年月日・性別・郵便番号・住所・電話番号・"
        "メールアドレス）、その予約・予約履歴・送信メッセージ",
        "BOOKING_RETENTION_DAYS",
        "行の削除（DELETE）",
        _find_bookings,
        _purge_bookings,
    )
)
register(
    Kind(
        "call_notes",
        "通話記録のメモ・発信者電話番号（通話の件数・分類は統計のため残す）",
        "CALL_NOTE_RETENTION_DAYS",
        "暗号文の消去（NULL に更新）",
        _find_call_notes,
        _purge_call_notes,
    )
)
register(
    Kind(
        "messages",
        "送信済み・送信不能のメール・SMS（宛先・件名・本文）",
        "MESSAGE_RETENTION_DAYS",
        "行の削除（DELETE）",
        _find_messages,
        _purge_messages,
    )
)
register(
    Kind(
        "audit_entries",
        "アクセス・操作記録（保存期間を過ぎたもの。改ざん検知の連鎖の起点を移動）",
        "AUDIT_RETENTION_DAYS",
        "行の削除（DELETE）",
        _find_audit,
        _purge_audit,
    )
)


# ---- running a purge -------------------------------------------------------------------------------
def due(now: datetime | None = None) -> dict[str, int]:
    """What a purge would delete now, per kind (a dry run)."""
    now = now or dates.now()
    return {name: kind.find(now) for name, kind in KINDS.items()}


def purge_kind(
    name: str,
    *,
    responsible: Staff | None = None,
    witness: str | None = None,
    now: datetime | None = None,
) -> DeletionRecord | None:
    """Delete what of ``name`` is past its period and record it; None when nothing was due. The
    caller commits (the deletion and its record are one transaction)."""
    kind = KINDS[name]
    now = now or dates.now()
    before = cutoff(kind, now)
    result = kind.purge(now)
    if result.count == 0:
        return None
    entry = deletion.record(
        kind=kind.name,
        medium=medium(),
        count=result.count,
        method=_method(kind.method),
        responsible=responsible,
        witness_name=witness,
        details={
            "items": kind.items,
            "retention_days": int(current_app.config[kind.setting]),
            "cutoff": before.isoformat(),
            **result.details,
        },
        now=now,
    )
    audit.record(
        AuditTag.DATA_PURGED,
        staff=responsible,
        login_id="" if responsible else "purge",
        subject_type="deletion_record",
        subject_id=entry.id,
        kind=kind.name,
        count=result.count,
    )
    return entry


def compact() -> None:
    """After a commit: make the deleted bytes unreachable in the database files too. SQLite:
    checkpoint and truncate the WAL (old page images live there until then). PostgreSQL: VACUUM
    (outside a transaction) so dead row versions are removed."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    elif engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in (
                "applicants",
                "bookings",
                "booking_events",
                "outbound_messages",
                "calls",
                "audit_entries",
            ):
                conn.execute(text(f"VACUUM {table}"))


# ---- reading the records ---------------------------------------------------------------------------
def items_of(record_kind: str, details: str | None) -> str:
    try:
        parsed = json.loads(details or "{}")
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict) and parsed.get("items"):
        return str(parsed["items"])
    if record_kind in KINDS:
        return KINDS[record_kind].items
    return OTHER_ITEMS.get(record_kind, record_kind)


# Kinds recorded by other parts of the system, named for the report.
OTHER_ITEMS = {
    "call_recordings": "通話録音（音声）",
    "fax_images": "FAX画像",
}


def report_rows(since: datetime | None = None, until: datetime | None = None) -> list[DeletionRow]:
    query = select(DeletionRecord)
    if since is not None:
        query = query.where(DeletionRecord.executed_at >= since)
    if until is not None:
        query = query.where(DeletionRecord.executed_at < until)
    return [
        DeletionRow(
            executed_at=r.executed_at,
            kind=r.kind,
            items=items_of(r.kind, r.details),
            medium=r.medium,
            count=r.count,
            method=r.method,
            responsible=r.responsible_name,
            witness=r.witness_name or "",
            outcome=r.outcome,
        )
        for r in db.session.scalars(query.order_by(DeletionRecord.executed_at, DeletionRecord.id))
    ]
