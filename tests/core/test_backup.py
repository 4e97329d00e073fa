"""Encrypted backups and their restore (R8.4): backup → destroy the database → restore finds every
booking and the audit chain still verifies; a tampered or foreign backup is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select, text

from madoguchi import audit, backup
from madoguchi.cli import main
from madoguchi.crypto import DecryptionError, KeyRing, WrongKeyError
from madoguchi.extensions import db
from madoguchi.models import Applicant, Booking, LogisticsEntry
from tests.compliancesupport import NAME, PHONE, compliance_overrides, make_booking
from tests.conftest import ON_POSTGRES


@pytest.fixture
def overrides(overrides, tmp_path):
    return compliance_overrides(overrides, tmp_path)


def _seed(app) -> dict:
    with app.app_context():
        made, applicant = make_booking()
        make_booking(name="二人目　次郎")
        audit.record(
            audit.AuditTag.BOOKING_VIEWED, login_id="test", subject_type="booking", subject_id=made.id
        )
        db.session.commit()
        return {"booking": made.id, "applicant": applicant.id, "number": applicant.reservation_number}


def _fresh_database(app, schema_url: str) -> None:
    """Destroy the test's data: on SQLite the file goes and an empty one at the migrations' head
    takes its place; on PostgreSQL every table is emptied (the schema is the migrations' head)."""
    with app.app_context():
        if ON_POSTGRES:
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
            db.session.remove()
            return
        db.session.remove()
        db.engine.dispose()
        path = Path(db.engine.url.database)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(schema_url.removeprefix("sqlite:///"), path)


def test_backup_destroy_restore_finds_everything(app, tmp_path, schema_url):
    """R8.4: the round trip — bookings, applicants' values and the audit chain come back."""
    seeded = _seed(app)
    file = tmp_path / "backups" / "b1.mdgb"
    with app.app_context():
        info = backup.make(file)
        before = {
            t.name: n
            for t, n in (
                (t, db.session.scalar(select(func.count()).select_from(t))) for t in db.metadata.sorted_tables
            )
        }
    assert info.tables == before and before["bookings"] == 2
    raw = file.read_bytes()
    assert NAME.encode() not in raw and PHONE.encode() not in raw and seeded["number"].encode() not in raw

    _fresh_database(app, schema_url)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
        counts = backup.restore(file)
        assert counts == info.tables
        db.session.remove()
        restored = db.session.get(Applicant, seeded["applicant"])
        assert restored.name == NAME and restored.phone == PHONE
        assert restored.reservation_number == seeded["number"]
        booked = db.session.get(Booking, seeded["booking"])
        assert booked.applicant_id == seeded["applicant"]
        # Booking.live is the database's own computation, not a stored value: it is back too (R1.3).
        assert booked.live == (1 if booked.is_live else None)
        result = audit.verify()
        assert result.ok, result.reason
        # The restored chain continues: a new entry still verifies.
        backup.record_restored(counts, "x" * 64)
        db.session.commit()
        assert audit.verify().ok


def test_restore_refuses_a_database_that_holds_data(app, tmp_path):
    _seed(app)
    file = tmp_path / "b.mdgb"
    with app.app_context():
        backup.make(file)
        with pytest.raises(backup.BackupError, match="not empty"):
            backup.restore(file)
        counts = backup.restore(file, replace=True)
        assert counts["bookings"] == 2
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 2
        assert audit.verify().ok


@pytest.mark.parametrize("where", ["body", "header", "truncate"])
def test_a_tampered_backup_is_refused_and_changes_nothing(app, tmp_path, where):
    """R8.4: verify and restore refuse an altered or cut backup; the database stays as it was."""
    _seed(app)
    file = tmp_path / "b.mdgb"
    with app.app_context():
        backup.make(file)
    data = bytearray(file.read_bytes())
    if where == "body":
        data[-30] ^= 0x80
    elif where == "header":
        data = bytearray(bytes(data).replace(b'"dialect": "', b'"dialect": "x', 1))
    else:
        data = data[: len(data) // 2]
    file.write_bytes(bytes(data))
    with app.app_context():
        with pytest.raises(DecryptionError):
            backup.verify(file)
        with pytest.raises(DecryptionError):
            backup.restore(file, replace=True)
        db.session.remove()
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 2
    result = CliRunner().invoke(main, ["backup", "verify", str(file)], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 1 and "BACKUP NOT USABLE" in result.output


def test_a_backup_does_not_open_with_other_keys(app, tmp_path):
    """R8.4, R8.2: the backup key comes from the key file; other keys cannot read it."""
    _seed(app)
    file = tmp_path / "b.mdgb"
    with app.app_context():
        backup.make(file)
    KeyRing.generate().save(app.config["MADOGUCHI_KEY_FILE"])
    with app.app_context():
        app.extensions["madoguchi.keys"].reload()
        with pytest.raises(WrongKeyError, match="other keys"):
            backup.verify(file)


def test_self_referencing_rows_restore(app, tmp_path, schema_url):
    """A correction points at the entry it corrects (same table): restored in two passes."""
    from madoguchi import dates, logistics
    from madoguchi.models import LogisticsKind
    from tests.factories import make_staff

    with app.app_context():
        staff = make_staff(("logistics",))
        first = logistics.record(LogisticsKind.NOTICES_RECEIVED, 5, day=dates.today(), staff_id=staff.id)
        fixed = logistics.correct(first.id, 6, "数え直し", staff_id=staff.id)
        db.session.commit()
        fixed_id, first_id = fixed.id, first.id
    file = tmp_path / "b.mdgb"
    with app.app_context():
        backup.make(file)
    _fresh_database(app, schema_url)
    with app.app_context():
        backup.restore(file)
        assert db.session.get(LogisticsEntry, fixed_id).corrects_id == first_id
        assert db.session.get(LogisticsEntry, fixed_id).reason == "数え直し"


def test_cli_backup_verify_restore(app, tmp_path, schema_url):
    """`madoguchi backup FILE`, `madoguchi backup verify FILE`, `madoguchi restore FILE`."""
    _seed(app)
    run = CliRunner().invoke
    info = ScriptInfo(create_app=lambda: app)
    file = tmp_path / "nightly.mdgb"
    made = run(main, ["backup", str(file)], obj=info)
    assert made.exit_code == 0, made.output
    assert run(main, ["backup", str(file)], obj=info).exit_code != 0  # never overwrites
    checked = run(main, ["backup", "verify", str(file)], obj=info)
    assert checked.exit_code == 0 and "backup intact" in checked.output
    _fresh_database(app, schema_url)
    restored = run(main, ["restore", str(file)], obj=info)
    assert restored.exit_code == 0, restored.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 2
        assert audit.verify().ok
