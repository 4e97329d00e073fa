"""Security of the residents' pages: CSRF (R9.3), headers, no personal value in the cookie or in a
URL, rate limit and number lock (R3.5), minimal registration fields (R2.1), error pages."""

from __future__ import annotations

import io
import json
import logging
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest

from madoguchi import numbers
from madoguchi.extensions import db
from madoguchi.models import Applicant, Booking, Hold, LookupFailure

from . import pages
from .flow import (
    BIRTH,
    add_applicant,
    count,
    hold_id,
    live_bookings,
    path_of,
    seed_world,
    sign_in,
    snapshot,
    unknown_number,
)

CSRF_MESSAGE = (
    "画面を開いてから時間がたったため、操作を受け付けられませんでした。もう一度はじめからお試しください。"
)
RATE_MESSAGE = "短い時間に多くの操作がありました。しばらく時間をおいてからお試しください。"
LOCKED_NOW = "入力の誤りが続いたため、この番号での確認を一時的に停止しました。"
LOCKED = "入力の誤りが続いたため、この番号での確認を一時的に停止しています。"
MISMATCH = "予約管理番号と生年月日の組み合わせが確認できませんでした。"
OUTSIDE = "東京都中央区銀座1丁目1番1号"

REGISTER = {
    "name": "深川　花子",
    "name_kana": "フカガワ　ハナコ",
    "birth_date": "平成2年5月6日",
    "sex": "女",
    "postal_code": "135-0016",
    "address": "東京都江東区東陽4丁目11番28号",
    "email": "hanako@example.jp",
    "phone": "03-1234-5678",
}


def session_data(app, client) -> dict:
    """Decode Flask's session cookie the way the app itself does."""
    cookie = client.get_cookie("session")
    if cookie is None:
        return {}
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


# ---- CSRF (R9.3) -------------------------------------------------------------------------------------
@pytest.fixture
def csrf_app(overrides, request):
    overrides["WTF_CSRF_ENABLED"] = True
    return request.getfixturevalue("app")


def post_with_token(client, page: str, path: str, data: dict):
    """POST ``data`` with the CSRF token the form page ``page`` hands out."""
    token = pages.csrf_token(client.get(page).text)
    return client.post(path, data={**data, "csrf_token": token})


def csrf_sign_in(client, number: str, birth: str = "1980年4月1日"):
    response = post_with_token(
        client, "/start", "/start", {"reservation_number": number, "birth_date": birth}
    )
    assert response.status_code == 302, response.text
    return response


def csrf_hold(client, slot_id: int):
    response = post_with_token(client, "/slots", "/hold", {"slot_id": str(slot_id)})
    assert path_of(response) == "/confirm"


def csrf_confirm(client):
    page = client.get("/confirm")
    root = pages.parse(page.text)
    data = {
        "hold_id": root.find("input", name="hold_id")["value"],
        "csrf_token": root.find("input", name="csrf_token")["value"],
    }
    response = client.post("/confirm", data=data)
    assert path_of(response) == "/done"


def _prepare(app, client, world, state: str) -> dict:
    """Bring ``client`` (through the pages, with tokens) to ``state``; returns the POST data that
    would change something in that state."""
    if state == "anonymous":
        return {}
    if state == "no_venue":
        _, number = add_applicant(app, None, address=OUTSIDE, birth_date=date(1990, 1, 1), email=None)
        csrf_sign_in(client, number, "1990年1月1日")
        return {}
    csrf_sign_in(client, world.number)
    if state in ("held", "booked"):
        csrf_hold(client, world.slot_ids[0])
    if state == "booked":
        csrf_confirm(client)
    return {}


CSRF_CASES = [
    # endpoint, state, the form page that hands out the token, data that would write
    (
        "/start",
        "anonymous",
        "/start",
        lambda w: {"reservation_number": w.number, "birth_date": "1980年4月2日"},
    ),
    ("/register", "anonymous", "/register", lambda w: {**REGISTER, "reservation_number": unknown_number()}),
    ("/contact", "signed_in", "/contact", lambda w: {"email": "new@example.jp", "phone": "0311112222"}),
    ("/venue", "no_venue", "/venue", lambda w: {"venue": "sogo"}),
    ("/hold", "signed_in", "/slots", lambda w: {"slot_id": str(w.slot_ids[1])}),
    ("/confirm", "held", "/confirm", None),
    ("/release", "held", "/confirm", lambda w: {}),
    (
        "/manage",
        "anonymous",
        "/manage",
        lambda w: {"reservation_number": w.number, "birth_date": "1980年4月2日"},
    ),
    ("/manage/cancel", "booked", "/manage/cancel", lambda w: {}),
    ("/signout", "booked", "/done", lambda w: {}),
]


@pytest.mark.parametrize(
    ("endpoint", "state", "page", "data_for"), CSRF_CASES, ids=[c[0] for c in CSRF_CASES]
)
def test_post_without_csrf_token_is_refused_and_writes_nothing(csrf_app, endpoint, state, page, data_for):
    """R9.3: every POST endpoint refuses a request without a CSRF token with 400 and the Japanese
    message, and nothing is written; the same request with the token from the form page works."""
    app = csrf_app
    world = seed_world(app)
    client = app.test_client()
    _prepare(app, client, world, state)
    if data_for is None:  # /confirm: the hold id is on the page
        data = {"hold_id": pages.parse(client.get("/confirm").text).find("input", name="hold_id")["value"]}
    else:
        data = data_for(world)

    before, session_before = snapshot(app), session_data(app, client)
    for forged in (
        {},
        {"csrf_token": "forged"},
        {"csrf_token": pages.csrf_token(app.test_client().get("/start").text)},
    ):
        response = client.post(endpoint, data={**data, **forged})
        assert response.status_code == 400, (forged, response.status_code)
        assert CSRF_MESSAGE in response.text
        assert snapshot(app) == before
        assert session_data(app, client).get("applicant_id") == session_before.get("applicant_id")

    response = post_with_token(client, page, endpoint, data)
    assert response.status_code in (200, 302), response.status_code
    assert CSRF_MESSAGE not in response.text
    changed = snapshot(app) != before or session_data(app, client).get("applicant_id") != session_before.get(
        "applicant_id"
    )
    assert changed, f"{endpoint} with a valid token changed nothing"


def test_whole_flow_with_csrf_tokens_from_the_pages(csrf_app):
    """R9.3: with CSRF protection on, the resident books with the tokens the pages hand out."""
    app = csrf_app
    world = seed_world(app)
    client = app.test_client()
    csrf_sign_in(client, world.number)
    assert path_of(post_with_token(client, "/contact", "/contact", {"email": world.email})) == "/venue"
    csrf_hold(client, world.slot_ids[0])
    csrf_confirm(client)
    assert len(live_bookings(app, world.applicant_id)) == 1
    assert client.get("/done").status_code == 200


def test_a_valid_token_passes_without_flask_wtfs_per_request_serializer(csrf_app, monkeypatch):
    """R9.2, R9.3: a valid token is checked by the quick path (extensions.QuickCSRFProtect) — Flask-WTF's
    ``validate_csrf``, which builds a serializer per request, is not called — and the booking is made."""
    import flask_wtf.csrf

    app = csrf_app
    world = seed_world(app)
    client = app.test_client()
    csrf_sign_in(client, world.number)
    csrf_hold(client, world.slot_ids[0])

    def refuse(*_args, **_kwargs):
        raise AssertionError("Flask-WTF's validate_csrf was called for a valid token")

    monkeypatch.setattr(flask_wtf.csrf, "validate_csrf", refuse)
    csrf_confirm(client)
    assert len(live_bookings(app, world.applicant_id)) == 1


def test_an_expired_token_is_refused_and_writes_nothing(csrf_app, monkeypatch, caplog):
    """R9.3: a token older than WTF_CSRF_TIME_LIMIT is refused with the Japanese message (Flask-WTF's
    reason: expired) and nothing is written; the form reloaded gives a fresh token that works."""
    from itsdangerous import TimestampSigner

    app = csrf_app
    app.config["WTF_CSRF_TIME_LIMIT"] = 60  # shorter than the session's own lifetime, which stays valid
    world = seed_world(app)
    client = app.test_client()
    csrf_sign_in(client, world.number)
    csrf_hold(client, world.slot_ids[0])
    root = pages.parse(client.get("/confirm").text)
    data = {name: root.find("input", name=name)["value"] for name in ("hold_id", "csrf_token")}
    later = TimestampSigner("k").get_timestamp() + 61
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    before = snapshot(app)
    with caplog.at_level(logging.INFO, logger="flask_wtf.csrf"):
        response = client.post("/confirm", data=data)
    assert response.status_code == 400 and CSRF_MESSAGE in response.text
    assert "The CSRF token has expired." in caplog.messages
    assert snapshot(app) == before
    csrf_confirm(client)  # a fresh token, signed at the later time
    assert len(live_bookings(app, world.applicant_id)) == 1


# ---- headers -----------------------------------------------------------------------------------------
def _check_headers(response, what):
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert csp, f"{what}: no CSP"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, what
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") == "same-origin", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert "no-store" in headers.get("Cache-Control", ""), what


def test_security_headers_on_every_page(app, client, world):
    """Standard (security headers): every page, redirect and error page carries a CSP without
    'unsafe-inline', X-Frame-Options DENY, Referrer-Policy same-origin, nosniff and no-store."""
    responses = []

    def visit(method, path, **kwargs):
        response = client.open(path, method=method, **kwargs)
        responses.append((f"{method} {path} -> {response.status_code}", response))
        return response

    for path in ("/", "/start", "/manage", "/register", "/no-such-page", "/slots"):
        visit("GET", path)
    visit("GET", "/hold")  # 405
    visit("POST", "/start", data={"reservation_number": "1", "birth_date": "x"})  # invalid form
    visit("POST", "/start", data={"reservation_number": world.number, "birth_date": "1980年4月1日"})
    for path in ("/contact", "/venue", "/slots"):
        visit("GET", path)
    visit("POST", "/hold", data={"slot_id": str(world.slot_ids[0])})
    visit("GET", "/confirm")
    key = pages.parse(responses[-1][1].text).find("input", name="hold_id")["value"]
    visit("POST", "/confirm", data={"hold_id": key})
    for path in ("/done", "/manage/booking", "/manage/cancel"):
        visit("GET", path)
    visit("POST", "/manage/cancel")
    visit("POST", "/signout")

    statuses = {response.status_code for _, response in responses}
    assert {200, 302, 404, 405} <= statuses
    for what, response in responses:
        _check_headers(response, what)


# ---- no personal value in the cookie or in a URL (R2, standard 4) ------------------------------------
ALLOWED_SESSION_KEYS = {"applicant_id", "flow", "_permanent", "_flashes", "csrf_token"}


def _personal_values(
    number: str,
    *,
    name="江東　太郎",
    kana="コウトウ",
    birth=BIRTH,
    phone="090-1234-5678",
    email="taro@example.jp",
    extra=(),
) -> list[str]:
    return [
        number,
        numbers.display(number),
        name,
        name.replace("　", ""),
        kana,
        birth.isoformat(),
        f"{birth.year}年{birth.month}月{birth.day}日",
        phone,
        phone.replace("-", ""),
        email,
        *extra,
    ]


def _assert_clean(app, client, personal, what):
    data = session_data(app, client)
    assert set(data) <= ALLOWED_SESSION_KEYS, (what, set(data))
    dumped = json.dumps(data, ensure_ascii=False, default=str)
    for value in personal:
        assert value not in dumped, (what, value)


def test_session_cookie_holds_no_personal_value(app, client, world):
    """R2 / standard 4: the (signed, readable) session cookie holds only the row id, the flow and
    similar keys, never the number, name, birth date, phone or e-mail — at every step of the flow."""
    personal = _personal_values(world.number, extra=("東陽4丁目",))
    steps = [
        ("GET", "/start", None),
        ("POST", "/start", {"reservation_number": world.display_number, "birth_date": world.birth_typed}),
        ("GET", "/contact", None),
        ("POST", "/contact", {"email": world.email, "phone": world.phone}),
        ("GET", "/venue", None),
        ("GET", "/slots", None),
        ("POST", "/hold", {"slot_id": str(world.slot_ids[0])}),
    ]
    for method, path, data in steps:
        client.open(path, method=method, data=data)
        _assert_clean(app, client, personal, f"{method} {path}")
    client.post("/confirm", data={"hold_id": hold_id(client)})
    _assert_clean(app, client, personal, "POST /confirm")
    client.get("/done")
    _assert_clean(app, client, personal, "GET /done")
    data = session_data(app, client)
    assert data["applicant_id"] == world.applicant_id
    assert data["flow"] == "book"
    assert len(live_bookings(app, world.applicant_id)) == 1

    # The manage flow too.
    other = app.test_client()
    sign_in(other, world, via="/manage")
    other.get("/manage/booking")
    _assert_clean(app, other, personal, "manage")
    assert session_data(app, other)["flow"] == "manage"


def test_session_cookie_holds_no_personal_value_when_registering(app, client, world):
    """R2 / standard 4: a resident who registers on the web has no typed value in the cookie either."""
    number = unknown_number()
    personal = _personal_values(
        number,
        name=REGISTER["name"],
        kana="フカガワ",
        birth=date(1990, 5, 6),
        phone=REGISTER["phone"],
        email=REGISTER["email"],
        extra=("平成2年5月6日",),
    )
    client.post("/start", data={"reservation_number": number, "birth_date": "平成2年5月6日"})
    _assert_clean(app, client, personal, "POST /start (not on roster)")
    client.post("/register", data={**REGISTER, "reservation_number": number, "lookup_postal": "1"})
    _assert_clean(app, client, personal, "lookup")
    assert path_of(client.post("/register", data={**REGISTER, "reservation_number": number})) == "/venue"
    _assert_clean(app, client, personal, "POST /register")
    with app.app_context():
        from madoguchi import applicants

        assert session_data(app, client)["applicant_id"] == applicants.find_by_number(number).id


def test_no_url_contains_the_reservation_number(app, client, world):
    """R2 / standard 4: the reservation number never appears in a URL — no redirect Location and no
    link, form action or resource address in any page of the booking, change and cancel flows."""
    seen: list[tuple[str, str]] = []

    def visit(method, path, data=None):
        response = client.open(path, method=method, data=data)
        if response.headers.get("Location"):
            seen.append((f"{method} {path} Location", response.headers["Location"]))
        if response.mimetype == "text/html":
            seen.extend((f"{method} {path}", url) for url in pages.urls(response.text))
        return response

    visit("GET", "/")
    visit("GET", "/start")
    visit("POST", "/start", {"reservation_number": world.display_number, "birth_date": world.birth_typed})
    for path in ("/contact", "/venue", "/slots"):
        visit("GET", path)
    visit("POST", "/hold", {"slot_id": str(world.slot_ids[0])})
    confirm_page = visit("GET", "/confirm")
    key = pages.parse(confirm_page.text).find("input", name="hold_id")["value"]
    visit("POST", "/confirm", {"hold_id": key})
    visit("GET", "/done")
    visit("GET", "/manage")
    visit("POST", "/manage", {"reservation_number": world.number, "birth_date": world.birth_typed})
    visit("GET", "/manage/booking")
    visit("GET", "/slots")
    visit("POST", "/hold", {"slot_id": str(world.slot_ids[1])})
    confirm_page = visit("GET", "/confirm")
    key = pages.parse(confirm_page.text).find("input", name="hold_id")["value"]
    visit("POST", "/confirm", {"hold_id": key})
    visit("GET", "/manage/cancel")
    visit("POST", "/manage/cancel")
    visit("POST", "/start", {"reservation_number": unknown_number(), "birth_date": "1990年1月1日"})

    assert len(seen) > 30
    forbidden = (world.number, world.display_number, world.number[:11])
    for where, url in seen:
        assert not any(value in url for value in forbidden), (where, url)
        assert "reservation_number" not in urlsplit(url).query, (where, url)


# ---- rate limit and number lock (R3.5) ----------------------------------------------------------------
@pytest.mark.parametrize("path", ["/start", "/manage", "/register"])
def test_more_than_ten_lookups_a_minute_from_one_address_get_429(overrides, request, path):
    """R3.5: more than 10 look-up POSTs within a minute from one address are answered 429 with the
    Japanese message; another address and plain page views are not affected."""
    overrides["RATELIMIT_ENABLED"] = True
    app = request.getfixturevalue("app")
    seed_world(app)
    client = app.test_client()
    data = {"reservation_number": "1234", "birth_date": "x"}

    statuses = [client.post(path, data=data).status_code for _ in range(10)]
    assert statuses == [200] * 10
    refused = client.post(path, data=data)
    assert refused.status_code == 429
    assert RATE_MESSAGE in refused.text
    assert "Too Many Requests" not in refused.text
    _check_headers(refused, "429")

    assert client.get(path).status_code == 200  # reading the form is not limited
    elsewhere = app.test_client().post(path, data=data, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert elsewhere.status_code == 200


def test_five_wrong_birth_dates_lock_the_number(app, client, world):
    """R3.5: after 5 wrong birth dates the number is locked — even the right birth date is refused with
    the lock message, also on /manage and from another browser — until the lock lapses."""
    wrong = {"reservation_number": world.number, "birth_date": "1980年4月2日"}
    for attempt in range(1, 5):
        response = client.post("/start", data=wrong)
        assert response.status_code == 200
        assert MISMATCH in pages.parse(response.text).by_id("birth_date-error").text, attempt
    fifth = client.post("/start", data=wrong)
    assert LOCKED_NOW in pages.parse(fifth.text).by_id("birth_date-error").text

    for browser, path in ((client, "/start"), (app.test_client(), "/start"), (app.test_client(), "/manage")):
        right = browser.post(path, data={"reservation_number": world.number, "birth_date": world.birth_typed})
        assert right.status_code == 200, path
        error = pages.parse(right.text).by_id("reservation_number-error")
        assert error is not None and LOCKED in error.text, path
        assert "applicant_id" not in session_data(app, browser)

    # Another number is not affected.
    _, other_number = add_applicant(app, None, birth_date=date(1990, 1, 1))
    assert (
        client.post(
            "/start", data={"reservation_number": other_number, "birth_date": "1990年1月1日"}
        ).status_code
        == 302
    )

    # The lock lapses (LOOKUP_LOCK_MINUTES = 30), and a success clears the count.
    app.extensions["madoguchi.clock"].offset = timedelta(minutes=31)
    fresh = app.test_client()
    assert path_of(sign_in(fresh, world)) == "/contact"
    assert count(app, LookupFailure) == 0


def test_failures_on_manage_count_towards_the_same_lock(app, client, world):
    """R3.5: /start and /manage share the per-number count, so alternating does not help a guesser."""
    wrong = {"reservation_number": world.number, "birth_date": "1980年4月2日"}
    for path in ("/start", "/manage", "/start", "/manage", "/start"):
        client.post(path, data=wrong)
    response = client.post(
        "/manage", data={"reservation_number": world.number, "birth_date": world.birth_typed}
    )
    assert LOCKED in pages.parse(response.text).by_id("reservation_number-error").text


# ---- minimal registration fields (R2.1) -------------------------------------------------------------
R2_1_FIELDS = {
    "csrf_token",
    "reservation_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
    "email",
    "phone",
    "lookup_postal",
    "submit",
}


def test_registration_form_asks_only_the_r2_1_fields(csrf_app):
    """R2.1: the registration form asks for 住所, 氏名 (and フリガナ), 生年月日, 性別, メールアドレス, 電話番号
    and the number — nothing else — both when opened and when reached from /start."""
    app = csrf_app
    seed_world(app)
    client = app.test_client()
    assert pages.field_names(client.get("/register").text) == R2_1_FIELDS

    response = post_with_token(
        client, "/start", "/start", {"reservation_number": unknown_number(), "birth_date": "1990年1月1日"}
    )
    assert response.status_code == 200
    assert pages.field_names(response.text) == R2_1_FIELDS
    sexes = {i["value"] for i in pages.parse(response.text).find_all("input", name="sex")}
    assert sexes == {"男", "女"}


def test_registration_ignores_extra_posted_fields(app, client, world):
    """R2.1: values posted beyond the form's fields are not stored anywhere."""
    number = unknown_number()
    data = {**REGISTER, "reservation_number": number, "occupation": "会社員", "my_number": "123456789012"}
    assert path_of(client.post("/register", data=data)) == "/venue"
    with app.app_context():
        from madoguchi import applicants

        applicant = applicants.find_by_number(number)
        columns = {c.key for c in Applicant.__table__.columns}
        assert not any("occupation" in c or "my_number" in c for c in columns)
        assert applicant.name == REGISTER["name"]


# ---- error pages ------------------------------------------------------------------------------------------
def test_404_and_405_pages_are_japanese(app, client, world):
    """Standard 3: a missing page and a wrong method are answered with Japanese pages, not Werkzeug's."""
    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    assert "お探しのページは見つかりませんでした。" in missing.text
    assert "Not Found" not in missing.text and '<html lang="ja">' in missing.text
    wrong = client.get("/hold")
    assert wrong.status_code == 405
    assert "この操作はできません。" in wrong.text
    assert "Method Not Allowed" not in wrong.text


def test_an_oversized_request_is_refused_before_it_is_read(app, client, world):
    """R9.3, standard 3: a request body larger than the residents' forms ever send (64 kB) is refused
    with 413 and a Japanese page before any of it is parsed or stored (an upload cannot fill the
    disk); nothing is written, and an ordinary request still works."""
    from reservation import RESIDENT_REQUEST_BYTES

    before = snapshot(app)
    for data in (
        {"reservation_number": world.number, "birth_date": "x" * (RESIDENT_REQUEST_BYTES + 1)},
        {**REGISTER, "file": (io.BytesIO(b"\0" * (RESIDENT_REQUEST_BYTES + 1)), "big.bin")},
    ):
        response = client.post("/start" if "file" not in data else "/register", data=data)
        assert response.status_code == 413
        assert "送信された内容が大きすぎます。" in response.text and '<html lang="ja">' in response.text
    assert snapshot(app) == before
    assert path_of(sign_in(client, world)) == "/contact"


MARKER = "marker 江東太郎"


@pytest.fixture
def boom_app(overrides):
    from reservation import create_app

    app = create_app(overrides)

    def boom():
        raise RuntimeError(MARKER)

    app.add_url_rule("/boom", "boom", boom)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_500_page_is_japanese_and_shows_no_exception_text(boom_app):
    """Standard 3 / standard 4: an unexpected error gives the Japanese 500 page, without the
    exception's text or type, and with the security headers."""
    response = boom_app.test_client().get("/boom")
    assert response.status_code == 500
    assert "システムで問題が発生しました。お手数ですが、時間をおいて再度お試しください。" in response.text
    for leak in ("marker", "江東太郎", "RuntimeError", "Traceback"):
        assert leak not in response.text
    _check_headers(response, "500")


def test_500_logs_do_not_contain_the_exception_message(boom_app, caplog):
    """Standard 4: the log of an unexpected error names its type and place, never its message."""
    with caplog.at_level(logging.DEBUG):
        response = boom_app.test_client().get("/boom")
    assert response.status_code == 500
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)  # the type is logged
    assert "江東太郎" not in caplog.text
    assert "marker" not in caplog.text


def test_500_logs_without_tracebacks_do_not_contain_the_exception_message(overrides, caplog):
    """Standard 4: with LOG_TRACEBACKS off, the log names the error type and the route only."""
    overrides["LOG_TRACEBACKS"] = False
    from reservation import create_app

    app = create_app(overrides)
    app.add_url_rule("/boom", "boom", lambda: (_ for _ in ()).throw(RuntimeError(MARKER)))
    try:
        with caplog.at_level(logging.DEBUG):
            response = app.test_client().get("/boom")
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    assert response.status_code == 500
    assert any("RuntimeError" in r.getMessage() and "/boom" in r.getMessage() for r in caplog.records)
    assert "江東太郎" not in caplog.text and "marker" not in caplog.text


def test_500_rolls_back_what_the_request_wrote(overrides):
    """Standard 3: a request that fails half-way leaves the store as it was (one commit per request)."""
    from reservation import create_app

    app = create_app(overrides)
    world = seed_world(app)

    def half_then_boom():
        from madoguchi import booking

        booking.hold(db.session.get(Applicant, world.applicant_id), world.slot_ids[0])
        raise RuntimeError(MARKER)

    app.add_url_rule("/half", "half", half_then_boom, methods=["POST"])
    try:
        assert app.test_client().post("/half").status_code == 500
        assert count(app, Hold) == 0
        assert count(app, Booking) == 0
        with app.app_context():
            from madoguchi.models import Slot

            assert db.session.get(Slot, world.slot_ids[0]).taken == 0
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
