"""THE booking service (R1). Every channel — web, phone, FAX, counter — books through here.

Capacity: ``Slot.taken`` changes only through ``take_place`` / ``give_back_place`` (also used by check-in). Taking a place
is one conditional UPDATE (``taken = taken + 1 WHERE taken < capacity``) whose row count decides;
with the CHECK constraint on the table this holds on SQLite and PostgreSQL under any concurrency
(PITFALLS: capacity and concurrency). Holds count in ``taken`` and lapse by themselves: an expired
hold's place is given back the next time someone needs it, or by the sweep job.

One live booking per 予約管理番号: a partial unique index (R1.3). Idempotency: each request that
creates or moves a booking carries a key kept in ``Booking.request_key`` (R1.2).

Services flush and never commit: the caller (request or CLI command) commits once.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError

from . import dates, notify
from .crypto import new_row_id
from .errors import (
    AlreadyBooked,
    HoldExpired,
    NotChangeable,
    SameSlot,
    SlotFull,
    SlotNotBookable,
)
from .extensions import begin_write_now, db, driver_transaction, nothing_begun
from .models import LIVE, LIVE_SQL, Applicant, Booking, BookingEvent, Channel, Hold, Slot, Status
from .prepared import DriverStatement, insert_of, insert_rows


@dataclass(frozen=True)
class Actor:
    """Who acts and through which channel. Web residents have no staff id (R1.1)."""

    channel: Channel
    staff_id: int | None = None

    @classmethod
    def resident(cls) -> Actor:
        return cls(Channel.WEB)


def atomic(operation):
    """Run a service operation in a SAVEPOINT: when it raises, the store is as it was before the
    call, whatever the caller does with the rest of its transaction (standard 3)."""

    @functools.wraps(operation)
    def wrapper(*args, **kwargs):
        with db.session.begin_nested():
            return operation(*args, **kwargs)

    return wrapper


# Prepared table-level statements for the residents' hot path (R9.2): built once, so a request
# neither rebuilds them nor goes through the ORM's compile and result machinery (profiled: several
# times cheaper per statement than the same statement on the mapped classes).
_BOOKINGS = Booking.__table__
_HOLDS = Hold.__table__
_APPLICANTS = Applicant.__table__
# The change path's lock on the live booking it moves (PostgreSQL: FOR UPDATE).
_LIVE_BOOKING = (
    select(_BOOKINGS.c.id)
    .where(_BOOKINGS.c.applicant_id == bindparam("applicant_id"), text(f"bookings.{LIVE_SQL}"))
    .with_for_update()
)
# The confirmation's one read: the applicant's live booking (a change, when there is one) and the
# two contact ciphertexts the confirmation goes to. The live statuses are literal, so the planner
# can use the partial unique index (see models.LIVE_SQL).
_CONFIRMING = DriverStatement(
    select(
        select(_BOOKINGS.c.id)
        .where(_BOOKINGS.c.applicant_id == _APPLICANTS.c.id, text(f"bookings.{LIVE_SQL}"))
        .scalar_subquery(),
        _APPLICANTS.c.email_ct,
        _APPLICANTS.c.phone_ct,
    ).where(_APPLICANTS.c.id == bindparam("applicant_id"))
)
_CLAIM = (
    delete(_HOLDS)
    .where(
        _HOLDS.c.id == bindparam("hold_id"),
        _HOLDS.c.applicant_id == bindparam("applicant_id"),
        _HOLDS.c.expires_at > bindparam("now", type_=Hold.expires_at.type),
    )
    .returning(_HOLDS.c.slot_id)
)
_CLAIM_HOLD = DriverStatement(_CLAIM)
# PostgreSQL: the read and the claim in one statement (one round trip less for every booking, R9.2).
# The DELETE is a data-modifying CTE; it claims nothing while a live booking is there to be moved.
# SQLite has no DML in WITH: there the two statements above run one after the other.
_CLAIMED = _CLAIM.where(
    ~exists().where(_BOOKINGS.c.applicant_id == _HOLDS.c.applicant_id, text(f"bookings.{LIVE_SQL}"))
).cte("claimed")
_CONFIRMING_AND_CLAIM = DriverStatement(
    _CONFIRMING.statement.add_columns(select(_CLAIMED.c.slot_id).scalar_subquery())
)
_BY_REQUEST_KEY = DriverStatement(
    select(_BOOKINGS.c.id).where(
        _BOOKINGS.c.request_key == bindparam("hold_id"), _BOOKINGS.c.applicant_id == bindparam("applicant_id")
    )
)


_INSERT_BOOKING = insert_of(
    _BOOKINGS, "id applicant_id slot_id status channel staff_id request_key created_at updated_at"
)
_INSERT_EVENT = insert_of(BookingEvent.__table__, "booking_id at action channel staff_id to_slot_id undone")


# ---- capacity -----------------------------------------------------------------------------
def take_place(slot_id: int, now: datetime) -> None:
    for attempt in range(2):
        result = db.session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.taken < Slot.capacity)
            .values(taken=Slot.taken + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            return
        if attempt == 0 and not _release_expired_holds(slot_id, now):
            break
    raise SlotFull(f"slot {slot_id} is full")


def give_back_place(slot_id: int, count: int = 1) -> None:
    db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id)
        .values(taken=Slot.taken - count)
        .execution_options(synchronize_session=False)
    )


def _release_expired_holds(slot_id: int, now: datetime) -> int:
    """Give back the places of this slot's lapsed holds. Returns how many were released.

    The DELETE's row count, not the preceding SELECT, decides how many places go back, so two
    transactions releasing the same holds cannot both count them.
    """
    expired = db.session.scalars(select(Hold.id).where(Hold.slot_id == slot_id, Hold.expires_at <= now)).all()
    if not expired:
        return 0
    result = db.session.execute(
        delete(Hold)
        .where(Hold.id.in_(expired), Hold.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        give_back_place(slot_id, result.rowcount)
    return result.rowcount


def sweep_expired_holds(now: datetime | None = None) -> int:
    """Release every lapsed hold (run by `madoguchi holds sweep`; booking also does it lazily)."""
    now = now or dates.now()
    slot_ids = db.session.scalars(select(Hold.slot_id).where(Hold.expires_at <= now).distinct()).all()
    return sum(_release_expired_holds(slot_id, now) for slot_id in slot_ids)


# ---- look-ups -----------------------------------------------------------------------------
def live_booking_for(applicant: Applicant, *, lock: bool = False) -> Booking | None:
    query = select(Booking).where(Booking.applicant_id == applicant.id, Booking.status.in_(LIVE))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalars(query).one_or_none()


def current_hold(applicant: Applicant) -> Hold | None:
    return db.session.scalars(select(Hold).where(Hold.applicant_id == applicant.id)).one_or_none()


def _bookable_slot(applicant: Applicant, slot_id: int, now: datetime) -> Slot:
    slot = db.session.get(Slot, slot_id)
    if slot is None or slot.starts_at <= now:
        raise SlotNotBookable(f"slot {slot_id} is unknown or past")
    if applicant.venue_id is not None and slot.venue_id != applicant.venue_id:
        raise SlotNotBookable(f"slot {slot_id} is at another venue")
    return slot


def _by_request_key(key: str | None) -> Booking | None:
    if not key:
        return None
    return db.session.scalars(select(Booking).where(Booking.request_key == key)).one_or_none()


def _record(booking: Booking, action: str, actor: Actor, now: datetime, *, from_slot=None, to_slot=None):
    db.session.add(
        BookingEvent(
            booking=booking,
            at=now,
            action=action,
            channel=actor.channel.value,
            staff_id=actor.staff_id,
            from_slot_id=from_slot,
            to_slot_id=to_slot,
        )
    )


def _hold_minutes() -> int:
    return current_app.config.get("HOLD_MINUTES", 10)


# ---- the operations -----------------------------------------------------------------------
def hold(applicant: Applicant, slot_id: int, *, now: datetime | None = None) -> Hold:
    """Keep a place in ``slot_id`` for HOLD_MINUTES while the resident confirms (R3, issue 2.3).

    A resident has at most one hold: choosing another slot gives the first place back. Runs in a
    write transaction of its own when the request has only read so far (``begin_write_now``): the
    residents' request takes SQLite's write lock for this and its commit only (R9.2).
    """
    begin_write_now()
    return _hold(applicant, slot_id, now=now or dates.now())


@atomic
def _hold(applicant: Applicant, slot_id: int, *, now: datetime) -> Hold:
    _bookable_slot(applicant, slot_id, now)
    live = live_booking_for(applicant)
    if live is not None and live.slot_id == slot_id:
        raise SameSlot("the applicant is already booked in this slot")
    expires_at = now + timedelta(minutes=_hold_minutes())
    existing = current_hold(applicant)
    if existing is not None and existing.slot_id == slot_id and existing.expires_at > now:
        existing.expires_at = expires_at
        db.session.flush()
        return existing
    try:
        with db.session.begin_nested():
            if existing is not None:
                released = db.session.execute(
                    delete(Hold).where(Hold.id == existing.id).execution_options(synchronize_session=False)
                ).rowcount
                if released:
                    give_back_place(existing.slot_id)
                db.session.expunge(existing)
            take_place(slot_id, now)
            new = Hold(
                id=new_row_id(),
                slot_id=slot_id,
                applicant_id=applicant.id,
                expires_at=expires_at,
                created_at=now,
            )
            db.session.add(new)
            db.session.flush()
    except IntegrityError:
        # The same resident holding twice at once (a double click): the first hold stands.
        raise SlotNotBookable("a concurrent hold for this applicant won") from None
    return new


@atomic
def release_hold(applicant: Applicant) -> None:
    """The resident went back without confirming: give the place back at once."""
    existing = current_hold(applicant)
    if existing is None:
        return
    released = db.session.execute(
        delete(Hold).where(Hold.id == existing.id).execution_options(synchronize_session=False)
    ).rowcount
    if released:
        give_back_place(existing.slot_id)
    db.session.expunge(existing)


def confirm_hold(applicant_id: str, hold_id: str, *, actor: Actor, now: datetime | None = None) -> str:
    """Turn the applicant's hold into a booking, or move their live booking onto it (a change).
    Returns the booking's id.

    The hold id is the request key: confirming twice returns the same booking. This is the request
    a burst of residents makes (R9.2), so it is lean: one short write transaction of five prepared
    statements run on the driver (``prepared``), nothing loaded into the session, and the hold's
    conditional DELETE decides. SQLite's write lock is held for these statements only.

    Called with nothing begun (the residents' POST /confirm), a first booking is written in a
    transaction of its own on a pooled driver connection and committed here
    (``extensions.driver_transaction``): the request writes nothing else. Inside a caller's
    transaction, or for a change, it runs in the session's and the caller commits.
    """
    now = now or dates.now()
    keys = {"applicant_id": applicant_id, "hold_id": hold_id}
    fresh = False  # the driver transaction rolls itself back
    try:
        if nothing_begun():
            with driver_transaction() as conn:
                booked = _confirm_first(conn, keys, actor=actor, now=now)
            if booked is not None:
                return booked
            # A live booking exists (nothing was written): the change goes through the session.
        fresh = begin_write_now()
        # Standard 3: a refusal leaves the store as it was. A fresh transaction needs no savepoint for
        # that: nothing is written before the last check, and an INSERT refused by the database rolls
        # back the transaction, which holds nothing else.
        with contextlib.nullcontext() if fresh else db.session.begin_nested():
            booked = _confirm_first(db.session.connection(), keys, actor=actor, now=now)
            if booked is None:
                return _confirm_change(applicant_id, hold_id, actor=actor, now=now)
            return booked
    except IntegrityError:
        # Another channel booked this applicant since the check (PostgreSQL's row locks; on SQLite
        # the write lock makes it impossible): the partial unique index refused the second one.
        if fresh:
            db.session.rollback()
        raise AlreadyBooked("a concurrent booking for this applicant won") from None


def _confirm_first(conn, keys: dict, *, actor: Actor, now: datetime) -> str | None:
    """The confirmation of an applicant with no live booking, on ``conn`` (a session's connection or
    a ``DriverLink``): the booking's id, or None (without writing) when a live booking is there to
    be moved instead."""
    live, email_ct, phone_ct, slot_id = _read_and_claim(conn, {**keys, "now": now})
    if live is not None:
        return None
    if slot_id is None:
        done = _BY_REQUEST_KEY.scalar(conn, keys)
        if done is not None:
            return done
        raise HoldExpired("the hold is gone or lapsed")
    applicant_id = keys["applicant_id"]
    return _insert_booking(
        conn,
        applicant_id,
        slot_id,
        actor=actor,
        request_key=keys["hold_id"],
        now=now,
        messages=notify.channels_of(applicant_id, email_ct, phone_ct),
    )


def _read_and_claim(conn, values: dict) -> tuple:
    """The applicant's live booking and contact ciphertexts (``_CONFIRMING``), and the slot of the
    hold claimed when there is no live booking (None when nothing was claimed)."""
    if conn.dialect.name == "postgresql":
        return _CONFIRMING_AND_CLAIM.first(conn, values) or (None, None, None, None)
    live, email_ct, phone_ct = _CONFIRMING.first(conn, values) or (None, None, None)
    if live is not None:
        return live, email_ct, phone_ct, None
    return live, email_ct, phone_ct, _CLAIM_HOLD.scalar(conn, values)


def _confirm_change(applicant_id: str, hold_id: str, *, actor: Actor, now: datetime) -> str:
    """The hold moves the applicant's live booking (the hold already counts the new place)."""
    with db.session.begin_nested():
        conn = db.session.connection()
        keys = {"applicant_id": applicant_id, "hold_id": hold_id}
        # PostgreSQL: the booking being moved is locked against a concurrent change or cancel.
        live_id = conn.execute(_LIVE_BOOKING, keys).scalar_one_or_none()
        if live_id is None:
            raise NotChangeable("the live booking was cancelled meanwhile")
        slot_id = _CLAIM_HOLD.scalar(conn, {**keys, "now": now})
        moving = db.session.get(Booking, live_id, populate_existing=True)
        if slot_id is None:
            if moving.request_key == hold_id:
                return moving.id  # this very confirmation, submitted twice
            raise HoldExpired("the hold is gone or lapsed")
        return _move(moving, slot_id, actor=actor, now=now, request_key=hold_id, place_taken=True).id


def _insert_booking(
    conn, applicant_id: str, slot_id: int, *, actor: Actor, request_key, now, messages: tuple[str, ...] = ()
) -> str:
    """The new booking row, its first history event and the confirmation's queued ``messages`` (the
    channels), as prepared INSERTs on the driver sent together (``prepared.insert_rows``: one round
    trip on PostgreSQL); no unit of work to flush. The caller has already taken the place. Returns
    the booking's id."""
    booking_id = new_row_id()
    by = {"channel": actor.channel.value, "staff_id": actor.staff_id}
    booked = {
        "id": booking_id,
        "applicant_id": applicant_id,
        "slot_id": slot_id,
        "status": Status.BOOKED.value,
        "request_key": request_key,
        "created_at": now,
        "updated_at": now,
        **by,
    }
    event = {
        "booking_id": booking_id,
        "at": now,
        "action": "booked",
        "to_slot_id": slot_id,
        "undone": False,
        **by,
    }
    queued = notify.message_rows(messages, booking_id, slot_id, "booking_confirmed")
    insert_rows(
        conn,
        [(_INSERT_BOOKING, booked), (_INSERT_EVENT, event), *((notify.QUEUE_MESSAGE, row) for row in queued)],
    )
    notify.queued(queued)
    return booking_id


@atomic
def book(
    applicant: Applicant,
    slot_id: int,
    *,
    actor: Actor,
    request_key: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Book directly, without a hold (call center, FAX, counter). Same capacity rules."""
    now = now or dates.now()
    done = _by_request_key(request_key)
    if done is not None:
        return done
    _bookable_slot(applicant, slot_id, now)
    live = live_booking_for(applicant)
    if live is not None:
        # On PostgreSQL (READ COMMITTED) each statement sees what committed before it, so the same
        # request, resubmitted, can commit between the key look-up above and this one: it is the
        # same booking, not a second one.
        if request_key and live.request_key == request_key:
            return live
        raise AlreadyBooked("the applicant already has a live booking")
    release_hold(applicant)
    try:
        with db.session.begin_nested():
            take_place(slot_id, now)
            booking_id = _insert_booking(
                db.session.connection(), applicant.id, slot_id, actor=actor, request_key=request_key, now=now
            )
    except IntegrityError:
        done = _by_request_key(request_key)
        if done is not None:
            return done
        if live_booking_for(applicant) is not None:
            raise AlreadyBooked("a concurrent booking for this applicant won") from None
        raise
    booking = db.session.get(Booking, booking_id)
    notify.queue_booking_message(booking, "booking_confirmed")
    return booking


@atomic
def change(
    booking: Booking,
    slot_id: int,
    *,
    actor: Actor,
    request_key: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Move a booking to another slot atomically: never two bookings, never none (R1.3)."""
    now = now or dates.now()
    if request_key and booking.request_key == request_key:
        return booking
    _bookable_slot(booking.applicant, slot_id, now)
    locked = live_booking_for(booking.applicant, lock=True)
    if locked is None or locked.id != booking.id:
        raise NotChangeable("the booking is no longer live")
    if request_key and locked.request_key == request_key:
        return locked  # the same change, resubmitted, committed while this one waited for the lock
    return _move(locked, slot_id, actor=actor, now=now, request_key=request_key, place_taken=False)


def _move(booking: Booking, slot_id: int, *, actor: Actor, now, request_key, place_taken: bool) -> Booking:
    if booking.status != Status.BOOKED.value:
        raise NotChangeable(f"a booking in status {booking.status} cannot move")
    if booking.slot_id == slot_id:
        raise SameSlot("the booking is already in this slot")
    if not place_taken:
        take_place(slot_id, now)
    old_slot = booking.slot_id
    give_back_place(old_slot)
    booking.slot_id = slot_id
    booking.updated_at = now
    booking.request_key = request_key
    _record(booking, "changed", actor, now, from_slot=old_slot, to_slot=slot_id)
    db.session.flush()
    db.session.expire(booking, ["slot"])
    notify.queue_booking_message(booking, "booking_changed")
    return booking


@atomic
def cancel(booking: Booking, *, actor: Actor, now: datetime | None = None) -> Booking:
    now = now or dates.now()
    locked = live_booking_for(booking.applicant, lock=True)
    if locked is None or locked.id != booking.id or locked.status != Status.BOOKED.value:
        raise NotChangeable("only a booked, not yet attended booking can be cancelled")
    locked.status = Status.CANCELLED.value
    locked.updated_at = now
    give_back_place(locked.slot_id)
    _record(locked, "cancelled", actor, now, from_slot=locked.slot_id)
    db.session.flush()
    notify.queue_booking_message(locked, "booking_cancelled")
    return locked


def places_left(slot_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    """Remaining places per slot as a resident should see them: lapsed holds count as free."""
    if not slot_ids:
        return {}
    now = now or dates.now()
    lapsed = dict(
        db.session.execute(
            select(Hold.slot_id, func.count())
            .where(Hold.slot_id.in_(slot_ids), Hold.expires_at <= now)
            .group_by(Hold.slot_id)
        ).all()
    )
    rows = db.session.execute(select(Slot.id, Slot.capacity, Slot.taken).where(Slot.id.in_(slot_ids))).all()
    return {sid: max(cap - taken + lapsed.get(sid, 0), 0) for sid, cap, taken in rows}
