"""Staff sign-in (R7.1): two factors, replay, recovery codes, enrolment, back-off and lock-out with
their audit trail, rate limits, duty periods (R7.3), session lifetimes and the own password."""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta

import pyotp
from sqlalchemy import select

from madoguchi import auth, dates
from madoguchi.extensions import db
from madoguchi.models import Staff, StaffSession
from madoguchi.permissions import Role

from .conftest import (
    COOKIE,
    advance,
    audit_entries,
    clock,
    error_text,
    fresh_code,
    location,
    seed_staff,
    seed_world,
    set_now,
    sign_in_password,
    signed_in,
)

SAME_MESSAGE = "職員IDまたはパスワードが正しくないか、現在このアカウントは使用できません。"
BAD_CODE = "確認コードが正しくありません。"


def _sessions(app, person):
    with app.app_context():
        return [
            (s.ended_at is not None, s.ended_reason, s.mfa_passed)
            for s in db.session.scalars(select(StaffSession).where(StaffSession.staff_id == person.id))
        ]


def _reached_home(client) -> bool:
    response = client.get("/")
    return response.status_code == 200 and "<h1>ホーム</h1>" in response.get_data(as_text=True)


def _sent_to_signin(response) -> bool:
    return response.status_code == 302 and location(response).split("?")[0] == "/signin"


# ---- two factors ------------------------------------------------------------------------------
def test_password_and_totp_sign_in_and_land_on_home(admin_app, client):
    """R7.1: ID + password, then the TOTP code, lands on the home page; the sign-in is audited."""
    person = seed_staff(admin_app)
    first = sign_in_password(client, person)
    assert first.status_code == 302 and location(first) == "/signin/code"
    page = client.get("/signin/code")
    assert page.status_code == 200 and "確認コードを入力してください" in page.get_data(as_text=True)
    second = client.post("/signin/code", data={"code": fresh_code(admin_app, person)})
    assert second.status_code == 302 and location(second) == "/"
    assert _reached_home(client)
    assert person.name in client.get("/").get_data(as_text=True)
    [entry] = audit_entries(admin_app, "auth:signed_in")
    assert entry["staff_id"] == person.id and entry["result"] == "ok"


def test_password_alone_reaches_no_personal_data(admin_app, client):
    """R7.1: after the password step only, a booking page (personal data) redirects to the code page."""
    world = seed_world(admin_app)
    person = seed_staff(admin_app, (Role.OPERATOR.value,))
    assert sign_in_password(client, person).status_code == 302
    for url in (
        f"/bookings/{world.booking_a}",
        "/",
        "/account/password",
        f"/venues/{world.venue_a}/bookings",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert location(response) == "/signin/code", url
        assert world.applicant_a["name"] not in response.get_data(as_text=True)
    assert audit_entries(admin_app, "booking:viewed") == []
    # The same person with the second factor does see it (the redirect was the missing factor).
    client.post("/signin/code", data={"code": fresh_code(admin_app, person)})
    assert client.get(f"/bookings/{world.booking_a}").status_code == 200


def test_a_totp_code_cannot_be_used_twice(admin_app):
    """R7.1: a code accepted once is refused the second time (replay), even on another browser."""
    person = seed_staff(admin_app)
    code = fresh_code(admin_app, person)
    first, second = admin_app.test_client(), admin_app.test_client()
    sign_in_password(first, person)
    sign_in_password(second, person)
    assert first.post("/signin/code", data={"code": code}).status_code == 302
    replay = second.post("/signin/code", data={"code": code})
    assert replay.status_code == 401
    assert error_text(replay) == BAD_CODE
    assert location(second.get("/")) == "/signin/code"  # still pending
    assert _reached_home(first)
    # Signing out and in again with the same code is refused too.
    first.post("/signout")
    sign_in_password(first, person)
    assert first.post("/signin/code", data={"code": code}).status_code == 401
    failed = audit_entries(admin_app, "auth:mfa_failed")
    assert len(failed) == 2 and all(e["staff_id"] == person.id for e in failed)


def test_a_wrong_totp_code_is_refused(admin_app, client):
    """R7.1: a code from another secret does not pass the second step."""
    person = seed_staff(admin_app)
    sign_in_password(client, person)
    wrong = pyotp.TOTP(pyotp.random_base32()).at(clock(admin_app).now())
    response = client.post("/signin/code", data={"code": wrong})
    assert response.status_code == 401 and error_text(response) == BAD_CODE
    assert location(client.get("/")) == "/signin/code"


def test_recovery_codes_work_once_each(admin_app):
    """R7.1: each recovery code replaces the TOTP code once; a used one is refused."""
    person = seed_staff(admin_app)
    with admin_app.app_context():
        codes = auth.new_recovery_codes(db.session.get(Staff, person.id))
        db.session.commit()
    assert len(codes) == 10 and len(set(codes)) == 10

    client = admin_app.test_client()
    sign_in_password(client, person)
    assert client.post("/signin/code", data={"code": codes[0]}).status_code == 302
    assert _reached_home(client)
    client.post("/signout")

    sign_in_password(client, person)
    reused = client.post("/signin/code", data={"code": codes[0]})
    assert reused.status_code == 401 and error_text(reused) == BAD_CODE
    # Typed in lower case and without the hyphen, the next one still works.
    assert client.post("/signin/code", data={"code": codes[1].lower().replace("-", "")}).status_code == 302
    assert _reached_home(client)
    used = audit_entries(admin_app, "auth:recovery_code_used")
    assert len(used) == 2
    assert not any(code.replace("-", "") in json.dumps(e, default=str) for e in used for code in codes)


# ---- enrolment --------------------------------------------------------------------------------
def test_enrolment_shows_a_qr_and_the_secret_then_recovery_codes(admin_app, client):
    """R7.1: a staff member without TOTP enrols: SVG QR + secret; a wrong code is refused; the right
    one completes the sign-in and shows 10 recovery codes."""
    person = seed_staff(admin_app, enrolled=False)
    first = sign_in_password(client, person)
    assert first.status_code == 302 and location(first) == "/signin/enrol"
    assert location(client.get("/")) == "/signin/code"  # not signed in yet
    assert location(client.get("/signin/code")) == "/signin/enrol"

    page = client.get("/signin/enrol")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'<img src="data:image/svg\+xml[^"]*"', html)
    secret = re.search(r'<code class="secret" id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    assert len(secret) >= 16
    # The same secret is shown again until enrolment is done.
    assert secret in client.get("/signin/enrol").get_data(as_text=True)

    wrong = client.post(
        "/signin/enrol", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"}
    )
    assert wrong.status_code == 401 and error_text(wrong) == BAD_CODE
    assert secret in wrong.get_data(as_text=True)

    right = client.post("/signin/enrol", data={"code": pyotp.TOTP(secret).at(clock(admin_app).now())})
    assert right.status_code == 200
    codes = re.findall(
        r"<li><code>([A-Z0-9]{5}-[A-Z0-9]{5})</code></li>",
        re.search(r'<ul class="codes" id="recovery-codes">(.*?)</ul>', right.get_data(as_text=True)).group(1),
    )
    assert len(codes) == 10 and len(set(codes)) == 10
    assert _reached_home(client)
    with admin_app.app_context():
        staff = db.session.get(Staff, person.id)
        assert staff.totp_secret == secret and staff.totp_enrolled_at is not None
    assert [e["staff_id"] for e in audit_entries(admin_app, "auth:mfa_enrolled")] == [person.id]
    assert len(audit_entries(admin_app, "auth:mfa_failed")) == 1


# ---- failures, back-off, lock-out ---------------------------------------------------------------
def test_unknown_id_and_wrong_password_give_the_same_message(admin_app, client):
    """R7.1: the form does not reveal whether an ID exists."""
    person = seed_staff(admin_app)
    unknown = client.post("/signin", data={"login_id": "nobody", "password": person.password})
    wrong = client.post("/signin", data={"login_id": person.login_id, "password": "not-the-password-1"})
    assert unknown.status_code == wrong.status_code == 401
    assert error_text(unknown) == error_text(wrong) == SAME_MESSAGE
    assert client.get_cookie(COOKIE) is None
    reasons = [json.loads(e["details"])["reason"] for e in audit_entries(admin_app, "auth:signin_failed")]
    assert reasons == ["unknown_id", "bad_password"]


def test_backoff_refuses_even_the_right_password(admin_app, client):
    """R7.1: after STAFF_SIGNIN_BACKOFF_AFTER failures, the next try within the back-off window is
    refused with a 「秒待って」 message even with the right password; after the window it works."""
    person = seed_staff(admin_app)
    after = admin_app.config["STAFF_SIGNIN_BACKOFF_AFTER"]
    for _ in range(after):
        response = sign_in_password(client, person, "wrong-password-xyz")
        assert error_text(response) == SAME_MESSAGE
    refused = sign_in_password(client, person)
    assert refused.status_code == 401
    assert "秒待ってから再度お試しください" in error_text(refused)
    assert client.get_cookie(COOKIE) is None
    advance(admin_app, timedelta(seconds=5))
    assert sign_in_password(client, person).status_code == 302
    reasons = [json.loads(e["details"])["reason"] for e in audit_entries(admin_app, "auth:signin_failed")]
    assert reasons == ["bad_password"] * after + ["backoff"]


def test_lockout_after_repeated_failures_is_audited_without_passwords(admin_app, client):
    """R7.1: after STAFF_SIGNIN_LOCK_AFTER failures the account is locked (the right password is
    refused); each failure and the lock are audited, and no password is in the log."""
    person = seed_staff(admin_app)
    lock_after = admin_app.config["STAFF_SIGNIN_LOCK_AFTER"]
    tried = [f"wrong-guess-{n}-secret" for n in range(lock_after)]
    for password in tried:
        advance(admin_app, timedelta(seconds=301))  # past any back-off window (max 300 s)
        response = sign_in_password(client, person, password)
        assert response.status_code == 401
    advance(admin_app, timedelta(seconds=301))
    locked = sign_in_password(client, person)
    assert locked.status_code == 401
    assert "ロックされています" in error_text(locked)
    assert client.get_cookie(COOKIE) is None

    failed = audit_entries(admin_app, "auth:signin_failed")
    reasons = [json.loads(e["details"])["reason"] for e in failed]
    assert reasons == ["bad_password"] * lock_after + ["locked"]
    assert [json.loads(e["details"]).get("attempt") for e in failed[:lock_after]] == list(
        range(1, lock_after + 1)
    )
    [lock] = audit_entries(admin_app, "auth:account_locked")
    assert lock["staff_id"] == person.id and json.loads(lock["details"])["attempts"] == lock_after
    everything = json.dumps(audit_entries(admin_app), default=str, ensure_ascii=False)
    for password in [*tried, person.password]:
        assert password not in everything

    # The lock lasts STAFF_SIGNIN_LOCK_MINUTES; afterwards the right password works again.
    advance(admin_app, timedelta(minutes=admin_app.config["STAFF_SIGNIN_LOCK_MINUTES"] + 1))
    signed_in(client, person)
    assert _reached_home(client)


def test_signin_is_rate_limited_per_address(overrides, make_admin_app):
    """R7.1: the per-address limit on the sign-in form answers 429."""
    overrides["RATELIMIT_ENABLED"] = True
    overrides["RATELIMIT_STAFF_SIGNIN"] = "3 per minute"
    app = make_admin_app()
    client = app.test_client()
    statuses = [
        client.post("/signin", data={"login_id": f"nobody{n}", "password": "x" * 12}).status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    # Another address is not affected.
    other = client.post(
        "/signin", data={"login_id": "nobody", "password": "x" * 12}, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert other.status_code == 401


# ---- duty periods (R7.3) ------------------------------------------------------------------------
def test_sign_in_is_refused_outside_the_duty_period(admin_app, client):
    """R7.3: an account whose period ended yesterday, or starts tomorrow, cannot sign in."""
    today = clock(admin_app).today_tokyo()
    ended = seed_staff(admin_app, duty_start=today - timedelta(days=30), duty_end=today - timedelta(days=1))
    future = seed_staff(admin_app, duty_start=today + timedelta(days=1), duty_end=today + timedelta(days=30))
    for person in (ended, future):
        response = sign_in_password(client, person)
        assert response.status_code == 401
        assert error_text(response) == SAME_MESSAGE
        assert client.get_cookie(COOKIE) is None
    reasons = [json.loads(e["details"])["reason"] for e in audit_entries(admin_app, "auth:signin_failed")]
    assert reasons == ["off_duty", "off_duty"]


def test_a_live_session_ends_when_the_duty_period_ends(admin_app, client):
    """R7.3: signed in at 23:55 on the last day of duty, the session is over at 00:05."""
    last_day = clock(admin_app).today_tokyo() + timedelta(days=1)
    person = seed_staff(admin_app, duty_end=last_day)
    set_now(admin_app, datetime.combine(last_day, time(23, 55), tzinfo=dates.TOKYO))
    signed_in(client, person)
    assert _reached_home(client)
    advance(admin_app, timedelta(minutes=10))
    assert _sent_to_signin(client.get("/"))
    assert _sessions(admin_app, person) == [(True, "off_duty", True)]


# ---- sessions ---------------------------------------------------------------------------------
def test_an_idle_session_ends_after_15_minutes(admin_app, client):
    """R7.1: 14 idle minutes are fine; after 15 idle minutes the next request goes to sign-in."""
    person = seed_staff(admin_app)
    signed_in(client, person)
    advance(admin_app, timedelta(minutes=14))
    assert _reached_home(client)
    advance(admin_app, timedelta(minutes=16))
    response = client.get("/")
    assert _sent_to_signin(response)
    assert _sessions(admin_app, person) == [(True, "idle", True)]
    assert [json.loads(e["details"])["reason"] for e in audit_entries(admin_app, "auth:session_ended")] == [
        "idle"
    ]


def test_a_session_ends_after_8_hours_even_with_activity(admin_app, client):
    """R7.1: a request every 10 minutes keeps the session alive only up to the 8-hour limit."""
    person = seed_staff(admin_app)
    signed_in(client, person)
    for _ in range(47):  # 470 minutes
        advance(admin_app, timedelta(minutes=10))
        assert client.get("/").status_code == 200
    advance(admin_app, timedelta(minutes=11))  # 481 minutes, 11 of them idle
    assert _sent_to_signin(client.get("/"))
    assert _sessions(admin_app, person) == [(True, "max_age", True)]


def test_sign_out_ends_the_session_and_the_old_cookie_is_dead(admin_app, client):
    """R7.1: sign-out ends the server-side session at once; replaying its cookie does not work."""
    person = seed_staff(admin_app)
    signed_in(client, person)
    token = client.get_cookie(COOKIE).value
    assert _reached_home(client)
    response = client.post("/signout")
    assert response.status_code == 302 and location(response) == "/signin"
    assert client.get_cookie(COOKIE) is None
    assert _sent_to_signin(client.get("/"))

    replay = admin_app.test_client()
    replay.set_cookie(COOKIE, token)
    assert _sent_to_signin(replay.get("/"))
    assert _sent_to_signin(replay.get("/account/password"))
    assert _sessions(admin_app, person) == [(True, "signed_out", True)]
    assert [e["staff_id"] for e in audit_entries(admin_app, "auth:signed_out")] == [person.id]


def test_deactivating_an_account_in_the_registry_ends_its_sessions(admin_app):
    """R7.1/R7.3: an administrator unticks 「有効」; the person's live session ends at once."""
    admin = seed_staff(admin_app, (Role.ADMINISTRATOR.value,))
    person = seed_staff(admin_app, (Role.OPERATOR.value,), affiliation="コールセンター")
    theirs, mine = admin_app.test_client(), admin_app.test_client()
    signed_in(theirs, person)
    token = theirs.get_cookie(COOKIE).value
    assert _reached_home(theirs)
    signed_in(mine, admin)
    with admin_app.app_context():
        staff = db.session.get(Staff, person.id)
        form = {
            "login_id": staff.login_id,
            "name": staff.name,
            "affiliation": staff.affiliation,
            "roles": sorted(staff.role_set),
            "venue_id": "",
            "duty_start": staff.duty_start.isoformat(),
            "duty_end": staff.duty_end.isoformat(),
            # "active" left out: the box is unticked
        }
    response = mine.post(f"/staff/{person.id}", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _sent_to_signin(theirs.get("/"))
    assert _sessions(admin_app, person) == [(True, "registry_change", True)]
    again = admin_app.test_client()
    again.set_cookie(COOKIE, token)
    assert _sent_to_signin(again.get("/"))
    assert sign_in_password(again, person).status_code == 401
    [update] = audit_entries(admin_app, "staff:updated")
    assert json.loads(update["details"])["changes"] == {"active": ["True", "False"]}


# ---- own password -------------------------------------------------------------------------------
def test_password_change_refuses_weak_passwords_and_audits_a_good_one(admin_app, client):
    """R7.1: too short or common passwords are refused with Japanese messages; a good one works,
    is audited (without the password) and is the one that signs in next time."""
    person = seed_staff(admin_app)
    signed_in(client, person)

    def change(new, current=person.password):
        return client.post("/account/password", data={"current": current, "new": new, "confirm": new})

    short = change("Ab3$short").get_data(as_text=True)
    assert "パスワードは12文字以上にしてください。" in short
    common = change("password1234").get_data(as_text=True)
    assert "よく使われる言葉や推測されやすい並びが含まれています。" in common
    assert "パスワードは12文字以上" not in common
    wrong_current = change("violet-harbor-quasar-7781", current="not-my-password").get_data(as_text=True)
    assert "現在のパスワードが正しくありません。" in wrong_current
    assert audit_entries(admin_app, "auth:password_changed") == []

    good = "violet-harbor-quasar-7781"
    done = change(good)
    assert done.status_code == 200 and "パスワードを変更しました。" in done.get_data(as_text=True)
    [entry] = audit_entries(admin_app, "auth:password_changed")
    assert entry["staff_id"] == person.id
    everything = json.dumps(audit_entries(admin_app), default=str, ensure_ascii=False)
    assert good not in everything and person.password not in everything

    client.post("/signout")
    assert sign_in_password(client, person).status_code == 401  # the old password no longer works
    assert sign_in_password(client, person, good).status_code == 302
