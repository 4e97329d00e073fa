"""Incoming calls on the console (R4.2) and the call log (R4.3): the pop-up feed, taking a call,
the caller's bookings, the log's category and note, statistics for supervisors."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from madoguchi import calls, dates
from madoguchi.extensions import db
from madoguchi.models import Call
from tests.staffsupport import audit_entries, seed_staff, set_now, signed_in

from .conftest import incoming_call, seed_caller

CALL_SID = "CA" + "1" * 32


def _call_id(app, sid=CALL_SID) -> str:
    with app.app_context():
        return db.session.scalars(select(Call.id).where(Call.call_sid == sid)).one()


def test_the_feed_shows_a_new_call_without_personal_values(cc_app, operator_client, caller):
    """R4.2, standard 4: the console learns of the call (id, time, how many match) — no number."""
    assert operator_client.get("/calls/waiting.json").get_json() == {"calls": []}
    incoming_call(operator_client)
    feed = operator_client.get("/calls/waiting.json")
    (entry,) = feed.get_json()["calls"]
    assert entry["id"] == _call_id(cc_app) and entry["matches"] == 1 and entry["withheld"] is False
    body = feed.get_data(as_text=True)
    assert "1111" not in body and "太郎" not in body


def test_the_event_stream_pushes_the_call(cc_app, operator_client, caller):
    """R4.2: server-sent events carry the waiting calls; the stream ends by itself so the browser
    reconnects (no worker held for long)."""
    incoming_call(operator_client)
    response = operator_client.get("/calls/stream")
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)  # ends after CALL_STREAM_SECONDS
    assert "retry: 1000" in body
    assert "event: calls" in body and _call_id(cc_app) in body


def test_the_feed_does_not_keep_a_session_alive(cc_app, client, operator):
    """R7.1: polling is not activity — an unattended console still times out, and the feed then
    answers 401 for the script instead of a sign-in page."""
    signed_in(client, operator, cc_app)
    with cc_app.app_context():
        start = dates.now()
    for minutes in (5, 10, 14):
        set_now(cc_app, start + timedelta(minutes=minutes))
        assert client.get("/calls/waiting.json").status_code == 200
    set_now(cc_app, start + timedelta(minutes=16))
    assert client.get("/calls/waiting.json").status_code == 401


def test_only_one_operator_takes_a_call(cc_app, operator_client, operator, client, caller):
    """R4.2: 応答 by the first operator; the second is told someone else answered."""
    incoming_call(operator_client)
    call_id = _call_id(cc_app)
    taken = operator_client.post(f"/calls/{call_id}/take")
    assert taken.status_code == 302 and taken.headers["Location"].endswith(f"/calls/{call_id}")
    second = cc_app.test_client()
    signed_in(second, seed_staff(cc_app, ("operator",)), cc_app)
    late = second.post(f"/calls/{call_id}/take", follow_redirects=True)
    assert "別のオペレーターが応答しました" in late.get_data(as_text=True)
    assert second.get(f"/calls/{call_id}").status_code == 404  # not theirs
    with cc_app.app_context():
        assert db.session.get(Call, call_id).operator_id == operator.id
    assert operator_client.get("/calls/waiting.json").get_json() == {"calls": []}


def test_the_call_screen_pops_up_the_callers_bookings_audited(cc_app, operator_client, operator, caller):
    """R4.2, R7.3: the caller's applicants and bookings, found by the number's blind index; the
    look-up is an audited search."""
    incoming_call(operator_client)
    call_id = _call_id(cc_app)
    operator_client.post(f"/calls/{call_id}/take")
    page = operator_client.get(f"/calls/{call_id}").get_data(as_text=True)
    assert "江東　太郎" in page and "予約済み" in page
    (search,) = audit_entries(cc_app, "booking:searched")
    assert '"kind": "caller"' in search["details"] and '"results": 1' in search["details"]
    assert [e["subject_id"] for e in audit_entries(cc_app, "call:taken")] == [call_id]


def test_a_call_is_logged_with_category_note_and_booking(cc_app, operator_client, operator, caller):
    """R4.3: category ア〜オ, the note (encrypted at rest) and the booking it was about."""
    incoming_call(operator_client)
    call_id = _call_id(cc_app)
    operator_client.post(f"/calls/{call_id}/take")
    missing = operator_client.post(f"/calls/{call_id}", data={"note": "x"})
    assert missing.status_code == 422 and "区分を選んでください" in missing.get_data(as_text=True)
    about = f"{caller.applicant_id}:{caller.booking_id}"
    saved = operator_client.post(
        f"/calls/{call_id}",
        data={"category": "issuance", "note": "持ち物の確認。保険証の可否。", "about": about},
    )
    assert saved.status_code == 302
    with cc_app.app_context():
        call = db.session.get(Call, call_id)
        assert (call.category, call.booking_id, call.applicant_id) == (
            "issuance",
            caller.booking_id,
            caller.applicant_id,
        )
        assert call.note == "持ち物の確認。保険証の可否。" and call.logged_by == operator.id
        raw = db.session.execute(text("SELECT note_ct FROM calls")).scalar_one()
        assert "保険証" not in raw
    (logged,) = audit_entries(cc_app, "call:logged")
    assert '"category": "issuance"' in logged["details"] and "保険証" not in logged["details"]


def test_a_forged_booking_link_is_refused(cc_app, operator_client, caller):
    """Standard 3: only the bookings offered on the screen can be linked; nothing is saved."""
    other = seed_caller(cc_app, phone="03-1234-5678")
    incoming_call(operator_client)
    call_id = _call_id(cc_app)
    operator_client.post(f"/calls/{call_id}/take")
    forged = f"{other.applicant_id}:{other.booking_id}"
    response = operator_client.post(f"/calls/{call_id}", data={"category": "other", "about": forged})
    assert response.status_code == 422
    with cc_app.app_context():
        assert db.session.get(Call, call_id).category is None


def test_a_call_outside_twilio_is_logged_the_same_way(cc_app, operator_client, operator):
    """R4.3: every call gets a record — one transferred by the PBX too."""
    response = operator_client.post("/calls/manual")
    call_id = response.headers["Location"].rsplit("/", 1)[1]
    operator_client.post(
        f"/calls/{call_id}", data={"category": "opinion", "note": "会場の案内表示について", "about": ""}
    )
    with cc_app.app_context():
        call = db.session.get(Call, call_id)
        assert call.call_sid is None and call.category == "opinion" and call.operator_id == operator.id


def test_statistics_per_day_and_category_for_supervisors_only(cc_app, client, operator_client, operator):
    """R4.3: supervisors see calls per day and category; operators may not."""
    for sid, category in (
        ("CA" + "a" * 32, "application"),
        ("CA" + "b" * 32, "issuance"),
        ("CA" + "c" * 32, None),
    ):
        incoming_call(operator_client, call_sid=sid)
        if category:
            call_id = _call_id(cc_app, sid)
            operator_client.post(f"/calls/{call_id}/take")
            operator_client.post(f"/calls/{call_id}", data={"category": category, "about": ""})
    assert operator_client.get("/calls/statistics").status_code == 403
    supervisor = cc_app.test_client()
    signed_in(supervisor, seed_staff(cc_app, ("supervisor",)), cc_app)
    page = supervisor.get("/calls/statistics").get_data(as_text=True)
    assert "ア 申請" in page and "イ 交付" in page
    with cc_app.app_context():
        today = dates.today()
        (day,) = calls.statistics(today, today)
        assert day.by_category == {"application": 1, "issuance": 1} and day.unlogged == 1 and day.total == 3
    assert audit_entries(cc_app, "call:stats_viewed")
    bad = supervisor.get("/calls/statistics?first=2026-12-31&last=2026-01-01", follow_redirects=True)
    assert bad.status_code == 200 and "93日以内" in bad.get_data(as_text=True)
