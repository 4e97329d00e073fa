"""Invalid input is answered in Japanese, beside the field, accessibly, keeping what was typed
(R3.6, R1.4); garbage never produces a 500 (standard 3: never a 500)."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest

from madoguchi import numbers
from madoguchi.models import Applicant, Booking, Hold

from . import pages
from .flow import count, hold, path_of, sign_in, snapshot, taken, unknown_number

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

VALID_NUMBER = numbers.make("12345678901")
BAD_CHECK_DIGIT = VALID_NUMBER[:-1] + str((int(VALID_NUMBER[-1]) + 1) % 10)
assert not numbers.is_valid(BAD_CHECK_DIGIT)

IDENTIFY = {"reservation_number": VALID_NUMBER, "birth_date": "1980年4月1日"}
# Already in normalised form, so the re-rendered value must equal what was typed.
REGISTER = {
    "reservation_number": VALID_NUMBER,
    "name": "深川　花子",
    "name_kana": "フカガワハナコ",
    "birth_date": "平成2年5月6日",
    "sex": "女",
    "postal_code": "135-0016",
    "address": "東京都江東区東陽4丁目11番28号",
    "email": "hanako@example.jp",
    "phone": "0312345678",
}
CONTACT = {"email": "hanako@example.jp", "phone": "0312345678"}

MSG_NUMBER_EMPTY = "予約管理番号を入力してください。"
MSG_NUMBER_LENGTH = "予約管理番号は12桁の数字で入力してください"
MSG_NUMBER_CHECK = "予約管理番号が正しくありません。交付通知書の番号をもう一度お確かめください。"
MSG_ERA = "元号と年の組み合わせが正しくありません"
MSG_NONEXISTENT = "その日付はありません。生年月日をもう一度お確かめください。"
MSG_KANA = "フリガナはカタカナまたはひらがなで入力してください。"
MSG_PHONE = "電話番号は市外局番から、10桁または11桁の数字で入力してください"
MSG_EMAIL = "メールアドレスの形式が正しくありません"
MSG_POSTAL = "郵便番号は7桁の数字で入力してください"


def case(path, base, field, value, message, *, signed_in=False):
    return pytest.param(
        path,
        {**base, field: value},
        field,
        message,
        signed_in,
        id=f"{path.strip('/')}-{field}-{value or 'empty'}",
    )


CASES = [
    # /start (IdentifyForm)
    case("/start", IDENTIFY, "reservation_number", "", MSG_NUMBER_EMPTY),
    case("/start", IDENTIFY, "reservation_number", "12345678901", MSG_NUMBER_LENGTH),
    case("/start", IDENTIFY, "reservation_number", BAD_CHECK_DIGIT, MSG_NUMBER_CHECK),
    case("/start", IDENTIFY, "birth_date", "平成32年1月1日", MSG_ERA),
    case("/start", IDENTIFY, "birth_date", "1990年2月30日", MSG_NONEXISTENT),
    case("/start", IDENTIFY, "birth_date", "", "生年月日を入力してください。"),
    # /manage (IdentifyForm)
    case("/manage", IDENTIFY, "reservation_number", "", MSG_NUMBER_EMPTY),
    case("/manage", IDENTIFY, "reservation_number", "12345678901", MSG_NUMBER_LENGTH),
    case("/manage", IDENTIFY, "reservation_number", BAD_CHECK_DIGIT, MSG_NUMBER_CHECK),
    case("/manage", IDENTIFY, "birth_date", "昭和65年1月1日", MSG_ERA),
    case("/manage", IDENTIFY, "birth_date", "平成2年2月30日", MSG_NONEXISTENT),
    # /register (RegisterForm)
    case("/register", REGISTER, "reservation_number", "", MSG_NUMBER_EMPTY),
    case("/register", REGISTER, "reservation_number", "12345678901", MSG_NUMBER_LENGTH),
    case("/register", REGISTER, "reservation_number", BAD_CHECK_DIGIT, MSG_NUMBER_CHECK),
    case("/register", REGISTER, "birth_date", "令和0年1月1日", MSG_ERA),
    case("/register", REGISTER, "birth_date", "2001年2月30日", MSG_NONEXISTENT),
    case("/register", REGISTER, "name", "", "氏名を入力してください。"),
    case("/register", REGISTER, "name_kana", "江東タロウ", MSG_KANA),
    case("/register", REGISTER, "phone", "12345", MSG_PHONE),
    case("/register", REGISTER, "email", "hanako.example.jp", MSG_EMAIL),
    case("/register", REGISTER, "postal_code", "135-838", MSG_POSTAL),
    case("/register", REGISTER, "address", "", "住所を入力してください。"),
    # /contact (ContactForm), for an identified resident
    case("/contact", CONTACT, "phone", "12345", MSG_PHONE, signed_in=True),
    case("/contact", CONTACT, "email", "hanako.example.jp", MSG_EMAIL, signed_in=True),
]


@pytest.mark.parametrize(("path", "data", "field", "message", "signed_in"), CASES)
def test_invalid_input_is_explained_beside_the_field(
    app, client, world, path, data, field, message, signed_in
):
    """R3.6 (standard 3): the Japanese message sits beside the field (#<field>-error), the input is
    aria-invalid and described by it, the error summary links to it, and every typed value is kept."""
    if signed_in:
        sign_in(client, world)
    before = snapshot(app)

    response = client.post(path, data=data)

    assert response.status_code == 200
    root = pages.parse(response.text)
    error = root.by_id(f"{field}-error")
    assert error is not None, f"no #{field}-error"
    assert message in error.text
    assert JAPANESE.search(error.text)

    element = root.by_id(field)
    assert element is not None and element.tag == "input"
    assert element.get("aria-invalid") == "true"
    assert f"{field}-error" in element.get("aria-describedby", "").split()

    summary = root.by_id("error-summary")
    assert summary is not None and summary.get("role") == "alert"
    links = summary.find_all("a", href=f"#{field}")
    assert links and message in links[0].text

    for name, typed in data.items():
        if name == "sex":
            continue
        kept = root.by_id(name)
        assert kept is not None and kept.get("value", "") == typed, (name, kept and kept.get("value"))
    # Fields without an error are not marked invalid.
    for name in data:
        other = root.by_id(name)
        if name != field and other is not None and other.tag == "input":
            assert other.get("aria-invalid") is None, name

    assert snapshot(app) == before  # an invalid form writes nothing


def test_missing_radio_choice_is_explained_beside_the_group(app, client, world):
    """R3.6: a missing 性別 is explained in the group's own error, linked from the summary."""
    data = {k: v for k, v in REGISTER.items() if k != "sex"}
    response = client.post("/register", data=data)
    assert response.status_code == 200
    root = pages.parse(response.text)
    assert "性別を選んでください。" in root.by_id("sex-error").text
    group = root.by_id("sex")
    assert group.tag == "fieldset"
    assert "sex-error" in group.get("aria-describedby", "").split()
    assert root.by_id("error-summary").find("a", href="#sex") is not None
    assert count(app, Applicant) == 1


def test_missing_venue_choice_is_explained(app, client, world):
    """R3.6 / R3.2: submitting the venue choice without a choice explains it beside the group."""
    data = {**REGISTER, "reservation_number": unknown_number(), "address": "東京都中央区銀座1丁目1番1号"}
    assert path_of(client.post("/register", data=data)) == "/venue"
    response = client.post("/venue", data={})
    root = pages.parse(response.text)
    assert "受け取る会場を選んでください。" in root.by_id("venue-error").text
    assert root.by_id("error-summary").find("a", href="#venue") is not None


def test_too_long_values_get_a_japanese_message(app, client, world):
    """R3.6: the length limits answer in Japanese too (WTForms' own messages are translated)."""
    data = {**REGISTER, "name": "あ" * 61, "address": "江" * 201}
    response = client.post("/register", data=data)
    root = pages.parse(response.text)
    for field in ("name", "address"):
        error = root.by_id(f"{field}-error").text
        assert JAPANESE.search(error) and "文字" in error, error
    assert count(app, Applicant) == 1


# ---- identification required ------------------------------------------------------------------
PROTECTED = [
    ("GET", "/contact"),
    ("POST", "/contact"),
    ("GET", "/venue"),
    ("POST", "/venue"),
    ("GET", "/slots"),
    ("POST", "/hold"),
    ("GET", "/confirm"),
    ("POST", "/confirm"),
    ("POST", "/release"),
    ("GET", "/done"),
    ("GET", "/manage/booking"),
    ("GET", "/manage/cancel"),
    ("POST", "/manage/cancel"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_pages_need_an_identified_resident(app, client, world, method, path):
    """R3.5: pages of the flow send a browser without an identified resident to /start, with a message."""
    response = client.open(path, method=method, data={"slot_id": str(world.slot_ids[0]), "hold_id": "x"})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/start"
    assert "はじめに予約管理番号と生年月日を入力してください。" in pages.flashes(client.get("/start").text)
    assert count(app, Booking) == 0
    assert taken_all_zero(app)


def taken_all_zero(app) -> bool:
    return all(value == 0 for value in snapshot(app)["taken"].values())


def test_a_session_for_a_vanished_applicant_goes_back_to_start(app, client, world):
    """R3.5: a signed session whose applicant no longer exists is treated as not identified (no 500)."""
    with client.session_transaction() as session:
        session["applicant_id"] = "0" * 32
    response = client.get("/slots")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/start"


# ---- garbage never gives a 500 --------------------------------------------------------------------
GARBAGE = [
    "",
    " ",
    "A" * 60_000,  # huge, yet under the residents' 64 kB body limit (test_security: over it, 413)
    "9" * 40,
    "-1",
    "0",
    "1e3",
    "0x1F",
    "\x00",
    "12\x0034",
    "%00",
    "😀" * 64,
    "\u202e\u200b\ufeff",
    "' OR 1=1; DROP TABLE applicants; --",
    '"><script>alert(1)</script>',
    "../../etc/passwd",
    "²",
    "١٢٣",
    "１２３４５６７８９０１２",
    "00000000000000000000000000000000",
    "ffffffffffffffffffffffffffffffff",
]


def _label(value: str) -> str:
    return repr(value[:12]) + (f"x{len(value)}" if len(value) > 12 else "")


def garbage():
    return [pytest.param(value, id=_label(value)) for value in GARBAGE]


FIELDS = (
    "reservation_number",
    "birth_date",
    "name",
    "name_kana",
    "sex",
    "postal_code",
    "address",
    "email",
    "phone",
    "venue",
    "slot_id",
    "hold_id",
    "submit",
)
POST_ENDPOINTS = (
    "/start",
    "/register",
    "/contact",
    "/venue",
    "/hold",
    "/confirm",
    "/release",
    "/manage",
    "/manage/cancel",
    "/signout",
)


def _held_client(app, world):
    """A browser with an identified resident who holds a place (the deepest state of the flow)."""
    client = app.test_client()
    sign_in(client, world)
    hold(client, world.slot_ids[0])
    return client


def _assert_no_server_error(response, what):
    assert response.status_code < 500, f"{what}: {response.status_code}"


@pytest.mark.parametrize("value", garbage())
def test_garbage_in_every_field_of_every_post_never_gives_500(app, world, value):
    """Standard 3 (never a 500): the same garbage in every field, posted to every POST endpoint by a
    stranger and by a resident holding a place, is answered without a server error."""
    data = {name: value for name in FIELDS}
    failures = []
    for endpoint in POST_ENDPOINTS:
        for client in (app.test_client(), _held_client(app, world)):
            status = client.post(endpoint, data=data).status_code
            if status >= 500:
                failures.append((endpoint, status))
    assert failures == []


@pytest.mark.parametrize("value", garbage())
def test_garbage_slot_id_never_gives_500(app, world, value):
    """Standard 3 (never a 500): a garbage slot id (non-numeric, huge, odd digits) posted to /hold by an
    identified resident is refused with the calendar and a message, never a server error."""
    client = _held_client(app, world)
    response = client.post("/hold", data={"slot_id": value})
    _assert_no_server_error(response, f"/hold slot_id={value[:20]!r}")
    assert path_of(response) == "/slots"
    assert pages.flashes(client.get("/slots").text)  # a message says what happened
    assert count(app, Booking) == 0
    assert count(app, Hold) == 1  # the hold already kept is not lost
    assert taken(app, world.slot_ids[0]) == 1


@pytest.mark.parametrize("value", garbage())
def test_garbage_hold_id_never_gives_500(app, world, value):
    """Standard 3 (never a 500), R1.2: an unknown, too long or NUL-bearing hold id posted to /confirm is
    refused (back to the calendar), never a server error, and books nothing."""
    client = _held_client(app, world)
    response = client.post("/confirm", data={"hold_id": value})
    _assert_no_server_error(response, f"/confirm hold_id={value[:20]!r}")
    assert response.status_code in (200, 302)
    assert count(app, Booking) == 0
    assert count(app, Hold) == 1


@pytest.mark.parametrize(
    "field", ["name", "name_kana", "birth_date", "postal_code", "address", "email", "phone"]
)
def test_garbage_in_one_registration_field_never_gives_500(app, world, field):
    """Standard 3 (never a 500): one garbage field in an otherwise valid registration (so the garbage
    reaches the service and the store) is refused or stored, never a server error."""
    failures = []
    for value in GARBAGE:
        client = app.test_client()
        data = {**REGISTER, "reservation_number": unknown_number(), field: value}
        for what, response in (
            ("register", client.post("/register", data=data)),
            ("lookup", client.post("/register", data={**data, "lookup_postal": "1"})),
            ("contact", client.post("/contact", data={field: value})),
        ):
            if response.status_code >= 500:
                failures.append((what, _label(value), response.status_code))
    assert failures == []


def test_wrong_types_never_give_500(app, world):
    """Standard 3 (never a 500): repeated fields, a JSON body of strings, a broken or null JSON body, an
    empty body, undecodable bytes, odd content types, odd query strings and odd methods are answered
    without a server error."""
    bodies = [
        {"data": {name: ["1", "2", "x"] for name in FIELDS}},
        {"json": {name: "1" for name in FIELDS}},
        {"data": "null", "content_type": "application/json"},
        {"data": "{", "content_type": "application/json"},
        {"data": b"\xff\xfe%00garbage=%ff&slot_id=%ff", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"--x\r\n\r\n", "content_type": "multipart/form-data; boundary=x"},
        {"data": b"", "content_type": "text/plain"},
        {},
    ]
    failures = []
    for endpoint in POST_ENDPOINTS:
        for body in bodies:
            for client in (app.test_client(), _held_client(app, world)):
                status = client.post(endpoint, **body).status_code
                if status >= 500:
                    failures.append((endpoint, str(body)[:40], status))
    held = _held_client(app, world)
    for query in (
        "from=garbage",
        "from=9999-12-31",
        "from=0001-01-01",
        "from=%00",
        "from=2026-02-30",
        "from=" + "1" * 5000,
        "from=&from=x",
    ):
        status = held.get(f"/slots?{query}").status_code
        if status >= 500:
            failures.append(("/slots", query[:20], status))
    for method in ("PUT", "DELETE", "PATCH"):
        status = held.open("/confirm", method=method).status_code
        if status >= 500:
            failures.append(("/confirm", method, status))
    assert failures == []


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_a_json_body_of_wrong_types_never_gives_500(app, world, endpoint):
    """Standard 3 (never a 500): a JSON body whose values are numbers, lists or objects, or which is a
    list or a number itself (wrong types), is refused like any invalid input, never a server error."""
    bodies = [
        {name: [1, {"a": None}] for name in FIELDS},
        {name: 1 for name in FIELDS},
        [1, 2, 3],
        5,
    ]
    failures = []
    for body in bodies:
        client = _held_client(app, world)
        status = client.post(endpoint, json=body).status_code
        if status >= 500:
            failures.append((str(body)[:30], status))
    assert failures == []


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_a_file_posted_in_a_text_field_never_gives_500(app, world, endpoint):
    """Standard 3 (never a 500): a multipart file upload under a form field's name (a wrong type) is
    refused like any invalid input, never a server error."""
    failures = []
    for field in (*FIELDS, "lookup_postal"):
        client = _held_client(app, world)
        status = client.post(endpoint, data={field: (io.BytesIO(b"\x00\xff" * 100), "x.bin")}).status_code
        if status >= 500:
            failures.append((field, status))
    assert failures == []
