"""The export ledger (持ち出し管理簿, R7.5; 003 第20条⑶⑷, 000 第5条): personal data leaves only by
a request, an approval by another person, an encrypted file, and the return or destruction that
closes the ledger entry.

The file (format in docs/compliance.md) is a sealed container (``madoguchi.sealed``) whose key is
derived with scrypt from a random passphrase shown once to the person who produced it and never
stored: the city opens it with ``madoguchi export open FILE --out DIR`` (or the few lines of Python
in the docs) without our database or keys. Inside is a ZIP: ``manifest.json`` and one UTF-8 CSV per
dataset. Plain CSV downloads of personal data exist nowhere else.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from . import audit, crypto, dates, sealed, wipe
from .audit import AuditTag
from .crypto import DecryptionError, EncryptedField, new_row_id
from .extensions import db
from .models import Booking, ExportRequest, ExportStatus, Slot, Staff, Status, Venue, stored_columns
from .printing.export_ledger import LedgerLine, when

MAGIC = "MADOGUCHI-EXPORT 1"
FORMAT_VERSION = 1
TEXT_MAX = 500
FILE_SUFFIX = ".mdgx"


class Dataset(enum.StrEnum):
    BOOKINGS = "bookings"  # a venue's bookings in a date range, with the applicants' minimal fields
    ALL = "all"  # everything, for the return at the end of the contract (R8.2)


DATASET_LABELS = {
    Dataset.BOOKINGS: "会場・期間を指定した予約と交付対象者の情報",
    Dataset.ALL: "全データ（契約終了時の返還）",
}
CLOSURE_LABELS = {"returned": "返却", "destroyed": "廃棄"}
STATUS_LABELS = {
    ExportStatus.REQUESTED: "承認待ち",
    ExportStatus.APPROVED: "承認済み（未作成）",
    ExportStatus.REJECTED: "却下",
    ExportStatus.PRODUCED: "作成済み（返却・廃棄待ち）",
    ExportStatus.CLOSED: "完了（返却・廃棄済み）",
}
BOOKING_STATUS_LABELS = {
    Status.BOOKED: "予約済み",
    Status.ARRIVED: "来庁",
    Status.HANDED_OVER: "交付済み",
    Status.NO_SHOW: "来庁なし",
    Status.POSTPONED: "延期",
}
MAX_DAYS = 92  # one quarter: a request for more is a request for a bulk copy, not an errand


class ExportRefused(ValueError):
    """A step of the ledger was refused; ``reason`` is a code the views turn into Japanese."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- the ledger's steps ----------------------------------------------------------------------------
def request_export(
    *,
    actor: Staff,
    dataset: str,
    venue_id: int | None,
    first_day: date | None,
    last_day: date | None,
    purpose: str,
    destination: str,
    remote_addr: str = "",
) -> ExportRequest:
    """Step 1: what, why and where to. Nothing is read yet; the criteria hold no personal value."""
    if dataset != Dataset.BOOKINGS:
        raise ExportRefused("dataset")
    venue = db.session.get(Venue, venue_id) if venue_id else None
    if venue is None:
        raise ExportRefused("venue")
    if first_day is None or last_day is None or last_day < first_day:
        raise ExportRefused("period")
    if (last_day - first_day).days >= MAX_DAYS:
        raise ExportRefused("period_too_long")
    purpose, destination = (purpose or "").strip(), (destination or "").strip()
    if not purpose or not destination or len(purpose) > TEXT_MAX or len(destination) > TEXT_MAX:
        raise ExportRefused("text")
    entry = ExportRequest(
        id=new_row_id(),
        dataset=dataset,
        criteria=json.dumps(
            {"venue_id": venue.id, "first_day": first_day.isoformat(), "last_day": last_day.isoformat()}
        ),
        status=ExportStatus.REQUESTED.value,
        requested_by=actor.id,
        requested_at=dates.now(),
    )
    entry.purpose = purpose
    entry.destination = destination
    db.session.add(entry)
    db.session.flush()
    audit.record(
        AuditTag.EXPORT_REQUESTED,
        staff=actor,
        subject_type="export_request",
        subject_id=entry.id,
        remote_addr=remote_addr,
        dataset=dataset,
        venue_id=venue.id,
        first_day=first_day.isoformat(),
        last_day=last_day.isoformat(),
    )
    return entry


def decide(
    entry: ExportRequest, *, actor: Staff, approve: bool, note: str = "", remote_addr: str = ""
) -> None:
    """Step 2: approval or rejection by another person — whatever roles the requester holds."""
    if entry.status != ExportStatus.REQUESTED:
        raise ExportRefused("not_requested")
    if actor.id == entry.requested_by:
        raise ExportRefused("self_approval")
    note = (note or "").strip()
    if len(note) > TEXT_MAX:
        raise ExportRefused("text")
    entry.status = (ExportStatus.APPROVED if approve else ExportStatus.REJECTED).value
    entry.decided_by, entry.decided_at = actor.id, dates.now()
    entry.decision_note = note or None
    db.session.flush()
    audit.record(
        AuditTag.EXPORT_APPROVED if approve else AuditTag.EXPORT_REJECTED,
        staff=actor,
        subject_type="export_request",
        subject_id=entry.id,
        remote_addr=remote_addr,
    )


@dataclass(frozen=True)
class Produced:
    passphrase: str  # shown once, never stored
    path: Path
    sha256: str
    record_count: int


def produce(entry: ExportRequest, *, actor: Staff, remote_addr: str = "") -> Produced:
    """Step 3: the requester writes the encrypted file (kept in the spool folder until the entry is
    closed) and sees its passphrase once. The approver cannot produce: the one who carries the
    data out is the one who asked."""
    if entry.status != ExportStatus.APPROVED:
        raise ExportRefused("not_approved")
    if actor.id != entry.requested_by:
        raise ExportRefused("not_requester")
    criteria = json.loads(entry.criteria or "{}")
    venue = db.session.get(Venue, criteria.get("venue_id"))
    if venue is None:
        raise ExportRefused("venue")
    first, last = date.fromisoformat(criteria["first_day"]), date.fromisoformat(criteria["last_day"])
    columns, rows = booking_rows(venue, first, last)
    now = dates.now()
    passphrase = crypto.new_passphrase()
    path = spool_path(entry)
    tables = {
        "bookings.csv": (columns, rows),
    }
    manifest = {
        "dataset": entry.dataset,
        "criteria": {"venue": venue.display_name, "venue_code": venue.code, **criteria},
    }
    sha256 = write_file(
        path,
        passphrase=passphrase,
        dataset=entry.dataset,
        request_id=entry.id,
        tables=tables,
        manifest=manifest,
        now=now,
    )
    entry.status = ExportStatus.PRODUCED.value
    entry.record_count = len(rows)
    entry.produced_at, entry.produced_by = now, actor.id
    entry.file_sha256 = sha256
    db.session.flush()
    audit.record(
        AuditTag.EXPORT_PRODUCED,
        staff=actor,
        subject_type="export_request",
        subject_id=entry.id,
        remote_addr=remote_addr,
        count=len(rows),
        sha256=sha256,
    )
    return Produced(passphrase, path, sha256, len(rows))


def close(entry: ExportRequest, *, actor: Staff, closure: str, note: str = "", remote_addr: str = "") -> None:
    """Step 4: the file came back or was destroyed; the entry is complete and the spool copy is shredded."""
    if entry.status != ExportStatus.PRODUCED:
        raise ExportRefused("not_produced")
    if closure not in CLOSURE_LABELS:
        raise ExportRefused("closure")
    note = (note or "").strip()
    if len(note) > TEXT_MAX:
        raise ExportRefused("text")
    entry.status = ExportStatus.CLOSED.value
    entry.closure = closure
    entry.closed_at, entry.closed_by = dates.now(), actor.id
    entry.closure_note = note or None
    db.session.flush()
    audit.record(
        AuditTag.EXPORT_CLOSED,
        staff=actor,
        subject_type="export_request",
        subject_id=entry.id,
        remote_addr=remote_addr,
        closure=closure,
    )
    wipe.shred_file(spool_path(entry))


def spool_path(entry: ExportRequest) -> Path:
    # The id is ours (hex), never user input: safe as a file name.
    return Path(current_app.config["EXPORT_SPOOL_DIR"]) / f"export-{entry.id}{FILE_SUFFIX}"


def get(entry_id: str) -> ExportRequest | None:
    if not entry_id.isalnum() or len(entry_id) > 32:
        return None
    return db.session.get(ExportRequest, entry_id)


def ledger(since: datetime | None = None, until: datetime | None = None) -> list[ExportRequest]:
    query = select(ExportRequest)
    if since is not None:
        query = query.where(ExportRequest.requested_at >= since)
    if until is not None:
        query = query.where(ExportRequest.requested_at < until)
    return list(db.session.scalars(query.order_by(ExportRequest.requested_at, ExportRequest.id)))


def staff_names(entries: list[ExportRequest]) -> dict[int, str]:
    ids = {
        i
        for e in entries
        for i in (e.requested_by, e.decided_by, e.produced_by, e.closed_by)
        if i is not None
    }
    if not ids:
        return {}
    return dict(db.session.execute(select(Staff.id, Staff.name).where(Staff.id.in_(ids))).all())


def describe(entry: ExportRequest, venues: dict[int, str] | None = None) -> str:
    """What was (to be) exported, in words, without any personal value."""
    label = DATASET_LABELS.get(entry.dataset, entry.dataset)
    criteria = json.loads(entry.criteria or "{}")
    if not criteria:
        return label
    venue = (venues or {}).get(criteria.get("venue_id"), f"会場{criteria.get('venue_id')}")
    return f"{label}（{venue}、{criteria.get('first_day')}〜{criteria.get('last_day')}）"


def ledger_lines(entries: list[ExportRequest]) -> list[LedgerLine]:
    """The ledger as printed for the city (R7.5)."""
    names = staff_names(entries)
    venues = dict(db.session.execute(select(Venue.id, Venue.name)).all())

    def who(staff_id, at) -> str:
        return f"{when(at)}\n{names.get(staff_id, '')}" if staff_id else ""

    lines = []
    for e in entries:
        closure = ""
        if e.closure:
            closure = f"{CLOSURE_LABELS.get(e.closure, e.closure)} {who(e.closed_by, e.closed_at)}"
            closure += f"\n{e.closure_note}" if e.closure_note else ""
        elif e.status == ExportStatus.REJECTED:
            closure = "却下（持ち出しなし）"
        lines.append(
            LedgerLine(
                requested=who(e.requested_by, e.requested_at),
                what=describe(e, venues),
                count="" if e.record_count is None else f"{e.record_count:,}",
                purpose=e.purpose or "",
                destination=e.destination or "",
                decision=(
                    STATUS_LABELS[ExportStatus(e.status)]
                    if e.decided_by is None
                    else who(e.decided_by, e.decided_at)
                ),
                produced=f"{when(e.produced_at)}\n{e.file_sha256}" if e.produced_at else "",
                closure=closure,
            )
        )
    return lines


# ---- datasets ------------------------------------------------------------------------------------
BOOKING_COLUMNS = [
    "予約管理番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "郵便番号",
    "住所",
    "電話番号",
    "メールアドレス",
    "会場",
    "予約日時",
    "状態",
    "受付経路",
]


def booking_rows(venue: Venue, first: date, last: date) -> tuple[list[str], list[list[str]]]:
    """The bookings at ``venue`` whose slot starts on ``first``…``last`` (Tokyo), cancelled ones
    left out (minimal data: the city asks who is coming or came)."""
    since, until = dates.day_bounds(first)[0], dates.day_bounds(last)[1]
    query = (
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Slot.venue_id == venue.id,
            Slot.starts_at >= since,
            Slot.starts_at < until,
            Booking.status != Status.CANCELLED.value,
        )
        .order_by(Slot.starts_at, Booking.id)
    )
    rows = []
    for booking in db.session.scalars(query):
        a = booking.applicant
        rows.append(
            [
                a.reservation_number,
                a.name or "",
                a.name_kana or "",
                a.birth_date.isoformat() if a.birth_date else "",
                a.sex or "",
                a.postal_code or "",
                a.address or "",
                a.phone or "",
                a.email or "",
                venue.display_name,
                dates.tokyo(booking.slot.starts_at).strftime("%Y-%m-%d %H:%M"),
                BOOKING_STATUS_LABELS.get(booking.status, booking.status),
                booking.channel,
            ]
        )
    return BOOKING_COLUMNS, rows


# Never returned, not even to the city: credentials and keys, and runtime state with no meaning
# outside this system. Blind indexes are keyed hashes, useless without our keys.
SKIP_TABLES = frozenset(
    {"staff_sessions", "staff_recovery_codes", "admission_passes", "admission_rooms", "lookup_failures"}
)
SKIP_COLUMNS = frozenset({"password_hash", "totp_secret_ct", "totp_last_step", "file_key_ct"})
SKIP_FIELDS = frozenset({"totp_secret", "file_key"})


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return dates.utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _model_for(table) -> type | None:
    for mapper in db.Model.registry.mappers:
        if mapper.local_table is table:
            return mapper.class_
    return None


def all_tables() -> Iterator[tuple[str, list[str], Iterator[list[str]]]]:
    """Every table for the return (R8.2): encrypted columns decrypted into their plain names,
    blind indexes, credentials and keys left out. Rows are read in batches."""
    for table in db.metadata.sorted_tables:
        if table.name in SKIP_TABLES:
            continue
        model = _model_for(table)
        fields = (
            [
                n
                for n, attr in vars(model).items()
                if isinstance(attr, EncryptedField) and n not in SKIP_FIELDS
            ]
            if model is not None
            else []
        )
        plain = [
            c.name
            for c in stored_columns(table)
            if c.name not in SKIP_COLUMNS
            and not c.name.endswith("_bidx")
            and not (c.name.endswith("_ct") and (c.name[:-3] in fields or c.name[:-3] in SKIP_FIELDS))
        ]
        yield table.name, plain + fields, _table_rows(table, model, plain, fields)


def _table_rows(table, model, plain: list[str], fields: list[str]) -> Iterator[list[str]]:
    key_columns = list(table.primary_key.columns)
    if model is None or not fields:
        query = select(*[table.c[name] for name in plain]).order_by(*key_columns)
        for row in db.session.execute(query.execution_options(yield_per=500)):
            yield [_cell(v) for v in row]
        return
    query = select(model).order_by(*key_columns).execution_options(yield_per=500)
    for obj in db.session.scalars(query):
        yield [_cell(getattr(obj, name)) for name in plain] + [_cell(getattr(obj, name)) for name in fields]
        db.session.expunge(obj)


# ---- the file ----------------------------------------------------------------------------------------
def _csv_bytes(columns: list[str], rows) -> tuple[bytes, int]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    # With a BOM, so that the city's spreadsheet reads the Japanese as UTF-8.
    return ("\ufeff" + text.getvalue()).encode("utf-8"), count


def write_file(
    path: Path,
    *,
    passphrase: str,
    dataset: str,
    request_id: str,
    tables: dict[str, tuple[list[str], object]],
    manifest: dict,
    now: datetime,
    files: dict[str, bytes] | None = None,
) -> str:
    """Write the encrypted export; returns the file's SHA-256 (the ledger keeps it). Written to a
    temporary name and renamed, so a failure leaves no partial file."""
    payload = io.BytesIO()
    counts: dict[str, int] = {}
    with zipfile.ZipFile(payload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, (columns, rows) in tables.items():
            data, counts[name] = _csv_bytes(columns, rows)
            archive.writestr(name, data)
        for name, data in (files or {}).items():  # e.g. call recordings' audio (the provision ledger)
            archive.writestr(name, data)
            counts[name] = 1
        created = dates.utc(now).isoformat().replace("+00:00", "Z")
        full_manifest = {
            **manifest,
            "request_id": request_id,
            "created_at": created,
            "files": counts,
            "format_version": FORMAT_VERSION,
        }
        archive.writestr("manifest.json", json.dumps(full_manifest, ensure_ascii=False, indent=2))
    body = payload.getvalue()
    record_count = counts.get("bookings.csv", sum(counts.values()))
    kdf = {"name": "scrypt", "salt": crypto.new_salt(), **_scrypt_cost()}
    header = {
        "format": "madoguchi-export",
        "version": FORMAT_VERSION,
        "dataset": dataset,
        "record_count": record_count,
        "tables": counts,
        "created_at": created,
        "request_id": request_id,
        "payload": "zip",
        "payload_sha256": hashlib.sha256(body).hexdigest(),
        "kdf": kdf,
    }
    key = crypto.passphrase_key(passphrase, salt=kdf["salt"], n=kdf["n"], r=kdf["r"], p=kdf["p"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            sha256 = sealed.write(out, magic=MAGIC, header=header, key=key, pieces=[body])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256


def _scrypt_cost() -> dict:
    n = int(current_app.config.get("EXPORT_SCRYPT_N", 2**17)) if current_app else 2**17
    return {"n": n, "r": 8, "p": 1}


class ExportFileError(DecryptionError):
    """The export file cannot be opened; the message says why (never a value)."""


def read_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        header, _ = sealed.read_header(fh, MAGIC)
    return header


def open_file(path: str | Path, passphrase: str, out_dir: str | Path) -> dict:
    """Decrypt an export into ``out_dir`` (which must not exist, or be empty). Everything is
    decrypted and checked before anything is written: a wrong passphrase or an altered file leaves
    no output at all. Returns the header."""
    path, out_dir = Path(path), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportFileError(f"{out_dir} exists and is not empty")
    with open(path, "rb") as fh:
        header, head = sealed.read_header(fh, MAGIC)
        kdf = header.get("kdf") or {}
        if kdf.get("name") != "scrypt":
            raise ExportFileError("the file uses a key derivation this program does not read")
        try:
            key = crypto.passphrase_key(
                passphrase, salt=kdf["salt"], n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])
            )
        except (KeyError, TypeError, ValueError):
            raise ExportFileError("the file's header is damaged") from None
        sealed.check_key(header, key, "the passphrase is wrong")
        payload = b"".join(sealed.body(fh, header=header, head=head, key=key))
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ExportFileError("the contents do not match the header's SHA-256")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            for member in archive.infolist():
                name = Path(member.filename).name
                if name != member.filename or name.startswith("."):
                    raise ExportFileError("the archive holds an unexpected path")
                target = staging / name
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return header
