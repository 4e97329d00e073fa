"""The city's applicant list (R3.1, R2.2, R8): UTF-8 with or without BOM and Shift_JIS; every bad
row reported by number and reason, never by value; all rows or none; values encrypted; the import's
counts and SHA-256 recorded; the same through `madoguchi roster import`."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import pytest
from sqlalchemy import func, select, text

from madoguchi import demo, numbers, roster
from madoguchi.cli_admin import roster_group
from madoguchi.extensions import db
from madoguchi.models import Applicant, RosterImport
from madoguchi.permissions import Role
from tests.factories import make_applicant, new_number

from .conftest import audit_entries, seed_staff, signed_in

HEADER = "予約管理番号,住所,氏名,氏名カナ,生年月日,性別,郵便番号,電話番号"


def good_row(number: str | None = None, **values) -> str:
    row = {
        "number": number or new_number(),
        "address": "東京都江東区東陽4丁目11番28号",
        "name": "名簿　一郎",
        "kana": "メイボ　イチロウ",
        "birth": "1980-04-01",
        "sex": "男",
        "postal": "135-8383",
        "phone": "090-1111-2222",
    }
    row.update(values)
    return ",".join(row[k] for k in ("number", "address", "name", "kana", "birth", "sex", "postal", "phone"))


def csv_bytes(rows: list[str], encoding: str = "utf-8", header: str = HEADER) -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


@pytest.fixture
def admin_client(admin_app):
    with admin_app.app_context():
        for spec in demo.KOTO_VENUES:
            demo.ensure_venue(spec)
        db.session.commit()
    person = seed_staff(admin_app, (Role.ADMINISTRATOR.value,))
    client = admin_app.test_client()
    signed_in(client, person)
    return client


def upload(client, data: bytes, filename: str = "roster.csv"):
    return client.post(
        "/roster", data={"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data"
    )


def applicant_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Applicant))


def imports(app) -> list[tuple]:
    with app.app_context():
        return [
            (r.status, r.rows_total, r.rows_imported, r.rows_rejected, r.file_sha256)
            for r in db.session.scalars(select(RosterImport).order_by(RosterImport.imported_at))
        ]


def test_a_good_utf8_file_imports_encrypted_with_a_record(admin_app, admin_client):
    """R2.2, R8: three rows imported; the database holds ciphertext; RosterImport has the counts and
    the file's SHA-256; the audit entry has counts only."""
    number = new_number()
    data = csv_bytes(
        [good_row(number, name="暗号　花子"), good_row(), good_row(sex="2", birth="平成2年5月6日")]
    )
    response = upload(admin_client, data)
    assert response.status_code == 200
    assert "3 件を取り込みました" in response.get_data(as_text=True)
    assert imports(admin_app) == [("imported", 3, 3, 0, hashlib.sha256(data).hexdigest())]
    with admin_app.app_context():
        raw = db.session.execute(text("SELECT name_ct, address_ct, phone_ct, source FROM applicants")).all()
        flat = " ".join(str(v) for row in raw for v in row)
        assert "暗号" not in flat and "東陽" not in flat and "09011112222" not in flat
        assert {row[3] for row in raw} == {"roster"}
        found = db.session.scalars(
            select(Applicant).where(Applicant.reservation_number_bidx == Applicant.number_key(number))
        ).one()
        assert (found.name, found.sex, found.postal_code, found.phone) == (
            "暗号　花子",
            "男",
            "135-8383",
            "09011112222",
        )
        assert found.venue is not None and found.venue.code == "honchosha"
    entry = audit_entries(admin_app, "roster:imported")[-1]
    details = json.loads(entry["details"])
    assert (entry["result"], details["rows_imported"]) == ("ok", 3)
    assert "暗号" not in entry["details"] and number not in entry["details"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932", "shift_jis"])
def test_bom_and_shift_jis_files_import(admin_app, admin_client, encoding):
    """Files from municipal systems: UTF-8 with a BOM, Shift_JIS/CP932 (incl. 髙 in CP932)."""
    name = "髙橋　次郎" if encoding == "cp932" else "高橋　次郎"
    data = csv_bytes([good_row(name=name, birth="昭和55年4月1日"), good_row(birth="S55.4.1")], encoding)
    response = upload(admin_client, data)
    assert "2 件を取り込みました" in response.get_data(as_text=True), response.get_data(as_text=True)
    with admin_app.app_context():
        names = {a.name for a in db.session.scalars(select(Applicant))}
        births = {a.birth_date.isoformat() for a in db.session.scalars(select(Applicant))}
    assert name in names and births == {"1980-04-01"}


def test_bad_rows_are_all_reported_and_nothing_is_imported(admin_app, admin_client, caplog):
    """R8: every bad row by number and reason (Japanese); no value on the page, in the log or in the
    audit entry; not one row imported; the refused import is recorded."""
    caplog.set_level(logging.DEBUG)
    valid = numbers.make("12345678901")
    wrong_check = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    with admin_app.app_context():
        registered = make_applicant().reservation_number
        db.session.commit()
    duplicate = new_number()
    rows = [
        good_row(),  # row 2: fine
        good_row(wrong_check),  # 3: check digit
        good_row("12345"),  # 4: length
        good_row(duplicate),  # 5
        good_row(duplicate),  # 6: duplicate of 5
        good_row(registered),  # 7: already registered
        good_row(birth="1980-02-30"),  # 8: no such day
        good_row(birth="昭和65年1月1日"),  # 9: era ended in 64
        good_row(birth="よくわからない"),  # 10: unreadable
        good_row(sex="不明"),  # 11
        good_row(name="", address=" "),  # 12: two empty fields
        good_row(phone="12-34"),  # 13
        "1,2,3",  # 14: wrong column count
    ]
    data = csv_bytes(rows)
    response = upload(admin_client, data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "11 行に誤りがあるため、何も取り込んでいません" in body
    expected = {
        3: "チェックデジット",
        4: "12桁の数字ではありません",
        6: "5 行目と重複",
        7: "すでに登録されています",
        8: "存在しない日付",
        9: "元号と年が合いません",
        10: "読み取れません",
        11: "性別が",
        12: "氏名が空欄",
        13: "電話番号の形式",
        14: "列の数",
    }
    for row, reason in expected.items():
        assert f'<td class="count">{row}</td>' in body, row
        assert reason in body, reason
    assert "住所が空欄" in body
    for value in (wrong_check, duplicate, registered, "よくわからない", "不明", "12-34", "1980-02-30"):
        assert value not in body
        assert value not in caplog.text
    assert applicant_count(admin_app) == 1  # only the one registered before
    assert imports(admin_app) == [("rejected", 13, 0, 11, hashlib.sha256(data).hexdigest())]
    entry = audit_entries(admin_app, "roster:imported")[-1]
    assert entry["result"] == "rejected"
    assert not any(v in entry["details"] for v in (wrong_check, duplicate, registered))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (csv_bytes([good_row()], header="予約管理番号,住所,氏名,生年月日"), "必須の列がありません: 性別"),
        (csv_bytes([good_row() + ",x"], header=HEADER + ",個人番号"), "取り込めない列があります: 個人番号"),
        ("予約管理番号,住所\n".encode("utf-16"), "文字コードを判別できません"),
        (b"\x81\x20\x81\x20", "文字コードを判別できません"),
        (b"", "ファイルが空です"),
        (csv_bytes([]), "データ行がありません"),
        (csv_bytes(['"unterminated']), "CSV として読み取れません"),
    ],
)
def test_files_that_cannot_be_read_are_refused_with_a_message(admin_app, admin_client, data, message):
    response = upload(admin_client, data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert applicant_count(admin_app) == 0
    assert [r[0] for r in imports(admin_app)] == ["rejected"]


def test_no_file_and_too_many_rows_for_the_screen(admin_app, admin_client, monkeypatch):
    response = admin_client.post("/roster", data={}, content_type="multipart/form-data")
    assert response.status_code == 200 and "CSVファイルを選んでください" in response.get_data(as_text=True)
    monkeypatch.setattr(roster, "WEB_MAX_ROWS", 2)
    response = upload(admin_client, csv_bytes([good_row(), good_row(), good_row()]))
    assert "madoguchi roster import" in response.get_data(as_text=True)
    assert applicant_count(admin_app) == 0


def test_a_file_too_large_is_refused_before_it_is_read(admin_app, admin_client, monkeypatch):
    monkeypatch.setattr(roster, "MAX_BYTES", 100)
    response = upload(admin_client, csv_bytes([good_row(), good_row()]))
    assert "ファイルが大きすぎます" in response.get_data(as_text=True)
    assert applicant_count(admin_app) == 0


def test_only_administrators_import(admin_app):
    """R7.2: the import writes personal data; operators, auditors and venue staff are refused."""
    for role in (Role.OPERATOR, Role.AUDITOR, Role.SUPERVISOR, Role.LOGISTICS):
        person = seed_staff(admin_app, (role.value,))
        client = admin_app.test_client()
        signed_in(client, person)
        assert upload(client, csv_bytes([good_row()])).status_code == 403
    assert applicant_count(admin_app) == 0


def test_the_cli_imports_and_refuses_like_the_screen(admin_app, tmp_path):
    """`madoguchi roster import FILE`: exit 0 and counts; a bad file exits 1 with row numbers, no values."""
    runner = admin_app.test_cli_runner()
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes([good_row(), good_row()], "cp932"))
    result = runner.invoke(roster_group, ["import", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported 2 of 2 rows" in result.output
    bad = tmp_path / "bad.csv"
    bad_number = "123456789012"
    bad.write_bytes(csv_bytes([good_row(), good_row(bad_number, sex="?")]))
    result = runner.invoke(roster_group, ["import", str(bad)])
    assert result.exit_code == 1
    assert (
        "3行目" in result.output and "チェックデジット" in result.output and bad_number not in result.output
    )
    assert applicant_count(admin_app) == 2
    assert [r[0] for r in imports(admin_app)] == ["imported", "rejected"]
