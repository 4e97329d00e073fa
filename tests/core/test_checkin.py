"""Venue check-in service (R6.1), the uncollected list (R6 no-shows, R6.4) and the logistics counts
(R6.3). Every test fixes its own "now" (a day in the future at noon, Tokyo), so none depends on the
hour the suite runs."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from madoguchi import booking, checkin, dates, ledgers, logistics, numbers
from madoguchi.extensions import db
from madoguchi.models import BookingEvent, Channel, LogisticsEntry, LogisticsKind, Slot, Status
from tests.factories import make_applicant, make_staff, make_venue

PHONE = booking.Actor(Channel.PHONE)


@pytest.fixture
def day(ctx):
    return dates.tokyo(dates.now()).date() + timedelta(days=3)


@pytest.fixture
def noon(day):
    return datetime.combine(day, time(12), tzinfo=dates.TOKYO)


@pytest.fixture
def clerk(ctx):
    return make_staff(roles=("venue_staff",)).id


def slot_at(venue, when: datetime, capacity: int = 5) -> Slot:
    """The venue's slot starting at ``when`` (made if missing: slots are unique per venue and time)."""
    found = db.session.scalars(select(Slot).where(Slot.venue_id == venue.id, Slot.starts_at == when)).first()
    if found is not None:
        return found
    slot = Slot(
        venue_id=venue.id, starts_at=when, ends_at=when + timedelta(minutes=30), capacity=capacity, taken=0
    )
    db.session.add(slot)
    db.session.flush()
    return slot


def booked(venue, when: datetime, **applicant):
    """An applicant of ``venue`` booked (by phone, a week earlier) at ``when``."""
    person = make_applicant(venue, **applicant)
    slot = slot_at(venue, when)
    made = booking.book(person, slot.id, actor=PHONE, now=when - timedelta(days=7))
    return made


# ---- find --------------------------------------------------------------------------------------
def test_a_scanned_number_finds_todays_booking_at_this_venue(ctx, day, noon):
    """R6.1: the scanner's digits (with hyphens, or full-width) find the booking of the day."""
    venue = make_venue()
    made = booked(venue, noon)
    number = made.applicant.reservation_number
    for typed in (
        number,
        numbers.display(number),
        number.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    ):
        found = checkin.find(venue.id, typed, day)
        assert found.match == checkin.Match.TODAY
        assert found.booking.id == made.id


def test_a_mistyped_number_is_refused_before_any_lookup(ctx, day, noon):
    """R6.1, R1.4: one wrong digit fails the check digit; nothing is looked up."""
    venue = make_venue()
    number = booked(venue, noon).applicant.reservation_number
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(numbers.InvalidReservationNumber):
        checkin.find(venue.id, wrong, day)


def test_other_venue_other_day_unknown_and_unbooked_are_told_apart(ctx, day, noon):
    """R6.1: a booking from another venue or another day is shown as such, never silently accepted."""
    here, there = make_venue(), make_venue()
    elsewhere = booked(there, noon)
    tomorrow = booked(here, noon + timedelta(days=1))
    unbooked = make_applicant(here)
    assert (
        checkin.find(here.id, elsewhere.applicant.reservation_number, day).match == checkin.Match.OTHER_VENUE
    )
    assert checkin.find(here.id, tomorrow.applicant.reservation_number, day).match == checkin.Match.OTHER_DAY
    assert checkin.find(here.id, unbooked.reservation_number, day).match == checkin.Match.NOT_BOOKED
    assert checkin.find(here.id, numbers.make("12345678901"), day).match == checkin.Match.UNKNOWN


def test_the_days_list_is_in_time_order_without_cancelled(ctx, day, noon):
    """R6.1: today's list by time; a cancelled booking is not on it."""
    venue = make_venue()
    late = booked(venue, noon + timedelta(hours=2))
    early = booked(venue, noon - timedelta(hours=2))
    gone = booked(venue, noon)
    booking.cancel(gone, actor=PHONE, now=noon - timedelta(days=1))
    booked(venue, noon + timedelta(days=1))  # tomorrow: not today's
    assert [b.id for b in checkin.todays_bookings(venue.id, day)] == [early.id, late.id]


# ---- outcomes ------------------------------------------------------------------------------------
def test_arrived_then_handed_over_records_time_and_staff(ctx, noon, clerk):
    """R6.1: each outcome is an event with its time, the staff member and the status it replaced."""
    made = booked(make_venue(), noon)
    checkin.record(made, checkin.Outcome.ARRIVED, staff_id=clerk, now=noon)
    checkin.record(made, checkin.Outcome.HANDED_OVER, staff_id=clerk, now=noon + timedelta(minutes=5))
    assert made.status == Status.HANDED_OVER
    events = [(e.action, e.from_status, e.to_status, e.staff_id, e.channel) for e in made.events[1:]]
    assert events == [
        ("venue:arrived", "booked", "arrived", clerk, "counter"),
        ("venue:handed_over", "arrived", "handed_over", clerk, "counter"),
    ]
    assert dates.tokyo(made.events[-1].at) == noon + timedelta(minutes=5)


def test_handed_over_cannot_be_recorded_twice_or_followed_by_a_no_show(ctx, noon, clerk):
    """R6.1: a card is handed over once; later outcomes are refused and change nothing."""
    made = booked(make_venue(), noon)
    checkin.record(made, checkin.Outcome.HANDED_OVER, staff_id=clerk, now=noon)
    for outcome in (checkin.Outcome.HANDED_OVER, checkin.Outcome.NO_SHOW, checkin.Outcome.ARRIVED):
        with pytest.raises(checkin.OutcomeNotAllowed):
            checkin.record(made, outcome, staff_id=clerk, now=noon)
    assert made.status == Status.HANDED_OVER
    assert len(made.events) == 2


@pytest.mark.parametrize("outcome", [checkin.Outcome.NO_SHOW, checkin.Outcome.POSTPONED])
def test_leaving_the_live_states_gives_the_place_back_and_undo_takes_it_again(ctx, noon, clerk, outcome):
    """R6.1, R1: no-show and postponed end the booking (its place is free again); undoing the
    outcome with a reason restores the booking and its place."""
    made = booked(make_venue(), noon)
    slot = db.session.get(Slot, made.slot_id)
    db.session.refresh(slot)  # capacity changes are SQL UPDATEs, not ORM attribute sets
    assert slot.taken == 1
    checkin.record(made, outcome, staff_id=clerk, now=noon)
    db.session.refresh(slot)
    assert (made.status, slot.taken) == (outcome.value, 0)

    checkin.undo(made, checkin.UndoReason.CAME_LATER, staff_id=clerk, now=noon + timedelta(minutes=20))
    db.session.refresh(slot)
    assert (made.status, slot.taken) == (Status.BOOKED, 1)
    undo = made.events[-1]
    assert (undo.action, undo.reason, undo.from_status, undo.to_status) == (
        "venue:undone",
        "came_later",
        outcome.value,
        "booked",
    )
    assert made.events[-2].undone is True


def test_undo_restores_exactly_the_previous_status_one_step_at_a_time(ctx, noon, clerk):
    """R6.1: handed over → undo → arrived → undo → booked → nothing left to undo."""
    made = booked(make_venue(), noon)
    checkin.record(made, checkin.Outcome.ARRIVED, staff_id=clerk, now=noon)
    checkin.record(made, checkin.Outcome.HANDED_OVER, staff_id=clerk, now=noon)
    checkin.undo(made, checkin.UndoReason.CARD_NOT_GIVEN, staff_id=clerk, now=noon)
    assert made.status == Status.ARRIVED
    checkin.undo(made, checkin.UndoReason.WRONG_PERSON, staff_id=clerk, now=noon)
    assert made.status == Status.BOOKED
    with pytest.raises(checkin.NothingToUndo):
        checkin.undo(made, checkin.UndoReason.WRONG_PERSON, staff_id=clerk, now=noon)
    assert made.status == Status.BOOKED


def test_undo_of_a_postponement_is_refused_once_the_resident_has_booked_again(ctx, noon, clerk):
    """R1.3 with R6.1: one live booking per number — restoring an old booking cannot make two."""
    venue = make_venue()
    made = booked(venue, noon)
    checkin.record(made, checkin.Outcome.POSTPONED, staff_id=clerk, now=noon)
    later = slot_at(venue, noon + timedelta(days=2))
    again = booking.book(made.applicant, later.id, actor=PHONE, now=noon)
    with pytest.raises(checkin.UndoConflict):
        checkin.undo(made, checkin.UndoReason.WRONG_OUTCOME, staff_id=clerk, now=noon)
    assert (made.status, again.status) == (Status.POSTPONED, Status.BOOKED)
    assert db.session.get(Slot, made.slot_id).taken == 0


# ---- uncollected (未受領) ------------------------------------------------------------------------
def test_uncollected_lists_no_shows_and_the_never_booked_only(ctx, noon, clerk):
    """R6.4, R6 no-shows: booked-and-missed (recorded or not) and never-booked are listed by kind;
    a future booking, a handed-over card and another venue's people are not."""
    venue, other = make_venue(), make_venue()
    recorded_no_show = booked(venue, noon - timedelta(days=2))
    checkin.record(recorded_no_show, checkin.Outcome.NO_SHOW, staff_id=clerk, now=noon - timedelta(days=2))
    silent_no_show = booked(venue, noon - timedelta(days=1))
    never = make_applicant(venue)
    cancelled = booked(venue, noon + timedelta(days=1))
    booking.cancel(cancelled, actor=PHONE, now=noon)
    coming = booked(venue, noon + timedelta(days=1))
    done = booked(venue, noon - timedelta(days=1))
    checkin.record(done, checkin.Outcome.HANDED_OVER, staff_id=clerk, now=noon - timedelta(days=1))
    make_applicant(other)

    found = {a.id: kind for a, kind in ledgers.uncollected(venue.id, noon, set(ledgers.Uncollected))}
    assert found == {
        recorded_no_show.applicant_id: ledgers.Uncollected.NO_SHOW,
        silent_no_show.applicant_id: ledgers.Uncollected.NO_SHOW,
        never.id: ledgers.Uncollected.NOT_BOOKED,
        cancelled.applicant_id: ledgers.Uncollected.NOT_BOOKED,
    }
    assert coming.applicant_id not in found and done.applicant_id not in found
    only_no_shows = ledgers.uncollected(venue.id, noon, {ledgers.Uncollected.NO_SHOW})
    assert {kind for _, kind in only_no_shows} == {ledgers.Uncollected.NO_SHOW}


def test_ledger_rows_are_the_venues_live_bookings_in_slot_then_number_order(ctx, day, noon, clerk):
    """R6.2: rows for the period only, this venue only, no cancelled ones; slot then number order."""
    venue, other = make_venue(), make_venue()
    first = booked(venue, noon + timedelta(hours=1))
    second = booked(venue, noon - timedelta(hours=1))
    shared = slot_at(venue, noon)
    pair = [make_applicant(venue) for _ in range(2)]
    for person in pair:
        booking.book(person, shared.id, actor=PHONE, now=noon - timedelta(days=1))
    gone = booked(venue, noon + timedelta(hours=2))
    booking.cancel(gone, actor=PHONE, now=noon - timedelta(days=1))
    booked(other, noon)
    booked(venue, noon + timedelta(days=1))

    rows = ledgers.ledger_rows(venue.id, day, day)
    numbers_in_pair = sorted(p.reservation_number for p in pair)
    assert [r.number for r in rows] == [
        second.applicant.reservation_number,
        *numbers_in_pair,
        first.applicant.reservation_number,
    ]
    assert rows[0].name == "江東　太郎" and rows[0].address.startswith("東京都江東区")


# ---- logistics counts (R6.3) -------------------------------------------------------------------
def test_balances_flag_every_difference(ctx, day, clerk, noon):
    """R6.3: notices received ≠ sent, cards received ≠ sum sent to venues, and a venue's reported
    handed-over count ≠ the check-in records are each flagged; equal counts are not."""
    a, b = make_venue(), make_venue()
    logistics.record(LogisticsKind.NOTICES_RECEIVED, 100, day=day, staff_id=clerk)
    logistics.record(LogisticsKind.NOTICES_SENT, 98, day=day, staff_id=clerk)
    logistics.record(LogisticsKind.CARDS_RECEIVED, 50, day=day, staff_id=clerk)
    logistics.record(LogisticsKind.CARDS_TO_VENUE, 30, day=day, staff_id=clerk, venue_id=a.id)
    logistics.record(LogisticsKind.CARDS_TO_VENUE, 20, day=day, staff_id=clerk, venue_id=b.id)
    logistics.record(LogisticsKind.CARDS_HANDED_OVER, 1, day=day, staff_id=clerk, venue_id=a.id)
    handed = booked(a, noon)
    checkin.record(handed, checkin.Outcome.HANDED_OVER, staff_id=clerk, now=noon)
    logistics.record(LogisticsKind.CARDS_HANDED_OVER, 2, day=day, staff_id=clerk, venue_id=b.id)

    result = logistics.reconcile()
    assert (result.notices.left, result.notices.right, result.notices.flagged) == (100, 98, True)
    assert (result.cards.left, result.cards.right, result.cards.flagged) == (50, 50, False)
    by_venue = {v.venue.id: v for v in result.venues}
    assert by_venue[a.id].flags == [] and by_venue[a.id].on_hand == 29
    assert by_venue[b.id].flags == ["handed_over_mismatch"]
    assert result.differences == 2


def test_a_correction_needs_a_reason_replaces_the_entry_once_and_keeps_history(ctx, day, clerk):
    """R6.3: no count is editable without a reason; the old entry stays, the new one counts."""
    entry = logistics.record(LogisticsKind.NOTICES_RECEIVED, 100, day=day, staff_id=clerk)
    logistics.record(LogisticsKind.NOTICES_SENT, 90, day=day, staff_id=clerk)
    for reason in ("", "   "):
        with pytest.raises(logistics.CountRejected):
            logistics.correct(entry.id, 90, reason, staff_id=clerk)
    fixed = logistics.correct(entry.id, 90, "伝票の読み違い", staff_id=clerk)
    assert logistics.reconcile().notices.flagged is False
    assert fixed.reason == "伝票の読み違い" and fixed.corrects_id == entry.id
    assert db.session.get(LogisticsEntry, entry.id).quantity == 100  # history kept
    with pytest.raises(logistics.CountRejected):
        logistics.correct(entry.id, 80, "二度目", staff_id=clerk)
    assert len(db.session.scalars(select(LogisticsEntry)).all()) == 3


def test_counts_are_checked(ctx, day, clerk):
    """R6.3: negative counts and per-venue counts without a venue are refused; nothing is stored."""
    with pytest.raises(logistics.CountRejected):
        logistics.record(LogisticsKind.CARDS_RECEIVED, -1, day=day, staff_id=clerk)
    with pytest.raises(logistics.CountRejected):
        logistics.record(LogisticsKind.CARDS_TO_VENUE, 5, day=day, staff_id=clerk)
    assert db.session.scalars(select(LogisticsEntry)).all() == []


def test_the_correction_reason_is_encrypted_at_rest(ctx, day, clerk):
    """R2, standard 4: the free-text reason is stored as ciphertext bound to its row."""
    entry = logistics.record(LogisticsKind.CARDS_RECEIVED, 10, day=day, staff_id=clerk)
    fixed = logistics.correct(entry.id, 12, "佐藤さんの分を数え忘れ", staff_id=clerk)
    db.session.flush()
    stored = db.session.execute(
        select(LogisticsEntry.reason_ct).where(LogisticsEntry.id == fixed.id)
    ).scalar_one()
    assert "佐藤" not in stored and stored.count(".") >= 1


def test_events_never_hold_personal_values(ctx, noon, clerk):
    """Standard 4: outcome events carry codes and ids only."""
    made = booked(make_venue(), noon)
    checkin.record(made, checkin.Outcome.NO_SHOW, staff_id=clerk, now=noon)
    checkin.undo(made, checkin.UndoReason.CAME_LATER, staff_id=clerk, now=noon)
    for event in db.session.scalars(select(BookingEvent)):
        values = [str(getattr(event, c.name)) for c in BookingEvent.__table__.columns]
        assert not any("江東" in v or made.applicant.reservation_number in v for v in values)
