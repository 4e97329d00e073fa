"""The export ledger and deletion records in the back office (R7.5, R8.1): the whole flow through
the pages by two people, self-approval refused with a Japanese message, the passphrase shown once,
the printed ledger and deletion report."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import select

from madoguchi import dates, exports, retention
from madoguchi.extensions import db
from madoguchi.models import ExportRequest, ExportStatus
from tests.compliancesupport import NAME, compliance_overrides, pdf_text

from .conftest import audit_entries, location, seed_staff, seed_world, signed_in

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")


@pytest.fixture
def overrides(overrides, tmp_path):
    return compliance_overrides(overrides, tmp_path)


def _client(app, roles):
    person = seed_staff(app, roles)
    client = app.test_client()
    signed_in(client, person)
    return client, person


def _request(client, world):
    with client.application.app_context():
        today = dates.today()
    return client.post(
        "/exports/new",
        data={
            "venue_id": world.venue_a,
            "first_day": today.isoformat(),
            "last_day": (today + timedelta(days=7)).isoformat(),
            "purpose": "区の確認用",
            "destination": "江東区 区民課",
        },
    )


def _entry(app) -> ExportRequest:
    with app.app_context():
        entry = db.session.scalars(select(ExportRequest)).one()
        db.session.expunge(entry)
        return entry


def test_the_whole_flow_through_the_pages(admin_app, tmp_path):
    """R7.5: request → another person approves → the requester produces and sees the passphrase
    once → downloads → records the destruction; the file opens with the passphrase."""
    world = seed_world(admin_app)
    requester, _ = _client(admin_app, ("supervisor",))
    approver, _ = _client(admin_app, ("administrator",))

    response = _request(requester, world)
    assert response.status_code == 302, response.get_data(as_text=True)
    entry = _entry(admin_app)
    assert location(response).endswith(f"/exports/{entry.id}")

    # The requester cannot approve their own request, whatever they try.
    page = requester.get(f"/exports/{entry.id}").get_data(as_text=True)
    assert "自分の申請は承認できません" in page
    refused = requester.post(f"/exports/{entry.id}/decide", data={"decision": "approve"})
    assert refused.status_code == 409
    assert "自分の申請は承認できません" in refused.get_data(as_text=True)
    assert _entry(admin_app).status == ExportStatus.REQUESTED

    assert approver.post(f"/exports/{entry.id}/decide", data={"decision": "approve"}).status_code == 302
    assert approver.post(f"/exports/{entry.id}/produce").status_code == 403  # administrators do not produce

    produced = requester.post(f"/exports/{entry.id}/produce")
    assert produced.status_code == 200
    assert produced.headers["Cache-Control"] == "no-store"
    body = produced.get_data(as_text=True)
    passphrase = body.split('<p class="passphrase"><strong>')[1].split("</strong>")[0]
    assert len(passphrase) == 35
    assert NAME not in body
    # Shown once: the detail page never shows it again.
    assert passphrase not in requester.get(f"/exports/{entry.id}").get_data(as_text=True)

    download = requester.get(f"/exports/{entry.id}/file")
    assert download.status_code == 200 and download.headers["Cache-Control"] == "no-store"
    assert approver.get(f"/exports/{entry.id}/file").status_code == 403
    received = tmp_path / "received.mdgx"
    received.write_bytes(download.data)
    exports.open_file(received, passphrase, tmp_path / "opened")
    opened = (tmp_path / "opened" / "bookings.csv").read_text(encoding="utf-8-sig")
    assert world.applicant_a["number"] in opened and world.applicant_a["name"] in opened
    assert world.applicant_b["number"] not in opened  # another venue

    bad_close = requester.post(f"/exports/{entry.id}/close", data={"closure": "lost"})
    assert bad_close.status_code == 400
    assert requester.post(f"/exports/{entry.id}/close", data={"closure": "destroyed"}).status_code == 302
    done = _entry(admin_app)
    assert done.status == ExportStatus.CLOSED and done.record_count == 1
    assert requester.get(f"/exports/{entry.id}/file").status_code == 404
    tags = [e["action"] for e in audit_entries(admin_app) if e["action"].startswith("export:")]
    for tag in (
        "export:requested",
        "export:approved",
        "export:produced",
        "export:downloaded",
        "export:closed",
    ):
        assert tag in tags


def test_bad_input_gets_a_japanese_message_not_a_500(admin_app):
    world = seed_world(admin_app)
    requester, _ = _client(admin_app, ("supervisor",))
    empty = requester.post("/exports/new", data={})
    assert empty.status_code == 200
    assert "会場を選んでください" in empty.get_data(as_text=True)
    garbage = requester.post(
        "/exports/new",
        data={
            "venue_id": "abc",
            "first_day": "x",
            "last_day": "2026-13-40",
            "purpose": "a",
            "destination": "b",
        },
    )
    assert garbage.status_code in (200, 400)
    unknown_venue = requester.post(
        "/exports/new",
        data={
            "venue_id": "999999",
            "first_day": "2026-01-01",
            "last_day": "2026-01-02",
            "purpose": "a",
            "destination": "b",
        },
    )
    assert unknown_venue.status_code == 200
    assert "会場" in unknown_venue.get_data(as_text=True)
    with admin_app.app_context():
        assert db.session.scalars(select(ExportRequest)).all() == []
    assert world is not None


def test_the_ledger_prints_as_a_pdf(admin_app, tmp_path):
    world = seed_world(admin_app)
    requester, _ = _client(admin_app, ("supervisor",))
    _request(requester, world)
    auditor, _ = _client(admin_app, ("auditor",))
    page = auditor.get("/exports")
    assert page.status_code == 200 and "江東区 区民課" in page.get_data(as_text=True)
    pdf = auditor.get("/exports/print")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    text = "".join(pdf_text(pdf.data, tmp_path).split())
    assert "個人情報の持ち出し管理簿" in text and "区の確認用" in text
    assert "export:ledger_printed" in [e["action"] for e in audit_entries(admin_app)]


def test_deletion_records_screen_and_report(admin_app, tmp_path):
    """R8.1: the screen lists the records and prints the report for a period."""
    with admin_app.app_context():
        from madoguchi import deletion

        deletion.record(
            kind="bookings",
            medium="データベース（SQLite）",
            count=3,
            method="行の削除（DELETE）",
            witness_name="立会　一郎",
            details={"items": retention.KINDS["bookings"].items},
        )
        db.session.commit()
        today = dates.today().isoformat()
    auditor, _ = _client(admin_app, ("auditor",))
    page = auditor.get("/deletions")
    assert page.status_code == 200
    assert "立会　一郎" in page.get_data(as_text=True)
    bad = auditor.get("/deletions?since=garbage")
    assert bad.status_code == 200
    pdf = auditor.get(f"/deletions/report?since={today}&until={today}")
    assert pdf.status_code == 200 and pdf.headers["Cache-Control"] == "no-store"
    text = "".join(pdf_text(pdf.data, tmp_path).split())
    for label in ("削除した情報の項目", "媒体", "数量", "方法", "日時", "責任者", "立会者", "立会一郎"):
        assert label in text, label
    operator, _ = _client(admin_app, ("operator",))
    assert operator.get("/deletions").status_code == 403
