"""The export ledger and its encrypted files (R7.5): request → approval by another person → an
encrypted file opened with `madoguchi export open` → the ledger entry closed by return or destruction."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from madoguchi import dates, exports
from madoguchi.cli import main
from madoguchi.crypto import DecryptionError, WrongKeyError
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, ExportStatus
from madoguchi.printing.export_ledger import export_ledger
from tests.compliancesupport import NAME, PHONE, compliance_overrides, make_booking, pdf_text
from tests.factories import make_staff, make_venue

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")


@pytest.fixture
def overrides(overrides, tmp_path):
    return compliance_overrides(overrides, tmp_path)


def _request(requester, venue, **changes):
    values = dict(
        actor=requester,
        dataset="bookings",
        venue_id=venue.id,
        first_day=dates.today(),
        last_day=dates.today() + timedelta(days=7),
        purpose="区の窓口での本人確認用",
        destination="江東区 区民課",
    )
    values.update(changes)
    return exports.request_export(**values)


@pytest.fixture
def produced(ctx, tmp_path):
    """An approved and produced export of one venue's bookings (two bookings, one elsewhere)."""
    venue = make_venue()
    make_booking(venue)
    make_booking(venue, name="別人　二郎", phone="090-0000-1111")
    make_booking(make_venue(), name="他会場　三郎")
    requester = make_staff(("supervisor",))
    approver = make_staff(("administrator",))
    entry = _request(requester, venue)
    exports.decide(entry, actor=approver, approve=True)
    result = exports.produce(entry, actor=requester)
    db.session.commit()
    return entry, result, requester, approver


def test_self_approval_is_refused_whatever_the_roles(ctx):
    """R7.5: a person holding both roles cannot approve their own request; nothing changes."""
    venue = make_venue()
    both = make_staff(("supervisor", "administrator"))
    entry = _request(both, venue)
    with pytest.raises(exports.ExportRefused) as refused:
        exports.decide(entry, actor=both, approve=True)
    assert refused.value.reason == "self_approval"
    assert entry.status == ExportStatus.REQUESTED
    assert entry.decided_by is None


def test_no_file_before_approval_and_only_the_requester_produces(ctx):
    """R7.5: production needs an approval, and the approver does not carry the data out."""
    venue = make_venue()
    requester, approver = make_staff(("supervisor",)), make_staff(("administrator",))
    entry = _request(requester, venue)
    with pytest.raises(exports.ExportRefused, match="not_approved"):
        exports.produce(entry, actor=requester)
    exports.decide(entry, actor=approver, approve=True)
    with pytest.raises(exports.ExportRefused, match="not_requester"):
        exports.produce(entry, actor=approver)
    assert not exports.spool_path(entry).exists()


def test_rejected_request_cannot_be_produced(ctx):
    venue = make_venue()
    requester, approver = make_staff(("supervisor",)), make_staff(("administrator",))
    entry = _request(requester, venue)
    exports.decide(entry, actor=approver, approve=False, note="目的が不明確")
    assert entry.status == ExportStatus.REJECTED
    with pytest.raises(exports.ExportRefused):
        exports.produce(entry, actor=requester)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"dataset": "everything"}, "dataset"),
        ({"venue_id": None}, "venue"),
        ({"last_day": -1}, "period"),
        ({"last_day": 200}, "period_too_long"),
        ({"purpose": "  "}, "text"),
        ({"destination": "x" * 501}, "text"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(ctx, changes, reason):
    venue = make_venue()
    if "last_day" in changes:  # days from today (the app's clock is only known inside the test)
        changes = {"last_day": dates.today() + timedelta(days=changes["last_day"])}
    with pytest.raises(exports.ExportRefused) as refused:
        _request(make_staff(("supervisor",)), venue, **changes)
    assert refused.value.reason == reason


def test_the_file_opens_with_its_passphrase_and_the_ledger_has_every_field(produced, tmp_path):
    """R7.5: the file holds the venue's bookings with the minimal fields; the ledger entry records
    what, how many, who asked, who approved, why, where to, when, and the file's SHA-256."""
    entry, result, requester, approver = produced
    assert result.path.exists()
    assert NAME.encode() not in result.path.read_bytes()  # encrypted
    header = exports.read_header(result.path)
    assert header["dataset"] == "bookings" and header["record_count"] == 2
    assert header["request_id"] == entry.id and header["kdf"]["name"] == "scrypt"
    out = tmp_path / "opened"
    exports.open_file(result.path, result.passphrase, out)
    with open(out / "bookings.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["氏名"] for r in rows) == sorted([NAME, "別人　二郎"])
    assert {r["電話番号"] for r in rows} == {PHONE, "090-0000-1111"}
    assert set(rows[0]) == set(exports.BOOKING_COLUMNS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request_id"] == entry.id and manifest["files"] == {"bookings.csv": 2}

    assert entry.status == ExportStatus.PRODUCED
    assert entry.record_count == 2
    assert entry.requested_by == requester.id and entry.decided_by == approver.id
    assert entry.purpose == "区の窓口での本人確認用" and entry.destination == "江東区 区民課"
    assert entry.produced_at is not None
    from madoguchi.sealed import file_sha256

    assert entry.file_sha256 == file_sha256(result.path)
    # The passphrase is stored nowhere: not in the ledger, not in the audit log.
    dumped = json.dumps([a.details for a in db.session.scalars(select(AuditEntry))])
    assert result.passphrase not in dumped
    assert all(result.passphrase not in str(v) for v in vars(entry).values())


def test_closing_completes_the_entry_and_shreds_the_spool_copy(produced):
    entry, result, requester, _ = produced
    exports.close(entry, actor=requester, closure="destroyed", note="区で確認後に廃棄")
    assert entry.status == ExportStatus.CLOSED and entry.closure == "destroyed"
    assert entry.closed_at is not None and entry.closed_by == requester.id
    assert not result.path.exists()
    with pytest.raises(exports.ExportRefused):
        exports.close(entry, actor=requester, closure="returned")
    actions = [a.action for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    for tag in ("export:requested", "export:approved", "export:produced", "export:closed"):
        assert tag in actions


def test_a_wrong_passphrase_writes_nothing(produced, tmp_path):
    """R7.5: a clear error, and no partial output."""
    _, result, _, _ = produced
    out = tmp_path / "opened"
    with pytest.raises(WrongKeyError, match="passphrase is wrong"):
        exports.open_file(result.path, "WRONG-PASSPHRASE", out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export-")] == []


@pytest.mark.parametrize("where", ["body", "header", "truncate", "drop_last_chunk"])
def test_a_tampered_file_is_refused_and_writes_nothing(produced, tmp_path, where):
    """R7.5: an edited body, an edited header (e.g. the record count) or a cut file is refused."""
    _, result, _, _ = produced
    data = bytearray(result.path.read_bytes())
    if where == "body":
        data[-20] ^= 0x01
    elif where == "header":
        data = bytearray(bytes(data).replace(b'"record_count": 2', b'"record_count": 3', 1))
    elif where == "truncate":
        data = data[:-5]
    else:
        first_line_end = data.index(b"\n", data.index(b"\n") + 1) + 1
        data = data[:first_line_end]
    bad = tmp_path / "bad.mdgx"
    bad.write_bytes(bytes(data))
    out = tmp_path / "opened"
    with pytest.raises(DecryptionError):
        exports.open_file(bad, result.passphrase, out)
    assert not out.exists()


def test_cli_opens_the_file_without_database_or_keys(produced, tmp_path):
    """R7.5: `madoguchi export open FILE --out DIR` needs only the passphrase."""
    _, result, _, _ = produced
    copy = tmp_path / "received.mdgx"
    shutil.copy(result.path, copy)
    secret = tmp_path / "passphrase.txt"
    secret.write_text(result.passphrase.lower() + "\n")  # typed by hand: case does not matter
    runner = CliRunner()
    info = ScriptInfo(create_app=lambda: pytest.fail("export open must not need the app"))
    ok = runner.invoke(
        main, ["export", "open", str(copy), "--out", str(tmp_path / "o")], input=None, obj=info
    )
    assert ok.exit_code != 0  # no passphrase given on an empty stdin: refused, nothing written
    assert not (tmp_path / "o").exists()
    ok = runner.invoke(
        main,
        ["export", "open", str(copy), "--out", str(tmp_path / "o"), "--passphrase-file", str(secret)],
        obj=info,
    )
    assert ok.exit_code == 0, ok.output
    assert "2 records" in ok.output
    assert (tmp_path / "o" / "bookings.csv").exists()
    secret.write_text("nope\n")
    bad = runner.invoke(
        main,
        ["export", "open", str(copy), "--out", str(tmp_path / "p"), "--passphrase-file", str(secret)],
        obj=info,
    )
    assert bad.exit_code == 1
    assert "passphrase is wrong" in bad.output and "nothing was written" in bad.output
    assert not (tmp_path / "p").exists()


def test_the_ledger_prints_for_the_city(produced, tmp_path):
    """R7.5: the printed 持ち出し管理簿 names what, how many, who, why, where, when."""
    entry, _, requester, approver = produced
    names = exports.staff_names([entry])
    lines = exports.ledger_lines([entry])
    text = pdf_text(
        export_ledger(lines, period="全期間", printed_at=dates.now(), city_name="江東区"), tmp_path
    )
    for expected in (
        "個人情報の持ち出し管理簿",
        "区の窓口での本人確認用",
        "江東区 区民課",
        names[approver.id],
        "承認者",
    ):
        assert expected in text.replace("\n", ""), expected


def test_spool_path_is_inside_the_configured_folder(produced, app):
    entry, result, _, _ = produced
    assert Path(app.config["EXPORT_SPOOL_DIR"]) in result.path.parents
