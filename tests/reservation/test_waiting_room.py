"""The waiting room in front of the residents' pages (R9.2): admission at the configured rate, a
random order at the opening for early arrivals, staggered waves, staff apps never queue, tickets
cannot be forged or replayed to skip the queue, and a waiting visitor's refresh writes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from madoguchi import admission, dates
from madoguchi.config import ConfigError
from madoguchi.extensions import db
from madoguchi.models import AdmissionPass, AdmissionRoom

from . import pages
from .flow import hold, hold_id, live_bookings, path_of, sign_in

T0 = datetime(2026, 5, 11, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo


@pytest.fixture
def overrides(overrides):
    overrides.update(
        WAITING_ROOM_ENABLED=True,
        WAITING_ROOM_RATE_PER_MINUTE=60,  # one visitor a second
        WAITING_ROOM_BURST=2,
        WAITING_ROOM_STATE_CACHE_SECONDS=0,  # tests read the room's row fresh every time
    )
    return overrides


@pytest.fixture
def clock(app):
    frozen = dates.FrozenClock(at=T0)
    app.extensions["madoguchi.clock"] = frozen
    return frozen


def is_waiting(response) -> bool:
    return response.status_code == 200 and "順番にご案内しています" in response.text


def admitted(response) -> bool:
    return response.status_code in (200, 302) and not is_waiting(response)


def ahead(response) -> int:
    place = pages.parse(response.text).by_id("waiting-place")
    assert place is not None, response.text
    return int(re.search(r"約([\d,]+)人", place.text).group(1).replace(",", ""))


def visitors(app, count: int):
    return [app.test_client() for _ in range(count)]


def room_row(app) -> dict:
    with app.app_context():
        row = db.session.scalars(select(AdmissionRoom)).one()
        return {"arrivals": row.arrivals, "early": row.early, "frontier": row.frontier}


# ---- off by default -------------------------------------------------------------------------
def test_off_by_default_nobody_waits(tmp_path, database_url):
    """R9.2: without WAITING_ROOM_ENABLED the pages behave as before and no queue cookie is set."""
    from reservation import create_app
    from tests.conftest import base_overrides

    app = create_app(base_overrides(tmp_path, database_url))
    response = app.test_client().get("/")
    assert response.status_code == 200 and "予約の流れ" in response.text
    assert admission.COOKIE not in response.headers.get("Set-Cookie", "")


# ---- rate -----------------------------------------------------------------------------------
def test_admits_at_the_configured_rate_and_says_how_many_are_ahead(app, clock):
    """R9.2: 60 per minute with a burst of 2 — two at once, then one a second, in arrival order;
    each waiting visitor sees how many are ahead and an estimate."""
    crowd = visitors(app, 6)
    first = [c.get("/") for c in crowd]
    assert [admitted(r) for r in first] == [True, True, False, False, False, False]
    assert "予約の流れ" in first[0].text  # the page asked for, not a redirect
    assert [ahead(r) for r in first[2:]] == [1, 2, 3, 4]
    assert "待ち時間の目安" in first[5].text and "約1分" in first[5].text
    waiting = pages.parse(first[5].text)
    refresh = waiting.find("meta", **{"http-equiv": "refresh"})
    assert refresh is not None and refresh["content"].endswith(";url=/")

    clock.at = T0 + timedelta(seconds=1)
    assert [admitted(c.get("/")) for c in crowd[2:]] == [True, False, False, False]
    clock.at = T0 + timedelta(seconds=2, milliseconds=500)
    assert [admitted(c.get("/")) for c in crowd[3:]] == [True, False, False]
    clock.at = T0 + timedelta(seconds=4)
    assert all(admitted(c.get("/")) for c in crowd)
    # Admitted visitors stay admitted on every page.
    assert crowd[5].get("/start").status_code == 200


def test_an_idle_room_saves_no_credit_for_a_sudden_crowd(app, clock):
    """R9.2 (the 2021 lesson): after an hour without visitors, a crowd still gets in at the rate,
    not all at once."""
    assert admitted(app.test_client().get("/"))
    clock.at = T0 + timedelta(hours=1)
    crowd = [c.get("/") for c in visitors(app, 10)]
    assert sum(admitted(r) for r in crowd) == 2  # the burst, nothing more


# ---- the opening ------------------------------------------------------------------------------
@pytest.fixture
def opening(overrides):
    overrides.update(WAITING_ROOM_OPENS_AT=(T0 + timedelta(minutes=10)).isoformat(), WAITING_ROOM_BURST=1)
    return T0 + timedelta(minutes=10)


def test_early_arrivals_are_admitted_in_random_order_at_the_opening(opening, app, clock):
    """R9.2: everyone who comes before the opening waits for it; at the opening they are let in one
    a second in a random order, not in the order they clicked; later arrivals come after them."""
    early = visitors(app, 20)
    for minute, client in enumerate(early):
        clock.at = T0 + timedelta(seconds=minute * 20)
        response = client.get("/")
        assert is_waiting(response)
        assert "受付開始" in response.text and "抽選" in response.text
    clock.at = opening - timedelta(seconds=1)
    assert not any(admitted(c.get("/")) for c in early)
    late = app.test_client()

    order: list[int] = []
    waiting = set(range(len(early)))
    for second in range(20):
        clock.at = opening + timedelta(seconds=second, milliseconds=500)
        if second == 0:
            assert is_waiting(late.get("/"))  # arrived after the opening: behind every early one
        let_in = [i for i in sorted(waiting) if admitted(early[i].get("/"))]
        assert len(let_in) == 1, (second, let_in)  # exactly the rate: one a second
        order += let_in
        waiting -= set(let_in)
        assert is_waiting(late.get("/"))
    assert sorted(order) == list(range(20))
    assert order != list(range(20))  # 1 in 20! that a shuffle leaves the arrival order
    clock.at = opening + timedelta(seconds=20, milliseconds=500)
    assert admitted(late.get("/"))


def test_the_order_at_the_opening_is_a_permutation():
    """R9.2: the keyed shuffle gives every early visitor one distinct place, for any crowd size."""
    key = admission.order_key("secret", "residents:x")
    for size in (1, 2, 5, 64, 1000, 40_000):
        assert sorted(admission.permute(i, size, key) for i in range(size)) == list(range(size))
    assert [admission.permute(i, 1000, key) for i in range(10)] != list(range(10))


# ---- staggered waves -------------------------------------------------------------------------
def test_a_staggered_wave_books_from_its_own_opening(app, overrides, world, clock):
    """R9.2: numbers of a later wave are told, in Japanese, from when they may book; then they may."""
    number = world.number
    later = T0 + timedelta(days=1)
    overrides_waves = f"{number}-{number}={later.astimezone(dates.TOKYO):%Y-%m-%dT%H:%M}"
    app.extensions["madoguchi.admission"] = admission.settings_from(
        {**app.config, "WAITING_ROOM_WAVES": overrides_waves}
    )
    client = app.test_client()
    response = client.post(
        "/start", data={"reservation_number": world.display_number, "birth_date": world.birth_typed}
    )
    assert response.status_code == 200
    assert "5月12日（火）09:00からです" in response.text
    clock.at = later
    assert path_of(sign_in(client, world)) == "/contact"


def test_a_confirmation_is_vouched_for_by_its_hold_not_by_a_ticket(app, world, clock):
    """R9.2: POST /confirm asks for no ticket: a hold is only made behind the room, so a resident
    whose admission lapsed while confirming (or who held before the room was turned on) books, and
    the room writes nothing for it. A visitor without admission gets no hold to confirm."""
    resident = app.test_client()
    assert admitted(resident.get("/"))
    sign_in(resident, world)
    assert path_of(hold(resident, world.slot_ids[0])) == "/confirm"
    key = hold_id(resident)
    resident.delete_cookie(admission.COOKIE)
    arrivals = room_row(app)["arrivals"]
    response = resident.post("/confirm", data={"hold_id": key})
    assert path_of(response) == "/done"
    assert admission.COOKIE not in response.headers.get("Set-Cookie", "")
    assert room_row(app)["arrivals"] == arrivals  # no place taken in the queue
    assert live_bookings(app, world.applicant_id)
    # Behind the queue: the pages that lead to a hold make the visitor wait.
    crowd = [c.get("/") for c in visitors(app, 3)]
    assert any(is_waiting(r) for r in crowd)
    late = app.test_client()
    assert is_waiting(late.post("/hold", data={"slot_id": str(world.slot_ids[1])}))


def test_wave_settings_are_checked():
    """R9.2: a mistyped wave stops the app at start with the setting's name, never a 500 later."""
    waves = admission.parse_waves(
        "000000000000-499999999999=2026-05-11T09:00; 500000000000-999999999999=2026-05-12"
    )
    assert waves[0].covers("123456789012") and not waves[0].covers("500000000000")
    assert waves[1].opens_at == datetime(2026, 5, 12, tzinfo=dates.TOKYO)
    for bad in (
        "1-2=2026-05-11",
        "000000000000-499999999999",
        "500000000000-000000000000=2026-05-11",
        "000000000000-499999999999=soon",
    ):
        with pytest.raises(ConfigError, match="WAITING_ROOM_WAVES"):
            admission.parse_waves(bad)


# ---- staff apps -------------------------------------------------------------------------------
def test_staff_apps_never_wait(app, overrides, clock):
    """R9.2: with the residents' queue full, the back office and the call center answer at once
    and set no queue cookie (they are other apps, without the hook)."""
    crowd = [c.get("/") for c in visitors(app, 5)]
    assert sum(is_waiting(r) for r in crowd) == 3
    from admin import create_app as admin_app

    apps = [admin_app(overrides)]
    try:
        from callcenter import create_app as callcenter_app

        apps.append(callcenter_app(overrides))
    except ImportError:  # pragma: no cover - the call center arrives with its own issue
        pass
    for staff_app in apps:
        response = staff_app.test_client().get("/signin")
        assert response.status_code == 200 and not is_waiting(response)
        assert admission.COOKIE not in response.headers.get("Set-Cookie", "")
        with staff_app.app_context():
            db.session.remove()
            db.engine.dispose()


# ---- forging and replaying ----------------------------------------------------------------------
def test_a_forged_ticket_goes_to_the_back(app, clock):
    """R9.2: a ticket signed with another key, or edited, is ignored: its holder gets a new place at
    the back of the queue."""
    crowd = visitors(app, 4)
    for c in crowd:
        c.get("/")
    settings = app.extensions["madoguchi.admission"]
    forged = [
        admission.sign(
            admission.Ticket(settings.room, 1, False, "f" * 32, T0.timestamp()), "not-the-key", T0
        ),
        admission.sign(admission.Ticket(settings.room, 1, False, "f" * 32, 0.0), "not-the-key", T0),
    ]
    honest = admission.sign(admission.Ticket(settings.room, 4, False, "a" * 32), app.config["SECRET_KEY"], T0)
    # The honest ticket's payload edited to place 1, its timestamp and signature kept.
    serializer = admission._serializer(app.config["SECRET_KEY"])
    payload = serializer.dump_payload([settings.room, 4, 0, "a" * 32, 0.0]).decode()
    assert honest.startswith(payload + ".")
    forged.append(
        serializer.dump_payload([settings.room, 1, 0, "a" * 32, 0.0]).decode() + honest[len(payload) :]
    )
    for value in forged:
        cheat = app.test_client()
        cheat.set_cookie(admission.COOKIE, value)
        response = cheat.get("/")
        assert is_waiting(response)
        assert ahead(response) >= 3  # behind the four honest arrivals (two already admitted)
    assert room_row(app)["arrivals"] == 4 + len(forged)


def test_a_ticket_of_an_earlier_opening_or_an_idle_one_is_not_accepted(app, overrides, clock):
    """R9.2: tickets are bound to one opening, and an admitted ticket lapses after idle time."""
    resident = app.test_client()
    assert admitted(resident.get("/"))
    old = resident.get_cookie(admission.COOKIE).value
    # The next wave's opening: the old ticket counts for nothing there.
    later = T0 + timedelta(days=7)
    settings = admission.settings_from({**app.config, "WAITING_ROOM_OPENS_AT": later.isoformat()})
    app.extensions["madoguchi.admission"] = settings
    assert admission.read(old, settings, app.config["SECRET_KEY"], T0) is None
    first = admission.settings_from(app.config)
    assert admission.read(old, first, app.config["SECRET_KEY"], T0) is not None
    assert admission.read(old, first, app.config["SECRET_KEY"], T0 + timedelta(minutes=31)) is None


def test_an_admitted_ticket_copied_to_other_browsers_identifies_a_few_residents_only(
    app, overrides, world, clock
):
    """R9.2: one admitted ticket may identify WAITING_ROOM_PASS_USES residents (a family); the next
    browser using a copy is told so in Japanese and queues again."""
    app.extensions["madoguchi.admission"] = admission.settings_from(
        {**app.config, "WAITING_ROOM_PASS_USES": 2}
    )
    owner = app.test_client()
    assert admitted(owner.get("/"))
    copied = owner.get_cookie(admission.COOKIE).value
    data = {"reservation_number": world.display_number, "birth_date": world.birth_typed}
    assert path_of(owner.post("/start", data=data)) == "/contact"
    friend = app.test_client()
    friend.set_cookie(admission.COOKIE, copied)
    assert path_of(friend.post("/start", data=data)) == "/contact"
    stranger = app.test_client()
    stranger.set_cookie(admission.COOKIE, copied)
    refused = stranger.post("/start", data=data)
    assert path_of(refused) == "/"
    assert admission.COOKIE + "=;" in refused.headers.get("Set-Cookie", "")
    assert stranger.get_cookie(admission.COOKIE) is None
    again = stranger.get("/", follow_redirects=True)
    assert "もう一度順番をお待ちください" in again.text
    with app.app_context():
        assert db.session.scalars(select(AdmissionPass.uses)).all() == [2]


# ---- cheap refresh --------------------------------------------------------------------------------
def test_a_waiting_visitors_refresh_writes_nothing(app, clock):
    """R9.2: refreshing the waiting page is a signature check and (at most) one read of the room's
    row: no INSERT, UPDATE or DELETE, and with the state cache not even that read."""
    crowd = visitors(app, 3)
    for c in crowd:
        c.get("/")
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def capture(_conn, _cursor, statement, *_args):
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", capture)
    try:
        for _ in range(5):
            assert is_waiting(crowd[2].get("/"))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements), statements
    assert statements.count("SELECT") <= 5
    assert room_row(app)["arrivals"] == 3


# ---- latency control ---------------------------------------------------------------------------------
def test_slow_bookings_lower_the_rate_and_fast_ones_raise_it_back(app, overrides, clock):
    """R9.2: with a latency target, slow booking requests lower the admission rate (so waiting
    visitors are told a longer wait); fast ones raise it back towards the configured rate."""
    settings = admission.settings_from({**app.config, "WAITING_ROOM_LATENCY_TARGET_MS": 200})
    with app.app_context():
        admission.arrive(settings, T0)
        db.session.commit()
        control = admission.LatencyControl()
        control.last_check -= 10
        for _ in range(20):
            control.observe(0.5)
        assert admission.adjust_rate(settings, control, T0) == pytest.approx(0.7)
        db.session.rollback()
        assert admission.room_state(settings, fresh=True).rate_factor == pytest.approx(0.7)
        control.last_check -= 10
        for _ in range(20):
            control.observe(0.01)
        later = T0 + timedelta(seconds=10)
        assert admission.adjust_rate(settings, control, later) == pytest.approx(0.84)
        db.session.rollback()
        # Admissions already earned are kept when the rate changes: the frontier never goes back.
        assert admission.room_state(settings, fresh=True).frontier >= 2


def test_an_admitted_ticket_is_signed_again_at_most_once_a_minute(app, clock):
    """R9.2: the ticket is reissued as the visitor uses the site, so idle time is counted, but not
    on every response (an HMAC and a cookie per request in a burst): within a minute it is left."""
    resident = app.test_client()
    assert admitted(resident.get("/"))
    assert admission.COOKIE not in resident.get("/").headers.get("Set-Cookie", "")
    clock.at += admission.REISSUE_AFTER
    assert admission.COOKIE in resident.get("/").headers.get("Set-Cookie", "")
    clock.at += timedelta(minutes=29)
    assert admitted(resident.get("/"))  # idle time counts from the last reissue
