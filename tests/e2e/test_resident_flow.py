"""The residents' pages driven in a real browser, as a person would use them (R3).

Each test seeds its own data with the factories, then only clicks, types and reads what the page
shows; the database is opened again at the end only to check what the pages claimed.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from madoguchi import booking, dates, notify, numbers
from madoguchi.extensions import begin_write, db
from madoguchi.models import Applicant, Booking, Hold, Slot
from tests.e2e.conftest import shot
from tests.factories import make_applicant, make_slot, make_venue

pytestmark = pytest.mark.e2e

BIRTH_WAREKI = "昭和55年4月1日"  # = 1980-04-01, the factory's birth date
WEEKDAYS = "月火水木金土日"
EMAIL = "koto.taro@example.jp"


@dataclass(frozen=True)
class SlotInfo:
    id: int
    label: str  # as the calendar button's accessible name starts: 2025年4月2日（水） 10:05〜10:35
    when: str  # as the summaries show it: 2025年4月2日（水） 10:05
    mail_when: re.Pattern  # the e-mail's 日時 line, with or without the weekday


@dataclass(frozen=True)
class Seeded:
    applicant_id: str
    number: str  # 12 digits
    number_display: str  # 1234-5678-9012, as printed on the notice
    venue_name: str
    map_url: str
    slots: list[SlotInfo]


def _jp_date(day) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


def _slot_info(slot: Slot) -> SlotInfo:
    starts, ends = dates.tokyo(slot.starts_at), dates.tokyo(slot.ends_at)
    day = _jp_date(starts.date())
    return SlotInfo(
        id=slot.id,
        label=f"{day} {starts:%H:%M}〜{ends:%H:%M}",
        when=f"{day} {starts:%H:%M}",
        mail_when=re.compile(
            rf"^日時: {starts.year}年{starts.month}月{starts.day}日(（.）)? ?{starts:%H:%M}〜{ends:%H:%M}$",
            re.M,
        ),
    )


def seed(app, *, days=(1, 2, 3), capacity: int = 2) -> Seeded:
    """A small venue, a few future slots and one applicant on the roster with an e-mail address."""
    with app.app_context():
        venue = make_venue(slot_capacity=capacity)
        slots = [make_slot(venue, starts_in=timedelta(days=d), capacity=capacity) for d in days]
        applicant = make_applicant(venue, email=EMAIL)
        db.session.commit()
        number = applicant.reservation_number
        return Seeded(
            applicant_id=applicant.id,
            number=number,
            number_display=numbers.display(number),
            venue_name=venue.display_name,
            map_url=venue.map_url,
            slots=[_slot_info(s) for s in slots],
        )


def slot_button(page, slot: SlotInfo):
    return page.get_by_role("button", name=re.compile("^" + re.escape(slot.label)))


def identify(page, who: Seeded, birth: str = BIRTH_WAREKI) -> None:
    page.get_by_label("予約管理番号（12桁）").fill(who.number_display)
    page.get_by_label("生年月日").fill(birth)


def next_button(page):
    return page.get_by_role("button", name="次へ進む")


def read_mails(outbox: Path, count: int, timeout: float = 5.0) -> list[email.message.EmailMessage]:
    """The .eml files the outbox mailer wrote, oldest first (a request's mail goes out after its response)."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if outbox.exists() else []
        if len(files) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def go_to_calendar(page, who: Seeded) -> None:
    """Start page → identify → 連絡先 → 会場 → the calendar, without screenshots."""
    page.goto("/")
    page.get_by_role("link", name="予約する", exact=True).click()
    identify(page, who)
    next_button(page).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("連絡先を入力してください（任意）")
    next_button(page).click()
    page.get_by_role("link", name="日時を選ぶ").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("受け取る日時を選んでください")


# ---- a. booking, end to end -----------------------------------------------------------------
def test_book_end_to_end(page, app, overrides):
    """R3.1–R3.4: a resident on the roster books with the number from the notice and a 和暦 birth
    date, sees the number, venue and map on the done page, and receives the confirmation e-mail."""
    who = seed(app)
    slot = who.slots[1]

    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("マイナンバーカードの受け取り予約")
    shot(page, "index")
    page.get_by_role("link", name="予約する", exact=True).click()

    expect(page).to_have_url(re.compile(r"/start$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約管理番号と生年月日を入力してください")
    shot(page, "start")
    page.get_by_label("予約管理番号（12桁）").press_sequentially(who.number_display)
    page.get_by_label("生年月日").press_sequentially(BIRTH_WAREKI)
    shot(page, "start-filled")
    next_button(page).click()

    expect(page).to_have_url(re.compile(r"/contact$"))
    email_box = page.get_by_label("メールアドレス（任意）")
    expect(email_box).to_have_value(EMAIL)  # from the roster, the resident may change it
    shot(page, "contact")
    next_button(page).click()

    expect(page).to_have_url(re.compile(r"/venue$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("あなたの受け取り会場")
    expect(page.locator(".venue-card .venue-name")).to_have_text(who.venue_name)
    shot(page, "venue")
    page.get_by_role("link", name="日時を選ぶ").click()

    expect(page).to_have_url(re.compile(r"/slots$"))
    expect(page.get_by_text(f"会場: {who.venue_name}")).to_be_visible()
    for s in who.slots:
        expect(slot_button(page, s)).to_have_accessible_name(re.compile(r"残り2人$"))
    shot(page, "calendar")
    slot_button(page, slot).click()

    expect(page).to_have_url(re.compile(r"/confirm$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約内容を確認してください")
    summary = page.locator("dl.summary")
    expect(summary).to_contain_text(who.number_display)
    expect(summary).to_contain_text("江東　太郎")
    expect(summary).to_contain_text(slot.when)
    expect(summary).to_contain_text(who.venue_name)
    shot(page, "confirm")
    page.get_by_role("button", name="この内容で予約する").click()

    expect(page).to_have_url(re.compile(r"/done$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約が完了しました")
    expect(page.locator("dd.number")).to_have_text(who.number_display)
    expect(page.locator("dl.summary")).to_contain_text(slot.when)
    expect(page.locator(".venue-card .venue-name")).to_have_text(who.venue_name)
    map_link = page.get_by_role("link", name="地図を見る（別のタブで開きます）")
    expect(map_link).to_have_attribute("href", who.map_url)
    expect(map_link).to_have_attribute("target", "_blank")
    expect(page.get_by_text("確認のメールを送りました。")).to_be_visible()
    shot(page, "done")

    mails = read_mails(Path(overrides["MAIL_OUTBOX_DIR"]), 1)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "【江東区】個人番号カード受け取りのご予約を受け付けました"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"予約管理番号: {who.number_display}" in body
    assert f"会場: {who.venue_name}" in body
    assert who.map_url in body


def test_book_over_https(https_page, app):
    """R9.3: served over HTTPS as in production, with its Secure session cookie and the CSRF check's
    same-origin referrer rule, a resident books in a real browser: every form is accepted (the pages'
    Referrer-Policy lets the browser tell the site its own address, and no other site)."""
    page = https_page
    who = seed(app)
    go_to_calendar(page, who)
    slot_button(page, who.slots[0]).click()
    expect(page).to_have_url(re.compile(r"/confirm$"))
    page.get_by_role("button", name="この内容で予約する").click()
    expect(page).to_have_url(re.compile(r"/done$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約が完了しました")
    cookie = next(c for c in page.context.cookies() if c["name"] == "session")
    assert cookie["secure"] and cookie["httpOnly"]
    with app.app_context():
        assert db.session.scalar(select(Booking.slot_id).where(Booking.applicant_id == who.applicant_id)) == (
            who.slots[0].id
        )


# ---- b. change, then cancel -----------------------------------------------------------------
def test_change_then_cancel(page, app, overrides):
    """R3.5 (and R1.3): a booked resident moves the booking to another time, then cancels it; the
    store keeps exactly one booking, cancelled, and every place is given back."""
    who = seed(app)
    first, second = who.slots[0], who.slots[2]
    with app.app_context():
        begin_write()
        applicant = db.session.get(Applicant, who.applicant_id)
        booking.book(applicant, first.id, actor=booking.Actor.resident())
        db.session.commit()
        notify.deliver()  # what the request that booked would have sent after its response

    page.goto("/")
    page.get_by_role("link", name="予約の確認・変更・取消").click()
    expect(page).to_have_url(re.compile(r"/manage$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約の確認・変更・取消")
    identify(page, who)
    shot(page, "manage-identify")
    next_button(page).click()

    expect(page).to_have_url(re.compile(r"/manage/booking$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("予約の内容")
    expect(page.locator("dl.summary")).to_contain_text(first.when)
    shot(page, "manage-booking")
    page.get_by_role("link", name="日時を変更する").click()

    expect(page).to_have_url(re.compile(r"/slots$"))
    expect(page.get_by_role("status")).to_contain_text(f"現在の予約: {first.when}")
    expect(slot_button(page, first)).to_have_accessible_name(re.compile(r"残り1人$"))
    shot(page, "change-calendar")
    slot_button(page, second).click()

    expect(page).to_have_url(re.compile(r"/confirm$"))
    summary = page.locator("dl.summary")
    expect(summary).to_contain_text(second.when)
    expect(
        summary.locator("dt", has_text="変更前の日時").locator("xpath=following-sibling::dd[1]")
    ).to_have_text(first.when)
    shot(page, "change-confirm")
    page.get_by_role("button", name="この内容で予約する").click()
    expect(page.locator("dl.summary")).to_contain_text(second.when)
    shot(page, "change-done")

    # The resident comes back later to check: the new time is what the manage page shows.
    page.goto("/")
    page.get_by_role("link", name="予約の確認・変更・取消").click()
    identify(page, who)
    next_button(page).click()
    expect(page).to_have_url(re.compile(r"/manage/booking$"))
    summary = page.locator("dl.summary")
    expect(summary).to_contain_text(second.when)
    expect(summary).not_to_contain_text(first.when)
    shot(page, "manage-after-change")

    page.get_by_role("link", name="予約を取り消す").click()
    expect(page).to_have_url(re.compile(r"/manage/cancel$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("この予約を取り消しますか")
    expect(page.locator("dl.summary")).to_contain_text(second.when)
    shot(page, "cancel-confirm")
    page.get_by_role("button", name="予約を取り消す").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("予約を取り消しました")
    shot(page, "cancelled")

    with app.app_context():
        rows = db.session.scalars(select(Booking).where(Booking.applicant_id == who.applicant_id)).all()
        assert [(b.status, b.slot_id) for b in rows] == [("cancelled", second.id)]
        taken = dict(db.session.execute(select(Slot.id, Slot.taken)).all())
        assert taken == {s.id: 0 for s in who.slots}
        assert db.session.scalars(select(Hold)).all() == []

    mails = read_mails(Path(overrides["MAIL_OUTBOX_DIR"]), 3)
    subjects = [m["Subject"] for m in mails]
    assert subjects == [
        "【江東区】個人番号カード受け取りのご予約を受け付けました",
        "【江東区】個人番号カード受け取りのご予約を変更しました",
        "【江東区】個人番号カード受け取りのご予約を取り消しました",
    ]
    changed = mails[1].get_body(preferencelist=("plain",)).get_content()
    assert second.mail_when.search(changed), changed


# ---- c. a wrong birth date ------------------------------------------------------------------
def test_wrong_birth_date_is_refused(page, app):
    """R3.6 (R3.1): a birth date that does not match the number is refused with a Japanese message
    beside the birth date field, tied to it for screen readers, and what was typed is kept."""
    who = seed(app, days=(1,))

    page.goto("/start")
    identify(page, who, birth="昭和55年4月2日")
    next_button(page).click()

    expect(page).to_have_url(re.compile(r"/start$"))
    birth = page.get_by_label("生年月日")
    error = page.locator("#birth_date-error")
    expect(error).to_have_text(
        "予約管理番号と生年月日の組み合わせが確認できませんでした。交付通知書の番号と生年月日をお確かめください。"
    )
    expect(birth).to_have_attribute("aria-invalid", "true")
    expect(birth).to_have_attribute("aria-describedby", re.compile(r"\bbirth_date-error\b"))
    expect(birth).to_have_value("昭和55年4月2日")
    # The number is kept, as digits: the page normalises what was typed (hyphens dropped).
    number_box = page.get_by_label("予約管理番号（12桁）")
    assert numbers.parse(number_box.input_value()) == who.number
    expect(number_box).not_to_have_attribute("aria-invalid", "true")
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_attribute("href", "#birth_date")
    shot(page, "mismatch")

    # A date that cannot exist in its era gets its own message, in the same place.
    birth.fill("平成35年1月1日")
    next_button(page).click()
    expect(error).to_have_text("元号と年の組み合わせが正しくありません（例: 平成は31年4月30日まで）。")
    expect(page.get_by_label("生年月日")).to_have_attribute("aria-invalid", "true")
    shot(page, "era")

    with app.app_context():
        assert db.session.scalars(select(Booking)).all() == []


# ---- d. a slot that filled up meanwhile -----------------------------------------------------
def test_slot_filled_meanwhile_is_refused(page, app):
    """R1.1/R3.3: a slot that was free when the calendar was shown but filled up before the click
    is refused with a clear 満員 message; the resident stays on the calendar and can choose again."""
    who = seed(app, days=(1, 2), capacity=1)
    full, other = who.slots

    go_to_calendar(page, who)
    expect(slot_button(page, full)).to_have_accessible_name(re.compile(r"残り1人$"))
    shot(page, "calendar-free")

    # Meanwhile another resident takes the last place.
    with app.app_context():
        begin_write()
        slot = db.session.get(Slot, full.id)
        neighbour = make_applicant(slot.venue, email=None)
        booking.book(neighbour, full.id, actor=booking.Actor.resident())
        db.session.commit()

    slot_button(page, full).click()
    expect(page).to_have_url(re.compile(r"/slots$"))
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("選んだ時間帯はちょうど満員になりました。別の時間帯をお選びください。")
    expect(page.get_by_role("heading", level=1)).to_have_text("受け取る日時を選んでください")
    expect(slot_button(page, full)).to_have_count(0)
    expect(page.locator(".slot-full", has_text=full.label.split(" ", 1)[1])).to_contain_text("満員")
    shot(page, "full")

    with app.app_context():
        assert db.session.get(Slot, full.id).taken == 1
        assert db.session.scalars(select(Hold)).all() == []

    # The other slot still works.
    slot_button(page, other).click()
    expect(page).to_have_url(re.compile(r"/confirm$"))
    expect(page.locator("dl.summary")).to_contain_text(other.when)
    shot(page, "other-slot")


# ---- e. desktop, keyboard only --------------------------------------------------------------
def _focused(page) -> str:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return (e.id ? '#' + e.id : e.tagName.toLowerCase()) + ' ' + (e.innerText || e.value || '').trim(); }"
    )


def test_keyboard_only_on_desktop(desktop_page, app):
    """R3.6 (accessibility): on a desktop, the identify form is reached, corrected and sent with the
    keyboard alone; after an error the focus goes to the error summary, whose links lead to the field."""
    page = desktop_page
    who = seed(app, days=(1,))
    keyboard = page.keyboard

    page.goto("/")
    keyboard.press("Tab")
    assert _focused(page).startswith("a 本文へ移動"), _focused(page)  # the skip link comes first
    expect(page.get_by_role("link", name="本文へ移動")).to_be_visible()
    shot(page, "skip-link")
    keyboard.press("Tab")  # the site title
    keyboard.press("Tab")
    expect(page.get_by_role("link", name="予約する", exact=True)).to_be_focused()
    shot(page, "focus-book")
    keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/start$"))
    number_box = page.get_by_label("予約管理番号（12桁）")
    keyboard.press("Tab")  # skip link
    keyboard.press("Tab")  # site title
    keyboard.press("Tab")
    expect(number_box).to_be_focused()  # the first field comes right after the header
    keyboard.type(who.number_display)
    keyboard.press("Enter")  # the birth date is forgotten

    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("生年月日: 生年月日を入力してください。")
    expect(page.locator("#birth_date-error")).to_have_text("生年月日を入力してください。")
    shot(page, "error-summary-focused")

    keyboard.press("Tab")
    link = summary.get_by_role("link", name=re.compile("^生年月日"))
    expect(link).to_be_focused()
    keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/start#birth_date$"))
    birth = page.get_by_label("生年月日")
    expect(birth).to_be_focused()  # chromium focuses a focusable fragment target
    keyboard.type(BIRTH_WAREKI)
    shot(page, "birth-typed")
    keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/contact$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("連絡先を入力してください（任意）")
    shot(page, "contact")
