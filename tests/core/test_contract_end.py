"""End of contract (R8.2): one command returns everything (encrypted), destroys the database, the
files and the keys, and writes the final deletion report — after which no personal value can be
read from any file left under the instance folder or the backup folder."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from madoguchi import backup, exports, notify
from madoguchi.cli import main
from madoguchi.crypto import KeyRing
from madoguchi.extensions import db
from tests.compliancesupport import ADDRESS, EMAIL, NAME, PHONE, files_containing, make_booking, needles
from tests.conftest import ON_POSTGRES, base_overrides
from tests.factories import make_staff

pytestmark = [
    pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed"),
    # The proof scans the files of an SQLite instance folder; PostgreSQL keeps its data in the
    # server's own directory, which the destruction path truncates and vacuums (docs/compliance.md).
    pytest.mark.skipif(ON_POSTGRES, reason="scans an SQLite instance folder's files"),
]


@pytest.fixture
def layout(tmp_path, schema_url):
    """A production-like instance folder: database, key file, outboxes and export spool in it."""
    instance = tmp_path / "instance"
    instance.mkdir()
    database = instance / "madoguchi.sqlite3"
    shutil.copy(schema_url.removeprefix("sqlite:///"), database)
    key_file = instance / "keys.json"
    KeyRing.generate().save(key_file)
    overrides = base_overrides(tmp_path, f"sqlite:///{database}")
    overrides.update(
        {
            "MADOGUCHI_KEY_FILE": str(key_file),
            "MAIL_OUTBOX_DIR": str(instance / "outbox"),
            "SMS_OUTBOX_DIR": str(instance / "outbox" / "sms"),
            "EXPORT_SPOOL_DIR": str(instance / "exports"),
            "EXPORT_SCRYPT_N": 2**10,
        }
    )
    return tmp_path, instance, overrides


def test_contract_end_leaves_no_readable_personal_value(layout):
    tmp, instance, overrides = layout
    from reservation import create_app

    app = create_app(overrides)
    backups, returned = tmp / "backups", tmp / "return"
    with app.app_context():
        made, applicant = make_booking()
        number = applicant.reservation_number
        requester, approver = make_staff(("supervisor",), login_id="chief"), make_staff(("administrator",))
        entry = exports.request_export(
            actor=requester,
            dataset="bookings",
            venue_id=applicant.venue_id,
            first_day=made.slot.starts_at.date(),
            last_day=made.slot.starts_at.date(),
            purpose="確認",
            destination="区",
        )
        exports.decide(entry, actor=approver, approve=True)
        exports.produce(entry, actor=requester)
        db.session.commit()
        notify.deliver(limit=100)  # e-mails land in the outbox folder in plain text
        backup.make(backups / "nightly.mdgb")
    values = needles(NAME, PHONE, EMAIL, ADDRESS, number)
    assert files_containing(instance, values), "the set-up should have put plain values on disk"

    command = ["contract-end", "--return-to", str(returned), "--responsible", "chief"]
    command += ["--witness", "江東区 区民課 立会者", "--backup-dir", str(backups)]
    result = CliRunner().invoke(
        main,
        command,
        obj=ScriptInfo(create_app=lambda: app),
    )
    assert result.exit_code != 0 and "--confirm" in result.output  # nothing happens without it
    assert (instance / "madoguchi.sqlite3").exists()

    result = CliRunner().invoke(
        main,
        [*command, "--confirm"],
        obj=ScriptInfo(create_app=lambda: app),
    )
    assert result.exit_code == 0, result.output
    passphrase = next(
        line.rsplit(": ", 1)[1] for line in result.output.splitlines() if line.startswith("passphrase")
    )

    # Nothing readable is left: every byte of every file under the instance and backup folders.
    left = [p for p in instance.rglob("*") if p.is_file()]
    assert not (instance / "madoguchi.sqlite3").exists() and not (instance / "keys.json").exists()
    assert files_containing(instance, values) == [], left
    assert files_containing(backups, values) == []
    assert list(backups.iterdir())  # the backup is still there, but its key is gone
    # The return folder holds the encrypted file and the report: no plain value either.
    assert files_containing(returned, values) == []

    # The return file holds everything, for the city, with the passphrase printed once.
    opened = tmp / "opened"
    exports.open_file(next(returned.glob("*.mdgx")), passphrase, opened)
    applicants_csv = (opened / "applicants.csv").read_text(encoding="utf-8-sig")
    assert NAME in applicants_csv and number in applicants_csv
    assert "password_hash" not in (opened / "staff.csv").read_text(encoding="utf-8-sig")
    assert (opened / "export_requests.csv").exists() and (opened / "audit_entries.csv").exists()

    # The final deletion report, outside the (gone) database.
    report = json.loads(next(returned.glob("deletion-report-*.json")).read_text())
    kinds = [r["kind"] for r in report["records"]]
    assert {"return_export", "database", "files", "keys", "backups"} <= set(kinds)
    assert all(r["witness"] == "江東区 区民課 立会者" for r in report["records"] if r["kind"] == "keys")
    pdf = next(returned.glob("deletion-report-*.pdf"))
    text = "".join(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    for label in ("削除した情報の項目", "媒体", "数量", "方法", "日時", "責任者", "立会者", "暗号鍵"):
        assert label in text, label
