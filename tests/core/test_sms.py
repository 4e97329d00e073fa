"""SMS confirmations (R3.4, R4.1): sent through the real ``twilio`` library to a local fake of Twilio's
REST API (tests/fakes/twilio_api.py), retried when Twilio or the network fails, given up and shown to
staff when Twilio says the number will never work — and never a phone number in a log or an error."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi import booking, notify
from madoguchi.extensions import db
from madoguchi.models import OutboundMessage
from tests.factories import make_applicant, make_slot, make_venue

WEB = booking.Actor.resident()
MOBILE = "090-1234-5678"
MOBILE_E164 = "+819012345678"
PERSONAL = ("9012345678", "090-1234-5678", "太郎", "コウトウ", "hanako@example.jp")


@pytest.fixture
def twilio(overrides, fake_twilio):
    """The app sends SMS through Twilio's API, served by the fake on loopback. Request it before
    ``ctx``/``app``: the settings are read when the app is created."""
    overrides.update(fake_twilio.overrides())
    return fake_twilio


@pytest.fixture
def wrong_token(overrides, fake_twilio):
    overrides.update(fake_twilio.overrides(), TWILIO_AUTH_TOKEN="not-the-token")
    return fake_twilio


def book(*, phone=MOBILE, email=None, venue=None):
    venue = venue or make_venue(name="江東区役所", floor="2階")
    slot = make_slot(venue)
    applicant = make_applicant(venue, phone=phone, email=email)
    made = booking.book(applicant, slot.id, actor=WEB)
    db.session.commit()
    return made


def sms_rows() -> list[OutboundMessage]:
    return list(db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "sms")))


def travel(app, delta: timedelta) -> None:
    app.extensions["madoguchi.clock"].offset += delta


def message_requests(fake) -> list:
    return fake.requests_to("/Messages.json")


# ---- what is sent, to whom ------------------------------------------------------------------------
def test_a_booking_with_a_mobile_number_sends_an_sms_through_twilio(twilio, ctx):
    """R3.4: the confirmation SMS goes through Twilio's Messages API with the number in E.164, our
    sender, and a body giving the 予約管理番号, the date and time in Tokyo, the venue, the residents'
    site and the call center; Twilio's Message SID is kept as proof."""
    made = book(email="hanako@example.jp")
    slot, number = made.slot, made.applicant.reservation_number
    result = notify.deliver()

    assert (result.sent, result.failed, result.undeliverable) == (2, 0, 0)  # the e-mail and the SMS
    (sent,) = twilio.messages
    assert sent["to"] == MOBILE_E164
    assert sent["from"] == "+815012345678"
    body = sent["body"]
    jp_datetime = ctx.jinja_env.filters["jp_datetime"]
    assert f"予約管理番号: {number[:4]}-{number[4:8]}-{number[8:]}" in body
    assert jp_datetime(slot.starts_at) in body  # Tokyo time, e.g. 2026年1月3日（土） 10:00
    assert "江東区役所 2階" in body
    assert ctx.config["RESIDENTS_URL"] in body
    assert ctx.config["CALL_CENTER_PHONE"] in body
    assert "受け付けました" in body
    assert len(body) <= notify.SMS_MAX_CHARS

    (request,) = message_requests(twilio)
    assert request.auth == (twilio.account_sid, twilio.auth_token)
    (row,) = sms_rows()
    assert row.status == "sent" and row.template == "booking_confirmed"
    assert row.provider_id == sent["sid"] and re.fullmatch(r"SM[0-9a-f]{32}", row.provider_id)
    assert row.recipient == MOBILE_E164
    assert row.sent_at is not None and row.attempts == 1


def test_change_and_cancel_send_an_sms_each(twilio, ctx):
    """R3.4, R3.5: changing and cancelling tell the resident by SMS too, with the new time."""
    made = book()
    other = make_slot(made.slot.venue, starts_in=timedelta(days=3))
    db.session.commit()
    booking.change(made, other.id, actor=WEB)
    db.session.commit()
    booking.cancel(made, actor=WEB)
    db.session.commit()
    notify.deliver()

    bodies = [m["body"] for m in twilio.messages]
    assert len(bodies) == 3
    assert "受け付けました" in bodies[0]
    assert "変更しました" in bodies[1] and ctx.jinja_env.filters["jp_datetime"](other.starts_at) in bodies[1]
    assert "取り消しました" in bodies[2]
    assert [r.template for r in sorted(sms_rows(), key=lambda r: r.created_at)] == [
        "booking_confirmed",
        "booking_changed",
        "booking_cancelled",
    ]


@pytest.mark.parametrize(
    "phone, expected",
    [
        ("090-1234-5678", "+819012345678"),
        ("08012345678", "+818012345678"),
        ("070 1234 5678", "+817012345678"),
        ("０９０－１２３４－５６７８", "+819012345678"),  # full width, as typed on a phone
        ("+81 90-1234-5678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("03-1234-5678", None),  # landline
        ("0120-123-456", None),  # free dial
        ("050-1234-5678", None),  # IP phone: no SMS
        ("+81 3-1234-5678", None),
        ("090-1234-567", None),  # a digit short
        ("", None),
        (None, None),
    ],
)
def test_only_japanese_mobile_numbers_get_an_sms(phone, expected):
    assert notify.mobile_e164(phone) == expected


def test_a_landline_gets_the_email_only(twilio, ctx, outbox):
    """R3.4: a landline cannot receive SMS, so only the e-mail is queued and sent."""
    book(phone="03-5555-1234", email="hanako@example.jp")
    assert notify.deliver().sent == 1
    assert sms_rows() == []
    assert twilio.requests == []
    assert len(list(outbox.glob("*.eml"))) == 1


def test_without_twilio_credentials_the_sms_goes_to_the_outbox_folder(ctx, fake_twilio):
    """DESIGN rule 8: with no Twilio account configured, SMS are written one file each (mode 600) in
    SMS_OUTBOX_DIR, readable by a person; nothing reaches any API."""
    made = book()
    number = made.applicant.reservation_number
    assert notify.deliver().sent == 1

    (path,) = Path(ctx.config["SMS_OUTBOX_DIR"]).glob("*.txt")
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"To: {MOBILE_E164}\n")
    assert "Template: booking_confirmed" in text
    assert f"{number[:4]}-{number[4:8]}-{number[8:]}" in text
    (row,) = sms_rows()
    assert row.status == "sent" and row.provider_id is None
    assert fake_twilio.requests == []


def test_twilio_is_used_only_when_sid_token_and_sender_are_all_set(ctx):
    config = dict(ctx.config, TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="token")
    assert not notify.twilio_configured(config)
    assert notify.twilio_configured(dict(config, TWILIO_FROM_NUMBER="+815012345678"))


def test_every_sms_template_fits_one_japanese_message(ctx):
    """A Japanese SMS is at most 670 characters (10 UCS-2 parts of 67); ours stay within 4 parts with a
    long venue name and a long site address, and carry no template residue."""
    venue = make_venue(name="江東区総合区民センター", floor="7階 第一・第二会議室")
    ctx.config["RESIDENTS_URL"] = "https://yoyaku.city.koto.lg.jp/mynumber/reservation/"
    made = book(venue=venue)
    for template in notify.SUBJECTS:
        queued = [db.session.get(OutboundMessage, i) for i in notify.queue_booking_message(made, template)]
        (sms,) = [notify.draft(m) for m in queued if m.kind == "sms"]
        assert len(sms.body) <= min(67 * 4, notify.SMS_MAX_CHARS), (template, len(sms.body))
        assert "{" not in sms.body and "\n\n" not in sms.body
        assert sms.body.startswith("【江東区】") and "7階 第一・第二会議室" in sms.body


# ---- failures: retried, or given up and shown --------------------------------------------------------
@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_server_error_is_retried_after_its_wait(twilio, ctx, status):
    """A 5xx or 429 from Twilio leaves the SMS failed with a wait (backoff); it is not tried again
    before that time, and is sent at the next run after it. Nothing is lost."""
    book()
    twilio.fail_next(1, status=status)
    result = notify.deliver()
    assert (result.sent, result.failed) == (0, 1)
    (row,) = sms_rows()
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error == f"TwilioRestException {status}/{20000 + status}"
    assert abs(row.next_attempt_at - (notify.dates.now() + timedelta(minutes=1))) < timedelta(seconds=5)

    assert notify.deliver().sent == 0  # still waiting
    assert len(message_requests(twilio)) == 1

    travel(ctx, timedelta(minutes=1, seconds=5))
    assert notify.deliver().sent == 1
    db.session.refresh(row)
    assert row.status == "sent" and row.attempts == 2 and row.last_error is None
    assert row.provider_id == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1


def test_a_dropped_connection_is_retried(twilio, ctx):
    """A network cut (the request left, no answer came) is a failure to retry, never a loss."""
    book()
    twilio.drop_next()
    assert notify.deliver().failed == 1
    (row,) = sms_rows()
    assert row.status == "failed" and row.last_error == "ConnectionError"
    travel(ctx, timedelta(minutes=2))
    assert notify.deliver().sent == 1
    db.session.refresh(row)
    assert row.status == "sent"


def test_the_wait_grows_between_attempts(twilio, ctx):
    book()
    twilio.fail_next(3, status=500)
    waits = []
    for _ in range(3):
        now = notify.dates.now()
        notify.deliver()
        (row,) = sms_rows()
        waits.append(row.next_attempt_at - now)
        travel(ctx, row.next_attempt_at - now + timedelta(seconds=1))
    assert [round(w.total_seconds() / 60) for w in waits] == [1, 2, 4]
    assert notify.deliver().sent == 1


@pytest.mark.parametrize(
    "code, setup",
    [
        (21211, lambda fake: fake.fail_next(1, 400, 21211, f"Invalid 'To' Phone Number: {MOBILE_E164}")),
        (21610, lambda fake: fake.unsubscribe(MOBILE_E164)),
    ],
)
def test_a_number_twilio_refuses_is_undeliverable_and_shown(twilio, ctx, code, setup):
    """A permanent refusal (21211 not a valid number, 21610 the resident replied STOP) is not retried:
    the SMS is marked undeliverable and listed for staff; its error names the code, never the number
    (Twilio's own message does)."""
    book()
    setup(twilio)
    result = notify.deliver()
    assert (result.sent, result.failed, result.undeliverable) == (0, 0, 1)
    (row,) = sms_rows()
    assert row.status == "undeliverable"
    assert row.last_error == f"TwilioRestException 400/{code}"
    assert not re.search(r"\d{6}", row.last_error)

    travel(ctx, timedelta(days=1))
    assert notify.deliver().sent == 0
    assert len(message_requests(twilio)) == 1
    assert [m.id for m in notify.undelivered()] == [row.id]


def test_wrong_credentials_are_retried_not_given_up(wrong_token, ctx):
    """401 means our settings are wrong, not the resident's number: keep the SMS for after the fix."""
    fake_twilio = wrong_token
    book()
    assert notify.deliver().failed == 1
    (row,) = sms_rows()
    assert row.status == "failed" and row.last_error == "TwilioRestException 401/20003"
    assert fake_twilio.messages == []


def test_after_ten_failed_attempts_the_sms_is_undeliverable(twilio, ctx):
    book()
    twilio.fail_next(20, status=500)
    for _ in range(12):
        notify.deliver()
        travel(ctx, timedelta(hours=5))
    (row,) = sms_rows()
    assert row.status == "undeliverable" and row.attempts == notify.MAX_ATTEMPTS
    assert len(message_requests(twilio)) == notify.MAX_ATTEMPTS


def test_retry_now_puts_a_message_back_in_the_queue(twilio, ctx):
    """Staff retry an undeliverable SMS (e.g. after the resident corrected their number with Twilio):
    it becomes pending, keeps its attempt count, and the next run sends it."""
    book()
    twilio.fail_next(1, 400, 21211, f"Invalid 'To' Phone Number: {MOBILE_E164}")
    notify.deliver()
    (row,) = sms_rows()
    assert row.status == "undeliverable"

    again = notify.retry_now(row.id)
    db.session.commit()
    assert again is row and row.status == "pending" and row.attempts == 1
    assert notify.undelivered() == []
    assert notify.deliver().sent == 1
    db.session.refresh(row)
    assert row.status == "sent" and row.attempts == 2 and row.provider_id == twilio.messages[0]["sid"]

    assert notify.retry_now(row.id).status == "sent"  # a sent message stays sent
    assert notify.retry_now("0" * 32) is None


def test_undelivered_lists_failed_and_undeliverable_only(twilio, ctx):
    first, second, third = book(), book(), book()
    twilio.fail_next(1, status=500)
    twilio.fail_next(1, 400, 21610)
    notify.deliver()
    listed = {m.booking_id: m.status for m in notify.undelivered()}
    assert listed == {first.id: "failed", second.id: "undeliverable"}
    assert third.id not in listed


def test_two_delivery_runs_at_once_send_each_sms_once(twilio, app):
    """Two workers delivering at the same moment (the after-request hook of two requests) claim each
    message with a conditional UPDATE, so no resident gets the same SMS twice."""
    with app.app_context():
        for _ in range(6):
            book()
    barrier = threading.Barrier(2)
    errors = []

    def run():
        with app.app_context():
            try:
                barrier.wait()
                notify.deliver()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(twilio.messages) == 6
    with app.app_context():
        assert {r.status for r in sms_rows()} == {"sent"}
        assert {r.attempts for r in sms_rows()} == {1}


def test_the_api_base_url_is_where_requests_go():
    """TWILIO_API_BASE_URL (a gateway) replaces any Twilio host, region and edge included; the default
    leaves Twilio's URLs as they are."""
    gateway = notify.GatewayHttpClient("https://gw.city.internal/twilio/")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=50"
    assert (
        gateway.rewrite(url)
        == "https://gw.city.internal/twilio/2010-04-01/Accounts/AC1/Messages.json?PageSize=50"
    )
    assert gateway.rewrite("https://api.tokyo.jp1.twilio.com/2010-04-01/x.json").startswith(
        "https://gw.city.internal/twilio/2010-04-01/"
    )
    assert gateway.rewrite("https://example.jp/a") == "https://example.jp/a"
    assert notify.GatewayHttpClient().rewrite(url) == url


# ---- personal data ---------------------------------------------------------------------------------
def test_no_phone_number_or_name_reaches_the_logs(twilio, ctx, caplog):
    """Standard 4: sending, failing, dropping, refusing and retrying log and store only ids, types and
    codes — although Twilio's error messages echo the number."""
    caplog.set_level(logging.DEBUG)
    made = book(email="hanako@example.jp")
    twilio.fail_next(1, status=500)
    twilio.drop_next()
    notify.deliver()
    travel(ctx, timedelta(minutes=5))
    twilio.fail_next(1, 400, 21211, f"Invalid 'To' Phone Number: {MOBILE_E164}")
    notify.deliver()
    booking.cancel(made, actor=WEB)
    db.session.commit()
    notify.deliver()
    errors = [m.last_error for m in notify.undelivered()]
    assert sorted(errors) == ["ConnectionError", "TwilioRestException 400/21211"]
    for row in notify.undelivered():
        notify.retry_now(row.id)
    db.session.commit()
    travel(ctx, timedelta(hours=1))
    notify.deliver()
    assert {m.status for m in db.session.scalars(select(OutboundMessage))} == {"sent"}

    assert any("not delivered" in r.getMessage() for r in caplog.records)  # the failures were logged
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in PERSONAL:
        assert value not in logged
        assert all(value not in error for error in errors)
