"""The 漏えい等 incident register (R8.3, R7.4): recorded, edited, printed; its text encrypted in the
database; every read and change audited without the text; auditors read, only administrators write."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from madoguchi.extensions import db
from madoguchi.permissions import Role

from .conftest import audit_entries, error_text, location, seed_staff, signed_in

SECRET = "名簿の写しを誤送付した件（秘）"
FORM = {
    "content": SECRET,
    "affected_count": "12",
    "place": "事務センター",
    "circumstances": "FAX番号の誤り",
    "actions": "回収し、送信前の二人確認を導入",
    "occurred_on": "2025-12-01",
    "discovered_at": "2025-12-02T10:30",
    "reported_to_city_at": "2025-12-02T15:00",
    "reported_to_commission_at": "",
    "status": "open",
}


def _client(app, role: Role):
    person = seed_staff(app, (role.value,))
    client = app.test_client()
    signed_in(client, person)
    return client


@pytest.fixture
def admin_client(admin_app):
    return _client(admin_app, Role.ADMINISTRATOR)


def _create(client) -> str:
    response = client.post("/incidents/new", data=FORM)
    assert response.status_code == 302, error_text(response)
    return location(response).rsplit("/", 1)[-1]


def test_an_incident_is_recorded_encrypted_and_audited(admin_app, admin_client):
    """R8.3: content, count, place, circumstances, actions and dates are kept; the text is
    ciphertext in the database; the audit entry has the id, not the text."""
    incident_id = _create(admin_client)
    page = admin_client.get(f"/incidents/{incident_id}").get_data(as_text=True)
    for value in (SECRET, "12", "事務センター", "FAX番号の誤り", "二人確認", "2025年12月2日", "未報告"):
        assert value in page
    with admin_app.app_context():
        raw = db.session.execute(
            text("SELECT content_ct, place_ct, circumstances_ct, actions_ct FROM incidents")
        ).one()
    assert not any(word in " ".join(raw) for word in ("名簿", "事務センター", "FAX", "二人"))
    created = audit_entries(admin_app, "incident:created")
    assert [e["subject_id"] for e in created] == [incident_id]
    viewed = audit_entries(admin_app, "incident:viewed")
    assert [e["subject_id"] for e in viewed] == [incident_id]
    assert not any("名簿" in e["details"] for e in created + viewed)


def test_editing_reports_and_closing_is_audited_by_field_name(admin_app, admin_client):
    incident_id = _create(admin_client)
    assert admin_client.get(f"/incidents/{incident_id}/edit").status_code == 200
    changed = {**FORM, "reported_to_commission_at": "2025-12-03T09:00", "status": "closed", "actions": "完了"}
    response = admin_client.post(f"/incidents/{incident_id}/edit", data=changed)
    assert response.status_code == 302
    entry = audit_entries(admin_app, "incident:updated")[-1]
    details = json.loads(entry["details"])
    assert set(details["fields"]) == {"reported_to_commission_at", "status", "actions"}
    assert "完了" not in json.dumps(details["fields"])
    listing = admin_client.get("/incidents").get_data(as_text=True)
    assert "完了" in listing and "2025年12月3日" in listing


@pytest.mark.parametrize(
    ("change", "field_message"),
    [
        ({"content": " "}, "入力してください"),
        ({"discovered_at": ""}, "発見日時を入力してください"),
        ({"discovered_at": "2999-01-01T00:00"}, "未来の日時は入力できません"),
        ({"occurred_on": "2025-12-05"}, "発生日は発見日以前"),
        ({"reported_to_city_at": "2025-12-01T00:00"}, "報告日時は発見日時以後"),
        ({"affected_count": "-3"}, "0以上の整数"),
        ({"status": "lost"}, "選"),
        ({"content": "あ" * 4001}, "4000文字以内"),
    ],
)
def test_wrong_values_get_a_message_and_nothing_is_saved(admin_app, admin_client, change, field_message):
    response = admin_client.post("/incidents/new", data={**FORM, **change})
    assert response.status_code == 200
    assert field_message in response.get_data(as_text=True)
    assert audit_entries(admin_app, "incident:created") == []


def test_auditors_read_and_print_but_do_not_write(admin_app, admin_client):
    """R7.2: an auditor reads the register and the print view (audited), and is refused changes."""
    incident_id = _create(admin_client)
    auditor = _client(admin_app, Role.AUDITOR)
    assert SECRET[:10] in auditor.get("/incidents").get_data(as_text=True)
    printed = auditor.get(f"/incidents/{incident_id}/print")
    assert printed.status_code == 200 and "漏えい等事案報告" in printed.get_data(as_text=True)
    assert auditor.get("/incidents/new").status_code == 403
    assert auditor.post(f"/incidents/{incident_id}/edit", data=FORM).status_code == 403
    assert [e["subject_id"] for e in audit_entries(admin_app, "incident:printed")] == [incident_id]
    for role in (Role.OPERATOR, Role.VENUE_STAFF, Role.LOGISTICS):
        assert _client(admin_app, role).get("/incidents").status_code == 403


def test_an_unknown_incident_is_404(admin_client):
    assert admin_client.get("/incidents/nope").status_code == 404
    assert admin_client.post("/incidents/nope/edit", data=FORM).status_code == 404
