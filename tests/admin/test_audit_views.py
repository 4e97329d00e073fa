"""The access and operation log in the back office (R7.4): listing, analysis, tamper check, and
booking views recorded without personal values."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from madoguchi import numbers
from madoguchi.extensions import db
from madoguchi.permissions import Role

from .conftest import audit_entries, seed_staff, seed_world, signed_in


@pytest.fixture
def auditor(admin_app, client):
    person = seed_staff(admin_app, (Role.AUDITOR.value,), name="監査花子")
    signed_in(client, person)
    return person


def test_the_auditor_sees_the_log_and_viewing_it_is_audited(admin_app, client, auditor):
    """R7.4: /audit lists the entries (who, what, result); the view itself is recorded."""
    other = admin_app.test_client()
    other.post("/signin", data={"login_id": "intruder", "password": "guess-guess-guess"})
    response = client.get("/audit")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", html, re.S)
    shown = {int(entry_id) for entry_id, _ in rows}
    assert shown == {e["id"] for e in audit_entries(admin_app) if e["action"] != "audit:viewed"}
    assert "intruder" in html and "auth:signin_failed" in html and "auth:signed_in" in html
    [viewed] = audit_entries(admin_app, "audit:viewed")
    assert viewed["staff_id"] == auditor.id and json.loads(viewed["details"])["count"] == len(rows)

    filtered = client.get("/audit", query_string={"action": "auth:signin_failed"}).get_data(as_text=True)
    assert "intruder" in filtered and "auth:signed_in<" not in filtered
    by_login = client.get("/audit", query_string={"login_id": auditor.login_id}).get_data(as_text=True)
    assert "intruder" not in by_login
    assert len(audit_entries(admin_app, "audit:viewed")) == 3


def test_the_report_flags_a_burst_of_failed_signins(admin_app, client, auditor):
    """R7.4: repeated failed sign-ins are flagged in /audit/report; the report view is audited."""
    quiet = client.get("/audit/report")
    assert "failed_signins" not in quiet.get_data(as_text=True)
    burst = admin_app.config["AUDIT_FAILED_SIGNIN_BURST"]
    attacker = admin_app.test_client()
    for _ in range(burst):
        attacker.post(
            "/signin",
            data={"login_id": "ghost.user", "password": "wrong-wrong-wrong"},
            environ_base={"REMOTE_ADDR": "198.51.100.7"},
        )
    response = client.get("/audit/report")
    assert response.status_code == 200
    flags = re.findall(
        r'<tr class="flag flag-(\w+)"><td>\w+</td><td>([^<]*)</td>(.*?)</tr>',
        response.get_data(as_text=True),
        re.S,
    )
    failed = {(subject, rest) for kind, subject, rest in flags if kind == "failed_signins"}
    subjects = {subject for subject, _ in failed}
    assert {"ghost.user", "198.51.100.7"} <= subjects
    assert all(f"<td>{burst}</td>" in rest for subject, rest in failed if subject == "ghost.user")
    reported = [json.loads(e["details"])["flags"] for e in audit_entries(admin_app, "audit:report_viewed")]
    assert reported[0] < reported[1] and reported[1] >= 2


def _tamper(app, entry_id: int) -> None:
    with app.app_context(), db.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        conn.execute(
            text("UPDATE audit_entries SET details = :d WHERE id = :id"),
            {"d": '{"reason": "nothing to see"}', "id": entry_id},
        )
        if postgres:
            conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))


def test_verify_says_intact_then_names_the_altered_entry(admin_app, client, auditor):
    """R7.4: /audit/verify finds the chain intact; after a raw UPDATE of one entry it says the
    chain is broken and names that entry."""
    admin_app.test_client().post("/signin", data={"login_id": "someone", "password": "not-right-at-all"})
    intact = client.get("/audit/verify")
    assert intact.status_code == 200
    assert "異常はありません" in intact.get_data(as_text=True)
    [failed] = audit_entries(admin_app, "auth:signin_failed")
    _tamper(admin_app, failed["id"])
    broken = client.get("/audit/verify").get_data(as_text=True)
    assert "記録の連鎖が途切れています" in broken
    assert f"記録番号 {failed['id']}" in broken
    assert f"entry {failed['id']} was altered" in broken
    verified = [json.loads(e["details"]) for e in audit_entries(admin_app, "audit:verified")]
    assert [(v["ok"], v["first_bad_id"]) for v in verified] == [(True, None), (False, failed["id"])]


def test_the_append_only_trigger_refuses_updates_on_postgresql(admin_app):
    """R7.4: on PostgreSQL the table itself refuses an UPDATE (the chain catches it elsewhere)."""
    seed_staff(admin_app)
    with admin_app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the trigger exists on PostgreSQL only")
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("UPDATE audit_entries SET details = '{}'"))


def test_a_booking_view_is_recorded_without_personal_values(admin_app):
    """R7.4: venue staff viewing a booking writes booking:viewed with the booking id, and no column
    of any entry carries the applicant's name, number or phone."""
    world = seed_world(admin_app)
    person = seed_staff(admin_app, (Role.VENUE_STAFF.value,), venue_id=world.venue_a)
    client = admin_app.test_client()
    signed_in(client, person)
    page = client.get(f"/bookings/{world.booking_a}")
    assert page.status_code == 200
    assert world.applicant_a["name"] in page.get_data(as_text=True)  # the page does show it
    client.get(f"/venues/{world.venue_a}/bookings")
    client.get(f"/bookings/{world.booking_b}")

    viewed = audit_entries(admin_app, "booking:viewed")
    assert [(e["staff_id"], e["subject_type"], e["subject_id"], e["result"]) for e in viewed] == [
        (person.id, "booking", world.booking_a, "ok"),
        (person.id, "booking", world.booking_b, "denied"),
    ]
    [listed] = audit_entries(admin_app, "booking:listed")
    assert listed["subject_id"] == str(world.venue_a)

    applicant = world.applicant_a
    phone_digits = re.sub(r"\D", "", applicant["phone"])
    markers = {
        applicant["name"],
        applicant["name"].replace("\u3000", ""),
        applicant["name_kana"],
        applicant["number"],
        numbers.display(applicant["number"]),
        applicant["phone"],
        phone_digits,
        applicant["email"],
        applicant["address"],
    }
    for entry in audit_entries(admin_app):
        for column, value in entry.items():
            for marker in markers:
                assert marker not in str(value), f"entry {entry['id']} {column} holds a personal value"
