"""The city's applicant list (交付対象者名簿) imported from CSV (R3.1, R2, R8).

The file comes from the city's systems: UTF-8 (with or without a BOM) or Shift_JIS/CP932, a header
row naming the columns. Every row is checked first; a report names each bad row by its number and
the reason in Japanese — never the value, since the values are personal. Nothing is imported unless
every row is good (all or nothing, one SAVEPOINT), values are encrypted on the way in through
``applicants.register``, and a ``RosterImport`` row keeps the counts and the file's SHA-256 so the
import can be reconciled with what the city sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import applicants, audit, dates, normalize, numbers
from .audit import AuditTag
from .crypto import new_row_id
from .extensions import db
from .models import Applicant, RosterImport, Staff

MAX_BYTES = 32 * 1024 * 1024  # ~200,000 rows of a typical list; the city sends far fewer at once
MAX_ROWS = 200_000
# A web request is cut off by the app server's timeout (gunicorn: 30 s); the import costs ~2 ms a
# row here (docs/administration.md), so larger files go through `madoguchi roster import`.
WEB_MAX_ROWS = 10_000
MAX_REPORTED = 1000  # problems listed in the report; the count is always complete

# Header → field. 予約管理番号, 住所, 氏名, 生年月日 and 性別 come from the notice data the city
# prepares (004 別紙⑥1(1)②); the reading, postal code and phone are accepted when the city has
# them (R2.1 minimal fields). Anything else is refused rather than silently dropped.
REQUIRED = {
    "予約管理番号": "number",
    "住所": "address",
    "氏名": "name",
    "生年月日": "birth_date",
    "性別": "sex",
}
OPTIONAL = {
    "氏名カナ": "name_kana",
    "フリガナ": "name_kana",
    "氏名フリガナ": "name_kana",
    "郵便番号": "postal_code",
    "電話番号": "phone",
}
COLUMN_LABELS = {
    "number": "予約管理番号",
    "address": "住所",
    "name": "氏名",
    "birth_date": "生年月日",
    "sex": "性別",
    "name_kana": "氏名カナ",
    "postal_code": "郵便番号",
    "phone": "電話番号",
    "": "行",
}
MAX_LENGTH = {"name": 100, "name_kana": 100, "address": 200}
# 住民基本台帳 systems code sex as 1 (男) / 2 (女).
SEX_VALUES = {"男": "男", "男性": "男", "1": "男", "女": "女", "女性": "女", "2": "女"}

# Reasons shown to staff: what is wrong, never what was written.
REASONS = {
    "number_length": "予約管理番号が12桁の数字ではありません",
    "number_check_digit": "予約管理番号のチェックデジットが合いません（転記・読み取りの誤りの可能性があります）",
    "number_duplicate": "予約管理番号がこのファイルの {row} 行目と重複しています",
    "number_registered": "予約管理番号はすでに登録されています",
    "empty": "{column}が空欄です",
    "too_long": "{column}が長すぎます",
    "date_format": "生年月日を日付として読み取れません（例: 1980-04-01、1980/4/1、昭和55年4月1日）",
    "date_nonexistent": "生年月日が存在しない日付か、未来の日付です",
    "date_era": "生年月日の元号と年が合いません",
    "sex_unknown": "性別が「男」「女」（または 1・2）ではありません",
    "kana_invalid": "氏名カナにカナ以外の文字があります",
    "postal_invalid": "郵便番号が7桁の数字ではありません",
    "phone_invalid": "電話番号の形式が正しくありません",
    "columns": "列の数が見出しと合いません",
}
FILE_REASONS = {
    "too_large": "ファイルが大きすぎます（上限 {limit} MB）。分けて取り込んでください。",
    "empty_file": "ファイルが空です。",
    "encoding": "文字コードを判別できません。UTF-8 または Shift_JIS（CP932）の CSV で保存してください。",
    "not_csv": "CSV として読み取れません。",
    "missing_columns": "必須の列がありません: {columns}",
    "unknown_columns": "取り込めない列があります: {columns}（名簿に必要な項目だけの CSV にしてください）",
    "duplicate_columns": "同じ名前の列が複数あります: {columns}",
    "no_rows": "データ行がありません。",
    "too_many_rows": "行数が多すぎます（上限 {limit} 行）。分けて取り込んでください。",
    "too_many_rows_web": "画面から取り込めるのは {limit} 行までです。ファイルを分けるか、コマンド `madoguchi roster import` で取り込んでください。",
}


class RosterFileRejected(ValueError):
    """The file as a whole cannot be read; ``message`` is for staff and holds no personal value."""

    def __init__(self, reason: str, **params):
        super().__init__(reason)
        self.reason = reason
        self.message = FILE_REASONS[reason].format(**params)


@dataclass(frozen=True)
class RowProblem:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    reason: str  # a key of REASONS
    other_row: int | None = None

    @property
    def message(self) -> str:
        return REASONS[self.reason].format(
            column=COLUMN_LABELS.get(self.column, self.column), row=self.other_row
        )


@dataclass
class Report:
    file_sha256: str
    rows_total: int = 0
    rows_imported: int = 0
    bad_rows: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    file_problem: str = ""  # a message when the file as a whole was refused
    import_id: str | None = None
    encoding: str = ""

    @property
    def ok(self) -> bool:
        return not self.file_problem and not self.bad_rows

    @property
    def problems_shown(self) -> list[RowProblem]:
        return self.problems[:MAX_REPORTED]


@dataclass(frozen=True)
class Row:
    number: str
    name: str
    name_kana: str | None
    birth_date: date
    sex: str
    postal_code: str | None
    address: str
    phone: str | None


# ---- reading the file ----------------------------------------------------------------------------
def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name). UTF-8 is tried first: Shift_JIS text is almost never valid UTF-8,
    while plain ASCII reads the same either way."""
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ("utf-8-sig",)
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RosterFileRejected("encoding")  # UTF-16 ("Unicode text" from a spreadsheet)
    else:
        candidates = ("utf-8", "cp932")
    for encoding in candidates:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise RosterFileRejected("encoding")


def _columns(header: list[str]) -> dict[str, int]:
    names = [normalize.strip_spaces(normalize.nfkc(h)) for h in header]
    # NFKC turns full-width ｶﾅ-style headers into their usual form; 氏名(カナ) → 氏名カナ.
    names = [re.sub(r"[()（）「」]", "", n) for n in names]
    known = {**REQUIRED, **OPTIONAL}
    unknown = [n for n in names if n and n not in known]
    if unknown:
        raise RosterFileRejected("unknown_columns", columns="、".join(unknown))
    fields = [known.get(n, "") for n in names]
    twice = sorted({COLUMN_LABELS[f] for f in fields if f and fields.count(f) > 1})
    if twice:
        raise RosterFileRejected("duplicate_columns", columns="、".join(twice))
    missing = [label for label, f in REQUIRED.items() if f not in fields]
    if missing:
        raise RosterFileRejected("missing_columns", columns="、".join(missing))
    return {f: i for i, f in enumerate(fields) if f}


def _text(value: str) -> str:
    """Stored as the city wrote it (full-width spaces and all), only trimmed."""
    text = value.replace("\x00", "").strip(" \t\u3000")
    return text if normalize.strip_spaces(text) else ""


class _Checker:
    def __init__(self, today: date, registered: set[str]):
        self.today = today
        self.registered = registered
        self.first_row_of: dict[str, int] = {}

    def row(self, row_number: int, values: dict[str, str], problems: list[RowProblem]) -> Row | None:
        before = len(problems)

        def bad(column: str, reason: str, other: int | None = None):
            problems.append(RowProblem(row_number, column, reason, other))

        number = None
        try:
            number = numbers.parse(values["number"])
        except numbers.InvalidReservationNumber as wrong:
            bad("number", "empty" if not values["number"].strip() else f"number_{wrong.reason}")
        if number is not None:
            if number in self.first_row_of:
                bad("number", "number_duplicate", self.first_row_of[number])
            else:
                self.first_row_of[number] = row_number
                if Applicant.number_key(number) in self.registered:
                    bad("number", "number_registered")
        texts = {}
        for column in ("name", "address"):
            texts[column] = _text(values[column])
            if not texts[column]:
                bad(column, "empty")
            elif len(texts[column]) > MAX_LENGTH[column]:
                bad(column, "too_long")
        birth = None
        if not values["birth_date"].strip():
            bad("birth_date", "empty")
        else:
            try:
                birth = dates.parse_birth_date(values["birth_date"], today=self.today)
            except dates.InvalidDate as wrong:
                bad("birth_date", f"date_{wrong.reason}")
        sex = SEX_VALUES.get(normalize.strip_spaces(_text(values["sex"])))
        if sex is None:
            bad("sex", "empty" if not values["sex"].strip() else "sex_unknown")
        kana = _text(values.get("name_kana", "")) or None
        if kana is not None and (
            len(kana) > MAX_LENGTH["name_kana"] or not normalize.is_kana(kana.replace(" ", ""))
        ):
            bad("name_kana", "kana_invalid")
        postal = normalize.digits(values.get("postal_code", "")).replace("〒", "") or None
        if postal is not None and not re.fullmatch(r"\d{7}", postal):
            bad("postal_code", "postal_invalid")
        phone = normalize.phone(values.get("phone", "")) or None
        if phone is not None and not (phone.startswith("0") and 10 <= len(phone) <= 11):
            bad("phone", "phone_invalid")
        if len(problems) > before:
            return None
        return Row(
            number=number,
            name=texts["name"],
            name_kana=kana,
            birth_date=birth,
            sex=sex,
            postal_code=f"{postal[:3]}-{postal[3:]}" if postal else None,
            address=texts["address"],
            phone=phone,
        )


def check(data: bytes, *, today: date | None = None, max_rows: int = MAX_ROWS) -> tuple[Report, list[Row]]:
    """Read and check every row; nothing is written. Raises RosterFileRejected for the file."""
    report = Report(file_sha256=hashlib.sha256(data).hexdigest())
    if len(data) > MAX_BYTES:
        raise RosterFileRejected("too_large", limit=MAX_BYTES // (1024 * 1024))
    if not data.strip():
        raise RosterFileRejected("empty_file")
    text, report.encoding = decode(data)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
        if header is None:
            raise RosterFileRejected("empty_file")
        columns = _columns(header)
        # Blind indexes only: which numbers exist is checked without decrypting anything.
        registered = set(db.session.scalars(select(Applicant.reservation_number_bidx)))
        checker = _Checker(today or dates.today(), registered)
        rows: list[Row] = []
        for record in reader:
            row_number = reader.line_num  # the file's line where the record ends (header = 1)
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            report.rows_total += 1
            if report.rows_total > max_rows:
                reason = "too_many_rows" if max_rows == MAX_ROWS else "too_many_rows_web"
                raise RosterFileRejected(reason, limit=max_rows)
            if len(record) != len(header):
                report.problems.append(RowProblem(row_number, "", "columns"))
                report.bad_rows += 1
                continue
            values = {name: record[index] for name, index in columns.items()}
            values.update({f: "" for f in ("name_kana", "postal_code", "phone") if f not in values})
            parsed = checker.row(row_number, values, report.problems)
            if parsed is None:
                report.bad_rows += 1
            else:
                rows.append(parsed)
    except csv.Error:
        raise RosterFileRejected("not_csv") from None
    if report.rows_total == 0:
        raise RosterFileRejected("no_rows")
    return report, rows


# ---- importing -------------------------------------------------------------------------------
class RosterImportFailed(RuntimeError):
    """Writing failed part-way (e.g. the same number registered meanwhile); nothing was imported."""


def import_file(
    data: bytes,
    *,
    staff: Staff | None,
    login_id: str = "",
    remote_addr: str = "",
    now: datetime | None = None,
    max_rows: int = MAX_ROWS,
) -> Report:
    """Check, then import every row or none. The caller commits (the RosterImport row and the audit
    entry are written whether the rows were imported or refused, for reconciliation)."""
    now = now or dates.now()
    try:
        report, rows = check(data, today=dates.tokyo(now).date(), max_rows=max_rows)
    except RosterFileRejected as refused:
        report = Report(file_sha256=hashlib.sha256(data).hexdigest(), file_problem=refused.message)
        rows = []
    if report.ok:
        try:
            with db.session.begin_nested():
                for row in rows:
                    applicants.register(
                        number=row.number,
                        name=row.name,
                        name_kana=row.name_kana,
                        birth_date=row.birth_date,
                        sex=row.sex,
                        postal_code=row.postal_code,
                        address=row.address,
                        email=None,
                        phone=row.phone,
                        source="roster",
                        now=now,
                    )
                report.rows_imported = len(rows)
        except IntegrityError:
            raise RosterImportFailed("a number was registered while the file was imported") from None
    entry = RosterImport(
        id=new_row_id(),
        imported_at=now,
        staff_id=staff.id if staff is not None else None,
        file_sha256=report.file_sha256,
        rows_total=report.rows_total,
        rows_imported=report.rows_imported,
        rows_rejected=report.bad_rows,
        status="imported" if report.ok else "rejected",
    )
    db.session.add(entry)
    db.session.flush()
    report.import_id = entry.id
    audit.record(
        AuditTag.ROSTER_IMPORTED,
        staff=staff,
        login_id=login_id,
        subject_type="roster_import",
        subject_id=entry.id,
        result="ok" if report.ok else "rejected",
        remote_addr=remote_addr,
        at=now,
        sha256=report.file_sha256,
        rows_total=report.rows_total,
        rows_imported=report.rows_imported,
        rows_rejected=report.bad_rows,
    )
    return report


def history(limit: int = 50) -> list[RosterImport]:
    return list(
        db.session.scalars(select(RosterImport).order_by(RosterImport.imported_at.desc()).limit(limit))
    )
