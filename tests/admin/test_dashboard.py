"""The dashboard (R6, R4.3, R7.2): bookings per day, venue and channel, fill and no-show rates,
call categories — SVG charts with a table beside each, no script, no inline style, aggregates only."""

from __future__ import annotations

import re
from datetime import timedelta

from madoguchi import booking, checkin, dates
from madoguchi.crypto import new_row_id
from madoguchi.extensions import db
from madoguchi.models import Call, Channel
from madoguchi.permissions import Role
from tests.factories import make_applicant, make_slot, make_staff, make_venue

from .conftest import audit_entries, seed_staff, signed_in


def _seed(app):
    with app.app_context():
        venue = make_venue(name="グラフ会場")
        soon = make_slot(venue, starts_in=timedelta(days=1), capacity=4)
        past = make_slot(venue, starts_in=timedelta(hours=2), capacity=4)
        people = []
        for channel in (Channel.WEB, Channel.WEB, Channel.PHONE):
            person = make_applicant(venue, name="秘密　太郎")
            booking.book(person, soon.id, actor=booking.Actor(channel))
            people.append(person)
        came = booking.book(make_applicant(venue), past.id, actor=booking.Actor(Channel.FAX))
        absent = booking.book(make_applicant(venue), past.id, actor=booking.Actor(Channel.COUNTER))
        staff = make_staff(roles=("venue_staff",), venue=venue)
        checkin.record(came, checkin.Outcome.ARRIVED, staff_id=staff.id)
        checkin.record(absent, checkin.Outcome.NO_SHOW, staff_id=staff.id)
        past.starts_at -= timedelta(hours=4)  # the slot is over now: its outcomes count
        past.ends_at -= timedelta(hours=4)
        for category in ("application", "application", "issuance", None):
            db.session.add(
                Call(
                    id=new_row_id(),
                    call_sid=f"CA{new_row_id()}",
                    direction="inbound",
                    status="completed",
                    started_at=dates.now(),
                    category=category,
                )
            )
        db.session.commit()
        return venue.display_name


def test_the_dashboard_shows_charts_and_tables_without_personal_data(admin_app):
    name = _seed(admin_app)
    person = seed_staff(admin_app, (Role.ADMINISTRATOR.value,))
    client = admin_app.test_client()
    signed_in(client, person)
    response = client.get("/dashboard")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.count("<svg") == 5 and body.count('role="img"') == 5
    assert body.count("<table") >= 5
    assert "<script" not in body.split("</head>")[1] and "style=" not in body
    assert name in body and "秘密" not in body
    assert "合計 5 件" in body
    # fill: 3 + 1 places of 8 (a no-show gives its place back) → 50 %; no-show: 1 of 2 settled → 50 %.
    assert '<td class="count">8</td><td class="count">4</td><td class="count">50.0%</td>' in body
    assert (
        '<td class="count">1</td><td class="count">1</td><td class="count">0</td><td class="count">50.0%</td>'
        in body
    )
    # calls: ア 申請 2, イ 交付 1, 未入力 1
    calls = re.search(r'<h2 id="calls-h">.*?</section>', body, re.S).group(0)
    assert re.search(r"ア 申請</th><td class=\"count\">2<", calls)
    assert re.search(r"未入力</th><td class=\"count\">1<", calls)
    assert audit_entries(admin_app, "dashboard:viewed")


def test_auditors_see_it_operators_do_not_and_odd_periods_are_fine(admin_app):
    auditor = seed_staff(admin_app, (Role.AUDITOR.value,))
    client = admin_app.test_client()
    signed_in(client, auditor)
    for query in (
        "",
        "?first=2026-13-01",
        "?first=2026-03-10&last=2026-03-01",
        "?first=2020-01-01&last=2030-01-01",
    ):
        assert client.get(f"/dashboard{query}").status_code == 200, query
    operator = seed_staff(admin_app, (Role.OPERATOR.value,))
    other = admin_app.test_client()
    signed_in(other, operator)
    assert other.get("/dashboard").status_code == 403
