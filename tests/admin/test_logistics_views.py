"""The logistics desk's screen (R6.3): counts recorded, corrected only with a reason, balances that
flag every difference; the desk only (R7.2); every record and correction audited (R7.4)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from madoguchi import booking, checkin, dates
from madoguchi.extensions import db
from madoguchi.models import Booking, Channel, LogisticsEntry, LogisticsKind
from madoguchi.permissions import Role
from tests.factories import make_applicant, make_slot, make_venue

from .conftest import Person, audit_entries, location, seed_staff, set_now, signed_in

PER_VENUE = {"cards_to_venue", "cards_handed_over", "cards_returned"}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def morning() -> datetime:
    real_today = datetime.now(dates.TOKYO).date()
    return datetime.combine(real_today + timedelta(days=7), time(10, 0), tzinfo=dates.TOKYO)


@dataclass(frozen=True)
class Desk:
    venue_a: int
    venue_b: int
    name_a: str
    desk: Person


def seed_desk(app, *, handed_over_at_a: int = 0) -> Desk:
    """Two venues; ``handed_over_at_a`` bookings at A recorded as handed over through check-in."""
    set_now(app, morning())
    with app.app_context():
        venue_a, venue_b = make_venue(), make_venue()
        slot = make_slot(venue_a, starts_in=timedelta(hours=1))
        made = [
            booking.book(make_applicant(venue_a), slot.id, actor=booking.Actor(Channel.PHONE)).id
            for _ in range(handed_over_at_a)
        ]
        db.session.commit()
        ids = (venue_a.id, venue_b.id, venue_a.display_name)
    clerk = seed_staff(app, (Role.VENUE_STAFF.value,), venue_id=ids[0])
    with app.app_context():
        for booking_id in made:
            checkin.record(
                db.session.get(Booking, booking_id), checkin.Outcome.HANDED_OVER, staff_id=clerk.id
            )
        db.session.commit()
    desk = seed_staff(app, (Role.LOGISTICS.value,), affiliation="物流センター")
    return Desk(ids[0], ids[1], ids[2], desk)


@pytest.fixture
def desk(admin_app) -> Desk:
    return seed_desk(admin_app, handed_over_at_a=1)


@pytest.fixture
def signed(client, desk):
    signed_in(client, desk.desk)
    return client


def post_count(client, kind: str, quantity, venue_id: int | None = None, day=None):
    return client.post(
        "/logistics",
        data={
            "kind": kind,
            "venue_id": "" if venue_id is None else str(venue_id),
            "day": (day or morning().date()).isoformat(),
            "quantity": str(quantity),
        },
    )


def stored(app) -> list[dict]:
    with app.app_context():
        rows = db.session.scalars(
            select(LogisticsEntry).order_by(LogisticsEntry.recorded_at, LogisticsEntry.id)
        )
        return [
            {
                "id": e.id,
                "kind": e.kind,
                "quantity": e.quantity,
                "venue_id": e.venue_id,
                "corrects_id": e.corrects_id,
            }
            for e in rows
        ]


def entry_id(app, kind: str, venue_id: int | None = None) -> str:
    [found] = [
        e["id"]
        for e in stored(app)
        if e["kind"] == kind and e["venue_id"] == venue_id and not e["corrects_id"]
    ]
    return found


def field_error(response, field: str) -> str:
    match = re.search(
        rf'<p class="error" id="{field}-error">(.*?)</p>', response.get_data(as_text=True), re.S
    )
    return match.group(1) if match else ""


def balance_rows(response) -> dict[str, str]:
    """Rows of the two balance tables: the row's heading → the whole row's HTML."""
    rows = re.findall(
        r"<tr(?: class=\"balance-flag\")?>\s*<th scope=\"row\">.*?</tr>",
        response.get_data(as_text=True),
        re.S,
    )
    return {re.search(r'<th scope="row">(.*?)</th>', row).group(1): row for row in rows}


def history_rows(response) -> list[str]:
    page = response.get_data(as_text=True)
    table = page[page.index("記録の履歴") :]
    return re.findall(r"<tr>\s*<td>.*?</tr>", table, re.S)


# ---- recording ---------------------------------------------------------------------------------
def test_the_desk_records_a_count_of_every_kind(admin_app, signed, desk):
    """R6.3: each of the six counts is recorded (per-venue kinds with their venue; the desk's own
    kinds without one, even if a venue was chosen), shown in the history and audited."""
    for kind in LogisticsKind:
        venue = desk.venue_a if kind.value in PER_VENUE else None
        response = post_count(signed, kind.value, 10, venue)
        assert response.status_code == 302 and location(response) == "/logistics", kind
    post_count(signed, "notices_sent", 3, desk.venue_b)  # a venue given to a desk count is dropped
    page = signed.get("/logistics")
    assert "記録しました。" in page.get_data(as_text=True)

    rows = stored(admin_app)
    assert [(r["kind"], r["quantity"]) for r in rows[:6]] == [(k.value, 10) for k in LogisticsKind]
    for row in rows:
        assert row["venue_id"] == (desk.venue_a if row["kind"] in PER_VENUE else None), row["kind"]
    assert len(history_rows(page)) == 7
    audited = audit_entries(admin_app, "logistics:recorded")
    assert [e["subject_id"] for e in audited] == [r["id"] for r in rows]
    assert json.loads(audited[2]["details"]) == {"kind": "cards_received", "quantity": 10, "venue_id": None}
    assert json.loads(audited[3]["details"])["venue_id"] == desk.venue_a
    assert all(e["staff_id"] == desk.desk.id for e in audited)


@pytest.mark.parametrize("kind", sorted(PER_VENUE))
def test_a_venue_count_without_a_venue_is_refused(admin_app, signed, desk, kind):
    """R6.3: cards sent to, handed over at or returned from a venue need the venue: the Japanese
    message stands beside the field and nothing is stored or audited."""
    response = post_count(signed, kind, 5)
    assert response.status_code == 200
    assert field_error(response, "venue_id") == "この項目は会場を選んでください。"
    assert stored(admin_app) == []
    assert audit_entries(admin_app, "logistics:recorded") == []


@pytest.mark.parametrize("quantity", ["abc", "1.5", "-3", "", "1000001", "１０"])
def test_a_quantity_that_is_not_a_whole_number_is_refused_in_japanese(admin_app, signed, desk, quantity):
    """R6.3: a quantity that is not a whole number from 0 (letters, decimals, negative, empty, too
    large, full-width digits that did not parse) is refused with a Japanese message; nothing stored."""
    response = post_count(signed, "notices_received", quantity)
    if quantity == "１０" and response.status_code == 302:
        # Full-width digits may be read as 10: then the count must be exactly 10.
        assert [r["quantity"] for r in stored(admin_app)] == [10]
        return
    assert response.status_code == 200
    message = field_error(response, "quantity")
    assert message, "no message beside 数量"
    assert JAPANESE.search(message) and not re.search(r"[A-Za-z]", message), message
    assert stored(admin_app) == []


# ---- balances -----------------------------------------------------------------------------------
def test_balances_flag_every_difference(admin_app, signed, desk):
    """R6.3: notices received ≠ sent, cards received ≠ the sum sent to the venues, and a venue's
    reported hand-overs ≠ the check-in records (one card handed over at A through check-in) are each
    flagged; a venue whose counts agree is shown as 一致."""
    for kind, quantity, venue in (
        ("notices_received", 100, None),
        ("notices_sent", 98, None),
        ("cards_received", 50, None),
        ("cards_to_venue", 30, desk.venue_a),
        ("cards_to_venue", 15, desk.venue_b),
        ("cards_handed_over", 2, desk.venue_a),
    ):
        assert post_count(signed, kind, quantity, venue).status_code == 302
    page = signed.get("/logistics")
    text = page.get_data(as_text=True)
    assert "差異があります: 3件" in text
    rows = balance_rows(page)
    notices = rows["交付通知書: 受領数 = 発送数"]
    assert 'class="balance-flag"' in notices and "受領 100" in notices and "発送 98" in notices
    assert "<td>2 <strong>差異</strong></td>" in notices
    cards = rows["カード: 受領数 = 各会場への送付数の合計"]
    assert 'class="balance-flag"' in cards and "送付計 45" in cards and "<td>5 <strong>差異</strong>" in cards
    venue_a = rows[desk.name_a]
    assert 'class="balance-flag"' in venue_a and "交付数が受付記録と一致しません" in venue_a
    assert re.search(r"<td>30</td><td>2</td><td>1</td><td>0</td><td>28</td>", venue_a)
    venue_b = [
        row for title, row in rows.items() if title not in (desk.name_a,) and "balance-flag" not in row
    ]
    assert any("一致" in row and "<td>15</td>" in row for row in venue_b)

    # Fix the counts: no difference is left.
    post_count(signed, "notices_sent", 2)
    post_count(signed, "cards_to_venue", 5, desk.venue_b)
    signed.post(
        f"/logistics/{entry_id(admin_app, 'cards_handed_over', desk.venue_a)}/correct",
        data={"quantity": "1", "reason": "会場からの報告を再確認"},
    )
    text = signed.get("/logistics").get_data(as_text=True)
    assert "差異はありません。" in text and "balance-flag" not in text


# ---- corrections --------------------------------------------------------------------------------
def test_a_correction_needs_a_reason_replaces_the_entry_once_and_is_audited(admin_app, signed, desk):
    """R6.3, R7.4: no count is editable without a reason; with one, the correction replaces the
    entry (balances use the new quantity, the old shows 訂正済み, the reason shows); the replaced
    entry cannot be corrected again; the record and the correction are both audited."""
    post_count(signed, "notices_received", 100)
    post_count(signed, "notices_sent", 98)
    old = entry_id(admin_app, "notices_sent")
    form = signed.get(f"/logistics/{old}/correct")
    assert form.status_code == 200 and 'value="98"' in form.get_data(as_text=True)

    for reason in ("", "   "):
        refused = signed.post(f"/logistics/{old}/correct", data={"quantity": "100", "reason": reason})
        assert refused.status_code == 422
        assert field_error(refused, "reason") == "訂正の理由を入力してください。"
    refused = signed.post(f"/logistics/{old}/correct", data={"quantity": "-1", "reason": "数え直し"})
    assert refused.status_code == 422 and JAPANESE.search(field_error(refused, "quantity"))
    assert len(stored(admin_app)) == 2
    assert audit_entries(admin_app, "logistics:corrected") == []

    done = signed.post(f"/logistics/{old}/correct", data={"quantity": "100", "reason": "発送数の数え直し"})
    assert done.status_code == 302 and location(done) == "/logistics"
    page = signed.get("/logistics")
    text = page.get_data(as_text=True)
    assert "訂正しました。" in text
    assert "balance-flag" not in balance_rows(page)["交付通知書: 受領数 = 発送数"]
    history = history_rows(page)
    [replaced] = [row for row in history if "<del>98</del>" in row]
    assert "（訂正済み）" in replaced and "/correct" not in replaced
    [replacing] = [row for row in history if "発送数の数え直し" in row]
    assert "<td>100</td>" in replacing and "/correct" in replacing
    new = [e for e in stored(admin_app) if e["corrects_id"] == old]
    assert len(new) == 1 and new[0]["quantity"] == 100

    again = signed.post(f"/logistics/{old}/correct", data={"quantity": "97", "reason": "もう一度"})
    assert again.status_code == 302
    assert "この記録はすでに訂正されています。" in signed.get("/logistics").get_data(as_text=True)
    assert len(stored(admin_app)) == 3

    [recorded] = [e for e in audit_entries(admin_app, "logistics:recorded") if e["subject_id"] == old]
    assert recorded["staff_id"] == desk.desk.id
    [corrected] = audit_entries(admin_app, "logistics:corrected")
    assert corrected["subject_id"] == new[0]["id"]
    assert json.loads(corrected["details"]) == {
        "corrects": old,
        "kind": "notices_sent",
        "old_quantity": 98,
        "quantity": 100,
    }
    assert "発送数の数え直し" not in corrected["details"]  # staff text stays out of the log


def test_an_unknown_entry_cannot_be_corrected(admin_app, signed, desk):
    """R6.3: a guessed entry id is 404."""
    assert signed.get("/logistics/no-such-entry/correct").status_code == 404
    assert (
        signed.post("/logistics/no-such-entry/correct", data={"quantity": "1", "reason": "x"}).status_code
        == 404
    )


# ---- who may --------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.VENUE_STAFF, Role.OPERATOR, Role.ADMINISTRATOR])
def test_only_the_logistics_desk_reaches_the_counts(admin_app, desk, role):
    """R7.2: venue staff, operators and administrators get 403 on /logistics (read, record, correct);
    nothing is stored; the home page offers them no link to it."""
    signed_in(admin_app.test_client(), desk.desk)
    person = seed_staff(admin_app, (role.value,), venue_id=desk.venue_a if role == Role.VENUE_STAFF else None)
    client = admin_app.test_client()
    signed_in(client, person)
    assert client.get("/logistics").status_code == 403
    assert post_count(client, "notices_received", 5).status_code == 403
    assert client.get("/logistics/anything/correct").status_code == 403
    assert (
        client.post("/logistics/anything/correct", data={"quantity": "1", "reason": "x"}).status_code == 403
    )
    assert stored(admin_app) == []
    assert "/logistics" not in client.get("/").get_data(as_text=True)
