"""Retention and deletion (R8.1): what is past its period is deleted so it cannot be read again,
each purge writes a deletion record, a second run deletes and records nothing, and the deletion
report prints every field."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from madoguchi import audit, booking, dates, retention
from madoguchi.cli import main
from madoguchi.crypto import new_row_id
from madoguchi.extensions import db
from madoguchi.models import (
    Applicant,
    Booking,
    BookingEvent,
    Call,
    Channel,
    DeletionRecord,
    OutboundMessage,
)
from madoguchi.printing.deletion_report import deletion_report
from tests.compliancesupport import NAME, compliance_overrides, make_booking, pdf_text
from tests.conftest import ON_POSTGRES
from tests.factories import make_staff
from tests.staffsupport import set_now

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")


@pytest.fixture
def overrides(overrides, tmp_path):
    return compliance_overrides(overrides, tmp_path)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _age(app, days: int) -> None:
    set_now(app, dates.now() + timedelta(days=days))


def test_ended_bookings_past_their_period_lose_the_applicant(ctx):
    """R8.1: once every booking of a person has ended and the period has passed, the person's data,
    bookings, history and messages are deleted; an open booking keeps everything."""
    app = ctx
    cancelled, gone = make_booking()
    booking.cancel(cancelled, actor=booking.Actor(Channel.PHONE))
    kept, _ = make_booking(name="継続　花子")
    db.session.commit()
    gone_id, kept_id = gone.id, kept.id
    _age(app, app.config["BOOKING_RETENTION_DAYS"] + 1)

    assert retention.due()["bookings"] == 1
    entry = retention.purge_kind(
        "bookings", responsible=make_staff(("administrator",)), witness="区職員 立会"
    )
    db.session.commit()

    assert entry.count == 1 and entry.kind == "bookings" and entry.witness_name == "区職員 立会"
    assert db.session.get(Applicant, gone_id) is None
    assert (
        db.session.scalar(select(func.count()).select_from(Booking).where(Booking.applicant_id == gone_id))
        == 0
    )
    assert db.session.get(Booking, kept_id) is not None
    assert db.session.get(Booking, kept_id).applicant.name == "継続　花子"
    assert _count(BookingEvent) >= 1  # the kept booking's history stays


def test_a_purge_run_twice_deletes_and_records_nothing_more(ctx):
    """R8.1: idempotent — the second run finds nothing and writes no second record."""
    app = ctx
    made, _ = make_booking()
    booking.cancel(made, actor=booking.Actor(Channel.PHONE))
    db.session.commit()
    _age(app, 400)
    first = [retention.purge_kind(name) for name in retention.KINDS]
    db.session.commit()
    records = _count(DeletionRecord)
    second = [retention.purge_kind(name) for name in retention.KINDS]
    db.session.commit()
    assert any(first) and not any(second)
    assert _count(DeletionRecord) == records
    assert audit.verify().ok  # the purge's own audit entries keep the chain intact


def test_call_notes_are_erased_but_the_call_stays_for_statistics(ctx):
    app = ctx
    call = Call(
        id=new_row_id(), direction="inbound", status="completed", started_at=dates.now(), category="other"
    )
    db.session.add(call)
    call.note = f"{NAME}さんから住所変更の相談"
    call.caller = "080-1111-2222"
    db.session.commit()
    call_id = call.id
    _age(app, app.config["CALL_NOTE_RETENTION_DAYS"] + 1)
    entry = retention.purge_kind("call_notes")
    db.session.commit()
    db.session.expire_all()
    kept = db.session.get(Call, call_id)
    assert entry.count == 1
    assert kept is not None and kept.category == "other"
    assert kept.note_ct is None and kept.caller_ct is None and kept.caller_bidx is None


def test_sent_messages_are_deleted_after_their_period(ctx):
    app = ctx
    make_booking(email="sent@example.jp")
    db.session.commit()
    messages = _count(OutboundMessage)
    db.session.execute(OutboundMessage.__table__.update().values(status="sent"))
    db.session.commit()
    _age(app, app.config["MESSAGE_RETENTION_DAYS"] + 1)
    entry = retention.purge_kind("messages")
    db.session.commit()
    assert messages >= 1 and entry.count == messages and _count(OutboundMessage) == 0


@pytest.mark.skipif(ON_POSTGRES, reason="reads the SQLite database file's bytes")
def test_deleted_values_are_not_left_in_the_sqlite_file(ctx, database_url):
    """R8.1: with secure_delete and the WAL truncated, the purged ciphertexts are gone from the
    database file's bytes (not merely unlinked from the table)."""
    app = ctx
    made, applicant = make_booking()
    booking.cancel(made, actor=booking.Actor(Channel.PHONE))
    db.session.commit()
    ciphertext = applicant.name_ct.encode()
    path = Path(database_url.removeprefix("sqlite:///"))
    retention.compact()
    assert ciphertext in path.read_bytes()
    _age(app, 400)
    retention.purge_kind("bookings")
    db.session.commit()
    retention.compact()
    leftovers = [p.name for p in path.parent.glob(path.name + "*") if ciphertext in p.read_bytes()]
    assert leftovers == []


def test_the_deletion_report_prints_every_field(ctx, tmp_path):
    """R8.1: 削除した情報の項目, 媒体, 数量, 方法, 日時, 責任者, 立会者 for each record."""
    app = ctx
    made, _ = make_booking()
    booking.cancel(made, actor=booking.Actor(Channel.PHONE))
    staff = make_staff(("administrator",), name="責任　太郎")
    db.session.commit()
    _age(app, 400)
    retention.purge_kind("bookings", responsible=staff, witness="立会　花子")
    db.session.commit()
    rows = retention.report_rows()
    text = pdf_text(
        deletion_report(rows, period="令和8年度", printed_at=dates.now(), city_name="江東区"), tmp_path
    )
    flat = "".join(text.split())
    for label in ("削除した情報の項目", "媒体", "数量", "方法", "日時", "責任者", "立会者"):
        assert label in flat, label
    for value in (
        "交付対象者の個人情報",
        "データベース（",  # the medium (its name wraps differently per database)
        "行の削除",
        "責任太郎",
        "立会花子",
        "個人情報の消去・廃棄報告書",
    ):
        assert value in flat, value
    assert NAME.replace("　", "") not in flat


def test_cli_purge_and_report(app, tmp_path):
    """`madoguchi purge expired` (with --dry-run) and `madoguchi purge report --out FILE`."""
    with app.app_context():
        made, _ = make_booking()
        booking.cancel(made, actor=booking.Actor(Channel.PHONE))
        make_staff(("administrator",), login_id="chief")
        db.session.commit()
        _age(app, 400)
    run = CliRunner().invoke
    info = ScriptInfo(create_app=lambda: app)
    dry = run(main, ["purge", "expired", "--dry-run"], obj=info)
    assert dry.exit_code == 0 and "bookings: 1 due" in dry.output
    done = run(main, ["purge", "expired", "--responsible", "chief", "--witness", "区職員"], obj=info)
    assert done.exit_code == 0, done.output
    assert "bookings: deleted 1" in done.output
    again = run(main, ["purge", "expired"], obj=info)
    assert "bookings: deleted 0" in again.output
    unknown = run(main, ["purge", "expired", "--responsible", "nobody"], obj=info)
    assert unknown.exit_code != 0 and "no staff account" in unknown.output
    with app.app_context():
        today = dates.today().isoformat()
    out = tmp_path / "report.pdf"
    printed = run(main, ["purge", "report", "--since", today, "--until", today, "--out", str(out)], obj=info)
    assert printed.exit_code == 0, printed.output
    assert "責任者" in "".join(pdf_text(out.read_bytes(), tmp_path, "cli.pdf").split())


def test_a_foreign_key_the_purge_does_not_know_stops_it(ctx, monkeypatch):
    """R8.1: a new table pointing at applicants with a NOT NULL key makes the purge fail loudly
    rather than leave a row behind or break the database."""
    column = Call.__table__.c.applicant_id
    monkeypatch.setattr(column, "nullable", False)
    with pytest.raises(RuntimeError, match="calls.applicant_id"):
        retention._dependents("applicants")


def test_calls_module_is_untouched_by_the_purge_of_bookings(ctx):
    """The link from a call to a purged booking is cut; the call itself stays."""
    app = ctx
    made, applicant = make_booking()
    call = Call(
        id=new_row_id(), direction="inbound", status="completed", started_at=dates.now(), category="issuance"
    )
    call.applicant_id, call.booking_id = applicant.id, made.id
    db.session.add(call)
    booking.cancel(made, actor=booking.Actor(Channel.PHONE))
    db.session.commit()
    call_id = call.id
    _age(app, 400)
    retention.purge_kind("bookings")
    db.session.commit()
    db.session.expire_all()
    kept = db.session.get(Call, call_id)
    assert kept.applicant_id is None and kept.booking_id is None
