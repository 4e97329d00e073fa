"""The waiting room (R9.2): admission control in front of the residents' booking pages.

Lesson of 2021: a queue that lets people through faster than the backend serves them fails, and
takes every system on the same database with it. So visitors are admitted at a configured rate,
never faster, and the rate can lower itself when booking slows down.

How it works, across gunicorn workers and machines (the state is one row in the database):

* A visitor without a ticket *arrives*: one atomic UPDATE increments the room's arrival counter
  and advances the admitted frontier; the visitor's place comes back from the same statement
  (RETURNING) and goes into a signed ticket cookie (itsdangerous, SECRET_KEY). That is the only
  write a visitor ever causes in the waiting room.
* The frontier (how many places are admitted) grows at the rate from its last stored value, but
  never beyond ``arrivals + burst``: an idle room does not save up credit that a sudden crowd could
  spend at once. Between two arrivals the counter does not change, so any worker can compute the
  frontier *now* from the row alone — a waiting visitor's refresh is a read (cached for a second
  per process), never a write.
* Visitors who arrive before the opening take places 1 … E as usual, but at the opening they are
  admitted in a random order: place p stands at ``1 + permutation(p − 1)``, a keyed bijection of
  {0 … E−1} (a small Feistel network under a key derived from SECRET_KEY and the room). The order
  is exact (one visitor per 1/rate seconds), needs no write at the opening, and cannot be fished
  for: before the opening nobody can tell a good place from a bad one.
* An admitted ticket is reissued with the time of admission and stays valid while it is used. A
  ticket copied to other browsers is caught when identifying: one ticket may identify at most
  ``WAITING_ROOM_PASS_USES`` residents (a family booking for each member), counted in the database.
* Waves are staggered by 予約管理番号 range: each range has its own opening time, checked when the
  resident identifies.

No Flask views live here (DESIGN rule 1): the residents' app calls these functions with the
settings, the cookie value and the time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import quantiles

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import case, select, update

from .config import ConfigError
from .dates import TOKYO
from .extensions import begin_write_now, db
from .models import AdmissionPass, AdmissionRoom
from .signing import QuickTimedSerializer

COOKIE = "madoguchi_queue"
_SALT = "madoguchi.admission.v1"


class SettingError(ConfigError):
    """A waiting-room setting cannot be read; the message names the setting to fix."""


# ---- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wave:
    """Reservation numbers ``first`` … ``last`` (12 digits, inclusive) may identify from ``opens_at``."""

    first: str
    last: str
    opens_at: datetime

    def covers(self, number: str) -> bool:
        return self.first <= number <= self.last


@dataclass(frozen=True)
class Settings:
    enabled: bool = False
    rate_per_minute: float = 600.0
    burst: int = 20
    opens_at: datetime | None = None
    ticket_hours: float = 12.0
    admitted_minutes: float = 30.0
    pass_uses: int = 5
    state_cache_seconds: float = 1.0
    latency_target_ms: float = 0.0  # 0: the rate is never lowered automatically
    min_rate_factor: float = 0.2
    waves: tuple[Wave, ...] = field(default_factory=tuple)

    @property
    def rate(self) -> float:
        """Admissions per second."""
        return self.rate_per_minute / 60.0

    @property
    def room(self) -> str:
        """Each opening has its own room: tickets of an earlier wave are not valid in the next."""
        stamp = self.opens_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") if self.opens_at else "always"
        return f"residents:{stamp}"


def parse_time(text: str, setting: str) -> datetime:
    """``2026-05-11T09:00`` (Tokyo time unless a zone is given) or ``2026-05-11`` (midnight, Tokyo)."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text) if "T" in text or " " in text else None
        if value is None:
            day = date.fromisoformat(text)
            value = datetime(day.year, day.month, day.day)
    except ValueError:
        raise SettingError(f"{setting}: not a date or date-time: use 2026-05-11T09:00") from None
    return value.replace(tzinfo=TOKYO) if value.tzinfo is None else value


def parse_waves(text: str, setting: str = "WAITING_ROOM_WAVES") -> tuple[Wave, ...]:
    """``FIRST-LAST=WHEN;FIRST-LAST=WHEN`` with 12-digit reservation numbers (hyphens in the
    number are not allowed here; use the plain digits)."""
    waves = []
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        span, sep, when = part.partition("=")
        first, dash, last = span.strip().partition("-")
        if not (sep and dash and first.isdigit() and last.isdigit() and len(first) == len(last) == 12):
            raise SettingError(f"{setting}: each wave is FIRST-LAST=WHEN with 12-digit numbers")
        if first > last:
            raise SettingError(f"{setting}: a wave's first number is after its last")
        waves.append(Wave(first, last, parse_time(when, setting)))
    return tuple(waves)


def settings_from(config) -> Settings:
    opens = config.get("WAITING_ROOM_OPENS_AT") or None
    waves = config.get("WAITING_ROOM_WAVES") or ()
    settings = Settings(
        enabled=bool(config.get("WAITING_ROOM_ENABLED", False)),
        rate_per_minute=float(config.get("WAITING_ROOM_RATE_PER_MINUTE", 600)),
        burst=max(int(config.get("WAITING_ROOM_BURST", 20)), 1),
        opens_at=parse_time(opens, "WAITING_ROOM_OPENS_AT") if isinstance(opens, str) else opens,
        ticket_hours=float(config.get("WAITING_ROOM_TICKET_HOURS", 12)),
        admitted_minutes=float(config.get("WAITING_ROOM_ADMITTED_MINUTES", 30)),
        pass_uses=int(config.get("WAITING_ROOM_PASS_USES", 5)),
        state_cache_seconds=float(config.get("WAITING_ROOM_STATE_CACHE_SECONDS", 1.0)),
        latency_target_ms=float(config.get("WAITING_ROOM_LATENCY_TARGET_MS", 0)),
        min_rate_factor=float(config.get("WAITING_ROOM_MIN_RATE_FACTOR", 0.2)),
        waves=parse_waves(waves) if isinstance(waves, str) else tuple(waves),
    )
    if settings.enabled and settings.rate_per_minute <= 0:
        raise SettingError("WAITING_ROOM_RATE_PER_MINUTE must be above 0")
    return settings


# ---- tickets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ticket:
    room: str
    place: int  # 1, 2, 3 … in arrival order
    early: bool  # arrived before the opening: admitted in a random order among the early ones
    nonce: str
    admitted_at: float = 0.0  # epoch seconds; 0 while waiting
    # When the cookie it came from was signed (None for a ticket made in this request).
    signed_at: datetime | None = field(default=None, compare=False)

    @property
    def admitted(self) -> bool:
        return self.admitted_at > 0


class _ClockSigner(TimestampSigner):
    """Stamps with the injected clock (DESIGN rule 7), so tests can travel in time."""

    def __init__(self, *args, at: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def get_timestamp(self) -> int:
        return int(self.at) if self.at is not None else super().get_timestamp()


def _serializer(secret_key: str, now: datetime | None = None) -> URLSafeTimedSerializer:
    kwargs = {"at": now.timestamp()} if now is not None else {}
    return URLSafeTimedSerializer(secret_key, salt=_SALT, signer=_ClockSigner, signer_kwargs=kwargs)


@functools.lru_cache(maxsize=4)
def _reader(secret_key: str) -> URLSafeTimedSerializer:
    # Made once per key, not per request: building a serializer tests its JSON dumper; it reads a
    # valid ticket quickly (madoguchi/signing.py, R9.2).
    return QuickTimedSerializer(secret_key, salt=_SALT, signer=_ClockSigner)


def sign(ticket: Ticket, secret_key: str, now: datetime) -> str:
    return _serializer(secret_key, now).dumps(
        [ticket.room, ticket.place, int(ticket.early), ticket.nonce, round(ticket.admitted_at, 3)]
    )


def read(value: str | None, settings: Settings, secret_key: str, now: datetime) -> Ticket | None:
    """The ticket in the cookie, or None when it is missing, forged, expired or of another opening.

    An admitted ticket unused for ``admitted_minutes`` is refused too (its holder queues again); the
    residents' app reissues an admitted ticket on every response, so this counts idle time.
    """
    if not value:
        return None
    try:
        # The signature's own timestamp is when the cookie was last (re)issued.
        raw, signed_at = _reader(secret_key).loads(value, return_timestamp=True)
        room, place, early, nonce, admitted_at = raw
        ticket = Ticket(str(room), int(place), bool(early), str(nonce), float(admitted_at), signed_at)
    except (BadSignature, ValueError, TypeError):
        return None
    if ticket.room != settings.room or ticket.place < 1:
        return None
    age = now - signed_at
    if age > timedelta(hours=settings.ticket_hours):
        return None
    if ticket.admitted and age > timedelta(minutes=settings.admitted_minutes):
        return None
    return ticket


# A ticket read from a cookie signed less than this long ago is not signed again: reissuing on
# every response cost a booking request an HMAC and a cookie (R9.2); idle time is still counted
# to within this.
REISSUE_AFTER = timedelta(seconds=60)


def needs_reissue(ticket: Ticket, now: datetime) -> bool:
    return ticket.signed_at is None or now - ticket.signed_at >= REISSUE_AFTER


def admitted_ticket(ticket: Ticket, now: datetime) -> Ticket:
    return Ticket(ticket.room, ticket.place, ticket.early, ticket.nonce, now.timestamp())


# ---- the room's state -----------------------------------------------------------------------
@dataclass(frozen=True)
class RoomState:
    arrivals: int
    early: int
    frontier: float
    frontier_at: float
    rate_factor: float

    def frontier_now(self, settings: Settings, now: float) -> float:
        """How many places are admitted at ``now`` (the same formula as the arrival UPDATE)."""
        grown = self.frontier + settings.rate * self.rate_factor * max(now - self.frontier_at, 0.0)
        return min(grown, self.arrivals + settings.burst)


_cache: dict[str, tuple[float, RoomState]] = {}
_cache_lock = threading.Lock()


def _ensure_room(settings: Settings, now: datetime) -> None:
    """Create the room's row once; concurrent creators race harmlessly (ON CONFLICT DO NOTHING)."""
    start = settings.opens_at.timestamp() if settings.opens_at else now.timestamp()
    values = dict(
        name=settings.room,
        arrivals=0,
        early=0,
        # An empty room admits ``burst`` visitors at once (at the opening, or right away).
        frontier=float(settings.burst),
        frontier_at=start,
        rate_factor=1.0,
        adjusted_at=0.0,
        created_at=now,
    )
    _insert_ignore(AdmissionRoom, values)


def _insert_ignore(model, values: dict) -> bool:
    """Insert the row unless its key exists; True when this call inserted it. Decided by RETURNING:
    psycopg reports no row count (-1) for INSERT … ON CONFLICT DO NOTHING."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    table = model.__table__
    primary = list(table.primary_key.columns)[0]
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing().returning(primary)
    return db.session.execute(statement).first() is not None


def arrive(settings: Settings, now: datetime) -> Ticket:
    """Give a new visitor a place: one atomic UPDATE … RETURNING (the caller commits)."""
    table = AdmissionRoom.__table__
    c = table.c
    at = now.timestamp()
    early = settings.opens_at is not None and now < settings.opens_at
    elapsed = case((c.frontier_at < at, at - c.frontier_at), else_=0.0)
    grown = c.frontier + settings.rate * c.rate_factor * elapsed
    cap = c.arrivals + settings.burst
    statement = (
        update(table)
        .where(c.name == settings.room)
        .values(
            arrivals=c.arrivals + 1,
            early=c.early + (1 if early else 0),
            frontier=case((grown < cap, grown), else_=cap),
            # Before the opening the frontier stays parked at the opening time.
            frontier_at=case((c.frontier_at < at, at), else_=c.frontier_at),
        )
        .returning(c.arrivals, c.early, c.frontier, c.frontier_at, c.rate_factor)
    )
    row = db.session.execute(statement).one_or_none()
    if row is None:
        _ensure_room(settings, now)
        row = db.session.execute(statement).one()
    _remember(settings.room, RoomState(*row))
    return Ticket(settings.room, int(row.arrivals), early, secrets.token_hex(16))


def _remember(room: str, state: RoomState) -> None:
    with _cache_lock:
        _cache[room] = (time.monotonic(), state)


def room_state(settings: Settings, *, fresh: bool = False) -> RoomState | None:
    """The room's row, read at most once per ``state_cache_seconds`` per process (a read, no write)."""
    if not fresh and settings.state_cache_seconds > 0:
        with _cache_lock:
            cached = _cache.get(settings.room)
        if cached and time.monotonic() - cached[0] < settings.state_cache_seconds:
            return cached[1]
    c = AdmissionRoom.__table__.c
    row = db.session.execute(
        select(c.arrivals, c.early, c.frontier, c.frontier_at, c.rate_factor).where(c.name == settings.room)
    ).one_or_none()
    if row is None:
        return None
    state = RoomState(*row)
    _remember(settings.room, state)
    return state


@dataclass(frozen=True)
class Standing:
    """Where a waiting visitor stands: admitted, or how many are ahead and roughly how long."""

    admitted: bool
    ahead: int
    wait_seconds: float
    before_opening: bool = False


def permute(index: int, size: int, key: bytes) -> int:
    """A keyed bijection of {0 … size−1}: a 4-round Feistel network on the smallest even number of
    bits that holds ``size``, walking the cycle until the result falls inside (expected < 4 steps)."""
    if size <= 1:
        return index
    half = ((size - 1).bit_length() + 1) // 2
    mask = (1 << half) - 1
    value = index
    while True:
        left, right = value >> half, value & mask
        for round_ in range(4):
            digest = hmac.new(key, f"{round_}|{right}".encode(), hashlib.sha256).digest()
            left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
        value = (left << half) | right
        if value < size:
            return value


def order_key(secret_key: str, room: str) -> bytes:
    return hmac.new(
        secret_key.encode(), f"madoguchi.admission.order|{room}".encode(), hashlib.sha256
    ).digest()


def position(ticket: Ticket, state: RoomState, key: bytes) -> int:
    """Where the ticket stands in the admission order (1 = first)."""
    if ticket.early and ticket.place <= state.early:
        return 1 + permute(ticket.place - 1, state.early, key)
    return ticket.place


def standing(ticket: Ticket, settings: Settings, now: datetime, key: bytes) -> Standing:
    if ticket.admitted:
        return Standing(True, 0, 0.0)
    state = room_state(settings)
    if state is None:  # the row is gone (the database was reset): queue again
        return Standing(False, 0, 0.0)
    at = now.timestamp()
    before = settings.opens_at is not None and now < settings.opens_at
    frontier = state.frontier_now(settings, at)
    place = position(ticket, state, key)
    if not before and place <= frontier:
        return Standing(True, 0, 0.0)
    rate = settings.rate * state.rate_factor
    ahead = max(int(place - frontier), 0)
    wait = ahead / rate if rate > 0 else 0.0
    if before:
        wait += (settings.opens_at - now).total_seconds()
    return Standing(False, ahead, wait, before)


def refresh_seconds(standing_: Standing) -> int:
    """How soon the waiting page reloads: sooner near the front, jittered so that a crowd does not
    refresh in step."""
    base = min(max(standing_.wait_seconds / 4, 5.0), 60.0)
    return max(int(base * secrets.SystemRandom().uniform(0.8, 1.2)), 3)


# ---- identification: passes and waves --------------------------------------------------------
def claim_pass(ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """Count one identification on this ticket; False once it has been used ``pass_uses`` times."""
    begin_write_now()
    inserted = _insert_ignore(
        AdmissionPass, dict(nonce=ticket.nonce, room=ticket.room, uses=1, created_at=now)
    )
    if inserted:
        return True
    c = AdmissionPass.__table__.c
    counted = db.session.execute(
        update(AdmissionPass.__table__)
        .where(c.nonce == ticket.nonce, c.uses < settings.pass_uses)
        .values(uses=c.uses + 1)
    ).rowcount
    return counted == 1


def wave_opening(settings: Settings, number: str, now: datetime) -> datetime | None:
    """When this reservation number's wave opens, if it has not yet; None when it may book now."""
    for wave in settings.waves:
        if wave.covers(number):
            return wave.opens_at if now < wave.opens_at else None
    return None


# ---- latency control (optional) ---------------------------------------------------------------
class LatencyControl:
    """Lowers the admission rate when booking requests slow down, and raises it back when they are
    fast again. Each worker keeps its own recent samples; the factor lives in the room's row, and at
    most one worker changes it per interval (a conditional UPDATE on ``adjusted_at``)."""

    INTERVAL = 5.0
    WINDOW = 200

    def __init__(self):
        self.samples: deque[float] = deque(maxlen=self.WINDOW)
        self.last_check = time.monotonic()
        self.lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self.lock:
            self.samples.append(seconds)

    def due(self) -> bool:
        return time.monotonic() - self.last_check >= self.INTERVAL and len(self.samples) >= 10

    def decide(self, settings: Settings, current_factor: float) -> float | None:
        """The new factor, or None to keep it. p90 of recent booking latencies against the target."""
        with self.lock:
            self.last_check = time.monotonic()
            if len(self.samples) < 10:
                return None
            p90 = quantiles(self.samples, n=10)[-1] * 1000
            self.samples.clear()
        target = settings.latency_target_ms
        if p90 > target:
            new = max(current_factor * 0.7, settings.min_rate_factor)
        elif p90 < target / 2 and current_factor < 1.0:
            new = min(current_factor * 1.2, 1.0)
        else:
            return None
        return new if abs(new - current_factor) > 1e-6 else None


def adjust_rate(settings: Settings, control: LatencyControl, now: datetime) -> float | None:
    """Run the latency control if due, in its own short transaction (called after the request's
    commit). Returns the new factor when this worker changed it."""
    if settings.latency_target_ms <= 0 or not control.due():
        return None
    table = AdmissionRoom.__table__
    c = table.c
    at = now.timestamp()
    with db.engine.begin() as conn:
        row = conn.execute(
            select(c.arrivals, c.early, c.frontier, c.frontier_at, c.rate_factor).where(
                c.name == settings.room
            )
        ).one_or_none()
        if row is None:
            return None
        state = RoomState(*row)
        new = control.decide(settings, state.rate_factor)
        if new is None:
            return None
        before = settings.opens_at is not None and now < settings.opens_at
        # Rebase the frontier at the old factor first, so admissions already earned are kept.
        frontier = state.frontier_now(settings, at)
        changed = conn.execute(
            update(table)
            .where(c.name == settings.room, c.adjusted_at < at - LatencyControl.INTERVAL)
            .values(
                rate_factor=new,
                adjusted_at=at,
                frontier=case((c.frontier < frontier, frontier), else_=c.frontier),
                frontier_at=c.frontier_at if before else case((c.frontier_at < at, at), else_=c.frontier_at),
            )
        ).rowcount
    return new if changed else None
