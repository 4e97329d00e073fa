"""The staff registry (R7.3) and its audit trail (R7.4): create, edit, print, MFA reset."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from madoguchi.extensions import db
from madoguchi.models import RecoveryCode, Staff
from madoguchi.permissions import ROLE_LABELS, Role

from .conftest import (
    audit_entries,
    clock,
    location,
    seed_staff,
    seed_world,
    sign_in_password,
    signed_in,
)

NEW_PASSWORD = "marble-tundra-falcon-4419"


@pytest.fixture
def admin(admin_app, client):
    person = seed_staff(admin_app, (Role.ADMINISTRATOR.value,), name="管理者一郎", affiliation="情報政策課")
    signed_in(client, person)
    return person


def _form(today, **changes) -> dict:
    values = {
        "login_id": "suzuki.hanako",
        "name": "鈴木　花子",
        "affiliation": "区民課",
        "roles": ["operator"],
        "venue_id": "",
        "duty_start": today.isoformat(),
        "duty_end": (today + timedelta(days=180)).isoformat(),
        "active": "y",
        "password": NEW_PASSWORD,
    }
    values.update(changes)
    return values


def _errors(response) -> str:
    return " ".join(re.findall(r'class="error"[^>]*>(.*?)<', response.get_data(as_text=True)))


def _staff(app, login_id):
    with app.app_context():
        staff = db.session.scalars(select(Staff).where(Staff.login_id == login_id)).one_or_none()
        if staff is None:
            return None
        return {c.name: getattr(staff, c.name) for c in Staff.__table__.columns}


def test_an_administrator_registers_a_staff_member(admin_app, client, admin):
    """R7.3: /staff/new records name, affiliation, roles and the period; staff:created is audited."""
    today = clock(admin_app).today_tokyo()
    assert client.get("/staff/new").status_code == 200
    response = client.post("/staff/new", data=_form(today, roles=["operator", "supervisor"]))
    assert response.status_code == 302
    saved = _staff(admin_app, "suzuki.hanako")
    assert location(response) == f"/staff/{saved['id']}"
    assert saved["name"] == "鈴木　花子" and saved["affiliation"] == "区民課"
    assert saved["roles"] == "operator,supervisor" and saved["venue_id"] is None
    assert saved["duty_start"] == today and saved["duty_end"] == today + timedelta(days=180)
    assert saved["active"] is True and saved["totp_secret_ct"] is None

    [created] = [e for e in audit_entries(admin_app, "staff:created") if e["staff_id"] == admin.id]
    assert (created["subject_type"], created["subject_id"]) == ("staff", str(saved["id"]))
    details = json.loads(created["details"])
    assert details["roles"] == "operator,supervisor"
    assert details["duty_end"] == (today + timedelta(days=180)).isoformat()
    assert NEW_PASSWORD not in json.dumps(audit_entries(admin_app), default=str)

    # The new person signs in with the initial password and is asked to enrol a second factor.
    other = admin_app.test_client()
    first = other.post("/signin", data={"login_id": "suzuki.hanako", "password": NEW_PASSWORD})
    assert location(first) == "/signin/enrol"


def test_a_venue_staff_member_needs_a_venue(admin_app, client, admin):
    """R7.3: venue staff are tied to one venue — saving one without a venue is refused."""
    today = clock(admin_app).today_tokyo()
    response = client.post("/staff/new", data=_form(today, roles=["venue_staff"], venue_id=""))
    assert response.status_code == 200
    assert "会場担当には担当会場を1つ選んでください。" in _errors(response)
    assert _staff(admin_app, "suzuki.hanako") is None
    assert [e for e in audit_entries(admin_app, "staff:created") if e["staff_id"] == admin.id] == []


def test_a_venue_staff_member_with_a_venue_is_registered(admin_app, client, admin):
    """R7.3: with a venue chosen, venue staff are registered with that venue."""
    world = seed_world(admin_app)
    today = clock(admin_app).today_tokyo()
    response = client.post(
        "/staff/new", data=_form(today, roles=["venue_staff"], venue_id=str(world.venue_b))
    )
    assert response.status_code == 302
    assert _staff(admin_app, "suzuki.hanako")["venue_id"] == world.venue_b


def test_a_duty_period_that_ends_before_it_starts_is_refused(admin_app, client, admin):
    """R7.3: the end of the period of duty may not lie before its start."""
    today = clock(admin_app).today_tokyo()
    response = client.post("/staff/new", data=_form(today, duty_end=(today - timedelta(days=1)).isoformat()))
    assert response.status_code == 200
    assert "終了予定日は開始日以降にしてください。" in _errors(response)
    assert _staff(admin_app, "suzuki.hanako") is None


def test_registration_refuses_taken_ids_weak_passwords_and_missing_fields(admin_app, client, admin):
    """R7.3: one person, one account: a login id already in use, a weak password, or no roles are refused."""
    today = clock(admin_app).today_tokyo()
    taken = client.post("/staff/new", data=_form(today, login_id=admin.login_id))
    assert "この職員IDはすでに使われています。" in _errors(taken)
    weak = client.post("/staff/new", data=_form(today, password="password1234"))
    assert "よく使われる言葉" in _errors(weak)
    no_roles = client.post("/staff/new", data=_form(today, roles=[]))
    assert "役割を1つ以上選んでください。" in _errors(no_roles)
    no_name = client.post("/staff/new", data=_form(today, name=""))
    assert "氏名を入力してください。" in _errors(no_name)
    assert _staff(admin_app, "suzuki.hanako") is None
    assert [e for e in audit_entries(admin_app, "staff:created") if e["staff_id"] == admin.id] == []


def test_editing_a_staff_member_audits_the_changed_fields(admin_app, client, admin):
    """R7.3/R7.4: each edit writes staff:updated naming exactly the fields that changed; the login
    id never changes."""
    today = clock(admin_app).today_tokyo()
    client.post("/staff/new", data=_form(today))
    saved = _staff(admin_app, "suzuki.hanako")
    url = f"/staff/{saved['id']}"
    page = client.get(url).get_data(as_text=True)
    assert "鈴木　花子" in page and "区民課" in page

    new_end = today + timedelta(days=90)
    edit = _form(
        today,
        login_id="someone.else",
        affiliation="戸籍住民課",
        roles=["operator", "fax_intake"],
        duty_end=new_end.isoformat(),
        password="",
    )
    assert client.post(url, data=edit).status_code == 302
    after = _staff(admin_app, "suzuki.hanako")
    assert after is not None and after["id"] == saved["id"]
    assert after["affiliation"] == "戸籍住民課" and after["roles"] == "fax_intake,operator"
    assert after["duty_end"] == new_end and after["name"] == "鈴木　花子"
    assert after["password_hash"] == saved["password_hash"]

    [update] = audit_entries(admin_app, "staff:updated")
    assert update["staff_id"] == admin.id and update["subject_id"] == str(saved["id"])
    changes = json.loads(update["details"])["changes"]
    assert set(changes) == {"affiliation", "roles", "duty_end"}
    assert changes["affiliation"] == ["区民課", "戸籍住民課"]
    assert changes["duty_end"] == [(today + timedelta(days=180)).isoformat(), new_end.isoformat()]

    # Saving again without changes writes nothing; a password reset is named but not recorded.
    assert client.post(url, data=edit).status_code == 302
    assert len(audit_entries(admin_app, "staff:updated")) == 1
    client.post(url, data={**edit, "password": "copper-willow-nebula-5120"})
    changes = [json.loads(e["details"])["changes"] for e in audit_entries(admin_app, "staff:updated")]
    assert changes[-1] == {"password": ["", "reset"]}
    assert "copper-willow-nebula-5120" not in json.dumps(
        audit_entries(admin_app), default=str, ensure_ascii=False
    )


def test_unknown_staff_ids_are_404(admin_app, client, admin):
    """R7.3: editing someone who does not exist is a 404, not an error."""
    assert client.get("/staff/999999").status_code == 404
    assert client.post("/staff/999999/reset-mfa").status_code == 404


def test_the_printed_registry_lists_everyone_and_is_audited(admin_app, client, admin):
    """R7.3: /staff/print shows name, affiliation, period and role labels for every staff member;
    printing it writes staff:registry_printed."""
    world = seed_world(admin_app)
    today = clock(admin_app).today_tokyo()
    venue = seed_staff(
        admin_app,
        (Role.VENUE_STAFF.value,),
        venue_id=world.venue_a,
        name="会場花子",
        affiliation="会場運営委託",
        duty_start=today - timedelta(days=5),
        duty_end=today + timedelta(days=60),
    )
    auditor = seed_staff(admin_app, (Role.AUDITOR.value, Role.SUPERVISOR.value), name="監査次郎")
    response = client.get("/staff/print")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = re.findall(r"<tr>(<td>.*?)</tr>", html, re.S)
    with admin_app.app_context():
        everyone = db.session.scalars(select(Staff)).all()
        assert len(rows) == len(everyone) == 4
        for staff in everyone:
            [row] = [r for r in rows if f"<td>{staff.login_id}</td>" in r]
            assert f"<td>{staff.name}</td>" in row
            assert f"<td>{staff.affiliation}</td>" in row
            assert f"{staff.duty_start.isoformat()} 〜 {staff.duty_end.isoformat()}" in row
            for role in staff.role_set:
                assert ROLE_LABELS[Role(role)] in row
    [venue_row] = [r for r in rows if venue.login_id in r]
    assert "会場担当" in venue_row and "会場運営委託" in venue_row
    [auditor_row] = [r for r in rows if auditor.login_id in r]
    assert "監査担当" in auditor_row and "スーパーバイザー" in auditor_row
    assert f"人数: {len(rows)}" in html
    [printed] = audit_entries(admin_app, "staff:registry_printed")
    assert printed["staff_id"] == admin.id and json.loads(printed["details"])["count"] == 4


def test_an_auditor_may_read_but_not_change_the_registry(admin_app):
    """R7.2/R7.3: the auditor reads the registry (list and print) but cannot change it."""
    auditor = seed_staff(admin_app, (Role.AUDITOR.value,))
    client = admin_app.test_client()
    signed_in(client, auditor)
    listing = client.get("/staff")
    assert listing.status_code == 200 and auditor.login_id in listing.get_data(as_text=True)
    assert "/staff/new" not in listing.get_data(as_text=True)
    assert client.get("/staff/print").status_code == 200
    assert client.post("/staff/new", data=_form(clock(admin_app).today_tokyo())).status_code == 403
    assert _staff(admin_app, "suzuki.hanako") is None


def test_mfa_reset_makes_the_person_enrol_again(admin_app, client, admin):
    """R7.1/R7.3: after an administrator resets someone's second factor, their sessions end, their
    recovery codes are gone, and their next sign-in goes to enrolment."""
    from madoguchi import auth

    person = seed_staff(admin_app, (Role.OPERATOR.value,))
    with admin_app.app_context():
        auth.new_recovery_codes(db.session.get(Staff, person.id))
        db.session.commit()
    theirs = admin_app.test_client()
    signed_in(theirs, person)
    assert theirs.get("/").status_code == 200

    response = client.post(f"/staff/{person.id}/reset-mfa")
    assert response.status_code == 302 and location(response) == f"/staff/{person.id}"
    assert location(theirs.get("/")).split("?")[0] == "/signin"
    with admin_app.app_context():
        staff = db.session.get(Staff, person.id)
        assert staff.totp_secret_ct is None and staff.totp_enrolled_at is None
        assert db.session.scalars(select(RecoveryCode).where(RecoveryCode.staff_id == person.id)).all() == []
    again = sign_in_password(theirs, person)
    assert location(again) == "/signin/enrol"
    assert location(theirs.get("/signin/code")) == "/signin/enrol"
    [reset] = audit_entries(admin_app, "staff:mfa_reset")
    assert reset["staff_id"] == admin.id and reset["subject_id"] == str(person.id)
    ended = audit_entries(admin_app, "auth:session_ended")
    assert [json.loads(e["details"])["reason"] for e in ended] == ["mfa_reset"]
