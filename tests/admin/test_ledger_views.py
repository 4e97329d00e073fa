"""Paper for the venues through the back office: the shipping ledger (R6.2), the list of those who
have not collected their card and their re-issue notices and labels (R6.4), scoped (R7.2) and
audited as exports by count, never by value (R7.4).

The PDFs are read back with poppler's pdftotext, as a person would read the page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pytest

from madoguchi import booking, checkin, dates, numbers
from madoguchi.extensions import db
from madoguchi.models import Booking, Channel
from madoguchi.permissions import Role
from tests.factories import make_applicant, make_slot, make_venue

from .conftest import Person, audit_entries, seed_staff, set_now, signed_in

pytestmark = pytest.mark.skipif(
    not shutil.which("pdftotext"), reason="poppler-utils (pdftotext) is not installed"
)


def morning() -> datetime:
    """10:00 in Tokyo a week from now (ahead of the real clock, so cookies stay valid)."""
    real_today = datetime.now(dates.TOKYO).date()
    return datetime.combine(real_today + timedelta(days=7), time(10, 0), tzinfo=dates.TOKYO)


def pdf_text(tmp_path, data: bytes, name: str = "out.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def field_error(response, field: str) -> str:
    match = re.search(
        rf'<p class="error" id="{field}-error">(.*?)</p>', response.get_data(as_text=True), re.S
    )
    return match.group(1) if match else ""


def assert_pdf_download(response) -> str:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert response.data.startswith(b"%PDF")
    return re.search(r'filename="([^"]+)"', disposition).group(1)


def assert_no_personal_value(text: str, people: list[dict]) -> None:
    for person in people:
        for key in ("name", "name_kana", "number", "address"):
            assert person[key] not in text, key
        assert numbers.display(person["number"]) not in text


# ---- the shipping ledger ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Shipment:
    venue: int
    venue_code: str
    other: int
    day: date  # tomorrow, the day the ledger covers
    expected: list[dict]  # this venue's people, in the order the ledger must list them
    elsewhere: dict
    cancelled: dict
    clerk: Person
    other_clerk: Person


def _person(applicant) -> dict:
    return {
        "number": applicant.reservation_number,
        "name": applicant.name,
        "name_kana": applicant.name_kana,
        "address": applicant.address,
    }


def seed_shipment(app) -> Shipment:
    set_now(app, morning())
    with app.app_context():
        venue, other = make_venue(), make_venue()
        early = make_slot(venue, starts_in=timedelta(days=1, minutes=30))  # tomorrow 10:30
        late = make_slot(venue, starts_in=timedelta(days=1, hours=3))  # tomorrow 13:00
        there = make_slot(other, starts_in=timedelta(days=1, hours=1))
        phone = booking.Actor(Channel.PHONE)

        def book(slot, where, number, name):
            applicant = make_applicant(where, number=number, name=name, address=f"東京都江東区{name}1番")
            made = booking.book(applicant, slot.id, actor=phone)
            return applicant, made

        # Booked in an order that is neither slot nor number order.
        late_one, _ = book(late, venue, numbers.make("10000000001"), "遅枠一郎")
        early_high, _ = book(early, venue, numbers.make("30000000003"), "早枠三郎")
        early_low, _ = book(early, venue, numbers.make("20000000002"), "早枠二郎")
        elsewhere, _ = book(there, other, numbers.make("40000000004"), "他会場四郎")
        gone, cancelled = book(late, venue, numbers.make("50000000005"), "取消五郎")
        booking.cancel(cancelled, actor=phone)
        db.session.commit()
        result = (venue.id, venue.code, other.id, [_person(a) for a in (early_low, early_high, late_one)])
        away, dropped = _person(elsewhere), _person(gone)
    clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=result[0])
    other_clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=result[2])
    day = morning().date() + timedelta(days=1)
    return Shipment(result[0], result[1], result[2], day, result[3], away, dropped, clerk, other_clerk)


@pytest.fixture
def shipment(admin_app) -> Shipment:
    return seed_shipment(admin_app)


def post_period(client, venue_id: int, first: date, last: date):
    return client.post(
        f"/venues/{venue_id}/ledger", data={"first_day": first.isoformat(), "last_day": last.isoformat()}
    )


def test_the_ledger_is_a_pdf_of_the_venues_bookings_in_slot_then_number_order(
    admin_app, client, shipment, tmp_path
):
    """R6.2: a period POSTed gives an A4 PDF attachment, never cached, whose filename holds no
    personal value; its text lists this venue's live bookings by slot then 予約管理番号, with
    names and addresses, and a 控え set; the other venue's and the cancelled booking are absent."""
    signed_in(client, shipment.clerk)
    form = client.get(f"/venues/{shipment.venue}/ledger")
    assert form.status_code == 200 and 'value="' + shipment.day.isoformat() + '"' in form.get_data(
        as_text=True
    )

    response = post_period(client, shipment.venue, shipment.day, shipment.day)
    filename = assert_pdf_download(response)
    assert filename == f"ledger-{shipment.venue_code}-{shipment.day:%Y%m%d}-{shipment.day:%Y%m%d}.pdf"
    assert_no_personal_value(filename, [*shipment.expected, shipment.elsewhere])

    text = pdf_text(tmp_path, response.data)
    original, _, copy = text.partition("控え")
    assert copy, "the ledger has no 控え set"
    displayed = [numbers.display(p["number"]) for p in shipment.expected]
    positions = [original.find(n) for n in displayed]
    assert -1 not in positions, "a booking is missing from the ledger"
    assert positions == sorted(positions), "rows are not in slot then number order"
    for person in shipment.expected:
        assert person["name"] in text
        assert text.count(numbers.display(person["number"])) == 2  # 原本 and 控え
    for absent in (shipment.elsewhere, shipment.cancelled):
        assert numbers.display(absent["number"]) not in text
        assert absent["name"] not in text

    [entry] = audit_entries(admin_app, "export:shipping_ledger")
    assert (entry["staff_id"], entry["subject_type"], entry["subject_id"]) == (
        shipment.clerk.id,
        "venue",
        str(shipment.venue),
    )
    details = json.loads(entry["details"])
    assert details == {
        "count": 3,
        "first_day": shipment.day.isoformat(),
        "last_day": shipment.day.isoformat(),
    }
    assert_no_personal_value(json.dumps(entry, default=str, ensure_ascii=False), shipment.expected)


@pytest.mark.parametrize(
    ("shift", "message"),
    [(-1, "終了日は開始日以降にしてください。"), (32, "期間は31日以内にしてください。")],
)
def test_a_wrong_period_is_refused_in_japanese_without_an_export(admin_app, client, shipment, shift, message):
    """R6.2: last day before the first, or a period longer than 31 days, gives the Japanese message
    beside 終了日 and the form again (no PDF), and nothing is audited as exported."""
    signed_in(client, shipment.clerk)
    response = post_period(client, shipment.venue, shipment.day, shipment.day + timedelta(days=shift))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert field_error(response, "last_day") == message
    assert "error-summary" in response.get_data(as_text=True)
    assert audit_entries(admin_app, "export:shipping_ledger") == []


def test_a_31_day_period_is_accepted(admin_app, client, shipment):
    """R6.2: the limit is inclusive of 31 days' difference (a month's ledger in one go)."""
    signed_in(client, shipment.clerk)
    response = post_period(client, shipment.venue, shipment.day, shipment.day + timedelta(days=31))
    assert_pdf_download(response)
    assert json.loads(audit_entries(admin_app, "export:shipping_ledger")[0]["details"])["count"] == 3


# ---- 未受領者 and re-issue notices -----------------------------------------------------------------
@dataclass(frozen=True)
class Uncollected:
    venue: int
    other: int
    no_show: dict  # status no_show
    missed: dict  # booked, the slot is past
    never: dict  # on the roster, never booked
    coming: dict  # a booking still to come
    has_card: dict  # handed over
    other_never: dict  # never booked, at the other venue
    clerk: Person
    other_clerk: Person


def seed_uncollected(app) -> Uncollected:
    now = morning()
    set_now(app, now - timedelta(days=3))
    with app.app_context():
        venue, other = make_venue(), make_venue()
        phone = booking.Actor(Channel.PHONE)
        people = {}
        for key, kana in (
            ("no_show", "ライチョウ"),
            ("missed", "スギタ"),
            ("never", "ミヤタ"),
            ("coming", "コレカラ"),
            ("has_card", "ウケトリ"),
        ):
            people[key] = make_applicant(venue, name=f"未受領{kana}", name_kana=kana)
        people["other_never"] = make_applicant(other, name="他会場未予約", name_kana="タカイジョウ")
        past = make_slot(venue, starts_in=timedelta(hours=1))  # three days before ``now``
        made = {
            key: booking.book(people[key], past.id, actor=phone) for key in ("no_show", "missed", "has_card")
        }
        future = make_slot(venue, starts_in=timedelta(days=5))
        booking.book(people["coming"], future.id, actor=phone)
        db.session.commit()
        venue_id, other_id = venue.id, other.id
        booking_ids = {key: b.id for key, b in made.items()}
        plain = {key: _person(a) for key, a in people.items()}
    clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=venue_id)
    with app.app_context():
        for key, outcome in (("no_show", checkin.Outcome.NO_SHOW), ("has_card", checkin.Outcome.HANDED_OVER)):
            checkin.record(db.session.get(Booking, booking_ids[key]), outcome, staff_id=clerk.id)
        db.session.commit()
    set_now(app, now)
    other_clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=other_id)
    return Uncollected(
        venue_id,
        other_id,
        plain["no_show"],
        plain["missed"],
        plain["never"],
        plain["coming"],
        plain["has_card"],
        plain["other_never"],
        clerk,
        other_clerk,
    )


@pytest.fixture
def absent(admin_app) -> Uncollected:
    return seed_uncollected(admin_app)


def listed(response) -> dict[str, str]:
    """The list's rows: kana → 区分."""
    rows = re.findall(
        r"<tr><td>[\d-]+</td><td>(.*?)</td>\s*<td>(.*?)</td></tr>", response.get_data(as_text=True), re.S
    )
    return {kana: kind.strip() for kana, kind in rows}


def test_the_uncollected_list_shows_no_shows_and_the_never_booked_by_kind(admin_app, client, absent):
    """R6.4, R6 no-shows: a no-show, a booking whose slot has passed and a person never booked are
    listed with their kind; a booking still to come, a card handed over and the other venue's
    people are not. Filtering by kind narrows the list. Each listing is audited with its count."""
    signed_in(client, absent.clerk)
    response = client.get(f"/venues/{absent.venue}/uncollected")
    assert response.status_code == 200
    assert listed(response) == {
        absent.no_show["name_kana"]: "来庁しなかった",
        absent.missed["name_kana"]: "来庁しなかった",
        absent.never["name_kana"]: "予約していない",
    }
    page = response.get_data(as_text=True)
    for person in (absent.coming, absent.has_card, absent.other_never):
        assert person["name_kana"] not in page
    assert "対象: 3人" in page

    only_no_shows = client.get(f"/venues/{absent.venue}/uncollected?kinds=no_show")
    assert set(listed(only_no_shows)) == {absent.no_show["name_kana"], absent.missed["name_kana"]}
    only_never = client.get(f"/venues/{absent.venue}/uncollected?kinds=not_booked")
    assert set(listed(only_never)) == {absent.never["name_kana"]}

    counts = [
        json.loads(e["details"])["count"] for e in audit_entries(admin_app, "booking:uncollected_listed")
    ]
    assert counts == [3, 2, 1]


def test_notices_and_labels_are_produced_and_audited_with_a_count(admin_app, client, absent, tmp_path):
    """R6.4: the re-issue notices and the address labels for the people listed are PDF attachments
    (never cached); the notices carry each 予約管理番号 in digits; each export is audited with the
    kinds and the count and no personal value; the filename holds none either."""
    signed_in(client, absent.clerk)
    people = [absent.no_show, absent.missed, absent.never]
    notices = client.post(
        f"/venues/{absent.venue}/uncollected",
        data={"kinds": ["no_show", "not_booked"], "document": "notices"},
    )
    filename = assert_pdf_download(notices)
    assert filename.startswith("reissue-notices-")
    assert_no_personal_value(filename, people)
    digits = re.sub(r"\D", "", pdf_text(tmp_path, notices.data, "notices.pdf"))
    for person in people:
        assert person["number"] in digits
    for person in (absent.coming, absent.has_card, absent.other_never):
        assert person["number"] not in digits

    labels = client.post(
        f"/venues/{absent.venue}/uncollected", data={"kinds": ["no_show"], "document": "labels"}
    )
    assert assert_pdf_download(labels).startswith("address-labels-")
    text = pdf_text(tmp_path, labels.data, "labels.pdf")
    assert absent.no_show["name"] in text and absent.never["name"] not in text

    [notice_entry] = audit_entries(admin_app, "export:reissue_notices")
    [label_entry] = audit_entries(admin_app, "export:address_labels")
    assert json.loads(notice_entry["details"]) == {"count": 3, "kinds": ["no_show", "not_booked"]}
    assert json.loads(label_entry["details"]) == {"count": 2, "kinds": ["no_show"]}
    for entry in (notice_entry, label_entry):
        assert (entry["subject_type"], entry["subject_id"]) == ("venue", str(absent.venue))
        assert_no_personal_value(json.dumps(entry, default=str, ensure_ascii=False), people)


def test_uncollected_without_a_kind_is_refused(admin_app, client, absent):
    """R6.4: printing with no kind chosen gives the Japanese message and no PDF, no export."""
    signed_in(client, absent.clerk)
    response = client.post(f"/venues/{absent.venue}/uncollected", data={"document": "notices"})
    assert response.status_code == 200
    assert "対象を1つ以上選んでください。" in response.get_data(as_text=True)
    assert audit_entries(admin_app, "export:reissue_notices") == []


def test_another_venues_staff_get_404_for_the_ledger_and_the_uncollected(admin_app, client, absent):
    """R7.2: the other venue's clerk is refused (404, the venue does not exist for them) the ledger
    and the uncollected list, notices and labels of this venue; nothing is exported."""
    signed_in(client, absent.other_clerk)
    day = morning().date()
    for method, url, data in (
        ("get", f"/venues/{absent.venue}/ledger", None),
        (
            "post",
            f"/venues/{absent.venue}/ledger",
            {"first_day": day.isoformat(), "last_day": day.isoformat()},
        ),
        ("get", f"/venues/{absent.venue}/uncollected", None),
        ("post", f"/venues/{absent.venue}/uncollected", {"kinds": ["no_show"], "document": "notices"}),
        ("post", f"/venues/{absent.venue}/uncollected", {"kinds": ["no_show"], "document": "labels"}),
    ):
        response = getattr(client, method)(url, data=data)
        assert response.status_code == 404, url
        assert absent.no_show["name_kana"] not in response.get_data(as_text=True)
    assert [e for e in audit_entries(admin_app) if e["action"].startswith("export:")] == []
    assert client.get(f"/venues/{absent.other}/uncollected").status_code == 200  # their own venue


def test_the_logistics_desk_prints_for_every_venue(admin_app, client, absent, tmp_path):
    """R6.2, R6.4, R7.2: the logistics role is not tied to a venue: it prints the ledger and the
    notices for both venues; an operator (no LEDGER_PRINT) is refused with 403."""
    desk = seed_staff(admin_app, (Role.LOGISTICS.value,))
    signed_in(client, desk)
    day = morning().date()
    for venue in (absent.venue, absent.other):
        assert_pdf_download(post_period(client, venue, day, day + timedelta(days=7)))
        assert_pdf_download(
            client.post(f"/venues/{venue}/uncollected", data={"kinds": ["not_booked"], "document": "notices"})
        )
    exported = [(e["action"], e["subject_id"]) for e in audit_entries(admin_app) if e["staff_id"] == desk.id]
    for venue in (absent.venue, absent.other):
        assert ("export:shipping_ledger", str(venue)) in exported
        assert ("export:reissue_notices", str(venue)) in exported
    home = client.get("/").get_data(as_text=True)
    assert f"/venues/{absent.venue}/ledger" in home and f"/venues/{absent.other}/ledger" in home
    assert f"/venues/{absent.venue}/checkin" not in home  # no VENUE_CHECKIN for the desk

    operator = seed_staff(admin_app, (Role.OPERATOR.value,))
    other = admin_app.test_client()
    signed_in(other, operator)
    assert other.get(f"/venues/{absent.venue}/ledger").status_code == 403
    assert other.get(f"/venues/{absent.venue}/uncollected").status_code == 403
