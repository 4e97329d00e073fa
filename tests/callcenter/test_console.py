"""The operators' console (R4.1): search through the blind indexes, the minimal fields, and
booking, changing and cancelling through the one booking service with channel "phone"."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import event, select

from madoguchi import dates, numbers
from madoguchi.extensions import db
from madoguchi.models import Booking, BookingEvent, OutboundMessage, Slot
from tests.factories import make_venue
from tests.staffsupport import audit_entries, seed_staff, signed_in

from .conftest import seed_caller


def _search(client, q, birth=""):
    return client.post("/search", data={"q": q, "birth": birth})


@pytest.mark.parametrize(
    "query",
    ["number", "number_hyphenated", "phone", "phone_international", "kana", "hiragana"],
)
def test_one_search_box_finds_by_number_phone_or_kana(cc_app, operator_client, caller, query):
    """R4.1: 予約管理番号, phone or name in kana, however the operator types it."""
    typed = {
        "number": caller.number,
        "number_hyphenated": numbers.display(caller.number),
        "phone": "09011112222",
        "phone_international": "+81 90-1111-2222",
        "kana": "コウトウ タロウ",
        "hiragana": "こうとう　たろう",
    }[query]
    page = _search(operator_client, typed).get_data(as_text=True)
    assert "江東　太郎" in page
    assert numbers.display(caller.number) in page


def test_kana_with_birth_date_narrows_and_a_birth_date_alone_is_not_searchable(
    cc_app, operator_client, caller
):
    """R4.1, R2.3: birth date narrows a kana search (its index is kana+birth); alone it is refused."""
    seed_caller(cc_app, phone="090-3333-4444", birth_date=date(1990, 1, 2))
    both = _search(operator_client, "コウトウタロウ").get_data(as_text=True)
    assert "2件" in both
    narrowed = _search(operator_client, "コウトウタロウ", "昭和55年4月1日").get_data(as_text=True)
    assert "1件" in narrowed
    alone = _search(operator_client, "1980-04-01").get_data(as_text=True)
    assert "数字は予約管理番号" in alone


def test_a_mistyped_number_is_refused_before_any_look_up(cc_app, operator_client, caller):
    """R1.4: one wrong digit fails the check digit; the operator is told to ask again."""
    wrong = caller.number[:-1] + str((int(caller.number[-1]) + 1) % 10)
    page = _search(operator_client, wrong).get_data(as_text=True)
    assert "確認用の数字が合いません" in page
    assert audit_entries(cc_app, "booking:searched") == []


def test_kanji_names_get_a_clear_message(operator_client, caller):
    page = _search(operator_client, "江東太郎").get_data(as_text=True)
    assert "カタカナかひらがな" in page


def test_search_uses_only_blind_indexes(cc_app, operator_client, caller):
    """R2.3: every query on applicants during a search is an equality on a blind index — the table
    is never read whole to decrypt and compare."""
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with cc_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        for typed in (caller.number, "090-1111-2222", "コウトウタロウ"):
            _search(operator_client, typed)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    on_applicants = [s for s in statements if re.search(r"FROM applicants\b", s)]
    assert len(on_applicants) == 3
    for statement in on_applicants:
        assert re.search(r"applicants\.(reservation_number|phone|name_kana|kana_birth)_bidx = ", statement)


def test_searches_are_audited_without_the_searched_value(cc_app, operator_client, caller, operator):
    """R7.3, standard 4: who searched, how, how many results — never what was typed."""
    _search(operator_client, "090-1111-2222")
    (entry,) = audit_entries(cc_app, "booking:searched")
    assert entry["staff_id"] == operator.id
    assert '"kind": "phone"' in entry["details"] and '"results": 1' in entry["details"]
    assert "1111" not in entry["details"] and "2222" not in entry["details"]


def test_searching_by_url_is_not_possible(operator_client):
    """Standard 4: a phone number or name never travels in a URL (no GET search)."""
    assert operator_client.get("/search?q=09011112222").status_code == 405


def test_the_applicant_card_shows_the_minimal_fields_and_is_audited(
    cc_app, operator_client, caller, operator
):
    """R4.1, R2.1, R7.3: the minimal fields, the booking, and an audit entry for the view."""
    page = operator_client.get(f"/applicants/{caller.applicant_id}").get_data(as_text=True)
    for value in ("江東　太郎", "コウトウ　タロウ", "東京都江東区東陽4丁目11番28号", "090-1111-2222"):
        assert value in page
    assert "予約済み" in page
    (entry,) = audit_entries(cc_app, "booking:viewed")
    assert entry["subject_type"] == "applicant" and entry["subject_id"] == caller.applicant_id
    assert entry["staff_id"] == operator.id


def test_an_unknown_applicant_is_404_and_still_audited(cc_app, operator_client):
    assert operator_client.get("/applicants/" + "f" * 32).status_code == 404
    (entry,) = audit_entries(cc_app, "booking:viewed")
    assert entry["result"] == "not_found"


def _booking(app, booking_id):
    with app.app_context():
        found = db.session.get(Booking, booking_id)
        db.session.expunge(found)
        return found


def test_an_operator_books_for_a_caller_by_phone(cc_app, operator_client, operator):
    """R4.1, R1.1: the booking service with channel phone and the operator recorded; confirmation
    queued; the action audited."""
    caller = seed_caller(cc_app, booked=False)
    picker = operator_client.get(f"/applicants/{caller.applicant_id}/slots").get_data(as_text=True)
    key = re.search(r'name="request_key" type="hidden" value="([0-9a-f]+)"', picker).group(1)
    assert f'value="{caller.slots[1]}"' in picker and "残り5" in picker
    form = {"slot_id": caller.slots[1], "request_key": key}
    response = operator_client.post(f"/applicants/{caller.applicant_id}/book", data=form)
    assert response.status_code == 302
    again = operator_client.post(f"/applicants/{caller.applicant_id}/book", data=form)
    assert again.status_code == 302  # the same form twice: one booking (idempotent)
    with cc_app.app_context():
        (made,) = db.session.scalars(select(Booking)).all()
        assert (made.channel, made.staff_id, made.slot_id) == ("phone", operator.id, caller.slots[1])
        (booked_event,) = db.session.scalars(select(BookingEvent)).all()
        assert booked_event.channel == "phone" and booked_event.staff_id == operator.id
        assert db.session.get(Slot, caller.slots[1]).taken == 1
        templates = {m.template for m in db.session.scalars(select(OutboundMessage))}
        assert "booking_confirmed" in templates
    entries = audit_entries(cc_app, "booking:booked_by_staff")
    assert entries[0]["subject_id"] == made.id and '"action": "booked"' in entries[0]["details"]


def test_an_operator_changes_and_cancels(cc_app, operator_client, caller):
    """R4.1, R1.3: change moves the booking atomically; cancel frees the place."""
    response = operator_client.post(
        f"/applicants/{caller.applicant_id}/book", data={"slot_id": caller.slots[2]}
    )
    assert response.status_code == 302
    moved = _booking(cc_app, caller.booking_id)
    assert moved.slot_id == caller.slots[2] and moved.status == "booked"
    operator_client.post(f"/applicants/{caller.applicant_id}/cancel", data={})
    assert _booking(cc_app, caller.booking_id).status == "cancelled"
    with cc_app.app_context():
        assert [db.session.get(Slot, s).taken for s in caller.slots] == [0, 0, 0]
    actions = [e["details"] for e in audit_entries(cc_app, "booking:booked_by_staff")]
    assert '"action": "changed"' in actions[0] and '"action": "cancelled"' in actions[1]


def test_a_full_slot_is_refused_with_a_message_and_nothing_changes(cc_app, operator_client):
    """R1.2, standard 3: the slot filled meanwhile — a clear message, the store as it was."""
    caller = seed_caller(cc_app, capacity=1)
    other = seed_caller(cc_app, phone="090-5555-6666", booked=False)
    with cc_app.app_context():
        full = db.session.get(Slot, caller.slots[0])
        assert full.taken == 1
    # Book the other applicant into a full slot of another venue: refused as not bookable.
    response = operator_client.post(
        f"/applicants/{other.applicant_id}/book", data={"slot_id": caller.slots[0]}
    )
    page = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "予約できません" in page
    with cc_app.app_context():
        slot = db.session.get(Slot, other.slots[0])
        slot.taken = slot.capacity
        db.session.commit()
    response = operator_client.post(
        f"/applicants/{other.applicant_id}/book", data={"slot_id": other.slots[0]}
    )
    page = operator_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "満員" in page
    with cc_app.app_context():
        assert (
            db.session.scalars(select(Booking).where(Booking.applicant_id == other.applicant_id)).all() == []
        )


def test_places_left_are_served_live_without_personal_data(cc_app, operator_client, caller):
    """R4.1: the slot picker refreshes the places left from this endpoint."""
    with cc_app.app_context():
        first = db.session.get(Slot, caller.slots[0])
        day = dates.tokyo(first.starts_at).date()
    places = operator_client.get(f"/venues/{caller.venue_id}/places?from={day.isoformat()}").get_json()
    assert places[str(caller.slots[0])] == 4
    assert set(places) >= {str(caller.slots[0])}


def test_venue_staff_cannot_use_the_console(cc_app, client):
    """R7.2: venue staff have no search permission: the console refuses them."""
    with cc_app.app_context():
        venue = make_venue()
        db.session.commit()
        venue_id = venue.id
    person = seed_staff(cc_app, ("venue_staff",), venue_id=venue_id)
    signed_in(client, person, cc_app)
    assert client.get("/").status_code == 403
    assert client.post("/search", data={"q": "09011112222"}).status_code == 403


def test_confirmations_go_out_after_the_response_not_before(cc_app, operator_client, outbox):
    """R3.4, R9.2: the request that books queues the e-mail in its transaction; it is sent once the
    response has been handed to the server, so nobody waits for a mail server or Twilio."""
    caller = seed_caller(cc_app, booked=False)
    response = operator_client.post(
        f"/applicants/{caller.applicant_id}/book", data={"slot_id": caller.slots[1]}, buffered=False
    )
    assert response.status_code == 302
    with cc_app.app_context():
        (message,) = db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "email")).all()
        assert message.status == "pending"
    response.close()  # what gunicorn does after sending the response
    with cc_app.app_context():
        db.session.expire_all()
        assert db.session.scalars(
            select(OutboundMessage.status).where(OutboundMessage.kind == "email")
        ).all() == ["sent"]
    assert len(list(outbox.glob("*.eml"))) == 1
