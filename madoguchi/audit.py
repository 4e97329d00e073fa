"""``record`` appends to the access and operation log; ``verify`` checks its hash chain (R7.4).

Each entry's hash is an HMAC (key derived from the key ring) over its fields and the previous hash:
an edited, deleted, inserted or reordered entry breaks the chain, and someone with the database but
without the keys cannot forge a new chain. Entries hold ids, counts and reasons — never a personal value.
"""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import bindparam, delete, select, update

from . import dates
from .crypto import current_keyring
from .extensions import db, defer_write
from .models import AuditChainHead, AuditEntry, Staff
from .prepared import DriverStatement, insert_of

GENESIS = "0" * 64


class AuditTag(enum.StrEnum):
    SIGNED_IN = "auth:signed_in"
    SIGNIN_FAILED = "auth:signin_failed"
    MFA_FAILED = "auth:mfa_failed"
    ACCOUNT_LOCKED = "auth:account_locked"
    SIGNED_OUT = "auth:signed_out"
    SESSION_ENDED = "auth:session_ended"
    MFA_ENROLLED = "auth:mfa_enrolled"
    RECOVERY_CODE_USED = "auth:recovery_code_used"
    PASSWORD_CHANGED = "auth:password_changed"  # noqa: S105 - an audit tag, not a password
    ACCESS_DENIED = "access:denied"
    BOOKING_VIEWED = "booking:viewed"
    BOOKING_LISTED = "booking:listed"
    BOOKING_SEARCHED = "booking:searched"
    CHECKIN_LOOKUP = "checkin:looked_up"  # a number scanned or typed at a venue
    OUTCOME_RECORDED = "booking:outcome_recorded"  # arrived / handed over / no-show / postponed
    OUTCOME_UNDONE = "booking:outcome_undone"
    UNCOLLECTED_LISTED = "booking:uncollected_listed"
    LEDGER_EXPORTED = "export:shipping_ledger"
    NOTICES_EXPORTED = "export:reissue_notices"
    LABELS_EXPORTED = "export:address_labels"
    BOOKING_MADE_BY_STAFF = "booking:booked_by_staff"  # an operator booked, changed or cancelled
    CALL_TAKEN = "call:taken"
    CALL_LOGGED = "call:logged"
    CALL_STATS_VIEWED = "call:stats_viewed"
    WEBHOOK_REJECTED = "telephony:webhook_rejected"  # a request without a valid Twilio signature
    RECORDINGS_LISTED = "recordings:listed"
    RECORDING_PLAYED = "recordings:played"
    RECORDING_EXTENDED = "recordings:retention_extended"
    PROVISION_REQUESTED = "recordings:provision_requested"
    PROVISION_DECIDED = "recordings:provision_decided"
    PROVISION_HANDED_OVER = "recordings:provision_handed_over"
    PROVISION_CLOSED = "recordings:provision_closed"
    PROVISION_LEDGER_VIEWED = "recordings:provision_ledger_viewed"
    FAX_RECEIVED = "fax:received"
    FAX_VIEWED = "fax:viewed"  # a queue item's reading, image or reply sheet
    FAX_CONFIRMED = "fax:confirmed"
    FAX_REJECTED = "fax:rejected"
    FAX_SHEETS_PRINTED = "export:fax_sheets"
    MESSAGES_VIEWED = "messages:undelivered_viewed"
    MESSAGE_RETRIED = "messages:retried"
    LOGISTICS_RECORDED = "logistics:recorded"
    LOGISTICS_CORRECTED = "logistics:corrected"
    STAFF_CREATED = "staff:created"
    STAFF_UPDATED = "staff:updated"
    STAFF_MFA_RESET = "staff:mfa_reset"
    REGISTRY_PRINTED = "staff:registry_printed"
    AUDIT_VIEWED = "audit:viewed"
    AUDIT_REPORT_VIEWED = "audit:report_viewed"
    AUDIT_VERIFIED = "audit:verified"
    AUDIT_PURGED = "audit:purged"
    # The export ledger (R7.5), retention and deletion (R8.1), backups (R8.4), end of contract (R8.2).
    EXPORT_REQUESTED = "export:requested"
    EXPORT_APPROVED = "export:approved"
    EXPORT_REJECTED = "export:rejected"
    EXPORT_PRODUCED = "export:produced"  # the encrypted file was written (count and SHA-256)
    EXPORT_DOWNLOADED = "export:downloaded"
    EXPORT_CLOSED = "export:closed"  # returned or destroyed
    EXPORT_LEDGER_VIEWED = "export:ledger_viewed"
    EXPORT_LEDGER_PRINTED = "export:ledger_printed"
    DATA_PURGED = "retention:purged"  # kind and count; the deletion record has the rest
    DELETION_REPORT_VIEWED = "deletion:report_viewed"
    DELETION_REPORT_PRINTED = "deletion:report_printed"
    BACKUP_MADE = "backup:made"
    BACKUP_RESTORED = "backup:restored"
    CONTRACT_ENDED = "contract:ended"  # the last entry: written just before the return export
    VENUE_UPDATED = "venue:updated"  # name, floor, address, map, directions
    CALENDAR_CHANGED = "venue:calendar_changed"  # capacities, template, closing, 休日開庁 (R3.3)
    ROSTER_IMPORTED = "roster:imported"  # result "ok" or "rejected"; counts and the file's SHA-256
    INCIDENT_CREATED = "incident:created"
    INCIDENT_UPDATED = "incident:updated"
    INCIDENT_VIEWED = "incident:viewed"  # the register or one incident read (its text is decrypted)
    INCIDENT_PRINTED = "incident:printed"
    DASHBOARD_VIEWED = "dashboard:viewed"


def _chain_hash(entry: AuditEntry) -> str:
    payload = json.dumps(
        [
            entry.id,
            dates.utc(entry.at).isoformat(),
            entry.staff_id,
            entry.login_id,
            entry.action,
            entry.subject_type,
            entry.subject_id,
            entry.result,
            entry.remote_addr,
            entry.details,
            entry.prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return current_keyring().mac("audit-chain", payload)


def _head(lock: bool = True) -> AuditChainHead:
    # populate_existing: ``record`` advances the head with a Core UPDATE, which an object already in
    # the session would not see.
    query = select(AuditChainHead).where(AuditChainHead.id == 1).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    head = db.session.scalars(query).one_or_none()
    if head is None:  # created by the migration; kept for databases built another way
        head = AuditChainHead(id=1, last_id=0, last_hash=GENESIS, anchor_id=0, anchor_prev_hash=GENESIS)
        db.session.add(head)
        db.session.flush()
    return head


def record(
    tag: AuditTag,
    *,
    staff: Staff | None = None,
    login_id: str = "",
    subject_type: str = "",
    subject_id: str | int = "",
    result: str = "ok",
    remote_addr: str = "",
    at: datetime | None = None,
    **details,
) -> None:
    """Append one entry in the caller's transaction (it commits with the action it records).

    A read-only staff request (``extensions.read_then_write``) appends its entries when it has
    read, in one short write transaction before its page leaves; their time is the moment of the
    call. Three prepared statements on the connection (read the head, insert, advance the head),
    not the ORM's unit of work: every staff request records at least one entry (R9.2, profiled).
    """
    fields = {
        # Hashed as stored: UTC, whole seconds (a Tokyo-time ``at`` would hash differently).
        "at": (at or dates.now()).astimezone(UTC).replace(microsecond=0),
        "staff_id": staff.id if staff is not None else None,
        "login_id": (staff.login_id if staff is not None else login_id)[:64],
        "action": tag.value,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "result": result,
        "remote_addr": remote_addr[:64],
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True, default=str),
    }
    defer_write(functools.partial(_append, fields))


def _append(fields: dict) -> None:
    db.session.flush()  # what the entry refers to (a new staff member, a booking) is written first
    conn = db.session.connection()
    head = _READ_HEAD.first(conn, _THE_HEAD)
    if head is None:
        made = _head()
        head = (made.last_id, made.last_hash)
    last_id, last_hash = head
    entry = SimpleNamespace(id=last_id + 1, prev_hash=last_hash, **fields)
    entry.hash = _chain_hash(entry)
    advance = {**_THE_HEAD, "new_id": entry.id, "new_hash": entry.hash}
    if conn.dialect.name == "postgresql":
        # One round trip: the head's UPDATE rides on the entry's INSERT as a data-modifying CTE,
        # which PostgreSQL runs exactly once (every staff request appends an entry, R9.2).
        _INSERT_AND_ADVANCE.execute(conn, {**vars(entry), **advance})
        return
    _INSERT_ENTRY.execute(conn, vars(entry))  # SQLite has no DML in WITH: two calls in the process
    _ADVANCE_HEAD.execute(conn, advance)


# Run on the driver (madoguchi.prepared): every staff request appends at least one entry.
_HEADS = AuditChainHead.__table__
_THE_HEAD = {"head_id": 1}  # the chain's one head row
_READ_HEAD = DriverStatement(
    select(_HEADS.c.last_id, _HEADS.c.last_hash).where(_HEADS.c.id == bindparam("head_id")).with_for_update()
)
_ADVANCE_HEAD = DriverStatement(
    update(_HEADS)
    .where(_HEADS.c.id == bindparam("head_id"))
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
)
_INSERT_ENTRY = insert_of(
    AuditEntry.__table__, " ".join(column.key for column in AuditEntry.__table__.columns)
)
_INSERT_AND_ADVANCE = DriverStatement(
    _INSERT_ENTRY.statement.add_cte(_ADVANCE_HEAD.statement.cte("advanced"))
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""
    last_id: int = 0
    last_hash: str = ""


def verify(batch: int = 5000) -> Verification:
    """Walk the chain from its anchor; name the first entry that is edited, missing or out of place."""
    head = db.session.get(AuditChainHead, 1)
    if head is None:  # the migration creates it; only tampering removes it
        return Verification(False, 0, None, "the chain head is missing")
    expected_id, expected_prev = head.anchor_id + 1, head.anchor_prev_hash
    checked = 0
    last_seen = head.anchor_id
    while True:
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_seen).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not entries:
            break
        for entry in entries:
            if entry.id != expected_id:
                return Verification(False, checked, expected_id, f"entry {expected_id} is missing (deleted)")
            if entry.prev_hash != expected_prev:
                return Verification(
                    False, checked, entry.id, f"entry {entry.id} does not follow the one before it"
                )
            if _chain_hash(entry) != entry.hash:
                return Verification(False, checked, entry.id, f"entry {entry.id} was altered")
            expected_id, expected_prev = entry.id + 1, entry.hash
            checked += 1
        last_seen = entries[-1].id
        for entry in entries:  # keep memory flat without touching the caller's other objects
            db.session.expunge(entry)
    if expected_id - 1 != head.last_id or expected_prev != head.last_hash:
        return Verification(
            False, checked, expected_id, f"entries from {expected_id} on are missing (deleted)"
        )
    return Verification(True, checked, last_id=head.last_id, last_hash=head.last_hash)


def purge_expired(now: datetime | None = None) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS (oldest first) and move the anchor after them."""
    now = now or dates.now()
    cutoff = now - timedelta(days=current_app.config["AUDIT_RETENTION_DAYS"])
    head = _head()
    last = db.session.scalars(
        select(AuditEntry).where(AuditEntry.at < cutoff).order_by(AuditEntry.id.desc()).limit(1)
    ).one_or_none()
    if last is None:
        return 0
    if db.session.get_bind().dialect.name == "postgresql":
        # The trigger refuses deletes unless the purge says so for this transaction only.
        db.session.execute(db.text("SET LOCAL madoguchi.audit_purge = 'on'"))
    count = db.session.execute(
        delete(AuditEntry).where(AuditEntry.id <= last.id).execution_options(synchronize_session=False)
    ).rowcount
    head.anchor_id, head.anchor_prev_hash = last.id, last.hash
    db.session.flush()
    record(AuditTag.AUDIT_PURGED, result="ok", deleted=count, through_id=last.id, cutoff=cutoff.isoformat())
    return count
