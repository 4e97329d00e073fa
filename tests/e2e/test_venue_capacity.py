"""An administrator lowers a slot's capacity below its bookings in a real browser and decides for
the affected booking (R3.3): nothing changes until every booking has a decision; then the booking
moves and the capacity applies."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from madoguchi import booking, dates
from madoguchi.extensions import db
from madoguchi.models import Booking, Channel, Slot
from tests.e2e.conftest import shot
from tests.factories import STAFF_PASSWORD, make_applicant, make_slot, make_staff, make_venue

pytestmark = pytest.mark.e2e


def test_an_administrator_lowers_a_capacity_and_moves_the_booking(staff_page, admin_app):
    page = staff_page
    with admin_app.app_context():
        venue = make_venue(name="本庁舎テスト")
        full = make_slot(venue, starts_in=timedelta(days=3), capacity=2)
        free = make_slot(venue, starts_in=timedelta(days=4), capacity=2)
        first = booking.book(make_applicant(venue), full.id, actor=booking.Actor(Channel.WEB))
        second = booking.book(make_applicant(venue), full.id, actor=booking.Actor(Channel.PHONE))
        admin = make_staff(roles=("administrator",))
        db.session.commit()
        ids = {"venue": venue.id, "full": full.id, "free": free.id, "first": first.id, "second": second.id}
        day = dates.tokyo(full.starts_at).date().isoformat()
        login_id, secret = admin.login_id, admin.totp_secret

    page.goto("/")
    page.get_by_label("職員ID").fill(login_id)
    page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="次へ").click()
    page.get_by_label("確認コード").fill(pyotp.TOTP(secret).at(admin_app.extensions["madoguchi.clock"].now()))
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ホーム")

    page.get_by_role("link", name=re.compile("会場と予約枠の設定")).click()
    page.get_by_role("row").filter(has_text="本庁舎テスト").get_by_role(
        "link", name="予約枠と休日開庁"
    ).click()
    page.goto(f"/settings/venues/{ids['venue']}/days/{day}")
    row = page.get_by_role("row").filter(has=page.locator(f"#capacity-{ids['full']}"))
    row.get_by_label(re.compile("の定員")).fill("1")
    row.get_by_role("button", name="変更").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("影響を受ける予約の対応")
    expect(page.locator("select[name^='decision-']")).to_have_count(2)
    # Submitting without choosing: refused, nothing changed.
    page.get_by_role("button", name="対応を決めて変更する").click()
    expect(page.locator("#decide-message")).to_contain_text("すべての予約について対応を選んでください")
    with admin_app.app_context():
        assert db.session.get(Slot, ids["full"]).capacity == 2

    page.locator(f"#decision-{ids['first']}").select_option(f"move:{ids['free']}")
    page.locator(f"#decision-{ids['second']}").select_option("keep")
    shot(page, "decide")
    page.get_by_role("button", name="対応を決めて変更する").click()
    expect(page.get_by_role("status")).to_contain_text("移動 1 件")
    shot(page, "applied")

    with admin_app.app_context():
        assert db.session.get(Slot, ids["full"]).capacity == 1
        assert db.session.get(Booking, ids["first"]).slot_id == ids["free"]
        assert db.session.get(Booking, ids["second"]).slot_id == ids["full"]
