"""R9.2: the booking request a burst makes holds SQLite's write lock for its few statements only,
writes no more than it must, and the cookies of an unchanged visit are not signed again each time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from madoguchi import booking, notify
from madoguchi.appbase import ThriftySessionInterface
from madoguchi.extensions import begin_write, begin_write_now, db, limiter
from madoguchi.models import Applicant, Booking, OutboundMessage
from tests.conftest import ON_POSTGRES, data_statements
from tests.factories import make_applicant, make_slot, make_venue

from . import pages
from .flow import hold, hold_id, live_bookings, path_of, sign_in, snapshot, taken


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_the_confirmation_takes_the_write_lock_for_its_statements_only(app, client, world, sqlite_trace):
    """R9.2: POST /confirm reads nothing before BEGIN IMMEDIATE (no lock held while the request is
    parsed, checked and answered), and the transaction is a handful of statements: the live-booking
    check and the contact's ciphertexts in one SELECT, the hold's DELETE, the booking, its event and
    the messages (their text is drafted later, at delivery); the COMMIT follows at once."""
    sign_in(client, world)
    assert path_of(hold(client, world.slot_ids[0])) == "/confirm"
    key = hold_id(client)
    sqlite_trace.clear()
    response = client.post("/confirm", data={"hold_id": key})
    assert path_of(response) == "/done"
    sqlite_trace[:] = data_statements(sqlite_trace)
    # The request's own transaction; the messages are then sent after the response, in their own.
    request = sqlite_trace[: sqlite_trace.index("COMMIT") + 1]
    statements = [line.split()[0].upper() for line in request]
    assert request[0] == "BEGIN IMMEDIATE", request[:2]
    # live booking? and contact, claim the hold, booking, event, e-mail and SMS rows
    assert statements[1:-1] == ["SELECT", "DELETE", "INSERT", "INSERT", "INSERT", "INSERT"], request


def _transactions(trace: list[str]) -> list[list[str]]:
    """The statements of each transaction in order, BEGIN to COMMIT (pragmas and pings left out)."""
    out: list[list[str]] = []
    for line in data_statements(trace):
        if line.startswith("BEGIN"):
            out.append([])
        if out:
            out[-1].append(line)
    return out


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
@pytest.mark.parametrize("step", ["hold", "contact"])
def test_the_hold_and_the_contact_take_the_write_lock_after_reading(app, client, world, sqlite_trace, step):
    """R9.2: choosing a slot and giving a phone number read the resident under a plain BEGIN and
    take the write lock only for their own statements; nothing is written before it (the read
    part is read-only: PRAGMA query_only)."""
    sign_in(client, world)
    sqlite_trace.clear()
    if step == "hold":
        assert path_of(hold(client, world.slot_ids[0])) == "/confirm"
    else:
        assert path_of(client.post("/contact", data={"email": "", "phone": "090-3333-4444"})) == "/venue"
    read, write = _transactions(sqlite_trace)[:2]
    assert read[0] == "BEGIN" and "FROM applicants" in read[1], read
    assert all(line.split()[0].upper() in ("SELECT", "COMMIT", "BEGIN") for line in read), read
    assert write[0] == "BEGIN IMMEDIATE" and write[-1] == "COMMIT", write
    kinds = {line.split()[0].upper() for line in write[1:-1]}
    assert "INSERT" in kinds if step == "hold" else kinds >= {"UPDATE"}, write
    assert "PRAGMA query_only=1" in sqlite_trace


def test_the_done_page_shows_the_booking_just_made(app, client, world):
    """R3.4: after confirming, the done page shows the applicant's live booking (nothing was
    written into the session for it)."""
    sign_in(client, world)
    hold(client, world.slot_ids[1])
    client.post("/confirm", data={"hold_id": hold_id(client)})
    page = client.get("/done")
    assert page.status_code == 200
    assert world.slot_labels[world.slot_ids[1]] in page.text


def test_the_done_page_address_follows_the_mount_point(app, client, world):
    """R9.2: the confirmation's redirect to the done page is built once per mount point, and the
    site mounted under a prefix (SCRIPT_NAME) is sent to its own done page, not another's."""
    sign_in(client, world)
    hold(client, world.slot_ids[1])
    key = hold_id(client)
    mounted = client.post("/confirm", data={"hold_id": key}, base_url="http://localhost/yoyaku/")
    assert mounted.headers["Location"] == "/yoyaku/done"
    again = client.post("/confirm", data={"hold_id": key})  # the same confirmation, at the root
    assert again.headers["Location"] == "/done"


@pytest.mark.parametrize(
    ("email", "phone", "channels"),
    [
        ("taro@example.jp", "090-1234-5678", ("email", "sms")),
        (None, "090-1234-5678", ("sms",)),
        ("", "03-1234-5678", ()),
        ("taro@example.jp", "03-1234-5678", ("email",)),
    ],
)
def test_the_confirmation_decrypts_the_phone_only_to_choose_its_channels(
    ctx, monkeypatch, email, phone, channels
):
    """R3.4, R9.2: the confirmation goes by e-mail when there is an address and by SMS to a mobile
    number; an address is stored only when given (none and "" are NULL), so only the phone is
    decrypted, and the channels are those the applicant's own record gives."""
    from madoguchi.crypto import KeyRing

    person = make_applicant(make_venue(), email=email, phone=phone)
    db.session.commit()
    decrypted = []
    real = KeyRing.decrypt

    def counting(self, stored, *, column, **kwargs):
        decrypted.append(column)
        return real(self, stored, column=column, **kwargs)

    monkeypatch.setattr(KeyRing, "decrypt", counting)
    row = db.session.execute(
        select(Applicant.email_ct, Applicant.phone_ct).where(Applicant.id == person.id)
    ).one()
    assert notify.channels_of(person.id, *row) == channels
    assert decrypted == ["phone"]
    monkeypatch.undo()
    assert notify.channels_for(db.session.get(Applicant, person.id)) == channels


def test_an_unchanged_session_is_not_signed_again_within_a_minute(app, client, world, monkeypatch):
    """R9.2: a permanent session's cookie slides its expiry, but is signed again at most once a
    minute when nothing in it changed; a changed session is always signed."""
    sign_in(client, world)
    first = client.get("/slots")
    assert "session=" not in first.headers.get("Set-Cookie", "")
    monkeypatch.setattr(ThriftySessionInterface, "REFRESH_AFTER", timedelta(0))
    again = client.get("/slots")
    assert "session=" in again.headers.get("Set-Cookie", "")
    monkeypatch.setattr(ThriftySessionInterface, "REFRESH_AFTER", timedelta(hours=1))
    changed = hold(client, world.slot_ids[0])  # flashes nothing, but…
    client.post("/release", data={})
    assert path_of(changed) == "/confirm"
    signed_in_again = sign_in(client, world)
    assert "session=" in signed_in_again.headers.get("Set-Cookie", "")


# ---- the write transaction's helper ----------------------------------------------------------------
def test_begin_write_now_ends_a_read_transaction_and_starts_a_write_one(ctx):
    venue = make_venue()
    db.session.commit()
    db.session.get(type(venue), venue.id)  # a read: the session is in a transaction
    assert db.session().in_transaction()
    assert begin_write_now() is True
    assert db.session.connection().get_execution_options().get("madoguchi_write")


def test_begin_write_now_continues_a_write_transaction_or_pending_changes(ctx):
    begin_write()
    assert begin_write_now() is False
    db.session.rollback()
    make_venue()  # pending (flushed) work: never committed behind the caller's back
    db.session.add(OutboundMessage(kind="email", template="x", status="pending", attempts=0))
    assert begin_write_now() is False
    db.session.rollback()


# ---- messages drafted once ----------------------------------------------------------------------------
def test_a_retried_message_sends_the_text_drafted_at_its_first_attempt(ctx, monkeypatch):
    """R3.4: a message is drafted (rendered and encrypted) at its first attempt and the same text is
    retried, even if the booking moved meanwhile (the change sends its own message)."""
    venue = make_venue()
    person = make_applicant(venue, email="hanako@example.jp", phone="03-1234-5678")
    first, second = make_slot(venue), make_slot(venue, starts_in=timedelta(days=4))
    made = booking.book(person, first.id, actor=booking.Actor(booking.Channel.PHONE))
    db.session.commit()

    def refuse(self, message):
        raise ConnectionError("mail server down")

    monkeypatch.setattr(notify.OutboxMailer, "send", refuse)
    assert notify.deliver().failed == 1
    (message,) = db.session.scalars(select(OutboundMessage)).all()
    drafted = message.body
    assert message.status == "failed" and drafted and message.recipient == "hanako@example.jp"

    booking.change(db.session.get(Booking, made.id), second.id, actor=booking.Actor(booking.Channel.PHONE))
    db.session.commit()
    monkeypatch.undo()
    message.next_attempt_at = None
    db.session.commit()
    assert notify.deliver().sent == 2
    db.session.refresh(message)
    assert message.status == "sent" and message.body == drafted


def test_no_rate_limit_look_up_runs_before_every_request(overrides, request):
    """R9.2: Flask-Limiter's per-request look-up for application-wide limits is not installed (there
    are none); the limited views still answer 429 through their decorator (R3.5, R7.1: the rate
    limit tests in test_security and test_signin run with this same app setup)."""
    overrides["RATELIMIT_ENABLED"] = True
    app = request.getfixturevalue("app")
    assert limiter._check_request_limit not in app.before_request_funcs.get(None, [])
    assert app.extensions["limiter"]  # the extension itself is there


def test_a_confirmation_that_fails_midway_leaves_the_store_as_it_was(app, client, world, monkeypatch):
    """R1.2, standard 3: the residents' confirmation writes in a transaction of its own on a pooled
    driver connection (R9.2). When it fails after the booking's rows are written (here: handing
    its queued messages on for sending), the resident gets the error page, nothing of it is stored, the hold and its
    place are still there, and the same confirmation then succeeds on the pool's connection."""
    sign_in(client, world)
    hold(client, world.slot_ids[0])
    key = hold_id(client)
    before = snapshot(app)

    def broken(*_args, **_kwargs):
        raise RuntimeError("the outbox is gone")

    monkeypatch.setattr(notify, "queued", broken)
    failed = client.post("/confirm", data={"hold_id": key})
    assert failed.status_code == 500
    assert snapshot(app) == before
    monkeypatch.undo()
    assert path_of(client.post("/confirm", data={"hold_id": key})) == "/done"
    assert len(live_bookings(app, world.applicant_id)) == 1
    assert taken(app, world.slot_ids[0]) == 1


@pytest.mark.parametrize("hold_value", ["", "x", "A" * 32, "0" * 31, "0" * 32 + "\n", "0" * 33])
def test_a_malformed_hold_id_is_refused_before_any_booking(app, client, world, hold_value):
    """Standard 3: POST /confirm accepts only a hold id as the confirmation page sends it (32
    lower-case hex digits); anything else sends the resident back to the page with a message and
    changes nothing."""
    sign_in(client, world)
    hold(client, world.slot_ids[0])
    before = snapshot(app)
    response = client.post("/confirm", data={"hold_id": hold_value})
    assert path_of(response) == "/confirm"
    assert "もう一度「この内容で予約する」を押してください。" in pages.flashes(client.get("/confirm").text)
    assert snapshot(app) == before


def test_the_confirmation_makes_no_orm_session(app, client, world):
    """R9.2: a first booking is written on a driver connection of its own, so its request makes no
    ORM session at all (making one only to mark it read-only, then closing it, cost ~10 µs)."""
    from flask import request

    made = {}

    @app.after_request
    def _note(response):
        made[request.path] = db.session.registry.has()
        return response

    sign_in(client, world)
    hold(client, world.slot_ids[0])
    key = hold_id(client)
    assert path_of(client.post("/confirm", data={"hold_id": key})) == "/done"
    assert made["/confirm"] is False
    assert len(live_bookings(app, world.applicant_id)) == 1


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's PRAGMA query_only")
def test_a_writes_late_request_s_first_session_is_read_only_until_it_asks_to_write(app):
    """R9.2: a ``writes_late`` request begins with no session; the first one it makes reads only
    (a write before ``begin_write_now`` is refused by SQLite itself), then writes once asked to."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from madoguchi.appbase import begin_request_transaction

    with app.test_request_context("/confirm", method="POST"):
        begin_request_transaction()
        assert not db.session.registry.has()
        with pytest.raises(OperationalError, match="readonly"):
            db.session.execute(text("UPDATE slots SET taken = taken WHERE id = -1"))
        db.session.rollback()
        begin_write_now()
        db.session.execute(text("UPDATE slots SET taken = taken WHERE id = -1"))
        db.session.rollback()
