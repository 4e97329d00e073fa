"""Venue calendars as administrators change them (R3.3, R6): a slot's capacity, the slot template
(hours, slot length, capacity, open weekdays) with the future slots regenerated, closing and
reopening a day, and 休日開庁 (special openings).

A capacity never drops below the bookings a slot holds without a decision on each of them. Every
change is first a ``Plan`` (what each slot becomes, which slots would hold more bookings than their
new capacity); ``apply`` then carries out one decision per affected booking — move it through
``booking.change`` or cancel it through ``booking.cancel``, so the resident is told by the usual
messages — and only then sets the capacities, all inside one SAVEPOINT: when anything fails, the
store is as it was (standard 3).

A closed day keeps its slots with capacity 0: the daily ``slots generate`` job leaves existing
slots alone, so the day stays closed (and the residents' calendar does not list them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from . import audit, booking, dates, venues
from .audit import AuditTag
from .errors import DomainError
from .extensions import db
from .models import LIVE, Booking, Channel, Hold, Slot, SpecialOpening, Staff, Status, Venue

MAX_CAPACITY = 999
SLOT_MINUTES = (5, 240)
# How far from the original day an administrator may move a booking on the decision screen.
MOVE_WINDOW_DAYS = 14
MOVE_OPTIONS_MAX = 60


class CalendarRejected(ValueError):
    """The change itself is not possible; ``reason`` names it for the message (no personal value)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DecisionsMissing(DomainError):
    """Some affected bookings have no (valid) decision. ``problems``: (booking or slot id, code)."""

    code = "decisions_missing"

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(f"{len(problems)} decisions missing or invalid")
        self.problems = problems


class CalendarConflict(DomainError):
    """Applying failed part-way (a target slot filled up, a booking changed meanwhile…); nothing
    was changed. ``reason`` names the cause."""

    code = "calendar_conflict"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- plans -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    kind: str  # keep | move | cancel
    slot_id: int | None = None

    @classmethod
    def parse(cls, text: str) -> Decision | None:
        text = (text or "").strip()
        if text in ("keep", "cancel"):
            return cls(text)
        if text.startswith("move:") and text[5:].isdigit():
            return cls("move", int(text[5:]))
        return None


def parse_decisions(form) -> dict[str, Decision]:
    """``decision-<booking id>`` fields of a posted form; unreadable values are left out."""
    found = {}
    for key, value in form.items():
        if key.startswith("decision-") and isinstance(value, str):
            decision = Decision.parse(value)
            if decision is not None:
                found[key.removeprefix("decision-")[:64]] = decision
    return found


@dataclass
class SlotTarget:
    """What one existing slot becomes. ``retire``: off the new grid — deleted once nothing refers
    to it, otherwise kept with capacity 0 (cancelled bookings still point at it)."""

    slot: Slot
    capacity: int
    ends_at: datetime | None = None
    retire: bool = False


@dataclass
class Affected:
    """A slot that would hold more live bookings than its new capacity."""

    slot: Slot
    capacity: int
    movable: list[Booking]  # booked: each needs a decision
    fixed: int  # arrived or handed over: they stay

    @property
    def excess(self) -> int:
        return len(self.movable) + self.fixed - self.capacity


@dataclass
class Plan:
    kind: str  # slot_capacity | template | close_day | reopen_day | special_add | special_remove
    venue: Venue
    targets: list[SlotTarget] = field(default_factory=list)
    create: list[tuple[datetime, datetime, int]] = field(default_factory=list)  # start, end, capacity
    affected: list[Affected] = field(default_factory=list)
    finish: Callable[[], None] | None = None
    details: dict = field(default_factory=dict)  # for the audit entry: ids, days, no personal value

    @property
    def needs_decisions(self) -> bool:
        return bool(self.affected)

    @property
    def changes_anything(self) -> bool:
        return bool(self.targets or self.create or self.finish)

    def planned_capacity(self, slot: Slot) -> int:
        for target in self.targets:
            if target.slot.id == slot.id:
                return target.capacity
        return slot.capacity


@dataclass(frozen=True)
class Outcome:
    moved: int = 0
    cancelled: int = 0
    kept: int = 0
    slots_changed: int = 0
    slots_created: int = 0
    slots_deleted: int = 0


def _affected(targets: list[SlotTarget]) -> list[Affected]:
    by_slot: dict[int, list[Booking]] = defaultdict(list)
    ids = [t.slot.id for t in targets]
    if ids:
        query = (
            select(Booking)
            .where(Booking.slot_id.in_(ids), Booking.status.in_(LIVE))
            .order_by(Booking.created_at, Booking.id)
        )
        for found in db.session.scalars(query):
            by_slot[found.slot_id].append(found)
    result = []
    for target in targets:
        live = by_slot.get(target.slot.id, [])
        movable = [b for b in live if b.status == Status.BOOKED.value]
        item = Affected(target.slot, target.capacity, movable, len(live) - len(movable))
        if item.excess > 0:
            result.append(item)
    return result


def _check_capacity(capacity) -> int:
    if not isinstance(capacity, int) or capacity < 0 or capacity > MAX_CAPACITY:
        raise CalendarRejected("capacity")
    return capacity


def _future_slot(slot_id: int, now: datetime) -> Slot:
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        raise CalendarRejected("unknown_slot")
    if dates.utc(slot.starts_at) <= now:
        raise CalendarRejected("past")
    return slot


def plan_slot_capacity(slot_id: int, capacity: int, *, now: datetime | None = None) -> Plan:
    """One slot's capacity (R3.3)."""
    now = now or dates.now()
    slot = _future_slot(slot_id, now)
    targets = [SlotTarget(slot, _check_capacity(capacity))] if slot.capacity != capacity else []
    plan = Plan("slot_capacity", slot.venue, targets, details={"slot_id": slot.id, "capacity": capacity})
    plan.affected = _affected(targets)
    return plan


def _day_slots(venue_id: int, first: date, last: date) -> dict[date, list[Slot]]:
    found: dict[date, list[Slot]] = defaultdict(list)
    for slot in venues.slots_between(venue_id, first, last):
        found[dates.tokyo(slot.starts_at).date()].append(slot)
    return found


def _grid(day: date, hours, minutes: int) -> dict[datetime, datetime]:
    """start → end of each slot of the day for these opening hours (none when closed)."""
    if not hours:
        return {}
    step = timedelta(minutes=minutes)
    start, close = _utc_at(day, hours[0]), _utc_at(day, hours[1])
    grid = {}
    while start + step <= close:
        grid[start] = start + step
        start += step
    return grid


def _is_closed_day(slots: list[Slot]) -> bool:
    return bool(slots) and all(s.capacity == 0 for s in slots)


def _regrid(plan: Plan, day: date, existing: list[Slot], hours, capacity: int, minutes: int, now) -> None:
    """Make the day's future slots follow ``hours``/``minutes``/``capacity``: a slot whose start
    stays on the grid keeps its bookings (its end follows the new length); one off the grid retires;
    missing grid slots are created."""
    grid = _grid(day, hours, minutes)
    taken_starts = {dates.utc(s.starts_at) for s in existing}
    for slot in existing:
        start = dates.utc(slot.starts_at)
        if start <= now:
            continue
        if start in grid:
            end = grid[start]
            moved_end = end if dates.utc(slot.ends_at) != end else None
            if moved_end is not None or slot.capacity != capacity:
                plan.targets.append(SlotTarget(slot, capacity, ends_at=moved_end))
        else:
            plan.targets.append(SlotTarget(slot, 0, retire=True))
    plan.create.extend((s, e, capacity) for s, e in grid.items() if s > now and s not in taken_starts)


@dataclass(frozen=True)
class Template:
    open_time: time
    close_time: time
    slot_minutes: int
    slot_capacity: int
    open_weekdays: str  # Monday = 0, e.g. "01234"


def _check_template(template: Template) -> None:
    if template.open_time >= template.close_time:
        raise CalendarRejected("hours")
    if not SLOT_MINUTES[0] <= template.slot_minutes <= SLOT_MINUTES[1]:
        raise CalendarRejected("slot_minutes")
    _check_capacity(template.slot_capacity)
    if not set(template.open_weekdays) <= set("0123456"):
        raise CalendarRejected("weekdays")


def _first_day(first_day: date) -> date:
    if first_day < dates.today():
        raise CalendarRejected("past")
    return first_day


def plan_template(venue: Venue, template: Template, first_day: date, *, now: datetime | None = None) -> Plan:
    """The venue's slot template, and every existing slot from ``first_day`` regenerated to follow
    it (days closed by an administrator stay closed). The daily job extends the calendar further."""
    now = now or dates.now()
    _check_template(template)
    first_day = _first_day(first_day)
    last_start = db.session.scalar(select(func.max(Slot.starts_at)).where(Slot.venue_id == venue.id))
    last_day = max(first_day, dates.tokyo(last_start).date() if last_start else first_day)
    shape = SimpleNamespace(
        id=venue.id,
        open_weekdays="".join(sorted(set(template.open_weekdays))),
        open_time=template.open_time,
        close_time=template.close_time,
    )
    specials = _specials(venue.id, first_day, last_day)
    by_day = _day_slots(venue.id, first_day, last_day)
    plan = Plan(
        "template",
        venue,
        details={
            "first_day": first_day.isoformat(),
            "slot_minutes": template.slot_minutes,
            "slot_capacity": template.slot_capacity,
            "open_weekdays": shape.open_weekdays,
            "hours": f"{template.open_time:%H:%M}-{template.close_time:%H:%M}",
        },
    )
    day = first_day
    while day <= last_day:
        existing = by_day.get(day, [])
        if not _is_closed_day(existing):
            hours = venues.opening_hours(shape, day, specials)
            _regrid(plan, day, existing, hours, template.slot_capacity, template.slot_minutes, now)
        day += timedelta(days=1)

    def finish():
        venue.open_time, venue.close_time = template.open_time, template.close_time
        venue.slot_minutes, venue.slot_capacity = template.slot_minutes, template.slot_capacity
        venue.open_weekdays = shape.open_weekdays

    plan.finish = finish
    plan.affected = _affected(plan.targets)
    return plan


def _specials(venue_id: int, first: date, last: date) -> dict[date, SpecialOpening]:
    query = select(SpecialOpening).where(
        SpecialOpening.venue_id == venue_id, SpecialOpening.day.between(first, last)
    )
    return {s.day: s for s in db.session.scalars(query)}


def plan_close_day(venue: Venue, day: date, *, now: datetime | None = None) -> Plan:
    """Close a day (e.g. the hall is needed elsewhere): its future slots keep existing with
    capacity 0; a 休日開庁 that day is withdrawn."""
    now = now or dates.now()
    day = _first_day(day)
    existing = _day_slots(venue.id, day, day).get(day, [])
    special = _specials(venue.id, day, day).get(day)
    plan = Plan("close_day", venue, details={"day": day.isoformat()})
    future = [s for s in existing if dates.utc(s.starts_at) > now]
    plan.targets = [SlotTarget(s, 0) for s in future if s.capacity != 0]
    if not existing:
        # Nothing generated yet: closed markers, so the daily job does not open the day later.
        grid = _grid(day, venues.opening_hours(venue, day), venue.slot_minutes)
        plan.create = [(s, e, 0) for s, e in grid.items() if s > now]
    if not plan.targets and not plan.create and special is None:
        raise CalendarRejected("already_closed")
    if special is not None:
        plan.finish = lambda: db.session.delete(special)
    plan.affected = _affected(plan.targets)
    return plan


def plan_reopen_day(venue: Venue, day: date, *, now: datetime | None = None) -> Plan:
    """Undo a closing: the day's capacity-0 slots get the template's capacity again."""
    now = now or dates.now()
    day = _first_day(day)
    existing = _day_slots(venue.id, day, day).get(day, [])
    if not _is_closed_day(existing):
        raise CalendarRejected("not_closed")
    targets = [SlotTarget(s, venue.slot_capacity) for s in existing if dates.utc(s.starts_at) > now]
    return Plan("reopen_day", venue, targets, details={"day": day.isoformat()})


def plan_special_add(
    venue: Venue, day: date, open_time: time, close_time: time, note: str = "", *, now: datetime | None = None
) -> Plan:
    """休日開庁: open on ``day`` with these hours (slots follow the venue's length and capacity)."""
    now = now or dates.now()
    day = _first_day(day)
    if open_time >= close_time:
        raise CalendarRejected("hours")
    if _specials(venue.id, day, day):
        raise CalendarRejected("special_exists")
    plan = Plan(
        "special_add",
        venue,
        details={"day": day.isoformat(), "hours": f"{open_time:%H:%M}-{close_time:%H:%M}"},
    )
    existing = _day_slots(venue.id, day, day).get(day, [])
    _regrid(plan, day, existing, (open_time, close_time), venue.slot_capacity, venue.slot_minutes, now)

    def finish():
        db.session.add(
            SpecialOpening(
                venue_id=venue.id, day=day, open_time=open_time, close_time=close_time, note=note[:200]
            )
        )

    plan.finish = finish
    plan.affected = _affected(plan.targets)
    return plan


def plan_special_remove(venue: Venue, special_id: int, *, now: datetime | None = None) -> Plan:
    """Withdraw a 休日開庁: the day goes back to its usual hours (closed on a holiday)."""
    now = now or dates.now()
    special = db.session.get(SpecialOpening, special_id)
    if special is None or special.venue_id != venue.id:
        raise CalendarRejected("unknown_special")
    day = _first_day(special.day)
    plan = Plan("special_remove", venue, details={"day": day.isoformat()})
    existing = _day_slots(venue.id, day, day).get(day, [])
    usual = None if venues.closed_reason(venue, day) else (venue.open_time, venue.close_time)
    _regrid(plan, day, existing, usual, venue.slot_capacity, venue.slot_minutes, now)
    plan.finish = lambda: db.session.delete(special)
    plan.affected = _affected(plan.targets)
    return plan


# ---- the decision screen's choices -------------------------------------------------------------
def move_options(plan: Plan, affected: Affected, *, now: datetime | None = None) -> list[tuple[Slot, int]]:
    """Slots a booking of ``affected`` may move to, with the places they will have left after the
    plan (moves decided on the same screen are checked again when applied)."""
    now = now or dates.now()
    day = dates.tokyo(affected.slot.starts_at).date()
    first = max(dates.today(), day - timedelta(days=MOVE_WINDOW_DAYS))
    leaving = {a.slot.id for a in plan.affected}
    retired = {t.slot.id for t in plan.targets if t.retire}
    options = []
    for slot in venues.slots_between(plan.venue.id, first, day + timedelta(days=MOVE_WINDOW_DAYS)):
        if slot.id in leaving or slot.id in retired or dates.utc(slot.starts_at) <= now:
            continue
        left = plan.planned_capacity(slot) - slot.taken
        if left > 0:
            options.append((slot, left))
    options.sort(key=lambda item: abs(dates.utc(item[0].starts_at) - dates.utc(affected.slot.starts_at)))
    return sorted(options[:MOVE_OPTIONS_MAX], key=lambda item: item[0].starts_at)


def check_decisions(plan: Plan, decisions: dict[str, Decision]) -> list[tuple[str, str]]:
    """Every movable booking of an affected slot needs a decision, and what stays must fit."""
    problems = []
    for item in plan.affected:
        kept = item.fixed
        for found in item.movable:
            decision = decisions.get(found.id)
            if decision is None:
                problems.append((found.id, "missing"))
            elif decision.kind == "keep":
                kept += 1
            elif decision.kind == "move" and decision.slot_id == item.slot.id:
                problems.append((found.id, "same_slot"))
        if kept > item.capacity:
            problems.append((str(item.slot.id), "too_many_kept"))
    return problems


# ---- carrying it out ---------------------------------------------------------------------------
def apply(
    plan: Plan,
    decisions: dict[str, Decision],
    *,
    staff: Staff,
    remote_addr: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Carry out the decisions, then the capacities, in one SAVEPOINT (all or nothing)."""
    now = now or dates.now()
    problems = check_decisions(plan, decisions)
    if problems:
        raise DecisionsMissing(problems)
    actor = booking.Actor(Channel.COUNTER, staff.id)
    counts = defaultdict(int)
    try:
        with db.session.begin_nested():
            _release_holds(plan, counts)
            for item in plan.affected:
                for found in item.movable:
                    _carry_out(found, decisions[found.id], actor, staff, remote_addr, now, counts)
            for target in plan.targets:
                _set_capacity(target)
            for start, end, capacity in plan.create:
                db.session.add(
                    Slot(venue_id=plan.venue.id, starts_at=start, ends_at=end, capacity=capacity, taken=0)
                )
            if plan.finish is not None:
                plan.finish()
            db.session.flush()
            counts["deleted"] = _delete_retired(plan)
            outcome = Outcome(
                moved=counts["moved"],
                cancelled=counts["cancelled"],
                kept=counts["kept"],
                slots_changed=len(plan.targets),
                slots_created=len(plan.create),
                slots_deleted=counts["deleted"],
            )
            audit.record(
                AuditTag.CALENDAR_CHANGED,
                staff=staff,
                subject_type="venue",
                subject_id=plan.venue.id,
                remote_addr=remote_addr,
                at=now,
                kind=plan.kind,
                moved=outcome.moved,
                cancelled=outcome.cancelled,
                holds_released=counts["holds"],
                slots_changed=outcome.slots_changed,
                slots_created=outcome.slots_created,
                slots_deleted=outcome.slots_deleted,
                **plan.details,
            )
    except CalendarConflict:
        raise
    except DomainError as failed:
        raise CalendarConflict(failed.code) from None
    except IntegrityError:
        raise CalendarConflict("constraint") from None
    # The capacities, places and deletions were written with SQL: read everything afresh.
    db.session.expire_all()
    return outcome


def _release_holds(plan: Plan, counts) -> None:
    """A resident mid-confirmation on a slot that shrinks loses the hold (it lapses in minutes
    anyway); the confirmation page then asks them to choose again."""
    for target in plan.targets:
        if target.capacity >= target.slot.taken:
            continue
        released = db.session.execute(
            delete(Hold).where(Hold.slot_id == target.slot.id).execution_options(synchronize_session=False)
        ).rowcount
        if released:
            booking.give_back_place(target.slot.id, released)
            counts["holds"] += released


def _carry_out(found: Booking, decision: Decision, actor, staff, remote_addr, now, counts) -> None:
    if decision.kind == "keep":
        counts["kept"] += 1
        return
    if decision.kind == "move":
        target = db.session.get(Slot, decision.slot_id)
        if target is None or target.venue_id != found.slot.venue_id:
            raise CalendarConflict("move_target")
        booking.change(found, target.id, actor=actor, now=now)
        counts["moved"] += 1
        action = "changed"
    else:
        booking.cancel(found, actor=actor, now=now)
        counts["cancelled"] += 1
        action = "cancelled"
    audit.record(
        AuditTag.BOOKING_MADE_BY_STAFF,
        staff=staff,
        subject_type="booking",
        subject_id=found.id,
        remote_addr=remote_addr,
        at=now,
        action=action,
        reason="calendar_change",
        to_slot=decision.slot_id,
    )


def _set_capacity(target: SlotTarget) -> None:
    """Conditional: the capacity is set only if the slot's places still fit, decided by the row
    count (a booking that slipped in meanwhile makes the whole change fail, not overbook)."""
    values = {"capacity": target.capacity}
    if target.ends_at is not None:
        values["ends_at"] = target.ends_at
    result = db.session.execute(
        update(Slot)
        .where(Slot.id == target.slot.id, Slot.taken <= target.capacity)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CalendarConflict("capacity_below_taken")


def _delete_retired(plan: Plan) -> int:
    ids = [t.slot.id for t in plan.targets if t.retire]
    if not ids:
        return 0
    referenced = exists().where(Booking.slot_id == Slot.id)
    held = exists().where(Hold.slot_id == Slot.id)
    result = db.session.execute(
        delete(Slot).where(Slot.id.in_(ids), ~referenced, ~held).execution_options(synchronize_session=False)
    )
    return result.rowcount


# ---- venue details and the overview -------------------------------------------------------------
VENUE_TEXT_FIELDS = ("name", "floor", "address", "map_url", "directions")


def update_venue_info(venue: Venue, *, staff: Staff, remote_addr: str = "", **values) -> list[str]:
    """Name, floor, address, map link, directions. Returns the names of the fields that changed."""
    changed = []
    for name in VENUE_TEXT_FIELDS:
        value = (values.get(name) or "").strip()
        if getattr(venue, name) != value:
            setattr(venue, name, value)
            changed.append(name)
    if changed:
        db.session.flush()
        audit.record(
            AuditTag.VENUE_UPDATED,
            staff=staff,
            subject_type="venue",
            subject_id=venue.id,
            remote_addr=remote_addr,
            fields=changed,
        )
    return changed


@dataclass(frozen=True)
class DayState:
    day: date
    state: str  # open | closed_by_admin | holiday | year_end | weekday | special | no_slots
    slots: int
    capacity: int
    taken: int
    special: SpecialOpening | None


def overview(venue: Venue, first: date, days: int = 14) -> list[DayState]:
    last = first + timedelta(days=days - 1)
    by_day = _day_slots(venue.id, first, last)
    specials = _specials(venue.id, first, last)
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        slots = by_day.get(day, [])
        special = specials.get(day)
        if _is_closed_day(slots):
            state = "closed_by_admin"
        elif special is not None:
            state = "special"
        elif reason := venues.closed_reason(venue, day):
            state = reason
        else:
            state = "open" if slots else "no_slots"
        result.append(
            DayState(
                day, state, len(slots), sum(s.capacity for s in slots), sum(s.taken for s in slots), special
            )
        )
    return result


def upcoming_holidays(first: date, days: int = 120) -> list[tuple[date, str]]:
    """Public holidays and the year-end closure ahead, for planning 休日開庁."""
    import jpholiday

    found = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        name = jpholiday.is_holiday_name(day)
        if name:
            found.append((day, name))
    return found


def slots_of_day(venue: Venue, day: date) -> list[Slot]:
    return _day_slots(venue.id, day, day).get(day, [])


def _utc_at(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=dates.TOKYO).astimezone(UTC)
