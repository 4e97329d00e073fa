"""A venue clerk hands over a card on a tablet (R6.1): sign in with a real TOTP code, open 受付, scan
the notice's number (a scanner types the digits and Enter into the focused box), check the person and
record 交付. Another venue's clerk scanning the same number sees only that it belongs elsewhere (R7.2).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from madoguchi import booking, dates, numbers
from madoguchi.extensions import db
from madoguchi.models import AuditEntry, Booking, Channel
from tests.e2e.conftest import TABLET, PageProblems, shot
from tests.factories import STAFF_PASSWORD, make_applicant, make_slot, make_staff, make_venue

pytestmark = pytest.mark.e2e

PERSON = {
    "name": "交付確認花子",
    "name_kana": "コウフカクニンハナコ",
    "address": "東京都江東区有明7丁目65番43号",
}


def _morning(app) -> None:
    """Set the app's clock to 10:00 in Tokyo a week ahead, so the 11:00 slot is surely today."""
    clock = app.extensions["madoguchi.clock"]
    real_today = datetime.now(dates.TOKYO).date()
    target = datetime.combine(real_today + timedelta(days=7), time(10, 0), tzinfo=dates.TOKYO)
    clock.offset = timedelta(0)
    clock.offset = target - clock.now()


def _sign_in(page, app, login_id: str, secret: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))
    page.get_by_label("職員ID").fill(login_id)
    page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="次へ").click()
    page.get_by_label("確認コード").fill(pyotp.TOTP(secret).at(app.extensions["madoguchi.clock"].now()))
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ホーム")


def _scan(page, number: str) -> None:
    """What a barcode scanner does: type into whatever has focus, then Enter."""
    page.keyboard.type(number, delay=5)
    page.keyboard.press("Enter")


def test_a_venue_clerk_scans_a_number_and_hands_over_the_card(tablet_page, admin_app, browser, admin_server):
    """R6.1, R7.2, R7.4: on a tablet the clerk opens 受付 from the home page; the scan box has focus;
    the scanned number shows the person (name, kana, birth date) with large buttons; 交付した records
    the hand-over (success message, 交付済み in today's list, focus back in the scan box, audited by
    id). The other venue's clerk scanning the same number is told 別の会場の予約です, with no name and
    no buttons."""
    page = tablet_page
    _morning(admin_app)
    with admin_app.app_context():
        venue, other = make_venue(name="東陽町会場"), make_venue(name="豊洲会場")
        slot = make_slot(venue, starts_in=timedelta(hours=1))
        for _ in range(3):  # a few others booked today, so the list looks like a day's list
            someone = make_applicant(venue, name="予約　一般", name_kana="ヨヤク　イッパン")
            booking.book(someone, slot.id, actor=booking.Actor(Channel.WEB))
        applicant = make_applicant(venue, **PERSON)
        made = booking.book(applicant, slot.id, actor=booking.Actor(Channel.PHONE))
        clerk = make_staff(roles=("venue_staff",), venue=venue)
        other_clerk = make_staff(roles=("venue_staff",), venue=other)
        db.session.commit()
        number, booking_id, venue_name = applicant.reservation_number, made.id, venue.display_name
        clerk_login, clerk_secret, clerk_id = clerk.login_id, clerk.totp_secret, clerk.id
        other_login, other_secret = other_clerk.login_id, other_clerk.totp_secret

    _sign_in(page, admin_app, clerk_login, clerk_secret)
    shot(page, "home")
    page.get_by_role("link", name="受付", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"受付: {venue_name}")
    scan_box = page.get_by_role("textbox", name="予約管理番号")
    expect(scan_box).to_be_focused()
    expect(page.get_by_role("row").filter(has_text=numbers.display(number))).to_contain_text("予約済み")
    shot(page, "checkin-ready")

    _scan(page, number)
    result = page.locator("#result")
    expect(result.get_by_role("heading", level=2)).to_have_text("この方の予約（本日）")
    expect(result).to_contain_text(PERSON["name"])
    expect(result).to_contain_text(PERSON["name_kana"])
    expect(result).to_contain_text("昭和55年4月1日")  # the factory's birth date, in wareki
    expect(result).to_contain_text(numbers.display(number))
    expect(page.locator("body")).not_to_contain_text(PERSON["address"])
    hand_over = page.get_by_role("button", name="交付した")
    expect(hand_over).to_be_in_viewport(ratio=1)  # no scrolling to reach the main action on the tablet
    box = hand_over.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 120, box  # a finger-sized target
    shot(page, "found")

    hand_over.click()
    expect(page.get_by_role("status")).to_have_text("カードの交付を記録しました。")
    expect(page.locator("tr.current")).to_contain_text("交付済み")
    expect(result).to_contain_text("交付済み")
    expect(page.get_by_role("button", name="交付した")).to_have_count(0)  # not twice
    expect(scan_box).to_be_focused()  # ready for the next person's notice
    expect(scan_box).to_have_value("")
    shot(page, "handed-over")

    with admin_app.app_context():
        assert db.session.get(Booking, booking_id).status == "handed_over"
        audited = db.session.execute(
            select(AuditEntry.action, AuditEntry.subject_id).where(AuditEntry.staff_id == clerk_id)
        ).all()
    assert ("checkin:looked_up", booking_id) in audited
    assert ("booking:outcome_recorded", booking_id) in audited

    # The other venue's clerk, on their own tablet.
    context = browser.new_context(
        base_url=admin_server, viewport=TABLET, locale="ja-JP", timezone_id="Asia/Tokyo"
    )
    context.set_default_timeout(10_000)
    try:
        elsewhere = context.new_page()
        problems = PageProblems()
        problems.attach(elsewhere)
        elsewhere._e2e_shots = page._e2e_shots  # one numbered series of screenshots
        _sign_in(elsewhere, admin_app, other_login, other_secret)
        elsewhere.get_by_role("link", name="受付", exact=True).click()
        expect(elsewhere.get_by_role("textbox", name="予約管理番号")).to_be_focused()
        expect(elsewhere.locator("body")).not_to_contain_text(numbers.display(number))  # not in their list
        _scan(elsewhere, number)
        expect(elsewhere.get_by_role("alert")).to_contain_text("別の会場の予約です")
        expect(elsewhere.locator("#result")).to_contain_text(venue_name)
        expect(elsewhere.locator("body")).not_to_contain_text(PERSON["name"])
        expect(elsewhere.locator("body")).not_to_contain_text(PERSON["name_kana"])
        for label in ("交付した", "来庁（受付）", "来庁なし", "延期"):
            expect(elsewhere.get_by_role("button", name=label)).to_have_count(0)
        shot(elsewhere, "other-venue")
        problems.check()
    finally:
        context.close()
