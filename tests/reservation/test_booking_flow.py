"""The residents' booking flow through the real pages (R1.2, R1.3, R1.4, R3.1–R3.5)."""

from __future__ import annotations

from datetime import date, timedelta

from madoguchi import numbers
from madoguchi.extensions import db
from madoguchi.models import Applicant, Booking, Hold, OutboundMessage, Venue

from . import pages
from .flow import (
    MAP_URL,
    add_applicant,
    add_slot,
    body_of,
    book,
    count,
    hold,
    hold_id,
    live_bookings,
    outbox_messages,
    path_of,
    seed_world,
    sign_in,
    taken,
    unknown_number,
)

HOLD_LAPSED = "仮押さえの時間（10分）が過ぎたため、時間帯が解除されました。もう一度お選びください。"
SLOT_FULL = "選んだ時間帯はちょうど満員になりました。別の時間帯をお選びください。"
MISMATCH = "予約管理番号と生年月日の組み合わせが確認できませんでした。"


def _slot_form(html: str, slot_id: int):
    """The calendar's form holding the button for ``slot_id`` (present only while the slot has a
    place)."""
    root = pages.parse(html)
    for form in root.find_all("form", action="/hold"):
        if form.find("button", name="slot_id", value=str(slot_id)) is not None:
            return form
    return None


def _full_marks(html: str) -> list[str]:
    return [span.text for span in pages.parse(html).find_all("span", cls="slot-full")]


# ---- the whole flow ------------------------------------------------------------------------------
def test_roster_resident_books_through_every_page(app, client, world, overrides):
    """R3.1–R3.4, R1.4: /start → /contact → /venue → /slots → /hold → /confirm → /done; the done page
    and the confirmation e-mail give the number in its display form, the venue and its map."""
    slot_id = world.slot_ids[0]

    start = client.get("/start")
    assert start.status_code == 200
    response = client.post(
        "/start", data={"reservation_number": world.display_number, "birth_date": world.birth_typed}
    )
    assert path_of(response) == "/contact"

    contact = client.get("/contact")
    assert contact.status_code == 200
    email_input = pages.parse(contact.text).find("input", id="email")
    assert email_input["value"] == world.email  # the roster's contact details are offered for confirmation
    response = client.post("/contact", data={"email": world.email, "phone": world.phone})
    assert path_of(response) == "/venue"

    venue_page = client.get("/venue")
    assert venue_page.status_code == 200
    assert "あなたの受け取り会場" in venue_page.text
    assert world.venue_display in venue_page.text

    slots_page = client.get("/slots")
    assert slots_page.status_code == 200
    assert _slot_form(slots_page.text, slot_id) is not None
    assert world.slot_labels[slot_id] in slots_page.text

    response = hold(client, slot_id)
    assert path_of(response) == "/confirm"
    confirm_page = client.get("/confirm")
    assert confirm_page.status_code == 200
    assert world.display_number in confirm_page.text
    key = pages.parse(confirm_page.text).find("input", name="hold_id")["value"]

    response = client.post("/confirm", data={"hold_id": key})
    assert path_of(response) == "/done"
    done = client.get("/done")
    assert done.status_code == 200
    root = pages.parse(done.text)
    number_shown = root.find("dd", cls="number")
    assert number_shown is not None and number_shown.text.strip() == world.display_number
    assert world.venue_display in done.text
    assert root.find("a", href=MAP_URL) is not None
    assert "当日お持ちいただくもの" in done.text

    assert [(slot, status) for _, slot, status in live_bookings(app, world.applicant_id)] == [
        (slot_id, "booked")
    ]
    assert taken(app, slot_id) == 1
    assert count(app, Hold) == 0

    messages = outbox_messages(overrides["MAIL_OUTBOX_DIR"])
    assert len(messages) == 1
    message = messages[0]
    assert message["Subject"] == "【江東区】個人番号カード受け取りのご予約を受け付けました"
    assert message["To"] == world.email
    body = body_of(message)
    assert f"予約管理番号: {world.display_number}" in body
    assert world.venue_display in body
    assert MAP_URL in body
    assert count(app, OutboundMessage, OutboundMessage.kind == "email", OutboundMessage.status == "sent") == 1
    # The phone given is a mobile: the SMS went out too (to its outbox here; tests/core/test_sms.py).
    assert count(app, OutboundMessage, OutboundMessage.kind == "sms", OutboundMessage.status == "sent") == 1


def test_double_submitted_confirm_makes_one_booking(app, client, world, overrides):
    """R1.2: the confirm form posted twice (double click, retried request) books once and sends one mail."""
    slot_id = world.slot_ids[0]
    sign_in(client, world)
    hold(client, slot_id)
    key = hold_id(client)

    first = client.post("/confirm", data={"hold_id": key})
    second = client.post("/confirm", data={"hold_id": key})

    assert path_of(first) == "/done"
    assert path_of(second) == "/done"
    assert count(app, Booking) == 1
    assert taken(app, slot_id) == 1
    assert len(outbox_messages(overrides["MAIL_OUTBOX_DIR"])) == 1
    assert client.get("/done").status_code == 200


def test_change_through_the_pages_moves_the_booking(app, client, world, overrides):
    """R1.3: changing the date through /manage moves the one live booking: the old slot's place is
    given back, the new slot's is taken, and there is never a second booking."""
    old_slot, new_slot = world.slot_ids[0], world.slot_ids[1]
    book(client, world, old_slot)
    ((booking_id, _, _),) = live_bookings(app, world.applicant_id)

    other = app.test_client()
    response = sign_in(other, world, via="/manage")
    assert path_of(response) == "/manage/booking"
    manage_page = other.get("/manage/booking")
    assert world.display_number in manage_page.text
    assert pages.parse(manage_page.text).find("a", href="/slots") is not None

    slots_page = other.get("/slots")
    assert "現在の予約" in slots_page.text
    assert _slot_form(slots_page.text, old_slot) is not None
    assert path_of(hold(other, new_slot)) == "/confirm"
    confirm_page = other.get("/confirm")
    assert "変更前の日時" in confirm_page.text
    key = pages.parse(confirm_page.text).find("input", name="hold_id")["value"]
    assert path_of(other.post("/confirm", data={"hold_id": key})) == "/done"

    assert live_bookings(app, world.applicant_id) == [(booking_id, new_slot, "booked")]
    assert count(app, Booking) == 1
    assert taken(app, old_slot) == 0
    assert taken(app, new_slot) == 1
    subjects = [m["Subject"] for m in outbox_messages(overrides["MAIL_OUTBOX_DIR"])]
    assert sorted(subjects) == sorted(
        [
            "【江東区】個人番号カード受け取りのご予約を受け付けました",
            "【江東区】個人番号カード受け取りのご予約を変更しました",
        ]
    )


def test_choosing_the_booked_slot_again_is_refused(app, client, world):
    """R1.3: holding the slot one is already booked in is refused with a message, nothing moves."""
    slot_id = world.slot_ids[0]
    book(client, world, slot_id)
    response = hold(client, slot_id)
    assert path_of(response) == "/slots"
    assert "その時間帯はすでに予約済みです" in client.get("/slots").text
    assert taken(app, slot_id) == 1
    assert count(app, Hold) == 0


def test_cancel_through_the_manage_pages(app, client, world, overrides):
    """R3.5: /manage → /manage/booking → /manage/cancel cancels the booking and frees its place."""
    slot_id = world.slot_ids[0]
    book(client, world, slot_id)

    other = app.test_client()
    assert path_of(sign_in(other, world, via="/manage")) == "/manage/booking"
    page = other.get("/manage/cancel")
    assert page.status_code == 200
    assert "この予約を取り消しますか" in page.text
    assert taken(app, slot_id) == 1  # GET asks; it does not cancel

    response = other.post("/manage/cancel", data={})
    assert response.status_code == 200
    assert "予約を取り消しました" in response.text
    assert live_bookings(app, world.applicant_id) == []
    assert count(app, Booking, Booking.status == "cancelled") == 1
    assert taken(app, slot_id) == 0
    assert "現在、予約はありません" in other.get("/manage/booking").text
    subjects = [m["Subject"] for m in outbox_messages(overrides["MAIL_OUTBOX_DIR"])]
    assert "【江東区】個人番号カード受け取りのご予約を取り消しました" in subjects

    # Cancelling again has nothing to cancel.
    assert path_of(other.post("/manage/cancel", data={})) == "/manage/booking"


def test_start_with_a_live_booking_goes_to_its_page(app, client, world):
    """R1.3: a resident who already booked and starts again is shown the booking, not a second flow."""
    book(client, world, world.slot_ids[0])
    other = app.test_client()
    response = sign_in(other, world)
    assert path_of(response) == "/manage/booking"
    assert "すでに予約があります" in other.get("/manage/booking").text


# ---- holds -----------------------------------------------------------------------------------------
def test_hold_takes_a_place_and_another_choice_gives_it_back(app, client, world):
    """R1.2 (issue 2.3): choosing a slot keeps one place for the resident; choosing another slot gives
    the first place back, so a resident never holds two places."""
    first, second = world.slot_ids[0], world.slot_ids[1]
    sign_in(client, world)

    assert path_of(hold(client, first)) == "/confirm"
    assert taken(app, first) == 1
    assert count(app, Hold) == 1

    assert path_of(hold(client, second)) == "/confirm"
    assert taken(app, first) == 0
    assert taken(app, second) == 1
    assert count(app, Hold) == 1

    # Going back to the calendar from the confirm page gives the place back at once.
    assert path_of(client.post("/release", data={})) == "/slots"
    assert taken(app, second) == 0
    assert count(app, Hold) == 0


def test_lapsed_hold_is_refused_and_the_place_shows_free_again(app, client, world):
    """R1.2 / R3.3: a hold lapses after HOLD_MINUTES; confirming then is refused with the Japanese
    message and a return to the calendar, and the calendar shows the place free again."""
    slot_id, label = add_slot(app, world.venue_id, capacity=1)
    sign_in(client, world)
    hold(client, slot_id)
    key = hold_id(client)
    assert taken(app, slot_id) == 1
    assert _slot_form(client.get("/slots").text, slot_id) is None  # while held, the only place is gone

    app.extensions["madoguchi.clock"].offset = timedelta(minutes=11)
    response = client.post("/confirm", data={"hold_id": key})

    assert path_of(response) == "/slots"
    calendar = client.get("/slots")
    assert HOLD_LAPSED in pages.flashes(calendar.text)
    assert count(app, Booking) == 0
    assert _slot_form(calendar.text, slot_id) is not None
    assert not any(label in mark for mark in _full_marks(calendar.text))

    # The place can be held again (by this resident or anyone), and this time confirmed.
    assert path_of(hold(client, slot_id)) == "/confirm"
    assert taken(app, slot_id) == 1
    assert path_of(client.post("/confirm", data={"hold_id": hold_id(client)})) == "/done"
    assert count(app, Booking) == 1


def test_lapsed_hold_of_someone_else_frees_the_place_for_a_second_resident(app, client, world):
    """R1.2: a place held and abandoned by one resident can be booked by another once the hold lapses."""
    slot_id, _ = add_slot(app, world.venue_id, capacity=1)
    sign_in(client, world)
    hold(client, slot_id)

    _, number = _second_resident(app, world)
    other = app.test_client()
    other.post("/start", data={"reservation_number": number, "birth_date": "1990年1月1日"})
    assert path_of(hold(other, slot_id)) == "/slots"  # full while held
    app.extensions["madoguchi.clock"].offset = timedelta(minutes=11)
    assert path_of(hold(other, slot_id)) == "/confirm"
    assert taken(app, slot_id) == 1
    assert count(app, Hold) == 1


def _second_resident(app, world):
    return add_applicant(app, world.venue_id, birth_date=date(1990, 1, 1), email=None)


def test_full_slot_shows_full_and_refuses_a_hold(app, client, world):
    """R1.2 / R3.3: a slot whose places are all taken shows 満員 and cannot be held."""
    slot_id, label = add_slot(app, world.venue_id, capacity=2, taken=2)
    sign_in(client, world)

    calendar = client.get("/slots")
    assert _slot_form(calendar.text, slot_id) is None
    assert any(label in mark and "満員" in mark for mark in _full_marks(calendar.text))
    assert _slot_form(calendar.text, world.slot_ids[0]) is not None  # the others are still offered

    response = hold(client, slot_id)
    assert path_of(response) == "/slots"
    assert SLOT_FULL in pages.flashes(client.get("/slots").text)
    assert taken(app, slot_id) == 2
    assert count(app, Hold) == 0


# ---- residents who are not on the roster (R3.1, R2.1, R3.2) --------------------------------------
REGISTER = {
    "name": "深川　花子",
    "name_kana": "ふかがわ　はなこ",
    "birth_date": "平成2年5月6日",
    "sex": "女",
    "postal_code": "135-0016",
    "address": "東京都江東区東陽4丁目11番28号",
    "email": "hanako@example.jp",
    "phone": "03-1234-5678",
}


def test_unknown_number_gets_the_registration_form_with_what_was_typed(app, client, world):
    """R3.1: a valid number that is not on the roster leads to the registration form, with the number
    (display form) and the birth date as typed."""
    number = unknown_number()
    response = client.post("/start", data={"reservation_number": number, "birth_date": "平成2年5月6日"})
    assert response.status_code == 200
    root = pages.parse(response.text)
    assert root.find("form", action="/register") is not None
    assert root.by_id("reservation_number")["value"] == numbers.display(number)
    assert root.by_id("birth_date")["value"] == "平成2年5月6日"
    assert "初めて予約される方" in response.text
    assert count(app, Applicant) == 1  # nothing registered yet


def test_registering_with_an_address_in_the_table_routes_the_venue(app, client, world):
    """R3.2: registering with an address the routing table covers assigns its venue automatically."""
    number = unknown_number()
    response = client.post("/register", data={**REGISTER, "reservation_number": numbers.display(number)})
    assert path_of(response) == "/venue"

    page = client.get("/venue")
    assert "あなたの受け取り会場" in page.text
    assert world.venue_display in page.text
    assert pages.parse(page.text).find("input", name="venue") is None  # no choice offered
    with app.app_context():
        from madoguchi import applicants

        applicant = applicants.find_by_number(number)
        assert applicant.venue.code == "honchosha"
        assert applicant.source == "web"
        assert applicant.name_kana == "フカガワハナコ"

    # ...and the flow continues to the calendar of that venue.
    assert _slot_form(client.get("/slots").text, world.slot_ids[0]) is not None


def test_registering_with_an_address_outside_the_table_lets_the_resident_choose(app, client, world):
    """R3.2: an address the table does not cover (another ward) makes the resident choose the venue."""
    number = unknown_number()
    data = {
        **REGISTER,
        "reservation_number": number,
        "address": "東京都中央区銀座1丁目1番1号",
        "postal_code": "",
    }
    assert path_of(client.post("/register", data=data)) == "/venue"

    page = client.get("/venue")
    assert "受け取り会場を選んでください" in page.text
    offered = {i["value"] for i in pages.parse(page.text).find_all("input", name="venue")}
    assert offered == {"honchosha", "sogo"}
    assert path_of(client.get("/slots")) == "/venue"  # no calendar before a venue is chosen

    assert path_of(client.post("/venue", data={"venue": "sogo"})) == "/slots"
    with app.app_context():
        from madoguchi import applicants

        assert applicants.find_by_number(number).venue_id == db.session.get(Venue, world.other_venue_id).id


def test_venue_choice_outside_the_offered_ones_is_refused(app, client, world):
    """R3.2: only an offered venue can be chosen; a forged value gets a message beside the field."""
    number = unknown_number()
    data = {**REGISTER, "reservation_number": number, "address": "東京都中央区銀座1丁目1番1号"}
    client.post("/register", data=data)
    response = client.post("/venue", data={"venue": "nowhere"})
    assert response.status_code == 200
    assert pages.parse(response.text).by_id("venue-error") is not None
    with app.app_context():
        from madoguchi import applicants

        assert applicants.find_by_number(number).venue_id is None


def test_postal_code_lookup_fills_the_address_and_keeps_the_other_fields(app, client, world):
    """R3.1: 住所を検索 with 135-8383 fills the first part of the address (江東区…) and keeps every other
    typed field; nothing is registered by the look-up."""
    number = numbers.display(unknown_number())
    data = {
        **REGISTER,
        "reservation_number": number,
        "postal_code": "135-8383",
        "address": "",
        "lookup_postal": "住所を検索",
    }
    response = client.post("/register", data=data)
    assert response.status_code == 200
    root = pages.parse(response.text)
    assert "江東区" in root.by_id("address")["value"]
    assert root.by_id("address")["value"].startswith("東京都江東区")
    assert root.by_id("name")["value"] == REGISTER["name"]
    assert root.by_id("name_kana")["value"] == REGISTER["name_kana"]
    assert root.by_id("birth_date")["value"] == REGISTER["birth_date"]
    assert root.by_id("email")["value"] == REGISTER["email"]
    assert root.by_id("phone")["value"] == REGISTER["phone"]
    assert root.by_id("reservation_number")["value"] == number
    assert root.find("input", name="sex", value="女").get("checked") is not None
    assert root.by_id("error-summary") is None
    assert count(app, Applicant) == 1


def test_unknown_postal_code_shows_an_error_beside_the_field(app, client, world):
    """R3.6: a postal code with no address gives a Japanese message beside the postal-code field."""
    data = {
        **REGISTER,
        "reservation_number": unknown_number(),
        "postal_code": "999-9999",
        "address": "",
        "lookup_postal": "住所を検索",
    }
    response = client.post("/register", data=data)
    assert response.status_code == 200
    root = pages.parse(response.text)
    error = root.by_id("postal_code-error")
    assert error is not None
    assert "この郵便番号の住所が見つかりません" in error.text
    assert root.by_id("postal_code")["value"] == "999-9999"
    assert "postal_code-error" in root.by_id("postal_code")["aria-describedby"]
    assert count(app, Applicant) == 1


def test_registering_a_number_already_on_the_roster_is_refused(app, client, world):
    """R1.4 / R3.1: the registration form cannot create a second applicant for a roster number."""
    data = {**REGISTER, "reservation_number": world.number}
    response = client.post("/register", data=data)
    assert response.status_code == 200
    assert (
        "この予約管理番号は登録済みです" in pages.parse(response.text).by_id("reservation_number-error").text
    )
    assert count(app, Applicant) == 1


def test_roster_required_treats_an_unknown_number_like_a_wrong_birth_date(overrides, request):
    """R3.5 / R3.1: with ROSTER_REQUIRED an unknown number gets exactly the error of a wrong birth date,
    so the form does not tell a guesser which numbers exist."""
    overrides["ROSTER_REQUIRED"] = True
    app = request.getfixturevalue("app")
    client = app.test_client()
    world = seed_world(app)

    unknown = client.post(
        "/start", data={"reservation_number": unknown_number(), "birth_date": "1980年4月1日"}
    )
    wrong = client.post("/start", data={"reservation_number": world.number, "birth_date": "1980年4月2日"})

    assert unknown.status_code == wrong.status_code == 200
    unknown_error = pages.parse(unknown.text).by_id("birth_date-error")
    wrong_error = pages.parse(wrong.text).by_id("birth_date-error")
    assert unknown_error is not None and wrong_error is not None
    assert MISMATCH in unknown_error.text
    assert unknown_error.text == wrong_error.text
    assert pages.parse(unknown.text).find("form", action="/register") is None
    assert pages.parse(unknown.text).by_id("reservation_number-error") is None
    assert count(app, Applicant) == 1
