"""The one booking service (R1): capacity under concurrency, holds, idempotency, atomic change."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from madoguchi import booking
from madoguchi.errors import AlreadyBooked, HoldExpired, NotChangeable, SameSlot, SlotFull, SlotNotBookable
from madoguchi.extensions import begin_write, db
from madoguchi.models import Booking, BookingEvent, Channel, Hold, Slot, Status
from tests.factories import make_applicant, make_slot, make_staff, make_venue

WEB = booking.Actor.resident()


@pytest.fixture
def operator_id(ctx):
    staff_id = make_staff().id
    db.session.commit()  # racing threads must see the operator
    return staff_id


@pytest.fixture
def PHONE(operator_id):  # noqa: N802 - reads as the channel it stands for
    return booking.Actor(Channel.PHONE, staff_id=operator_id)


@pytest.fixture
def race_overrides(overrides):
    # Enough pooled connections for every racer to be inside the database at once.
    overrides["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 60, "max_overflow": 0, "hide_parameters": True}
    return overrides


def _live_count(slot_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.slot_id == slot_id, Booking.status == "booked")
    )


def _race(app, workers: int, operation):
    """Run ``operation(i)`` in ``workers`` threads released together; each in its own app context
    (its own session and connection) and its own transaction, as concurrent requests are."""
    barrier = threading.Barrier(workers)
    outcomes: list[str] = [""] * workers

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                begin_write()
                operation(i)
                db.session.commit()
                outcomes[i] = "ok"
            except SlotFull:
                db.session.rollback()
                outcomes[i] = "full"
            except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
                db.session.rollback()
                outcomes[i] = f"error: {type(exc).__name__}: {exc}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def test_fifty_concurrent_bookings_for_the_last_five_places_make_exactly_five(race_overrides, app, PHONE):
    """R1.2: 50 simultaneous bookings race for the last 5 places; exactly 5 win, 45 are told it is
    full, none errors, and the slot is never overbooked (SQLite here, PostgreSQL in CI)."""
    with app.app_context():
        venue = make_venue()
        slot = make_slot(venue, capacity=20, taken=15)
        people = [make_applicant(venue).id for _ in range(50)]
        db.session.commit()
        slot_id = slot.id

    def book(i):
        from madoguchi.models import Applicant

        booking.book(db.session.get(Applicant, people[i]), slot_id, actor=PHONE)

    outcomes = _race(app, 50, book)
    assert sorted(set(outcomes)) == ["full", "ok"], outcomes
    assert outcomes.count("ok") == 5
    assert outcomes.count("full") == 45
    with app.app_context():
        assert _live_count(slot_id) == 5
        assert db.session.get(Slot, slot_id).taken == 20


def test_fifty_concurrent_holds_for_the_last_five_places_hold_exactly_five(race_overrides, app):
    """R1.2: holds count against capacity: 50 residents choosing the same slot at once, 5 places."""
    with app.app_context():
        venue = make_venue()
        slot = make_slot(venue, capacity=5)
        people = [make_applicant(venue).id for _ in range(50)]
        db.session.commit()
        slot_id = slot.id

    def hold(i):
        from madoguchi.models import Applicant

        booking.hold(db.session.get(Applicant, people[i]), slot_id)

    outcomes = _race(app, 50, hold)
    assert outcomes.count("ok") == 5, outcomes
    assert outcomes.count("full") == 45
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Hold)) == 5
        assert db.session.get(Slot, slot_id).taken == 5


def test_concurrent_double_submit_of_one_request_books_once(race_overrides, app, PHONE):
    """R1.2: the same form submitted 10 times at once (same request key) creates one booking."""
    with app.app_context():
        venue = make_venue()
        slot = make_slot(venue, capacity=50)
        applicant_id = make_applicant(venue).id
        db.session.commit()
        slot_id = slot.id

    def submit(_i):
        from madoguchi.models import Applicant

        booking.book(db.session.get(Applicant, applicant_id), slot_id, actor=PHONE, request_key="form-123")

    outcomes = _race(app, 10, submit)
    assert set(outcomes) == {"ok"}, outcomes
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Booking)) == 1
        assert db.session.get(Slot, slot_id).taken == 1


def test_a_resubmit_that_lands_between_the_two_look_ups_returns_the_first_booking(ctx, PHONE, monkeypatch):
    """R1.2: on PostgreSQL each statement sees what committed before it, so the first submit of a
    form can commit after the resubmit's request-key look-up and before its live-booking look-up.
    That resubmit is the same booking, not a refused second one (this interleaving, forced)."""
    venue = make_venue()
    slot = make_slot(venue)
    person = make_applicant(venue)
    first = booking.book(person, slot.id, actor=PHONE, request_key="form-9")
    monkeypatch.setattr(booking, "_by_request_key", lambda key: None)  # the look-up ran too early
    assert booking.book(person, slot.id, actor=PHONE, request_key="form-9").id == first.id
    with pytest.raises(AlreadyBooked):  # another form for the same person is still refused
        booking.book(person, slot.id, actor=PHONE, request_key="form-10")
    db.session.expire_all()
    assert slot.taken == 1


def test_concurrent_double_submit_of_one_change_moves_once(race_overrides, app, PHONE):
    """R1.2, R1.3: the same change submitted 10 times at once (same request key) moves the booking
    once; the resubmits that waited for its row lock return it unchanged."""
    with app.app_context():
        venue = make_venue()
        old, new = make_slot(venue), make_slot(venue)
        first = booking.book(make_applicant(venue), old.id, actor=PHONE)
        db.session.commit()
        booking_id, old_id, new_id = first.id, old.id, new.id

    def submit(_i):
        booking.change(db.session.get(Booking, booking_id), new_id, actor=PHONE, request_key="chg-7")

    outcomes = _race(app, 10, submit)
    assert set(outcomes) == {"ok"}, outcomes
    with app.app_context():
        assert (db.session.get(Slot, old_id).taken, db.session.get(Slot, new_id).taken) == (0, 1)
        events = db.session.scalars(select(BookingEvent.action).where(BookingEvent.booking_id == booking_id))
        assert list(events) == ["booked", "changed"]


def test_one_live_booking_per_reservation_number(ctx, PHONE):
    """R1.3: a second booking for the same number is refused; the first stands."""
    venue = make_venue()
    a, b = make_slot(venue), make_slot(venue)
    person = make_applicant(venue)
    booking.book(person, a.id, actor=PHONE)
    with pytest.raises(AlreadyBooked):
        booking.book(person, b.id, actor=PHONE)
    db.session.expire_all()
    assert (a.taken, b.taken) == (1, 0)


def test_a_failed_operation_leaves_the_store_as_it_was(ctx):
    """Standard 3: a refused booking changes nothing, even inside a transaction that goes on."""
    venue = make_venue()
    full = make_slot(venue, capacity=1, taken=1)
    person = make_applicant(venue)
    held_elsewhere = make_slot(venue)
    booking.hold(person, held_elsewhere.id)
    with pytest.raises(SlotFull):
        booking.hold(person, full.id)  # would have released the first hold before failing
    db.session.expire_all()
    assert held_elsewhere.taken == 1 and full.taken == 1
    assert booking.current_hold(person).slot_id == held_elsewhere.id


def test_booking_records_channel_and_staff(ctx, PHONE):
    """R1.1: each booking records its channel and the staff member (none for the web)."""
    venue = make_venue()
    slot = make_slot(venue)
    by_phone = booking.book(make_applicant(venue), slot.id, actor=PHONE)
    person = make_applicant(venue)
    held = booking.hold(person, slot.id)
    by_web = db.session.get(Booking, booking.confirm_hold(person.id, held.id, actor=WEB))
    assert (by_phone.channel, by_phone.staff_id) == ("phone", PHONE.staff_id)
    assert (by_web.channel, by_web.staff_id) == ("web", None)
    assert [e.action for e in by_phone.events] == ["booked"]
    assert by_web.events[0].channel == "web"


def test_hold_then_confirm_turns_the_place_into_a_booking(ctx):
    """Issue 2.3: choosing a slot holds a place; confirming keeps exactly that one place."""
    venue = make_venue()
    slot = make_slot(venue, capacity=2)
    person = make_applicant(venue)
    held_id = booking.hold(person, slot.id).id
    db.session.expire_all()
    assert slot.taken == 1
    done = db.session.get(Booking, booking.confirm_hold(person.id, held_id, actor=WEB))
    db.session.expire_all()
    assert slot.taken == 1 and done.status == Status.BOOKED
    assert db.session.scalar(select(func.count()).select_from(Hold)) == 0
    # Confirming the same hold again (a double submit) returns the same booking.
    assert booking.confirm_hold(person.id, held_id, actor=WEB) == done.id
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1


def test_choosing_another_slot_gives_the_first_place_back(ctx):
    venue = make_venue()
    a, b = make_slot(venue), make_slot(venue)
    person = make_applicant(venue)
    booking.hold(person, a.id)
    booking.hold(person, b.id)
    db.session.expire_all()
    assert (a.taken, b.taken) == (0, 1)


def test_a_lapsed_hold_frees_its_place_and_cannot_be_confirmed(ctx, app):
    """Issue 2.3: a hold lapses by itself after HOLD_MINUTES; its place goes to the next person."""
    venue = make_venue()
    slot = make_slot(venue, capacity=1)
    first, second = make_applicant(venue), make_applicant(venue)
    held = booking.hold(first, slot.id)
    with pytest.raises(SlotFull):
        booking.hold(second, slot.id)
    assert booking.places_left([slot.id])[slot.id] == 0
    app.extensions["madoguchi.clock"].offset = timedelta(minutes=app.config["HOLD_MINUTES"], seconds=1)
    assert booking.places_left([slot.id])[slot.id] == 1  # shown free before anyone sweeps
    with pytest.raises(HoldExpired):
        booking.confirm_hold(first.id, held.id, actor=WEB)
    booking.hold(second, slot.id)  # takes the lapsed place
    db.session.expire_all()
    assert slot.taken == 1
    assert booking.current_hold(first) is None


def test_sweep_releases_every_lapsed_hold(ctx, app):
    venue = make_venue()
    slots = [make_slot(venue, capacity=3) for _ in range(3)]
    for slot in slots:
        booking.hold(make_applicant(venue), slot.id)
    app.extensions["madoguchi.clock"].offset = timedelta(minutes=30)
    assert booking.sweep_expired_holds() == 3
    db.session.expire_all()
    assert [s.taken for s in slots] == [0, 0, 0]
    assert booking.sweep_expired_holds() == 0


def test_change_moves_the_booking_atomically(ctx, PHONE):
    """R1.3: a change leaves exactly one live booking, in the new slot; the old place is free."""
    venue = make_venue()
    old, new = make_slot(venue), make_slot(venue)
    person = make_applicant(venue)
    first = booking.book(person, old.id, actor=PHONE)
    moved = booking.change(first, new.id, actor=PHONE, request_key="chg-1")
    db.session.expire_all()
    assert moved.id == first.id and moved.slot_id == new.id
    assert (old.taken, new.taken) == (0, 1)
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1
    assert [e.action for e in moved.events] == ["booked", "changed"]
    # The same change request again does nothing more.
    booking.change(moved, new.id, actor=PHONE, request_key="chg-1")
    db.session.expire_all()
    assert (old.taken, new.taken) == (0, 1)


def test_change_into_a_full_slot_keeps_the_old_booking(ctx, PHONE):
    """R1.3: never zero bookings — a refused change leaves the booking where it was."""
    venue = make_venue()
    old, full = make_slot(venue), make_slot(venue, capacity=1, taken=1)
    person = make_applicant(venue)
    first = booking.book(person, old.id, actor=PHONE)
    with pytest.raises(SlotFull):
        booking.change(first, full.id, actor=PHONE)
    db.session.expire_all()
    assert first.slot_id == old.id and first.status == "booked"
    assert (old.taken, full.taken) == (1, 1)


def test_web_change_through_a_hold_moves_the_live_booking(ctx):
    """R1.3, R3.5: the resident's change is a hold on the new slot, then a move on confirmation."""
    venue = make_venue()
    old, new = make_slot(venue), make_slot(venue)
    person = make_applicant(venue)
    first = booking.book(person, old.id, actor=WEB)
    held = booking.hold(person, new.id)
    db.session.expire_all()
    assert (old.taken, new.taken) == (1, 1)  # both places kept while the resident decides
    moved = db.session.get(Booking, booking.confirm_hold(person.id, held.id, actor=WEB))
    db.session.expire_all()
    assert moved.id == first.id and moved.slot_id == new.id
    assert (old.taken, new.taken) == (0, 1)


def test_holding_the_slot_already_booked_is_refused(ctx, PHONE):
    venue = make_venue()
    slot = make_slot(venue)
    person = make_applicant(venue)
    booking.book(person, slot.id, actor=PHONE)
    with pytest.raises(SameSlot):
        booking.hold(person, slot.id)


def test_cancel_gives_the_place_back_and_allows_a_new_booking(ctx, PHONE):
    venue = make_venue()
    slot = make_slot(venue, capacity=1)
    person = make_applicant(venue)
    first = booking.book(person, slot.id, actor=PHONE)
    booking.cancel(first, actor=PHONE)
    db.session.expire_all()
    assert slot.taken == 0 and first.status == "cancelled"
    with pytest.raises(NotChangeable):
        booking.cancel(first, actor=PHONE)
    again = booking.book(person, slot.id, actor=PHONE)
    assert again.id != first.id
    actions = db.session.scalars(select(BookingEvent.action).order_by(BookingEvent.id)).all()
    assert actions == ["booked", "cancelled", "booked"]


def test_past_slots_and_other_venues_are_not_bookable(ctx, PHONE):
    venue, other = make_venue(), make_venue()
    past = make_slot(venue, starts_in=timedelta(hours=-2))
    elsewhere = make_slot(other)
    person = make_applicant(venue)
    with pytest.raises(SlotNotBookable):
        booking.book(person, past.id, actor=PHONE)
    with pytest.raises(SlotNotBookable):
        booking.hold(person, elsewhere.id)
    with pytest.raises(SlotNotBookable):
        booking.hold(person, 999_999)


def test_the_database_itself_refuses_an_overbooked_slot(ctx):
    """R1.2: even code that bypassed the service could not store taken > capacity (CHECK)."""
    from sqlalchemy.exc import IntegrityError

    slot = make_slot(make_venue(), capacity=1, taken=1)
    db.session.commit()
    slot.taken = 2
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_booking_queues_a_confirmation_email_in_the_same_transaction(ctx, PHONE):
    """R3.4: the message is written with the booking (nothing lost if delivery fails later); its
    text is drafted and stored, encrypted, when it is delivered (R9.2: not inside the booking)."""
    from madoguchi import notify
    from madoguchi.models import OutboundMessage

    venue = make_venue()
    slot = make_slot(venue)
    person = make_applicant(venue, email="hanako@example.jp", phone="03-1234-5678")  # a landline: no SMS
    made = booking.book(person, slot.id, actor=PHONE)
    message = db.session.scalars(select(OutboundMessage)).one()
    assert (message.kind, message.template, message.status) == ("email", "booking_confirmed", "pending")
    assert (message.booking_id, message.slot_id, message.body_ct) == (made.id, slot.id, None)
    sent, failed = notify.deliver_pending()
    db.session.expire_all()
    assert (sent, failed) == (1, 0) and message.status == "sent"
    assert message.recipient == "hanako@example.jp" and venue.name in message.body
    assert "hanako" not in message.recipient_ct and venue.name not in message.body_ct


def test_a_message_speaks_of_the_slot_it_was_queued_for(ctx, PHONE):
    """A booking moved before its confirmation went out: the confirmation names the first time and
    the change message the new one, as they happened (texts are drafted at delivery, R9.2)."""
    from madoguchi import notify
    from madoguchi.models import OutboundMessage

    venue = make_venue()
    first, second = make_slot(venue), make_slot(venue, starts_in=timedelta(days=3, hours=2))
    person = make_applicant(venue, email="hanako@example.jp", phone="03-1234-5678")
    made = booking.book(person, first.id, actor=PHONE)
    booking.change(made, second.id, actor=PHONE)
    drafts = {
        m.template: notify.draft(m).body
        for m in db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "email"))
    }
    assert set(drafts) == {"booking_confirmed", "booking_changed"}
    assert f"{first.starts_at.astimezone(notify.dates.TOKYO):%H:%M}" in drafts["booking_confirmed"]
    assert f"{second.starts_at.astimezone(notify.dates.TOKYO):%H:%M}" in drafts["booking_changed"]


def test_a_message_with_nothing_to_send_to_is_given_up_not_retried(ctx, PHONE):
    """Drafting finds nothing to say (the resident's e-mail was removed before delivery): the
    message ends undeliverable with the reason's type, and the queue moves on."""
    from madoguchi import notify
    from madoguchi.models import OutboundMessage

    venue = make_venue()
    person = make_applicant(venue, email="hanako@example.jp", phone="03-1234-5678")  # a landline: no SMS
    booking.book(person, make_slot(venue).id, actor=PHONE)
    person.email = None
    db.session.commit()
    result = notify.deliver()
    message = db.session.scalars(select(OutboundMessage)).one()
    assert (result.sent, result.undeliverable) == (0, 1)
    assert (message.status, message.last_error, message.body_ct) == ("undeliverable", "Undeliverable", None)


def test_a_confirmation_with_nothing_begun_commits_its_own_transaction(ctx):
    """R1.2, R9.2: called with nothing begun (the residents' POST /confirm), the confirmation writes
    the booking in a short transaction of its own on a pooled driver connection and commits it:
    the session's rollback afterwards does not undo it, and confirming again returns the same one."""
    venue = make_venue()
    slot = make_slot(venue, capacity=2)
    person = make_applicant(venue)
    held_id = booking.hold(person, slot.id).id
    person_id, slot_id = person.id, slot.id
    db.session.commit()
    assert not db.session().in_transaction()
    booking_id = booking.confirm_hold(person_id, held_id, actor=WEB)
    assert not db.session().in_transaction()  # nothing left for the caller to commit
    db.session.rollback()
    done = db.session.get(Booking, booking_id)
    assert (done.status, done.slot_id, done.channel) == (Status.BOOKED, slot_id, "web")
    assert [event.action for event in done.events] == ["booked"]
    assert db.session.get(Slot, slot_id).taken == 1
    db.session.commit()
    assert booking.confirm_hold(person_id, held_id, actor=WEB) == booking_id
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1


def test_a_change_confirmed_with_nothing_begun_moves_through_the_session(ctx):
    """R1.3: with nothing begun, a confirmation that finds a live booking writes nothing on its own
    connection and moves the booking in the session's transaction, which the caller commits (or
    rolls back: then the booking stays where it was and the hold is still there)."""
    venue = make_venue()
    old, new = make_slot(venue), make_slot(venue)
    person = make_applicant(venue)
    first_id = booking.book(person, old.id, actor=WEB).id
    held_id = booking.hold(person, new.id).id
    person_id, old_id, new_id = person.id, old.id, new.id
    db.session.commit()
    assert booking.confirm_hold(person_id, held_id, actor=WEB) == first_id
    assert db.session().in_transaction()
    db.session.rollback()
    assert db.session.get(Booking, first_id).slot_id == old_id
    assert db.session.get(Hold, held_id) is not None
    db.session.commit()
    booking.confirm_hold(person_id, held_id, actor=WEB)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Booking, first_id).slot_id == new_id
    assert (db.session.get(Slot, old_id).taken, db.session.get(Slot, new_id).taken) == (0, 1)
