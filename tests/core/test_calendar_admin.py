"""Venue calendars changed by administrators (R3.3, R1.2, R1.3): a capacity never drops below the
bookings a slot holds without a decision on each; decisions and capacities apply all or nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from madoguchi import availability, booking, calendar_admin, dates
from madoguchi.calendar_admin import CalendarConflict, CalendarRejected, Decision, DecisionsMissing
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, Booking, BookingEvent, Channel, OutboundMessage, Slot, SpecialOpening
from tests.factories import make_applicant, make_slot, make_staff, make_venue

PHONE = booking.Actor(Channel.PHONE)


@pytest.fixture
def world(ctx):
    """A venue, a slot with three bookings, a free slot, and an administrator."""
    venue = make_venue()
    full = make_slot(venue, starts_in=timedelta(days=3), capacity=5)
    free = make_slot(venue, starts_in=timedelta(days=4), capacity=5)
    people = [make_applicant(venue) for _ in range(3)]
    made = [booking.book(p, full.id, actor=PHONE) for p in people]
    admin = make_staff(roles=("administrator",))
    db.session.commit()
    return {"venue": venue, "full": full, "free": free, "bookings": made, "admin": admin}


def _state(slot_ids):
    db.session.expire_all()
    slots = {
        s.id: (s.capacity, s.taken) for s in db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids)))
    }
    placed = dict(db.session.execute(select(Booking.id, Booking.slot_id)).all())
    statuses = dict(db.session.execute(select(Booking.id, Booking.status)).all())
    messages = db.session.scalar(select(func.count()).select_from(OutboundMessage))
    return slots, placed, statuses, messages


def test_lowering_below_the_bookings_needs_a_decision_for_each(world):
    """R3.3: capacity 1 for a slot holding 3 bookings is refused without decisions; nothing changes."""
    before = _state([world["full"].id])
    plan = calendar_admin.plan_slot_capacity(world["full"].id, 1)
    assert plan.needs_decisions
    assert [len(a.movable) for a in plan.affected] == [3]
    assert plan.affected[0].excess == 2
    with pytest.raises(DecisionsMissing) as missing:
        calendar_admin.apply(plan, {}, staff=world["admin"])
    assert sorted(code for _, code in missing.value.problems) == ["missing"] * 3
    # Keeping all three does not fit either.
    keep_all = {b.id: Decision("keep") for b in world["bookings"]}
    with pytest.raises(DecisionsMissing) as too_many:
        calendar_admin.apply(plan, keep_all, staff=world["admin"])
    assert too_many.value.problems == [(str(world["full"].id), "too_many_kept")]
    db.session.rollback()
    assert _state([world["full"].id]) == before


def test_decisions_move_and_cancel_then_the_capacity_applies(world):
    """R3.3, R1.3: one booking moves (booking.change, counter channel, the administrator's id, a
    change message), one is cancelled (booking.cancel, a cancel message), one stays; capacity 1."""
    first, second, third = world["bookings"]
    plan = calendar_admin.plan_slot_capacity(world["full"].id, 1)
    decisions = {
        first.id: Decision("move", world["free"].id),
        second.id: Decision("cancel"),
        third.id: Decision("keep"),
    }
    outcome = calendar_admin.apply(plan, decisions, staff=world["admin"], remote_addr="10.0.0.1")
    db.session.commit()
    assert (outcome.moved, outcome.cancelled, outcome.kept) == (1, 1, 1)
    slots, placed, statuses, _ = _state([world["full"].id, world["free"].id])
    assert slots == {world["full"].id: (1, 1), world["free"].id: (5, 1)}
    assert placed[first.id] == world["free"].id
    assert statuses[second.id] == "cancelled"
    events = db.session.scalars(
        select(BookingEvent).where(BookingEvent.action.in_(["changed", "cancelled"]))
    ).all()
    assert {(e.channel, e.staff_id) for e in events} == {("counter", world["admin"].id)}
    kinds = set(db.session.scalars(select(OutboundMessage.template)))
    assert {"booking_changed", "booking_cancelled"} <= kinds
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "venue:calendar_changed")).one()
    assert '"moved": 1' in entry.details and '"cancelled": 1' in entry.details


def test_a_failure_midway_leaves_everything_as_it_was(world, monkeypatch):
    """R3.3, standard 3: the move is done, then the cancel fails — the move, the messages and the
    capacity are all rolled back."""
    first, second, third = world["bookings"]
    before = _state([world["full"].id, world["free"].id])

    def broken_cancel(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(calendar_admin.booking, "cancel", broken_cancel)
    plan = calendar_admin.plan_slot_capacity(world["full"].id, 1)
    decisions = {
        first.id: Decision("move", world["free"].id),
        second.id: Decision("cancel"),
        third.id: Decision("keep"),
    }
    with pytest.raises(RuntimeError):
        calendar_admin.apply(plan, decisions, staff=world["admin"])
    db.session.commit()  # what a request would commit after showing the error
    assert _state([world["full"].id, world["free"].id]) == before


def test_a_full_target_fails_the_whole_change(world):
    """R1.2: moving two bookings into a slot with one place left fails at the second move, and the
    first move is undone too (CalendarConflict, nothing changed)."""
    first, second, third = world["bookings"]
    tight = make_slot(world["venue"], starts_in=timedelta(days=5), capacity=1)
    db.session.commit()
    before = _state([world["full"].id, tight.id])
    plan = calendar_admin.plan_slot_capacity(world["full"].id, 1)
    decisions = {
        first.id: Decision("move", tight.id),
        second.id: Decision("move", tight.id),
        third.id: Decision("keep"),
    }
    with pytest.raises(CalendarConflict) as conflict:
        calendar_admin.apply(plan, decisions, staff=world["admin"])
    assert conflict.value.reason == "slot_full"
    db.session.commit()
    assert _state([world["full"].id, tight.id]) == before


def test_raising_a_capacity_or_lowering_within_the_bookings_needs_no_decision(world):
    """R3.3: capacity 3 for 3 bookings is applied at once."""
    plan = calendar_admin.plan_slot_capacity(world["full"].id, 3)
    assert not plan.needs_decisions
    calendar_admin.apply(plan, {}, staff=world["admin"])
    db.session.commit()
    assert _state([world["full"].id])[0] == {world["full"].id: (3, 3)}


def test_a_past_slot_and_a_bad_capacity_are_refused(world):
    past = make_slot(world["venue"], starts_in=timedelta(hours=-2))
    with pytest.raises(CalendarRejected, match="past"):
        calendar_admin.plan_slot_capacity(past.id, 1)
    with pytest.raises(CalendarRejected, match="capacity"):
        calendar_admin.plan_slot_capacity(world["full"].id, -1)


def test_closing_a_day_needs_decisions_and_hides_the_day_from_residents(world):
    """R3.3: closing the day of the full slot asks for all three bookings; once cancelled/moved the
    day's slots have capacity 0 and the residents' calendar offers none of them."""
    day = dates.tokyo(world["full"].starts_at).date()
    plan = calendar_admin.plan_close_day(world["venue"], day)
    assert plan.needs_decisions and plan.affected[0].capacity == 0
    first, second, third = world["bookings"]
    with pytest.raises(DecisionsMissing):
        calendar_admin.apply(plan, {first.id: Decision("keep")}, staff=world["admin"])
    decisions = {
        first.id: Decision("move", world["free"].id),
        second.id: Decision("cancel"),
        third.id: Decision("cancel"),
    }
    calendar_admin.apply(plan, decisions, staff=world["admin"])
    db.session.commit()
    assert _state([world["full"].id])[0] == {world["full"].id: (0, 0)}
    week = availability.week(world["venue"], day)
    assert week.by_day[day] == []
    assert calendar_admin.overview(world["venue"], day, 1)[0].state == "closed_by_admin"
    # Reopening gives the template's capacity back.
    calendar_admin.apply(calendar_admin.plan_reopen_day(world["venue"], day), {}, staff=world["admin"])
    db.session.commit()
    assert _state([world["full"].id])[0][world["full"].id][0] == world["venue"].slot_capacity


def _tomorrow_noon() -> datetime:
    return datetime.combine(dates.today() + timedelta(days=1), time(12), tzinfo=dates.TOKYO).astimezone(UTC)


def test_a_template_change_regenerates_future_slots(ctx):
    """R3.3: 30-minute slots become 60-minute ones: a slot whose start stays on the grid keeps its
    booking (its end moves), an empty off-grid slot disappears, a booked off-grid slot needs a
    decision, and the venue's template is saved."""
    venue = make_venue(open_time=time(9), close_time=time(11), slot_minutes=30, slot_capacity=4)
    admin = make_staff(roles=("administrator",))
    day = dates.today() + timedelta(days=2)
    from madoguchi import venues

    venues.generate_slots(venue, day, day)
    slots = calendar_admin.slots_of_day(venue, day)
    assert [dates.tokyo(s.starts_at).strftime("%H:%M") for s in slots] == ["09:00", "09:30", "10:00", "10:30"]
    on_grid = booking.book(make_applicant(venue), slots[0].id, actor=PHONE)
    off_grid = booking.book(make_applicant(venue), slots[1].id, actor=PHONE)
    db.session.commit()

    template = calendar_admin.Template(time(9), time(11), 60, 6, "0123456")
    plan = calendar_admin.plan_template(venue, template, day)
    assert [a.slot.id for a in plan.affected] == [slots[1].id]
    with pytest.raises(DecisionsMissing):
        calendar_admin.apply(plan, {}, staff=admin)
    calendar_admin.apply(plan, {off_grid.id: Decision("move", slots[0].id)}, staff=admin)
    db.session.commit()

    after = calendar_admin.slots_of_day(venue, day)
    assert [(dates.tokyo(s.starts_at).strftime("%H:%M"), s.capacity, s.taken) for s in after] == [
        ("09:00", 6, 2),
        ("10:00", 6, 0),
    ]
    assert dates.tokyo(after[0].ends_at).strftime("%H:%M") == "10:00"
    assert db.session.get(Booking, on_grid.id).slot_id == after[0].id
    assert db.session.get(Booking, off_grid.id).slot_id == after[0].id
    assert (venue.slot_minutes, venue.slot_capacity) == (60, 6)


def test_a_special_opening_on_a_holiday_opens_it_and_withdrawing_it_asks_for_decisions(ctx):
    """R3.3: 休日開庁 creates the day's slots; taking it back with a booking needs a decision."""
    import jpholiday

    venue = make_venue(open_weekdays="01234")
    admin = make_staff(roles=("administrator",))
    day = next(
        d for d in (dates.today() + timedelta(days=i) for i in range(2, 400)) if jpholiday.is_holiday(d)
    )
    assert calendar_admin.overview(venue, day, 1)[0].state == "holiday"
    plan = calendar_admin.plan_special_add(venue, day, time(9), time(12), "休日開庁")
    calendar_admin.apply(plan, {}, staff=admin)
    db.session.commit()
    slots = calendar_admin.slots_of_day(venue, day)
    assert len(slots) == 6 and calendar_admin.overview(venue, day, 1)[0].state == "special"
    made = booking.book(make_applicant(venue), slots[0].id, actor=PHONE)
    db.session.commit()
    with pytest.raises(CalendarRejected, match="special_exists"):
        calendar_admin.plan_special_add(venue, day, time(9), time(12))

    special = db.session.scalars(select(SpecialOpening)).one()
    plan = calendar_admin.plan_special_remove(venue, special.id)
    assert [b.id for a in plan.affected for b in a.movable] == [made.id]
    calendar_admin.apply(plan, {made.id: Decision("cancel")}, staff=admin)
    db.session.commit()
    # The booked slot stays (its cancelled booking points at it) with capacity 0; the rest are gone.
    left = calendar_admin.slots_of_day(venue, day)
    assert [(s.capacity, s.taken) for s in left] == [(0, 0)]
    assert db.session.scalar(select(func.count()).select_from(SpecialOpening)) == 0


def test_decisions_are_read_from_form_fields_only_when_well_formed():
    form = {
        "decision-a": "keep",
        "decision-b": "move:12",
        "decision-c": "move:x",
        "decision-d": "drop",
        "x": "keep",
    }
    assert calendar_admin.parse_decisions(form) == {"a": Decision("keep"), "b": Decision("move", 12)}


def test_days_in_the_past_are_refused(world):
    with pytest.raises(CalendarRejected, match="past"):
        calendar_admin.plan_close_day(world["venue"], date(2000, 1, 1))
