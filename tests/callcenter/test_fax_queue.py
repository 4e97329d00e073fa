"""The FAX channel end to end (R5.2–R5.4): a real sheet printed for an applicant, filled in with
marks and hand-written digits, sent through a simulated FAX, received (upload or inbox folder),
read, confirmed by staff — the booking made through the one service with channel "fax" — and the
applicant told. Images are stored encrypted, seen by FAX staff only, and shredded after retention."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, time, timedelta
from io import BytesIO

import pytest
from sqlalchemy import select

from madoguchi.cli import main as cli_main
from madoguchi.extensions import db
from madoguchi.fax import queue
from madoguchi.models import Booking, DeletionRecord, FaxDocument, FaxItem, Slot
from tests.conftest import built
from tests.factories import make_applicant, make_staff
from tests.faxsupport import filled_fax, seed_sheet
from tests.staffsupport import audit_entries, seed_staff, signed_in


@pytest.fixture
def fax_app(overrides):
    from callcenter import create_app

    with built(create_app, overrides) as app:
        yield app


def test_a_received_sheet_is_read_confirmed_and_booked_by_fax(fax_app):
    """R5.2, R5.3, R1.1: the page joins the queue with number, marks and phone read; confirming books
    the first marked time with a free place, channel fax, the staff member recorded."""
    seeded = seed_sheet(fax_app)
    data = filled_fax(seeded, marked=[(1, 1), (2, 0)], phone="09012345678", rotated=True)
    with fax_app.app_context():
        staff = make_staff(roles=("fax_intake",))
        document = queue.receive(data, source="upload", staff=staff)
        (item,) = db.session.scalars(select(FaxItem).where(FaxItem.document_id == document.id)).all()
        read = queue.reading(item)
        assert item.read_status == "read" and read["number"] == seeded.number
        assert item.applicant_id == seeded.applicant_id
        wishes = queue.preferences(item)
        assert [(w.day, w.start) for w in wishes] == [
            (seeded.days[1], time(13, 0)),
            (seeded.days[2], time(9, 0)),
        ]
        queue.confirm(item, number=seeded.number, wishes=wishes, phone=read["phone"] or None, staff=staff)
        db.session.commit()
        assert item.status == "confirmed"
        made = db.session.get(Booking, item.booking_id)
        assert (made.channel, made.staff_id) == ("fax", staff.id)
        assert made.slot_id == seeded.slots[(seeded.days[1], "13:00")]


def test_a_full_first_wish_falls_to_the_next_and_none_free_says_so(fax_app):
    """R5.3: preferences honoured in order and capacity respected; no free wish → no_slot, nothing booked."""
    seeded = seed_sheet(fax_app, capacity=1)
    with fax_app.app_context():
        staff = make_staff(roles=("fax_intake",))
        first, second = (seeded.days[0], "09:00"), (seeded.days[0], "13:00")
        db.session.get(Slot, seeded.slots[first]).taken = 1
        db.session.commit()
        document = queue.receive(b"\x89PNG\r\n\x1a\nbroken", source="upload")
        (item,) = db.session.scalars(select(FaxItem).where(FaxItem.document_id == document.id)).all()
        wishes = [
            queue.Preference(seeded.days[0], time(9, 0), time(12, 0)),
            queue.Preference(seeded.days[0], time(13, 0), time(17, 0)),
        ]
        queue.confirm(item, number=seeded.number, wishes=wishes, phone=None, staff=staff)
        assert item.status == "confirmed" and item.booking.slot_id == seeded.slots[second]
        db.session.commit()
        other = make_applicant(db.session.get(Slot, seeded.slots[first]).venue)
        document = queue.receive(b"%PDF-1.4 broken", source="upload")
        (late,) = db.session.scalars(select(FaxItem).where(FaxItem.document_id == document.id)).all()
        queue.confirm(late, number=other.reservation_number, wishes=wishes, phone=None, staff=staff)
        assert late.status == "no_slot" and late.booking_id is None
        assert db.session.scalars(select(Booking).where(Booking.applicant_id == other.id)).all() == []


def test_an_unreadable_file_still_enters_the_queue_encrypted(fax_app, tmp_path):
    """R5.3: never lost — it waits with the reason; the stored image is ciphertext."""
    with fax_app.app_context():
        document = queue.receive(b"II*\x00" + b"\x00" * 40, source="inbox")
        db.session.commit()
        (item,) = queue.open_items()
        assert item.read_status == "unreadable" and item.reason
        stored = (tmp_path / "fax_store" / document.stored_file).read_bytes()
        assert not stored.startswith(b"II*") and b"\x00" * 40 not in stored
        # The same file again (a FAX server retrying) is the same document.
        assert queue.receive(b"II*\x00" + b"\x00" * 40, source="inbox").id == document.id


def test_the_inbox_folder_is_queued_and_the_plain_copies_shredded(fax_app, tmp_path):
    """R5.2: what the FAX server drops is taken in; the unencrypted file does not stay on disk."""
    seeded = seed_sheet(fax_app)
    inbox = tmp_path / "fax_inbox"
    inbox.mkdir()
    (inbox / "fax-0001.tif").write_bytes(filled_fax(seeded, marked=[(0, 0)], phone="0312345678"))
    (inbox / ".fax-0002.tif").write_bytes(b"still being written")
    (inbox / "notes.txt").write_text("not a fax")
    result = fax_app.test_cli_runner().invoke(cli_main, ["fax", "watch", "--once"])
    assert result.exit_code == 0, result.output
    assert "queued 1 files (1 pages)" in result.output
    assert sorted(p.name for p in inbox.iterdir()) == [".fax-0002.tif", "notes.txt"]
    with fax_app.app_context():
        (item,) = queue.open_items()
        assert queue.reading(item)["number"] == seeded.number


def test_staff_confirm_beside_the_image_and_every_look_is_audited(fax_app):
    """R5.2, R5.3: upload, the image beside the reading (audited), confirm, reply sheet, reply
    recorded; operators cannot see the images."""
    seeded = seed_sheet(fax_app)
    data = filled_fax(seeded, marked=[(0, 1)], phone="09087654321", kind="pdf")
    client = fax_app.test_client()
    person = seed_staff(fax_app, ("fax_intake",))
    signed_in(client, person, fax_app)
    uploaded = client.post(
        "/fax/upload", data={"fax": (BytesIO(data), "fax.pdf")}, content_type="multipart/form-data"
    )
    assert uploaded.status_code == 302
    with fax_app.app_context():
        (item_id,) = db.session.scalars(select(FaxItem.id)).all()
    page = client.get(f"/fax/items/{item_id}").get_data(as_text=True)
    assert "確認して予約する" in page and seeded.number[:4] in page
    image = client.get(f"/fax/items/{item_id}/image")
    assert (
        image.status_code == 200
        and image.mimetype == "image/png"
        and "no-store" in image.headers["Cache-Control"]
    )
    day = seeded.days[0].isoformat()
    confirmed = client.post(
        f"/fax/items/{item_id}/confirm",
        data={"number": seeded.number, "wish": f"{day}|13:00|17:00", "phone": ""},
    )
    assert confirmed.status_code == 302
    reply = client.get(f"/fax/items/{item_id}/reply.pdf")
    assert reply.status_code == 200 and reply.mimetype == "application/pdf"
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=reply.data, capture_output=True, check=True
    ).stdout.decode()
    assert "予約しました" in text and "14:00" in text
    client.post(f"/fax/items/{item_id}/replied", data={"method": "reply_sheet"})
    with fax_app.app_context():
        item = db.session.get(FaxItem, item_id)
        assert item.status == "confirmed" and item.replied_by == "reply_sheet"
    looks = [e["details"] for e in audit_entries(fax_app, "fax:viewed")]
    assert any('"what": "image"' in d for d in looks) and any('"what": "reading"' in d for d in looks)
    operator = fax_app.test_client()
    signed_in(operator, seed_staff(fax_app, ("operator",)), fax_app)
    assert operator.get(f"/fax/items/{item_id}/image").status_code == 403


def test_a_mistyped_number_is_refused_and_nothing_changes(fax_app):
    """Standard 3: a wrong check digit — a clear message, the item still waiting."""
    seeded = seed_sheet(fax_app)
    client = fax_app.test_client()
    signed_in(client, seed_staff(fax_app, ("fax_intake",)), fax_app)
    with fax_app.app_context():
        queue.receive(b"not a fax", source="upload")
        db.session.commit()
        (item_id,) = db.session.scalars(select(FaxItem.id)).all()
    wrong = seeded.number[:-1] + str((int(seeded.number[-1]) + 1) % 10)
    response = client.post(
        f"/fax/items/{item_id}/confirm",
        data={"number": wrong, "wish": f"{seeded.days[0].isoformat()}|09:00|12:00"},
        follow_redirects=True,
    )
    assert "予約管理番号が正しくありません" in response.get_data(as_text=True)
    with fax_app.app_context():
        assert db.session.get(FaxItem, item_id).status == "new"
        assert db.session.scalars(select(Booking)).all() == []


def test_images_are_shredded_after_retention_but_never_while_waiting(fax_app, tmp_path):
    """R5.3, R8.1: handled documents past FAX_IMAGE_RETENTION_DAYS lose key and file, with a
    deletion record; a page still in the queue keeps its image."""
    with fax_app.app_context():
        staff = make_staff(roles=("fax_intake",))
        handled = queue.receive(b"handled sheet", source="upload")
        waiting = queue.receive(b"waiting sheet", source="upload")
        (item,) = db.session.scalars(select(FaxItem).where(FaxItem.document_id == handled.id)).all()
        queue.reject(item, staff=staff, now=datetime.now(UTC) - timedelta(days=40))
        db.session.commit()
        handled_file, waiting_file = handled.stored_file, waiting.stored_file
    result = fax_app.test_cli_runner().invoke(cli_main, ["purge", "fax-images"])
    assert result.exit_code == 0, result.output
    assert "deleted the images of 1" in result.output
    assert not (tmp_path / "fax_store" / handled_file).exists()
    assert (tmp_path / "fax_store" / waiting_file).exists()
    with fax_app.app_context():
        gone = db.session.get(FaxDocument, handled.id)
        assert gone.file_key_ct is None and gone.deleted_at is not None
        (record,) = db.session.scalars(select(DeletionRecord)).all()
        assert (record.kind, record.count) == ("fax_images", 1)
