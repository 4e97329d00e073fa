"""The call center in a real browser (R4.1, R4.2): a Twilio webhook pops the caller's booking up
on the operator's console, and an operator books and logs a call with the keyboard alone."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from madoguchi import booking
from madoguchi.extensions import db
from madoguchi.models import Booking, Call, Channel
from tests.e2e.conftest import shot
from tests.factories import STAFF_PASSWORD, make_applicant, make_slot, make_staff, make_venue

pytestmark = pytest.mark.e2e

TOKEN = "e2e-twilio-auth-token"


def _seed(app, *, booked: bool):
    with app.app_context():
        venue = make_venue(name="豊洲テスト会場")
        slots = [make_slot(venue, starts_in=timedelta(days=d)) for d in (2, 3)]
        person = make_applicant(venue, name="豊洲　花子", name_kana="トヨス　ハナコ", phone="090-2222-3333")
        if booked:
            booking.book(person, slots[0].id, actor=booking.Actor(Channel.WEB))
        operator = make_staff(roles=("operator",), name="応対 一郎")
        db.session.commit()
        return person.id, person.reservation_number, operator.login_id, operator.totp_secret


def _sign_in(page, app, login_id, secret):
    page.goto("/")
    page.get_by_label("職員ID").fill(login_id)
    page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="次へ").click()
    page.get_by_label("確認コード").fill(pyotp.TOTP(secret).at(app.extensions["madoguchi.clock"].now()))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("予約の検索")


def _twilio_calls(server: str, caller: str, call_sid: str) -> int:
    """Send the voice webhook as Twilio would: form-encoded, signed over the URL it called."""
    url = f"{server}/twilio/voice"
    params = {"CallSid": call_sid, "From": caller, "To": "+81312345678", "CallStatus": "ringing"}
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(params).encode(), headers={"X-Twilio-Signature": signature}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
        return response.status


def test_an_incoming_call_pops_up_the_callers_booking(operator_page, callcenter_app, callcenter_server):
    """R4.2: the console is open; Twilio's webhook arrives; the pop-up appears by itself (server-sent
    events), the operator answers with the A key and sees the caller's booking."""
    page = operator_page
    _applicant_id, _number, login_id, secret = _seed(callcenter_app, booked=True)
    _sign_in(page, callcenter_app, login_id, secret)
    expect(page.locator("#incoming-calls")).to_be_hidden()

    assert _twilio_calls(callcenter_server, "+819022223333", "CA" + "e" * 32) == 200
    popup = page.locator("#incoming-calls")
    expect(popup).to_be_visible(timeout=8000)
    expect(popup).to_contain_text("着信があります")
    expect(popup).to_contain_text("登録のある番号（1人）")
    shot(page, "incoming-call")

    # The search box was empty, so the focus moved to 応答: Enter answers.
    expect(popup.get_by_role("button", name=re.compile("応答する"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("通話")
    expect(page.locator("table.hits")).to_contain_text("豊洲　花子")
    expect(page.locator("table.hits")).to_contain_text("予約済み")
    shot(page, "call-screen")
    with callcenter_app.app_context():
        call = db.session.scalars(select(Call)).one()
        assert call.operator_id is not None


def test_an_operator_books_and_logs_a_call_by_keyboard_alone(operator_page, callcenter_app):
    """R4.1, R4.3: search box focused, number typed, result opened, slot chosen, call logged —
    without touching the mouse."""
    page = operator_page
    applicant_id, number, login_id, secret = _seed(callcenter_app, booked=False)
    _sign_in(page, callcenter_app, login_id, secret)

    # A call transferred by the PBX: start its log first (Tab to the button, Enter).
    expect(page.get_by_label("予約管理番号・電話番号・氏名（カナ）")).to_be_focused()
    page.keyboard.type(number)
    page.keyboard.press("Enter")
    expect(page.locator("table.hits")).to_contain_text("豊洲　花子")
    shot(page, "search-result")
    page.locator("table.hits a").first.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("豊洲　花子")
    page.wait_for_load_state()  # the shortcut listener is attached once the page's script has run
    page.keyboard.press("b")
    expect(page.get_by_role("heading", level=1)).to_contain_text("日時を選ぶ")
    first_slot = page.locator("button[data-slot]:not([disabled])").first
    expect(first_slot).to_contain_text("残り5")
    shot(page, "slot-picker")
    # Tab until the first free slot has focus (links and navigation come first).
    for _ in range(30):
        if first_slot.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").or_(page.locator(".notice-success"))).to_contain_text("予約しました")
    shot(page, "booked")
    with callcenter_app.app_context():
        made = db.session.scalars(select(Booking).where(Booking.applicant_id == applicant_id)).one()
        assert made.channel == "phone" and made.staff_id is not None

    # Log the call: the manual-call button, then category by number key, note, save. "/" opens the
    # search page, whose box takes the focus when it loads: wait for that before moving it.
    page.keyboard.press("/")
    expect(page.get_by_label("予約管理番号・電話番号・氏名（カナ）")).to_be_focused()
    page.wait_for_load_state()
    new_log = page.get_by_role("button", name="記録票を新しく作る（転送された電話など）")
    new_log.focus()
    expect(new_log).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=2, name="記録票")).to_be_visible()
    page.wait_for_load_state()
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("2")
    expect(page.get_by_label("イ 交付")).to_be_checked()
    page.get_by_label("内容（記録票）").focus()
    page.keyboard.type("受け取りの予約を電話で受け付けた。")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".notice-success")).to_contain_text("通話記録を保存しました")
    with callcenter_app.app_context():
        logged = db.session.scalars(select(Call)).one()
        assert logged.category == "issuance" and logged.note == "受け取りの予約を電話で受け付けた。"
    assert re.search(r"/$", page.url)


def test_supervisors_read_call_statistics_as_a_chart(operator_page, callcenter_app):
    """R4.3: calls per day and category, as bars beside the table."""
    page = operator_page
    with callcenter_app.app_context():
        from madoguchi import calls

        supervisor = make_staff(roles=("supervisor",), name="指導 陽子")
        for n, category in enumerate(["application", "issuance", "issuance", "other", None]):
            call = calls.incoming(f"CA{n:032d}", "+819000000000")
            if category:
                calls.log(call, category=category, note="", staff_id=supervisor.id)
        db.session.commit()
        login_id, secret = supervisor.login_id, supervisor.totp_secret
    _sign_in(page, callcenter_app, login_id, secret)
    page.get_by_role("link", name="通話の統計").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("通話の統計")
    today_row = page.locator("table.daily tbody tr").last
    expect(today_row.locator("td.count").last).to_have_text("5")
    assert today_row.locator("svg.bar rect").count() == 4  # ア, イ, オ and 未入力
    shot(page, "call-statistics")
