"""The FAX work queue (R5.2–R5.4): a received file is stored encrypted, every page is read and
becomes a queue item — readable or not, ours or not: nothing received is ever lost — and staff
confirm what was read, which books through the one booking service (channel "fax").

The image is kept under its own key (``crypto.encrypt_file_bytes``); when the retention of a
handled document ends, the key is destroyed and the file shredded (``purge``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from flask import current_app
from PIL import Image
from sqlalchemy import case, func, select

from .. import applicants, booking, dates, numbers, wipe
from ..crypto import decrypt_file_bytes, encrypt_file_bytes, new_file_key, new_row_id
from ..errors import AlreadyBooked, NotChangeable, SameSlot, SlotFull, SlotNotBookable
from ..extensions import db
from ..models import Applicant, Channel, FaxDocument, FaxItem, Slot, Staff
from . import images, reader

MAX_FILE_BYTES = 20 * 1024 * 1024
MEDIA_TYPES = {b"II*\x00": "image/tiff", b"MM\x00*": "image/tiff", b"%PDF-": "application/pdf"}
OPEN = "new"


class FaxRefused(ValueError):
    """A staff action on a queue item cannot be done; ``reason`` selects the message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _media_type(data: bytes) -> str:
    for magic, kind in MEDIA_TYPES.items():
        if data.startswith(magic):
            return kind
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return "application/octet-stream"


def _store_dir() -> Path:
    return Path(current_app.config["FAX_STORE_DIR"])


def _purpose(document: FaxDocument) -> str:
    return f"fax_documents:{document.id}"


def _reading_json(result: reader.PageResult) -> str:
    return json.dumps(
        {
            "number": result.number,
            "number_confidence": round(result.number_confidence, 3),
            "marks": [
                {
                    "day": m.day.isoformat(),
                    "start": m.band_start.strftime("%H:%M"),
                    "end": m.band_end.strftime("%H:%M"),
                    "marked": m.marked,
                    "confidence": round(m.confidence, 3),
                    "review": m.needs_review,
                }
                for m in result.marks
            ],
            "phone_digits": [
                {"digit": d.digit, "confidence": round(d.confidence, 3), "review": d.needs_review}
                for d in result.phone_digits
            ],
            "phone": result.phone,
            "rotation": result.rotation,
        },
        ensure_ascii=False,
    )


def receive(
    data: bytes, *, source: str, staff: Staff | None = None, now: datetime | None = None
) -> FaxDocument:
    """Store a received file encrypted and queue each of its pages with what the reader found.
    The same file received twice (a FAX server retrying) is one document."""
    now = now or dates.now()
    digest = hashlib.sha256(data).hexdigest()
    existing = db.session.scalars(select(FaxDocument).where(FaxDocument.file_sha256 == digest)).one_or_none()
    if existing is not None:
        return existing
    results = reader.read_fax(data[:MAX_FILE_BYTES]) if len(data) <= MAX_FILE_BYTES else []
    if not results:
        results = [reader.PageResult(0, reader.PageStatus.UNREADABLE, "ファイルが大きすぎます（20MBまで）")]
    document = FaxDocument(
        id=new_row_id(),
        received_at=now,
        source=source,
        media_type=_media_type(data),
        pages=len(results),
        file_sha256=digest,
        uploaded_by=staff.id if staff is not None else None,
    )
    key = new_file_key()
    document.file_key = key
    folder = _store_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{document.id}.fax"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(encrypt_file_bytes(data, file_key=key, purpose=_purpose(document)))
    document.stored_file = path.name
    db.session.add(document)
    for result in results:
        item = FaxItem(
            id=new_row_id(),
            document=document,
            page_index=result.page_index,
            status=OPEN,
            read_status=result.status.value,
            reason=(result.reason or None),
            review=",".join(result.review) or None,
        )
        item.reading = _reading_json(result)
        if result.number:
            item.applicant = applicants.find_by_number(result.number)
        db.session.add(item)
    db.session.flush()
    return document


def reading(item: FaxItem) -> dict:
    return json.loads(item.reading) if item.reading_ct else {}


def open_items() -> list[FaxItem]:
    return list(
        db.session.scalars(
            select(FaxItem)
            .join(FaxDocument)
            .where(FaxItem.status == OPEN)
            .order_by(FaxDocument.received_at, FaxItem.page_index)
        )
    )


def recent_items(limit: int = 50) -> list[FaxItem]:
    return list(
        db.session.scalars(
            select(FaxItem)
            .join(FaxDocument)
            .where(FaxItem.status != OPEN)
            .order_by(FaxItem.handled_at.desc())
            .limit(limit)
        )
    )


def page_png(item: FaxItem, *, width: int = 1000) -> bytes:
    """The page as staff see it beside what was read: decrypted in memory, never written out."""
    document = item.document
    if document.deleted_at is not None or not document.file_key_ct:
        raise FaxRefused("image_deleted")
    turned = reading(item).get("rotation") or 0
    data = decrypt_file_bytes(
        (_store_dir() / document.stored_file).read_bytes(),
        file_key=document.file_key,
        purpose=_purpose(document),
    )
    try:
        for page in images.pages(data):
            if page.index == item.page_index:
                picture = Image.fromarray(page.grey)
                if turned:
                    # ``rotation`` is how far clockwise the page had turned; PIL turns anticlockwise.
                    picture = picture.rotate(turned, expand=True)
                picture.thumbnail((width, width * 2))
                buffer = io.BytesIO()
                picture.save(buffer, format="PNG", optimize=True)
                return buffer.getvalue()
    except images.UnreadableFile:
        pass
    raise FaxRefused("no_image")


# ---- confirming an item ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Preference:
    day: date
    start: time
    end: time


def preferences(item: FaxItem) -> list[Preference]:
    """The marked boxes, in the sheet's order (earliest date first, then the band)."""
    return [
        Preference(date.fromisoformat(m["day"]), time.fromisoformat(m["start"]), time.fromisoformat(m["end"]))
        for m in reading(item).get("marks", [])
        if m["marked"]
    ]


def _free_slot(venue_id: int, wish: Preference, now: datetime) -> Slot | None:
    start, end = dates.day_bounds(wish.day)
    slots = db.session.scalars(
        select(Slot)
        .where(Slot.venue_id == venue_id, Slot.starts_at >= start, Slot.starts_at < end)
        .order_by(Slot.starts_at)
    ).all()
    left = booking.places_left([s.id for s in slots], now)
    for slot in slots:
        local = dates.tokyo(slot.starts_at).time()
        if wish.start <= local < wish.end and slot.starts_at > now and left.get(slot.id, 0) > 0:
            return slot
    return None


def confirm(
    item: FaxItem,
    *,
    number: str,
    wishes: list[Preference],
    phone: str | None,
    staff: Staff,
    now: datetime | None = None,
) -> FaxItem:
    """Book the first wish with a free place, through the booking service (channel "fax", the staff
    member recorded). No free wish: the item says so (``no_slot``) and nothing is booked."""
    now = now or dates.now()
    if item.status != OPEN:
        raise FaxRefused("handled")
    try:
        parsed = numbers.parse(number)
    except numbers.InvalidReservationNumber:
        raise FaxRefused("number") from None
    applicant = applicants.find_by_number(parsed)
    if applicant is None:
        raise FaxRefused("unknown_number")
    if applicant.venue_id is None:
        raise FaxRefused("no_venue")
    if not wishes:
        raise FaxRefused("no_wishes")
    if phone and not applicant.phone:
        applicant.phone = phone  # the sheet is how this applicant gave a number to call back
    actor = booking.Actor(Channel.FAX, staff_id=staff.id)
    live = booking.live_booking_for(applicant)
    made = None
    for wish in wishes:
        slot = _free_slot(applicant.venue_id, wish, now)
        if slot is None:
            continue
        try:
            if live is None:
                made = booking.book(applicant, slot.id, actor=actor, request_key=f"fax:{item.id}", now=now)
            else:
                made = booking.change(live, slot.id, actor=actor, request_key=f"fax:{item.id}", now=now)
            break
        except (SlotFull, SlotNotBookable, SameSlot):
            continue  # taken meanwhile, or already there: try the next wish
        except (AlreadyBooked, NotChangeable):
            raise FaxRefused("not_changeable") from None
    item.applicant = applicant
    item.booking = made
    item.status = "confirmed" if made is not None else "no_slot"
    item.handled_by, item.handled_at = staff.id, now
    db.session.flush()
    return item


def reject(item: FaxItem, *, staff: Staff, now: datetime | None = None) -> FaxItem:
    """Not one of our sheets, or not a request: leave the queue (the image follows retention)."""
    if item.status != OPEN:
        raise FaxRefused("handled")
    item.status = "rejected"
    item.handled_by, item.handled_at = staff.id, now or dates.now()
    db.session.flush()
    return item


REPLY_METHODS = ("reply_sheet", "sms", "phone")


def record_reply(item: FaxItem, *, method: str, now: datetime | None = None) -> FaxItem:
    """How the applicant was told the result (R5.4)."""
    if method not in REPLY_METHODS:
        raise FaxRefused("reply_method")
    if item.status not in ("confirmed", "no_slot"):
        raise FaxRefused("not_handled")
    item.replied_by = method
    item.replied_at = now or dates.now()
    db.session.flush()
    return item


# ---- the inbox folder and retention -----------------------------------------------------------------
INBOX_SUFFIXES = {".tif", ".tiff", ".pdf", ".png"}


def scan_inbox(folder: Path) -> tuple[int, int]:
    """Queue every file a FAX server dropped in ``folder``; the plain file is shredded once its
    encrypted copy is committed. Returns (files, pages). The caller commits after each file."""
    files = pages = 0
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        if path.suffix.lower() not in INBOX_SUFFIXES or not path.is_file() or path.name.startswith("."):
            continue  # a file still being written is named with a leading dot by FAX servers
        document = receive(path.read_bytes(), source="inbox")
        db.session.commit()
        wipe.shred_file(path)
        files, pages = files + 1, pages + document.pages
    return files, pages


def retention_days() -> int:
    return int(current_app.config["FAX_IMAGE_RETENTION_DAYS"])


def due_documents(today: date | None = None) -> list[FaxDocument]:
    """Documents whose every page is handled and whose retention (from the last handling) ended.
    A page still waiting keeps its image: an unprocessed sheet is never deleted."""
    today = today or dates.today()
    waiting = func.sum(case((FaxItem.status == OPEN, 1), else_=0))
    rows = db.session.execute(
        select(FaxItem.document_id, func.max(FaxItem.handled_at), waiting)
        .join(FaxDocument, FaxItem.document_id == FaxDocument.id)
        .where(FaxDocument.deleted_at.is_(None))
        .group_by(FaxItem.document_id)
    ).all()
    keep = timedelta(days=retention_days())
    due_ids = [
        document_id
        for document_id, last_handled, open_pages in rows
        if not open_pages and last_handled is not None and dates.tokyo(last_handled).date() + keep < today
    ]
    return list(db.session.scalars(select(FaxDocument).where(FaxDocument.id.in_(due_ids)))) if due_ids else []


def destroy_image(document: FaxDocument, *, now: datetime | None = None) -> None:
    """Crypto-shred the image: drop its key, overwrite and remove the file."""
    document.file_key = None
    if document.stored_file:
        wipe.shred_file(_store_dir() / document.stored_file)
    document.stored_file = None
    document.deleted_at = now or dates.now()
    db.session.flush()


def applicant_of(number: str | None) -> Applicant | None:
    if not number or not numbers.is_valid(number):
        return None
    return applicants.find_by_number(numbers.parse(number))
