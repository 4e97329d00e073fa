"""Tamper evidence of the access and operation log (R7.4; 003 第20条⑹エ).

The attacker here has the database (on PostgreSQL even the owner's rights, so the append-only trigger
is switched off first) but not the key ring: every edit, deletion, truncation, insertion or reordering
must make ``madoguchi.audit.verify`` fail and name the entry where the chain breaks.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import DBAPIError

from madoguchi import auth, dates
from madoguchi.audit import AuditTag, purge_expired, record, verify
from madoguchi.extensions import db
from madoguchi.models import AuditChainHead, AuditEntry, Staff
from madoguchi.models.types import UTCDateTime
from tests.conftest import ON_POSTGRES

PASSWORD = "correct horse battery staple 2026"
COLUMNS = (
    "at", "staff_id", "login_id", "action", "subject_type", "subject_id", "result", "remote_addr",
    "details", "prev_hash", "hash",
)  # fmt: skip
postgres_only = pytest.mark.skipif(
    not ON_POSTGRES, reason="the append-only trigger exists on PostgreSQL only"
)


def make_staff(login_id: str = "op1") -> Staff:
    return auth.create_staff(
        login_id=login_id,
        name="窓口　花子",
        affiliation="市民課",
        roles=["operator"],
        venue_id=None,
        duty_start=date(2026, 4, 1),
        duty_end=date(2027, 3, 31),
        password=PASSWORD,
    )


@pytest.fixture
def chain(ctx) -> list[int]:
    """Seven committed entries, ids 1–7: the account's creation, then six views of bookings."""
    staff = make_staff()
    start = dates.now() - timedelta(hours=1)
    for i in range(6):
        record(
            AuditTag.BOOKING_VIEWED,
            staff=staff,
            subject_type="booking",
            subject_id=f"b{i}",
            remote_addr="10.0.0.5",
            at=start + timedelta(minutes=i),
            fields="minimal",
        )
    db.session.commit()
    ids = list(db.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))
    assert ids == list(range(1, 8))
    return ids


@contextmanager
def attacker():
    """A raw connection, as someone with the database but without the keys. On PostgreSQL the owner
    can switch the append-only trigger off; it is switched on again in the same transaction."""
    db.session.commit()
    with db.engine.begin() as conn:
        if ON_POSTGRES:
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        yield conn
        if ON_POSTGRES:
            conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
    db.session.expire_all()


def row(conn, entry_id: int) -> dict:
    query = text(f"SELECT {', '.join(COLUMNS)} FROM audit_entries WHERE id = :id")  # noqa: S608
    return dict(conn.execute(query.columns(at=UTCDateTime()), {"id": entry_id}).mappings().one())


def plain_sha256(entry_id: int, values: dict) -> str:
    """The chain payload, hashed the way someone without the HMAC key would have to."""
    payload = json.dumps(
        [
            entry_id,
            dates.utc(values["at"]).isoformat(),
            values["staff_id"],
            values["login_id"],
            values["action"],
            values["subject_type"],
            values["subject_id"],
            values["result"],
            values["remote_addr"],
            values["details"],
            values["prev_hash"],
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def update(conn, entry_id: int, **values) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    statement = text(f"UPDATE audit_entries SET {assignments} WHERE id = :id")  # noqa: S608 - names are ours
    if "at" in values:
        statement = statement.bindparams(bindparam("at", type_=UTCDateTime()))
    conn.execute(statement, {"id": entry_id, **values})


def assert_broken(at_id: int, word: str) -> None:
    result = verify()
    assert not result.ok
    assert result.first_bad_id == at_id
    assert str(at_id) in result.reason and word in result.reason, result.reason


# ---- an honest chain --------------------------------------------------------------------------------
def test_appended_entries_verify(chain):
    """R7.4: entries appended by ``record`` form a chain that verifies, every one checked."""
    result = verify()
    assert (result.ok, result.checked, result.first_bad_id) == (True, 7, None)
    head = db.session.get(AuditChainHead, 1)
    assert head.last_id == 7
    record(AuditTag.AUDIT_VERIFIED, result="ok", checked=result.checked)
    db.session.commit()
    assert verify().checked == 8


def test_an_entry_is_appended_in_as_few_statements_as_the_store_allows(chain, monkeypatch):
    """R7.4, R9.2: appending reads the head (locked), then writes the entry and moves the head: on
    PostgreSQL in one statement (the head's UPDATE a data-modifying CTE of the INSERT: every staff
    request appends, and each statement is a round trip), on SQLite in two calls inside the process.
    The chain verifies and the head points at the new entry either way."""
    from madoguchi import prepared

    sent = []
    real = prepared.DriverStatement._call
    monkeypatch.setattr(
        prepared.DriverStatement,
        "_call",
        staticmethod(lambda conn, c, *a: sent.append(c.sql) or real(conn, c, *a)),
    )
    record(AuditTag.AUDIT_VERIFIED, result="ok", checked=7)
    db.session.commit()
    kinds = [sql.split()[0].upper() for sql in sent]
    assert kinds == (["SELECT", "WITH"] if ON_POSTGRES else ["SELECT", "INSERT", "UPDATE"]), sent
    head = db.session.get(AuditChainHead, 1)
    db.session.refresh(head)
    assert head.last_id == 8 and verify().ok and verify().checked == 8


def test_verify_walks_the_chain_in_batches(chain):
    """R7.4: verification reads the log a batch at a time and still sees every link."""
    assert verify(batch=2).checked == 7
    with attacker() as conn:
        update(conn, 6, result="denied")
    assert_broken(6, "altered")
    assert verify(batch=3).first_bad_id == 6


# ---- edits, deletions, insertions, reordering -------------------------------------------------------
@pytest.mark.parametrize(
    "column, value",
    [
        ("result", "denied"),
        ("details", "{}"),
        ("login_id", "someone_else"),
        ("subject_id", "b99"),
        ("action", AuditTag.BOOKING_LISTED.value),
        ("remote_addr", "10.9.9.9"),
        ("staff_id", None),
        ("at", datetime(2026, 1, 1, 3, 0, tzinfo=UTC)),
    ],
)
def test_an_edited_entry_is_named(chain, column, value):
    """R7.4: changing any recorded field of entry 4 with a raw UPDATE makes verify name entry 4 as altered."""
    with attacker() as conn:
        update(conn, 4, **{column: value})
    assert_broken(4, "altered")


def test_an_edit_with_the_chain_rehashed_by_plain_sha256_is_named(chain):
    """R7.4: an attacker who edits entry 4 and recomputes every later hash (and the head) with plain
    SHA-256 still fails: the chain is an HMAC under the key ring."""
    with attacker() as conn:
        update(conn, 4, result="denied")
        prev = row(conn, 3)["hash"]
        for entry_id in range(4, 8):
            values = row(conn, entry_id) | {"prev_hash": prev}
            prev = plain_sha256(entry_id, values)
            update(conn, entry_id, prev_hash=values["prev_hash"], hash=prev)
        conn.execute(text("UPDATE audit_chain_head SET last_hash = :h WHERE id = 1"), {"h": prev})
    assert_broken(4, "altered")


def test_a_deleted_middle_entry_is_named(chain):
    """R7.4: deleting entry 4 with a raw DELETE makes verify name 4 as missing."""
    with attacker() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE id = 4"))
    assert_broken(4, "missing")


def test_truncation_is_detected(chain):
    """R7.4: deleting the last entries (6 and 7) is detected against the chain head."""
    with attacker() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE id >= 6"))
    assert_broken(6, "missing")


def test_a_forged_entry_with_a_plain_sha256_is_detected(chain):
    """R7.4: a forged entry 8 — linked to entry 7, hashed with plain SHA-256, head moved to it — is named."""
    with attacker() as conn:
        forged = row(conn, 7) | {"subject_id": "b-forged", "prev_hash": row(conn, 7)["hash"]}
        forged["hash"] = plain_sha256(8, forged)
        names, params = ", ".join(COLUMNS), ", ".join(f":{c}" for c in COLUMNS)
        insert = text(f"INSERT INTO audit_entries (id, {names}) VALUES (8, {params})")  # noqa: S608
        conn.execute(insert.bindparams(bindparam("at", type_=UTCDateTime())), forged)
        conn.execute(
            text("UPDATE audit_chain_head SET last_id = 8, last_hash = :h WHERE id = 1"),
            {"h": forged["hash"]},
        )
    assert_broken(8, "altered")


def test_swapped_entries_are_detected(chain):
    """R7.4: swapping the whole contents of entries 3 and 4 (reordering) breaks the chain at 3."""
    with attacker() as conn:
        third, fourth = row(conn, 3), row(conn, 4)
        update(conn, 3, **fourth)
        update(conn, 4, **third)
    assert_broken(3, "does not follow")


def test_swapped_payloads_are_detected(chain):
    """R7.4: swapping only what entries 3 and 4 say (keeping the hashes in place) is an alteration of 3."""
    payload = ("at", "subject_id", "details")
    with attacker() as conn:
        third, fourth = row(conn, 3), row(conn, 4)
        update(conn, 3, **{k: fourth[k] for k in payload})
        update(conn, 4, **{k: third[k] for k in payload})
    assert_broken(3, "altered")


# ---- the trigger (PostgreSQL) -------------------------------------------------------------------------
@postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET result = 'denied' WHERE id = 4",
        "UPDATE audit_entries SET details = '{}'",
        "DELETE FROM audit_entries WHERE id = 4",
        "DELETE FROM audit_entries",
    ],
)
def test_the_database_refuses_updates_and_deletes(chain, statement):
    """R7.4: on PostgreSQL a raw UPDATE or DELETE on audit_entries raises (the migration's trigger)."""
    with db.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
        conn.rollback()
    assert verify().ok
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 7


@postgres_only
def test_the_trigger_is_back_after_the_attack(chain):
    """R7.4: the tamper tests switch the trigger on again (so their own attack stays the only one)."""
    with attacker() as conn:
        update(conn, 2, result="denied")
    with db.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("DELETE FROM audit_entries WHERE id = 3"))


# ---- retention ---------------------------------------------------------------------------------------
def test_purge_deletes_expired_entries_and_the_chain_still_verifies(ctx):
    """R7.4: purge_expired removes entries older than AUDIT_RETENTION_DAYS, oldest first, moves the
    anchor past them, records itself, and the rest of the chain still verifies (on both databases)."""
    now = dates.now()
    retention = ctx.config["AUDIT_RETENTION_DAYS"]
    for i in range(3):  # ids 1–3: expired
        record(AuditTag.SIGNED_IN, login_id="old", at=now - timedelta(days=retention + 10 - i))
    record(AuditTag.SIGNED_IN, login_id="kept", at=now - timedelta(days=retention - 1))  # id 4: kept
    staff = make_staff()  # id 5
    record(AuditTag.BOOKING_VIEWED, staff=staff, subject_type="booking", subject_id="b1")  # id 6
    db.session.commit()
    assert verify().checked == 6

    assert purge_expired() == 3
    db.session.commit()

    remaining = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.id for e in remaining] == [4, 5, 6, 7]
    assert remaining[-1].action == AuditTag.AUDIT_PURGED.value
    assert json.loads(remaining[-1].details)["deleted"] == 3
    head = db.session.get(AuditChainHead, 1)
    assert (head.anchor_id, head.last_id) == (3, 7)
    result = verify()
    assert (result.ok, result.checked) == (True, 4)

    assert purge_expired() == 0  # nothing more to purge, nothing recorded
    record(AuditTag.AUDIT_VERIFIED, checked=4)
    db.session.commit()
    assert verify().ok

    # Deleting the oldest remaining entry is still caught: the anchor says where the chain starts.
    with attacker() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE id = 4"))
    assert_broken(4, "missing")


# ---- regressions of bugs found while building the chain ------------------------------------------
def test_record_with_a_tokyo_time_verifies(ctx):
    """R7.4: an entry recorded with an explicit Tokyo-aware time must verify like any other."""
    record(AuditTag.SIGNED_IN, login_id="op1", at=datetime(2026, 11, 24, 10, 0, tzinfo=dates.TOKYO))
    db.session.commit()
    result = verify()
    assert result.ok, result.reason


def test_verify_leaves_the_callers_objects_in_the_session(chain):
    """R7.4: verifying inside a request must not lose the request's other changes."""
    staff = db.session.scalars(select(Staff)).one()
    verify()
    staff.affiliation = "監査室"
    db.session.commit()
    db.session.expire_all()
    assert db.session.scalars(select(Staff.affiliation)).one() == "監査室"


def test_wiping_the_log_and_its_head_is_detected(chain):
    """R7.4: deleting every entry and the chain head does not pass for an empty, intact log."""
    with attacker() as conn:
        conn.execute(text("DELETE FROM audit_entries"))
        conn.execute(text("DELETE FROM audit_chain_head"))
    result = verify()
    assert not result.ok and "head" in result.reason
