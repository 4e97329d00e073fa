"""Reminders the day before (issue 4): every booking on the Tokyo day gets one reminder by e-mail and/or
SMS, once — and again only if it was moved after being reminded. Also `madoguchi reminders send`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from madoguchi import booking, dates, notify
from madoguchi.cli import main
from madoguchi.extensions import db
from madoguchi.models import OutboundMessage
from tests.factories import make_applicant, make_slot, make_venue

WEB = booking.Actor.resident()
# Tuesday 10 March 2026, 10:00 in Tokyo.
NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
TODAY, TOMORROW, DAY_AFTER = date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)


@pytest.fixture
def clock(app):
    frozen = dates.FrozenClock(at=NOW)
    app.extensions["madoguchi.clock"] = frozen
    return frozen


@pytest.fixture
def venue(clock, ctx):
    return make_venue(name="江東区役所", floor="2階")


def book_at(venue, starts_in: timedelta, **applicant):
    slot = make_slot(venue, starts_in=starts_in)
    made = booking.book(make_applicant(venue, **applicant), slot.id, actor=WEB)
    db.session.commit()
    return made


def reminders(booking_id: str | None = None) -> list[OutboundMessage]:
    query = select(OutboundMessage).where(OutboundMessage.template == notify.REMINDER)
    if booking_id:
        query = query.where(OutboundMessage.booking_id == booking_id)
    return list(db.session.scalars(query.order_by(OutboundMessage.created_at)))


def test_reminders_go_to_the_bookings_of_that_day_only(venue):
    """Only booked bookings whose slot starts on the given Tokyo day are reminded, by e-mail and SMS as
    their contact details allow; today's, the day after's and cancelled ones are not."""
    today = book_at(venue, timedelta(hours=5))  # 15:00 today
    tomorrow = book_at(venue, timedelta(days=1))  # 10:00 tomorrow
    late = book_at(venue, timedelta(days=1, hours=13, minutes=50))  # 23:50 tomorrow, Tokyo
    sms_only = book_at(venue, timedelta(days=1, hours=2), email=None)
    no_contact = book_at(venue, timedelta(days=1, hours=3), email=None, phone="03-5555-1234")
    cancelled = book_at(venue, timedelta(days=1, hours=4))
    booking.cancel(cancelled, actor=WEB)
    day_after = book_at(venue, timedelta(days=2))
    db.session.commit()

    assert notify.queue_reminders(TOMORROW) == (3, 5)
    db.session.commit()
    by_booking = {}
    for message in reminders():
        by_booking.setdefault(message.booking_id, set()).add(message.kind)
    assert by_booking == {tomorrow.id: {"email", "sms"}, late.id: {"email", "sms"}, sms_only.id: {"sms"}}
    for other in (today, no_contact, cancelled, day_after):
        assert reminders(other.id) == []


def test_the_reminder_says_when_and_where(venue, ctx):
    made = book_at(venue, timedelta(days=1))
    number = made.applicant.reservation_number
    notify.queue_reminders(TOMORROW)
    email, sms = (notify.draft(m) for m in sorted(reminders(), key=lambda m: m.kind))
    assert email.subject == "【江東区】個人番号カード受け取りのご予約日のお知らせ"
    for body in (email.body, sms.body):
        assert f"{number[:4]}-{number[4:8]}-{number[8:]}" in body
        assert "2026年3月11日（水） 10:00" in body
        assert "江東区役所 2階" in body
    assert "当日お持ちいただくもの" in email.body
    assert sms.recipient == "+819012345678" and len(sms.body) <= notify.SMS_MAX_CHARS


def test_running_twice_never_sends_twice(venue, clock):
    made = book_at(venue, timedelta(days=1))
    assert notify.queue_reminders(TOMORROW) == (1, 2)
    db.session.commit()
    clock.at += timedelta(hours=2)
    assert notify.queue_reminders(TOMORROW) == (0, 0)
    assert len(reminders(made.id)) == 2


def test_a_booking_moved_after_its_reminder_is_reminded_for_its_new_day(venue, clock):
    """Reminded for tomorrow, then moved to the day after: the next day's run reminds it again, with
    the new date. A booking moved to another time on the reminded day is reminded of the new time."""
    moved_away = book_at(venue, timedelta(days=1))
    moved_within = book_at(venue, timedelta(days=1, hours=1))
    notify.queue_reminders(TOMORROW)
    db.session.commit()

    clock.at += timedelta(hours=1)
    booking.change(moved_away, make_slot(venue, starts_in=timedelta(days=1, hours=23)).id, actor=WEB)
    booking.change(moved_within, make_slot(venue, starts_in=timedelta(days=1, hours=6)).id, actor=WEB)
    db.session.commit()
    clock.at += timedelta(hours=1)
    assert notify.queue_reminders(TOMORROW) == (1, 2)
    assert "2026年3月11日（水） 17:00" in notify.draft(reminders(moved_within.id)[-1]).body
    db.session.commit()

    clock.at += timedelta(days=1)
    assert notify.queue_reminders(DAY_AFTER) == (1, 2)
    latest = reminders(moved_away.id)[-1]
    assert "2026年3月12日（木）" in notify.draft(latest).body
    assert notify.queue_reminders(DAY_AFTER) == (0, 0)


def run(app, *args: str):
    """`madoguchi <args>` with the CLI bound to the test app."""
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def test_the_command_reminds_tomorrow_by_default_and_delivers(app, venue, clock):
    """`madoguchi reminders send` queues tomorrow's reminders, delivers them, prints counts only and
    sends nothing more when run again."""
    made = book_at(venue, timedelta(days=1))
    book_at(venue, timedelta(days=2))
    number = made.applicant.reservation_number
    db.session.commit()

    first = run(app, "reminders", "send")
    assert first.exit_code == 0, first.output
    assert "2026-03-11: queued 2 reminders for 1 bookings" in first.output
    assert "sent 6, failed 0 (will retry), undeliverable 0" in first.output  # + 4 confirmations
    assert number not in first.output and "9012345678" not in first.output

    again = run(app, "reminders", "send")
    assert "queued 0 reminders for 0 bookings" in again.output
    assert "sent 0," in again.output

    other_day = run(app, "reminders", "send", "--day", "2026-03-12")
    assert "2026-03-12: queued 2 reminders for 1 bookings" in other_day.output
    db.session.expire_all()
    assert {m.status for m in reminders()} == {"sent"}


@pytest.fixture
def twilio(overrides, fake_twilio):
    overrides.update(fake_twilio.overrides())
    return fake_twilio


def test_outbox_deliver_reports_failures_and_exits_1(twilio, app, venue):
    """`madoguchi outbox deliver` says how many failed (to be retried) and were given up, and exits 1
    so the scheduler reports it; the counts name no one."""
    book_at(venue, timedelta(days=1), email=None)
    book_at(venue, timedelta(days=1, hours=1), email=None)
    twilio.fail_next(1, status=503)
    twilio.fail_next(1, 400, 21211, "Invalid 'To' Phone Number: +819012345678")

    result = run(app, "outbox", "deliver")
    assert result.exit_code == 1
    assert "sent 0, failed 1 (will retry), undeliverable 1" in result.output
    assert "waiting: 0 pending, 1 failed; 1 undeliverable in all" in result.output
    assert "9012345678" not in result.output
