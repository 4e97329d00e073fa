"""FAX intake in a real browser (R5.2, R5.3): staff upload a received FAX, see the page's image
beside what was read, correct nothing, confirm, and get the reply sheet."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from madoguchi.extensions import db
from madoguchi.models import Booking
from tests.e2e.conftest import shot
from tests.factories import STAFF_PASSWORD, make_staff
from tests.faxsupport import filled_fax, seed_sheet

pytestmark = pytest.mark.e2e


def test_fax_staff_confirm_a_sheet_beside_its_image(operator_page, callcenter_app, tmp_path):
    page = operator_page
    seeded = seed_sheet(callcenter_app)
    upload = tmp_path / "received.tif"
    upload.write_bytes(filled_fax(seeded, marked=[(1, 0), (2, 1)], phone="09011223344"))
    with callcenter_app.app_context():
        staff = make_staff(roles=("fax_intake",))
        db.session.commit()
        login_id, secret = staff.login_id, staff.totp_secret

    page.goto("/")
    page.get_by_label("職員ID").fill(login_id)
    page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="次へ").click()
    page.get_by_label("確認コード").fill(
        pyotp.TOTP(secret).at(callcenter_app.extensions["madoguchi.clock"].now())
    )
    page.keyboard.press("Enter")
    page.get_by_role("link", name="FAX受付").click()
    page.get_by_label(re.compile("受信したFAXの画像")).set_input_files(str(upload))
    # Reading the page (and, the first time in this process, training the digit classifier) takes
    # a few seconds on a loaded 2-core machine.
    page.get_by_role("button", name="取り込む").click(timeout=60_000)
    expect(page.locator(".notice-success")).to_contain_text("1ページを受け付けました", timeout=60_000)
    page.get_by_role("link", name="確認する").click()

    image = page.get_by_role("img", name="受信したFAXの画像")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 500")
    expect(page.get_by_label("予約管理番号")).to_have_value(re.compile(seeded.number[:4]))
    checked = page.locator("input[name=wish]:checked")
    expect(checked).to_have_count(2)
    shot(page, "fax-item")
    page.get_by_role("button", name="確認して予約する").click()
    expect(page.locator(".notice-success")).to_contain_text("予約しました")
    shot(page, "fax-confirmed")
    with callcenter_app.app_context():
        made = db.session.scalars(select(Booking)).one()
        assert made.channel == "fax"
