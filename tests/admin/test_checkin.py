"""Venue check-in screens (R6.1), scoped to the staff member's venue (R7.2) and audited by id (R7.4).

The app's clock is set to 10:00 (Tokyo) on a day a week ahead, so "today" never straddles midnight.
Bookings are made through the booking service, outcomes through the screen's own forms.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from madoguchi import booking, dates, numbers
from madoguchi.extensions import db
from madoguchi.models import Booking, BookingEvent, Channel, Slot
from madoguchi.permissions import Role
from tests.factories import make_applicant, make_slot, make_venue

from .conftest import Person, audit_entries, location, seed_staff, set_now, signed_in

# Values that must reach the clerk's eyes (name, kana, birth date) or must never (the rest).
TODAY_PERSON = {
    "name": "受付検査花子",
    "name_kana": "ウケツケケンサハナコ",
    "birth_date": date(1985, 7, 15),  # 昭和60年7月15日
    "postal_code": "135-0052",
    "address": "東京都江東区潮見9丁目87番65号",
    "phone": "08077776666",
    "email": "checkin-leak@example.jp",
}
ELSEWHERE_PERSON = {
    "name": "他会場三郎",
    "name_kana": "タカイジョウサブロウ",
    "birth_date": date(1990, 1, 2),
    "address": "東京都江東区豊洲8丁目76番54号",
    "phone": "08033332222",
    "email": "elsewhere-leak@example.jp",
}
LATER_PERSON = {"name": "別日予約次郎", "name_kana": "ベツビヨヤクジロウ", "birth_date": date(1970, 3, 3)}
MISTYPED = "予約管理番号が正しくありません。12桁の数字をもう一度確かめてください。"


def morning() -> datetime:
    """10:00 in Tokyo a week from now (ahead of the real clock, so cookies stay valid)."""
    real_today = datetime.now(dates.TOKYO).date()
    return datetime.combine(real_today + timedelta(days=7), time(10, 0), tzinfo=dates.TOKYO)


@dataclass(frozen=True)
class Desk:
    venue: int
    venue_name: str
    other: int
    other_name: str
    today: dict  # this venue, 11:00 today
    later: dict  # this venue, in two days
    elsewhere: dict  # the other venue, 12:00 today
    unbooked: str  # a number on the roster with no booking
    clerk: Person
    other_clerk: Person


def seed_desk(app) -> Desk:
    set_now(app, morning())
    with app.app_context():
        venue, other = make_venue(), make_venue()

        def booked(where, starts_in, values):
            slot = make_slot(where, starts_in=starts_in)
            applicant = make_applicant(where, **values)
            made = booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
            return {"id": made.id, "slot": slot.id, "number": applicant.reservation_number}

        today = booked(venue, timedelta(hours=1), TODAY_PERSON)
        later = booked(venue, timedelta(days=2), LATER_PERSON)
        elsewhere = booked(other, timedelta(hours=2), ELSEWHERE_PERSON)
        unbooked = make_applicant(venue).reservation_number
        db.session.commit()
        ids = (venue.id, venue.display_name, other.id, other.display_name)
    clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=ids[0])
    other_clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=ids[2])
    return Desk(ids[0], ids[1], ids[2], ids[3], today, later, elsewhere, unbooked, clerk, other_clerk)


@pytest.fixture
def desk(admin_app) -> Desk:
    return seed_desk(admin_app)


@pytest.fixture
def clerk(admin_app, client, desk):
    signed_in(client, desk.clerk)
    return client


# ---- helpers ---------------------------------------------------------------------------------
def scan(client, venue_id: int, text: str):
    return client.post(f"/venues/{venue_id}/checkin", data={"number": text})


def record(client, venue_id: int, booking_id: str, outcome: str, **extra):
    return client.post(
        f"/venues/{venue_id}/bookings/{booking_id}/outcome", data={"outcome": outcome, **extra}
    )


def undo(client, venue_id: int, booking_id: str, reason: str = ""):
    return client.post(f"/venues/{venue_id}/bookings/{booking_id}/undo", data={"reason": reason})


def result_section(response) -> str:
    match = re.search(r'<section class="checkin-result.*?</section>', response.get_data(as_text=True), re.S)
    return match.group(0) if match else ""


def notices(response) -> list[str]:
    return re.findall(
        r'<div class="notice notice-\w+" role="\w+">(.*?)</div>', response.get_data(as_text=True)
    )


def status_of(app, booking_id: str) -> str:
    with app.app_context():
        return db.session.get(Booking, booking_id).status


def taken(app, slot_id: int) -> int:
    with app.app_context():
        return db.session.get(Slot, slot_id).taken


def outcome_events(app, booking_id: str) -> list[dict]:
    with app.app_context():
        events = db.session.scalars(
            select(BookingEvent)
            .where(BookingEvent.booking_id == booking_id, BookingEvent.action.startswith("venue:"))
            .order_by(BookingEvent.id)
        )
        return [{c.name: getattr(e, c.name) for c in BookingEvent.__table__.columns} for e in events]


def personal_strings(*people: dict) -> set[str]:
    found = set()
    for person in people:
        for key in ("name", "name_kana", "address", "phone", "email", "number"):
            if person.get(key):
                found.add(person[key])
        if person.get("number"):
            found.add(numbers.display(person["number"]))
        if person.get("phone"):
            phone = person["phone"]
            found.add(f"{phone[:3]}-{phone[3:7]}-{phone[7:]}")
        if person.get("birth_date"):
            found |= {person["birth_date"].isoformat(), dates.wareki(person["birth_date"])}
    return found


def assert_audit_clean(app, *people: dict) -> None:
    markers = personal_strings(*people)
    for entry in audit_entries(app):
        text = json.dumps(entry, default=str, ensure_ascii=False)
        for marker in markers:
            assert marker not in text, f"a personal value in audit entry {entry['action']}"


# ---- finding a booking ----------------------------------------------------------------------
def test_a_scanned_number_with_hyphens_or_full_width_digits_finds_todays_booking(admin_app, clerk, desk):
    """R6.1: the number typed with hyphens, or in full-width digits as a Japanese IME sends it, finds
    today's booking; the screen shows name, kana, birth date in wareki, the time and the action
    buttons, and never the address, postal code, phone or e-mail."""
    number = desk.today["number"]
    full_width = numbers.display(number).translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    for typed in (numbers.display(number), full_width, f" {number} "):
        response = scan(clerk, desk.venue, typed)
        assert response.status_code == 200
        section = result_section(response)
        assert "checkin-today" in section
        assert "この方の予約（本日）" in section
        assert TODAY_PERSON["name"] in section and TODAY_PERSON["name_kana"] in section
        assert "昭和60年7月15日" in section
        assert "11:00" in section
        assert numbers.display(number) in section
        assert 'value="handed_over"' in section and 'value="arrived"' in section
        page = response.get_data(as_text=True)
        for hidden in ("address", "postal_code", "phone", "email"):
            assert TODAY_PERSON[hidden] not in page, hidden
        assert "090-" not in page and "080-" not in page
    assert_audit_clean(admin_app, {**TODAY_PERSON, "number": number})


def test_a_mistyped_number_is_refused_beside_the_field_without_a_lookup(admin_app, clerk, desk):
    """R6.1: one wrong digit fails the check digit: the Japanese message stands beside the box, no
    booking is shown and no look-up is audited (nothing was looked up)."""
    number = desk.today["number"]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    for typed in (wrong, number[:11], "abc"):
        response = scan(clerk, desk.venue, typed)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert re.search(rf'<p class="error" id="number-error">{MISTYPED}</p>', page), typed
        assert 'aria-invalid="true"' in page
        assert result_section(response) == ""
        assert TODAY_PERSON["name"] not in page
    assert audit_entries(admin_app, "checkin:looked_up") == []
    assert audit_entries(admin_app, "booking:viewed") == []


def test_an_empty_scan_asks_for_the_number(admin_app, clerk, desk):
    """R6.1: Enter on an empty box says what to do, in Japanese, and looks nothing up."""
    response = scan(clerk, desk.venue, "")
    assert "予約管理番号を読み取るか入力してください。" in response.get_data(as_text=True)
    assert audit_entries(admin_app, "checkin:looked_up") == []


def test_an_unknown_number_and_a_number_without_a_booking_are_told_apart(admin_app, clerk, desk):
    """R6.1: a valid number not on the roster, and one on the roster with no booking, each get their
    own message and no action buttons; both look-ups are audited with their result, no number."""
    unknown = numbers.make("99999999999")
    response = scan(clerk, desk.venue, unknown)
    section = result_section(response)
    assert "checkin-unknown" in section and "この予約管理番号は名簿にありません。" in section
    assert "outcome-form" not in section

    response = scan(clerk, desk.venue, desk.unbooked)
    section = result_section(response)
    assert "checkin-not_booked" in section and "この方は予約をしていません。" in section
    assert "outcome-form" not in section
    assert "江東　太郎" not in section  # no name for someone without a booking

    lookups = audit_entries(admin_app, "checkin:looked_up")
    assert [(e["result"], e["subject_id"]) for e in lookups] == [("unknown", ""), ("not_booked", "")]
    assert_audit_clean(admin_app, {"number": unknown}, {"number": desk.unbooked})


def test_a_booking_at_another_venue_is_shown_as_such_without_personal_values(admin_app, clerk, desk):
    """R6.1, R7.2: the other venue's booking is named as such with that venue's name and the time;
    no name, kana or birth date, no buttons, and no view is audited (only the look-up, by id)."""
    response = scan(clerk, desk.venue, desk.elsewhere["number"])
    section = result_section(response)
    assert "checkin-other_venue" in section
    assert "別の会場の予約です。この会場では交付できません。" in section
    assert desk.other_name in section
    page = response.get_data(as_text=True)
    for value in ("name", "name_kana", "address", "phone", "email"):
        assert ELSEWHERE_PERSON[value] not in page, value
    assert dates.wareki(ELSEWHERE_PERSON["birth_date"]) not in page
    assert "outcome-form" not in section and 'name="outcome"' not in page
    assert "checkin_undo" not in page and "/undo" not in page
    [lookup] = audit_entries(admin_app, "checkin:looked_up")
    assert (lookup["result"], lookup["subject_id"]) == ("other_venue", desk.elsewhere["id"])
    assert audit_entries(admin_app, "booking:viewed") == []


def test_a_booking_on_another_day_needs_the_explicit_checkbox(admin_app, clerk, desk):
    """R6.1: a booking at this venue for another day is shown as such (its date, a warning); recording
    is refused without 予約日以外の来庁として記録する and accepted with it (audited as other_day)."""
    later = desk.later
    response = scan(clerk, desk.venue, later["number"])
    section = result_section(response)
    assert "checkin-other_day" in section and "予約日が本日ではありません" in section
    assert LATER_PERSON["name"] in section
    assert 'name="other_day"' in section and "予約日以外の来庁として記録する" in section

    refused = record(clerk, desk.venue, later["id"], "handed_over")
    assert refused.status_code == 302
    follow = clerk.get(location(refused))
    assert any("予約日が本日ではありません。記録する場合は" in n for n in notices(follow))
    assert status_of(admin_app, later["id"]) == "booked"
    assert outcome_events(admin_app, later["id"]) == []
    assert audit_entries(admin_app, "booking:outcome_recorded") == []

    accepted = record(clerk, desk.venue, later["id"], "handed_over", other_day="y")
    assert accepted.status_code == 302
    assert status_of(admin_app, later["id"]) == "handed_over"
    [entry] = audit_entries(admin_app, "booking:outcome_recorded")
    assert entry["subject_id"] == later["id"]
    assert json.loads(entry["details"]) == {"outcome": "handed_over", "other_day": True}


# ---- recording outcomes --------------------------------------------------------------------------
def test_arrived_then_handed_over_is_recorded_with_time_and_staff(admin_app, clerk, desk):
    """R6.1: 来庁（受付） then 交付した: each is a BookingEvent with the staff member, the time and the
    status it left; the page confirms in Japanese and today's list shows 交付済み."""
    today = desk.today
    response = record(clerk, desk.venue, today["id"], "arrived")
    assert response.status_code == 302
    assert location(response) == f"/venues/{desk.venue}/checkin?booking={today['id']}"
    page = clerk.get(location(response))
    assert "来庁（受付）を記録しました。" in notices(page)
    assert status_of(admin_app, today["id"]) == "arrived"
    assert 'value="arrived"' not in result_section(page)  # no second arrival
    assert 'value="handed_over"' in result_section(page)

    response = record(clerk, desk.venue, today["id"], "handed_over")
    page = clerk.get(location(response))
    assert "カードの交付を記録しました。" in notices(page)
    assert status_of(admin_app, today["id"]) == "handed_over"
    section = result_section(page)
    assert "交付済み" in section and 'name="outcome"' not in section
    row = re.search(r'<tr class="current">.*?</tr>', page.get_data(as_text=True), re.S).group(0)
    assert "交付済み" in row
    assert taken(admin_app, today["slot"]) == 1  # a card handed over still counts as a booking

    events = outcome_events(admin_app, today["id"])
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("booked", "arrived"),
        ("arrived", "handed_over"),
    ]
    assert {e["staff_id"] for e in events} == {desk.clerk.id}
    assert all(e["channel"] == "counter" for e in events)
    assert all(dates.utc(e["at"]) - morning() < timedelta(minutes=5) for e in events)


def test_a_card_cannot_be_handed_over_twice(admin_app, clerk, desk):
    """R6.1: a second 交付 on the same booking is refused with the status named; one event, one audit."""
    today = desk.today
    record(clerk, desk.venue, today["id"], "handed_over")
    again = record(clerk, desk.venue, today["id"], "handed_over")
    page = clerk.get(location(again))
    assert "この予約には、その記録はできません（状態: 交付済み）。" in notices(page)
    assert [e["to_status"] for e in outcome_events(admin_app, today["id"])] == ["handed_over"]
    assert len(audit_entries(admin_app, "booking:outcome_recorded")) == 1


def test_an_unknown_outcome_is_refused(admin_app, clerk, desk):
    """R6.1: only the four outcomes can be recorded; anything else changes nothing."""
    response = record(clerk, desk.venue, desk.today["id"], "cancelled")
    assert "記録する内容を選んでください。" in notices(clerk.get(location(response)))
    assert status_of(admin_app, desk.today["id"]) == "booked"


@pytest.mark.parametrize("outcome", ["no_show", "postponed"])
def test_no_show_and_postponed_give_the_place_back_and_undo_takes_it_again(admin_app, clerk, desk, outcome):
    """R6.1: 来庁なし and 延期 end the booking and give its place back (Slot.taken decreases); an undo
    with a reason restores 予約済み and takes the place again; the reason code is on the event."""
    today = desk.today
    assert taken(admin_app, today["slot"]) == 1
    record(clerk, desk.venue, today["id"], outcome)
    assert status_of(admin_app, today["id"]) == outcome
    assert taken(admin_app, today["slot"]) == 0

    response = undo(clerk, desk.venue, today["id"], "came_later")
    assert "記録を取り消しました。" in notices(clerk.get(location(response)))
    assert status_of(admin_app, today["id"]) == "booked"
    assert taken(admin_app, today["slot"]) == 1
    first, undone = outcome_events(admin_app, today["id"])
    assert first["to_status"] == outcome and first["undone"] is True
    assert undone["action"] == "venue:undone" and undone["reason"] == "came_later"
    assert (undone["from_status"], undone["to_status"], undone["staff_id"]) == (
        outcome,
        "booked",
        desk.clerk.id,
    )


def test_undo_needs_a_reason_and_restores_the_previous_status(admin_app, clerk, desk):
    """R6.1: 直前の記録を取り消す without a reason is refused (nothing changes, nothing audited); with a
    reason, handed over goes back to arrived (the status before), and the reason code is kept."""
    today = desk.today
    record(clerk, desk.venue, today["id"], "arrived")
    record(clerk, desk.venue, today["id"], "handed_over")
    page = clerk.get(f"/venues/{desk.venue}/checkin?booking={today['id']}")
    assert "直前の記録を取り消す" in result_section(page)

    refused = undo(clerk, desk.venue, today["id"], "")
    assert "取り消す理由を選んでください。" in notices(clerk.get(location(refused)))
    refused = undo(clerk, desk.venue, today["id"], "because I said so")
    assert "取り消す理由を選んでください。" in notices(clerk.get(location(refused)))
    assert status_of(admin_app, today["id"]) == "handed_over"
    assert audit_entries(admin_app, "booking:outcome_undone") == []

    undo(clerk, desk.venue, today["id"], "card_not_given")
    assert status_of(admin_app, today["id"]) == "arrived"
    events = outcome_events(admin_app, today["id"])
    assert [e["undone"] for e in events] == [False, True, False]
    assert events[-1]["reason"] == "card_not_given"
    [entry] = audit_entries(admin_app, "booking:outcome_undone")
    assert entry["subject_id"] == today["id"]
    assert json.loads(entry["details"])["reason"] == "card_not_given"

    # The next undo takes back the arrival; then there is nothing left to undo.
    undo(clerk, desk.venue, today["id"], "wrong_outcome")
    assert status_of(admin_app, today["id"]) == "booked"
    response = undo(clerk, desk.venue, today["id"], "wrong_outcome")
    assert "取り消せる記録がありません。" in notices(clerk.get(location(response)))


def test_every_lookup_view_outcome_and_undo_is_audited_by_booking_id(admin_app, clerk, desk):
    """R7.4: a look-up, opening a row of today's list, an outcome and an undo each add an entry that
    names the booking id and the clerk; no entry holds the name, kana, number or any other value."""
    today = desk.today
    scan(clerk, desk.venue, today["number"])
    clerk.get(f"/venues/{desk.venue}/checkin?booking={today['id']}")
    record(clerk, desk.venue, today["id"], "no_show")
    undo(clerk, desk.venue, today["id"], "came_later")

    mine = [e for e in audit_entries(admin_app) if e["staff_id"] == desk.clerk.id]
    about = [(e["action"], e["subject_id"]) for e in mine if e["subject_type"] == "booking"]
    assert ("checkin:looked_up", today["id"]) in about
    assert about.count(("booking:viewed", today["id"])) >= 2  # after the scan, and the list's link
    assert ("booking:outcome_recorded", today["id"]) in about
    assert ("booking:outcome_undone", today["id"]) in about
    listed = [e for e in mine if e["action"] == "booking:listed"]
    assert listed and all(json.loads(e["details"])["screen"] == "checkin" for e in listed)
    assert_audit_clean(admin_app, {**TODAY_PERSON, "number": today["number"]})


# ---- scope and roles -------------------------------------------------------------------------------
def test_another_venues_staff_get_404_and_cannot_change_the_booking(admin_app, desk):
    """R7.2: the other venue's clerk guessing ids gets 404 for this venue's check-in screen, outcome and
    undo URLs, and for this booking under their own venue's URLs; the booking does not change."""
    client = admin_app.test_client()
    signed_in(client, desk.other_clerk)
    booking_id = desk.today["id"]
    for method, url, data in (
        ("get", f"/venues/{desk.venue}/checkin", None),
        ("get", f"/venues/{desk.venue}/checkin?booking={booking_id}", None),
        ("post", f"/venues/{desk.venue}/checkin", {"number": desk.today["number"]}),
        ("post", f"/venues/{desk.venue}/bookings/{booking_id}/outcome", {"outcome": "handed_over"}),
        ("post", f"/venues/{desk.venue}/bookings/{booking_id}/undo", {"reason": "came_later"}),
        ("post", f"/venues/{desk.other}/bookings/{booking_id}/outcome", {"outcome": "handed_over"}),
        ("post", f"/venues/{desk.other}/bookings/{booking_id}/undo", {"reason": "came_later"}),
    ):
        response = getattr(client, method)(url, data=data)
        assert response.status_code == 404, url
        assert TODAY_PERSON["name"] not in response.get_data(as_text=True)
    assert status_of(admin_app, booking_id) == "booked"
    assert outcome_events(admin_app, booking_id) == []

    # Their own screen, with the id of this venue's booking, shows nothing about it.
    page = client.get(f"/venues/{desk.other}/checkin?booking={booking_id}")
    assert page.status_code == 200 and result_section(page) == ""
    assert TODAY_PERSON["name"] not in page.get_data(as_text=True)


def test_an_operator_without_venue_checkin_gets_403(admin_app, desk):
    """R7.2: an operator (no VENUE_CHECKIN) is refused the screen, the look-up and the outcome."""
    operator = seed_staff(admin_app, (Role.OPERATOR.value,))
    client = admin_app.test_client()
    signed_in(client, operator)
    for method, url, data in (
        ("get", f"/venues/{desk.venue}/checkin", None),
        ("post", f"/venues/{desk.venue}/checkin", {"number": desk.today["number"]}),
        ("post", f"/venues/{desk.venue}/bookings/{desk.today['id']}/outcome", {"outcome": "handed_over"}),
        ("post", f"/venues/{desk.venue}/bookings/{desk.today['id']}/undo", {"reason": "came_later"}),
    ):
        assert getattr(client, method)(url, data=data).status_code == 403, url
    assert status_of(admin_app, desk.today["id"]) == "booked"
    assert audit_entries(admin_app, "checkin:looked_up") == []


def test_undo_is_refused_when_the_person_has_booked_again(admin_app, clerk, desk):
    """R6.1, R1.3: after 来庁なし the resident booked another slot; undoing the no-show would make two
    live bookings, so it is refused in Japanese and nothing changes (status, places)."""
    today = desk.today
    record(clerk, desk.venue, today["id"], "no_show")
    with admin_app.app_context():
        venue = db.session.get(Slot, today["slot"]).venue
        slot = make_slot(venue, starts_in=timedelta(days=3))
        applicant = db.session.get(Booking, today["id"]).applicant
        booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
        db.session.commit()
        new_slot = slot.id
    response = undo(clerk, desk.venue, today["id"], "came_later")
    assert "取り消せません。この方は別の予約をお持ちか、時間帯に空きがありません。" in notices(
        clerk.get(location(response))
    )
    assert status_of(admin_app, today["id"]) == "no_show"
    assert (taken(admin_app, today["slot"]), taken(admin_app, new_slot)) == (0, 1)
    assert audit_entries(admin_app, "booking:outcome_undone") == []
