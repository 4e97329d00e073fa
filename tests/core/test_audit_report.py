"""The audit analysis (R7.4; 003 第20条⑹エ): each unusual pattern is flagged just over its threshold and
not just under it, and the mailed text report names each kind without any personal value."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from madoguchi import audit_report, auth, dates
from madoguchi.audit import AuditTag, record
from madoguchi.audit_report import (
    BULK_VIEWING,
    FAILED_SIGNINS,
    KIND_LABELS,
    LARGE_SEARCH,
    OFF_DUTY,
    OFF_HOURS,
    Flag,
    analyse,
    render_text,
)
from madoguchi.extensions import db
from tests.factories import make_applicant, make_venue

PASSWORD = "correct horse battery staple 2026"
STAFF_NAME = "窓口　花子"
# The analysis never depends on the clock; passing one keeps the tests independent of today.
NOW = datetime(2027, 1, 1, tzinfo=UTC)
SINCE = datetime(2026, 11, 1, tzinfo=dates.TOKYO)
UNTIL = datetime(2026, 12, 31, tzinfo=dates.TOKYO)
TUESDAY = date(2026, 11, 24)  # an ordinary working day
HOLIDAY = date(2026, 11, 23)  # 勤労感謝の日 (a Monday)
SATURDAY = date(2026, 11, 28)


def jst(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Tokyo wall-clock time, handed to ``record`` in UTC as the application's clock gives it."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dates.TOKYO).astimezone(UTC)


def make_staff(login_id: str = "op1", *, duty_start=date(2026, 4, 1), duty_end=date(2027, 3, 31)):
    return auth.create_staff(
        login_id=login_id,
        name=STAFF_NAME,
        affiliation="市民課",
        roles=["operator"],
        venue_id=None,
        duty_start=duty_start,
        duty_end=duty_end,
        password=PASSWORD,
    )


def flags(kind: str | None = None, since: datetime = SINCE, until: datetime = UNTIL) -> list[Flag]:
    found = analyse(since, until, now=NOW)
    return [f for f in found if kind is None or f.kind == kind]


def view(staff, at: datetime, tag: AuditTag = AuditTag.BOOKING_VIEWED, **details):
    return record(
        tag, staff=staff, subject_type="booking", subject_id="b1", remote_addr="10.0.0.5", at=at, **details
    )


def fail_signin(at: datetime, *, login_id: str = "op1", addr: str = "192.0.2.1", staff=None, **kwargs):
    options = dict(result="failed", reason="bad_password")
    options.update(kwargs)
    tag = options.pop("tag", AuditTag.SIGNIN_FAILED)
    if staff is not None:
        return record(tag, staff=staff, remote_addr=addr, at=at, **options)
    return record(tag, login_id=login_id, remote_addr=addr, at=at, **options)


# ---- bulk viewing -------------------------------------------------------------------------------
@pytest.fixture
def bulk_limit(ctx):
    ctx.config["AUDIT_BULK_VIEWS_PER_HOUR"] = 10
    return 10


@pytest.mark.parametrize("views, flagged", [(11, True), (10, False)])
def test_bulk_viewing_in_one_clock_hour(ctx, bulk_limit, views, flagged):
    """R7.4: more personal-record views in one clock hour than AUDIT_BULK_VIEWS_PER_HOUR are flagged."""
    staff = make_staff()
    for i in range(views):
        view(staff, jst(TUESDAY, 10, i * 5))
    found = flags(BULK_VIEWING)
    if not flagged:
        assert found == []
        return
    (flag,) = found
    assert (flag.subject, flag.subject_kind, flag.staff_id, flag.count) == ("op1", "login_id", staff.id, 11)
    assert (flag.first_at, flag.last_at) == (jst(TUESDAY, 10, 0), jst(TUESDAY, 10, 50))
    assert "閲覧11件" in flag.detail and "基準10件" in flag.detail


@pytest.mark.parametrize("extra_view, flagged", [(True, True), (False, False)])
def test_lists_and_searches_count_the_records_they_show(ctx, bulk_limit, extra_view, flagged):
    """R7.4: a list counts details["count"], a search details["results"]; one without a count counts 1."""
    staff = make_staff()
    view(staff, jst(TUESDAY, 14, 1), AuditTag.BOOKING_LISTED, count=5)
    view(staff, jst(TUESDAY, 14, 2), AuditTag.BOOKING_SEARCHED, results=3)
    view(staff, jst(TUESDAY, 14, 3), AuditTag.BOOKING_LISTED)  # no count: one
    view(staff, jst(TUESDAY, 14, 4), AuditTag.BOOKING_SEARCHED, results=1, query_kind="phone")
    if extra_view:
        view(staff, jst(TUESDAY, 14, 59, 59))
    found = flags(BULK_VIEWING)
    assert [f.count for f in found] == ([11] if flagged else [])


def test_fax_pages_and_recordings_count_as_viewed_records(ctx, bulk_limit):
    """R7.4, R5.3, R4.5: reading FAX pages and playing recordings are views of personal data."""
    staff = make_staff()
    for minute in range(6):
        view(staff, jst(TUESDAY, 15, minute), AuditTag.FAX_VIEWED, what="image")
        view(staff, jst(TUESDAY, 15, 30 + minute), AuditTag.RECORDING_PLAYED)
    (flag,) = flags(BULK_VIEWING)
    assert flag.count == 12


def test_bulk_viewing_is_per_clock_hour_and_per_staff_member(ctx, bulk_limit):
    """R7.4: twelve views straddling 11:00, or two people's views in one hour, are not one person's hour."""
    first, second = make_staff("op1"), make_staff("op2")
    for i in range(6):
        view(first, jst(TUESDAY, 10, 30 + i * 5))
        view(first, jst(TUESDAY, 11, i * 5))
        view(second, jst(TUESDAY, 11, i * 5 + 1))
    assert flags(BULK_VIEWING) == []
    view(first, jst(TUESDAY, 11, 40))  # op1's 11:00 hour: 6 + 1 + a list of 4 = 11
    view(first, jst(TUESDAY, 11, 41), AuditTag.BOOKING_LISTED, count=4)
    (flag,) = flags(BULK_VIEWING)
    assert (flag.subject, flag.count, flag.first_at) == ("op1", 11, jst(TUESDAY, 11, 0))
    assert "11時台" in flag.detail


# ---- off hours ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "at, flagged, reason",
    [
        (jst(TUESDAY, 23, 30), True, "業務時間（08:00〜20:00）外"),
        (jst(HOLIDAY, 10, 0), True, "祝日（勤労感謝の日）"),
        (jst(SATURDAY, 10, 0), True, "土曜日"),
        (jst(TUESDAY, 10, 0), False, None),
    ],
    ids=["23:30-weekday", "10:00-holiday", "10:00-saturday", "10:00-weekday"],
)
def test_off_hours(ctx, at, flagged, reason):
    """R7.4: a staff member's entry outside AUDIT_WORK_HOURS (Tokyo time), or on a weekend or a public
    holiday, is flagged; working hours on a working day are not."""
    staff = make_staff()
    view(staff, at)
    found = flags(OFF_HOURS)
    if not flagged:
        assert found == []
        return
    (flag,) = found
    assert (flag.subject, flag.staff_id, flag.count, flag.first_at) == ("op1", staff.id, 1, at)
    assert reason in flag.detail
    assert f"最初 {dates.tokyo(at):%H:%M}" in flag.detail


@pytest.mark.parametrize(
    "hour, minute, flagged",
    [(8, 29, True), (8, 30, False), (17, 14, False), (17, 15, True)],
)
def test_off_hours_edges_follow_the_setting(ctx, hour, minute, flagged):
    """R7.4: AUDIT_WORK_HOURS "08:30-17:15" — from 08:30 up to (not including) 17:15 is working time."""
    ctx.config["AUDIT_WORK_HOURS"] = "08:30-17:15"
    staff = make_staff()
    record(AuditTag.SIGNED_IN, staff=staff, at=jst(TUESDAY, hour, minute))
    assert len(flags(OFF_HOURS)) == (1 if flagged else 0)


def test_off_hours_one_flag_per_staff_member_and_day(ctx):
    """R7.4: three late entries make one flag with their count and the first time; others' own flags."""
    staff, other = make_staff("op1"), make_staff("op2")
    for at in (jst(TUESDAY, 21, 0), jst(TUESDAY, 22, 15), jst(TUESDAY, 23, 30)):
        view(staff, at)
    view(other, jst(TUESDAY, 6, 45))
    view(staff, jst(TUESDAY + timedelta(days=1), 7, 0))  # the next day: a flag of its own
    found = flags(OFF_HOURS)
    assert [(f.subject, f.count, f.first_at, f.last_at) for f in found] == [
        ("op2", 1, jst(TUESDAY, 6, 45), jst(TUESDAY, 6, 45)),
        ("op1", 3, jst(TUESDAY, 21, 0), jst(TUESDAY, 23, 30)),
        ("op1", 1, jst(TUESDAY + timedelta(days=1), 7, 0), jst(TUESDAY + timedelta(days=1), 7, 0)),
    ]
    assert "操作3件" in found[1].detail and "最初 21:00" in found[1].detail


def test_off_hours_counts_only_staff_entries(ctx):
    """R7.4: a failed sign-in with an unknown id (no staff member) at night is not an off-hours flag."""
    fail_signin(jst(TUESDAY, 23, 30), login_id="nobody", reason="unknown_id")
    record(AuditTag.STAFF_CREATED, subject_type="staff", subject_id=1, at=jst(TUESDAY, 23, 31))
    assert flags(OFF_HOURS) == []


def test_off_hours_use_tokyo_time_not_utc(ctx):
    """R7.4: 14:30 UTC is 23:30 in Tokyo (flagged); 01:00 UTC is 10:00 in Tokyo (not flagged)."""
    staff = make_staff()
    view(staff, datetime(2026, 11, 24, 1, 0, tzinfo=UTC))
    assert flags(OFF_HOURS) == []
    view(staff, datetime(2026, 11, 24, 14, 30, tzinfo=UTC))
    (flag,) = flags(OFF_HOURS)
    assert "最初 23:30" in flag.detail


# ---- off duty -------------------------------------------------------------------------------------
def test_off_duty_before_duty_start(ctx):
    """R7.4/R7.3: an entry on a Tokyo date before the staff member's duty_start is flagged; the first
    minute of duty_start (still the previous day in UTC) is not."""
    staff = make_staff(duty_start=date(2026, 12, 1), duty_end=date(2027, 3, 31))
    view(staff, jst(date(2026, 12, 1), 0, 0))  # 2026-11-30 15:00 UTC
    assert flags(OFF_DUTY) == []
    view(staff, jst(date(2026, 11, 30), 23, 59, 59))
    (flag,) = flags(OFF_DUTY)
    assert (flag.subject, flag.staff_id, flag.count) == ("op1", staff.id, 1)
    assert flag.first_at == jst(date(2026, 11, 30), 23, 59, 59)
    assert "2026-11-30" in flag.detail and "2026-12-01〜2027-03-31" in flag.detail


def test_off_duty_after_duty_end_one_flag_per_day(ctx):
    """R7.4/R7.3: entries after duty_end are flagged once per staff member and day; on duty_end not."""
    staff = make_staff(duty_start=date(2026, 4, 1), duty_end=date(2026, 11, 24))
    view(staff, jst(date(2026, 11, 24), 17, 0))
    assert flags(OFF_DUTY) == []
    view(staff, jst(date(2026, 11, 25), 9, 0))
    view(staff, jst(date(2026, 11, 25), 9, 5))
    view(staff, jst(date(2026, 11, 26), 9, 0))
    found = flags(OFF_DUTY)
    assert [(f.count, dates.tokyo(f.first_at).date()) for f in found] == [
        (2, date(2026, 11, 25)),
        (1, date(2026, 11, 26)),
    ]


def test_off_duty_flags_refused_sign_ins_too(ctx):
    """R7.4: a refused sign-in by an account out of its period is still that account's activity."""
    staff = make_staff(duty_start=date(2026, 12, 1), duty_end=date(2027, 3, 31))
    record(AuditTag.SIGNIN_FAILED, staff=staff, result="denied", reason="off_duty", at=jst(TUESDAY, 9, 0))
    assert [f.subject for f in flags(OFF_DUTY)] == ["op1"]


# ---- failed sign-ins ------------------------------------------------------------------------------
@pytest.fixture
def burst(ctx):
    ctx.config["AUDIT_FAILED_SIGNIN_BURST"] = 5
    ctx.config["AUDIT_FAILED_SIGNIN_WINDOW_MINUTES"] = 10
    return 5


@pytest.mark.parametrize("failures, flagged", [(5, True), (4, False)])
def test_failed_signins_per_login_id(ctx, burst, failures, flagged):
    """R7.4: AUDIT_FAILED_SIGNIN_BURST failures for one login id within the window are flagged, naming the
    login id as the subject (from several addresses, so no address reaches the burst)."""
    for i in range(failures):
        fail_signin(jst(TUESDAY, 9, i * 2), login_id="op1", addr=f"192.0.2.{i}")
    found = flags(FAILED_SIGNINS)
    if not flagged:
        assert found == []
        return
    (flag,) = found
    assert (flag.subject, flag.subject_kind, flag.count) == ("op1", "login_id", 5)
    assert (flag.first_at, flag.last_at) == (jst(TUESDAY, 9, 0), jst(TUESDAY, 9, 8))
    assert "ログインID" in flag.detail and "10分以内にサインイン失敗5回" in flag.detail


@pytest.mark.parametrize("failures, flagged", [(5, True), (4, False)])
def test_failed_signins_per_remote_address(ctx, burst, failures, flagged):
    """R7.4: failures from one address across different login ids (password spraying) are flagged with
    the address as the subject."""
    for i in range(failures):
        fail_signin(jst(TUESDAY, 9, i), login_id=f"user{i}", addr="198.51.100.7", reason="unknown_id")
    found = flags(FAILED_SIGNINS)
    if not flagged:
        assert found == []
        return
    (flag,) = found
    assert (flag.subject, flag.subject_kind, flag.staff_id, flag.count) == (
        "198.51.100.7",
        "remote_addr",
        None,
        5,
    )
    assert "接続元" in flag.detail


def test_failed_signins_must_fall_within_the_window(ctx, burst):
    """R7.4: five failures over eleven minutes never put five in one ten-minute window."""
    for minute in (0, 3, 6, 9, 11):
        fail_signin(jst(TUESDAY, 9, minute))
    assert flags(FAILED_SIGNINS) == []


def test_failed_signins_both_subjects_one_flag_per_attack(ctx, burst):
    """R7.4: a long attack (one id, one address, twelve failures a minute apart) is one flag per kind of
    subject; MFA failures count; successes and other actions do not."""
    staff = make_staff()
    for i in range(12):
        tag = AuditTag.MFA_FAILED if i % 3 == 0 else AuditTag.SIGNIN_FAILED
        fail_signin(jst(TUESDAY, 9, i), staff=staff, addr="203.0.113.9", tag=tag)
        record(AuditTag.SIGNED_IN, staff=staff, remote_addr="203.0.113.9", at=jst(TUESDAY, 9, i, 30))
        fail_signin(jst(TUESDAY, 9, i, 40), staff=staff, addr="203.0.113.9", result="ok")
    found = flags(FAILED_SIGNINS)
    assert [(f.subject_kind, f.subject, f.staff_id, f.count) for f in found] == [
        ("login_id", "op1", staff.id, 12),
        ("remote_addr", "203.0.113.9", staff.id, 12),
    ]
    assert found[0].last_at == jst(TUESDAY, 9, 11)


def test_failed_signins_separate_attacks_are_separate_flags(ctx, burst):
    """R7.4: two bursts an hour apart are two flags."""
    for start in (9, 10):
        for i in range(5):
            fail_signin(jst(TUESDAY, start, i))
    assert [(f.subject_kind, f.count) for f in flags(FAILED_SIGNINS)] == [
        ("login_id", 5),
        ("remote_addr", 5),
        ("login_id", 5),
        ("remote_addr", 5),
    ]


# ---- large searches -------------------------------------------------------------------------------
@pytest.mark.parametrize("results, flagged", [(20, True), (19, False)])
def test_large_search(ctx, results, flagged):
    """R7.4: one search returning AUDIT_LARGE_SEARCH_RESULTS (20) or more records is flagged."""
    ctx.config["AUDIT_LARGE_SEARCH_RESULTS"] = 20
    staff = make_staff()
    view(staff, jst(TUESDAY, 11, 0), AuditTag.BOOKING_SEARCHED, results=results, query_kind="kana")
    view(staff, jst(TUESDAY, 11, 5), AuditTag.BOOKING_LISTED, count=500)  # a list is not a search
    found = flags(LARGE_SEARCH)
    if not flagged:
        assert found == []
        return
    (flag,) = found
    assert (flag.subject, flag.staff_id, flag.count, flag.first_at) == (
        "op1",
        staff.id,
        20,
        jst(TUESDAY, 11, 0),
    )
    assert flag.detail == "検索結果20件（基準20件）"


# ---- the period, the result, the cost ------------------------------------------------------------
def test_period_is_half_open(ctx):
    """R7.4: entries at ``since`` are analysed, entries at ``until`` belong to the next report."""
    staff = make_staff()
    since, until = jst(TUESDAY, 0, 0), jst(TUESDAY, 23, 0)
    view(staff, since)
    view(staff, until)
    found = flags(OFF_HOURS, since, until)
    assert [(f.first_at, f.count) for f in found] == [(since, 1)]
    with pytest.raises(ValueError):
        analyse(until, since, now=NOW)


def test_flags_are_frozen_and_sorted_by_first_time(ctx, burst):
    """R7.4: the flags come in time order, whatever their kind."""
    staff = make_staff()
    view(staff, jst(TUESDAY, 22, 0))
    view(staff, jst(TUESDAY, 12, 0), AuditTag.BOOKING_SEARCHED, results=30)
    for i in range(5):
        fail_signin(jst(TUESDAY, 3, i), login_id="ghost", addr=f"192.0.2.{i}")
    found = flags()
    assert [f.kind for f in found] == [FAILED_SIGNINS, LARGE_SEARCH, OFF_HOURS]
    assert found == sorted(found, key=lambda f: f.first_at)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].count = 1


def test_analysis_reads_the_log_in_a_fixed_number_of_queries(ctx):
    """R7.4: one query for the duty periods and one for the entries, however many entries and staff;
    the applicants' table is never read."""
    ctx.config["AUDIT_BULK_VIEWS_PER_HOUR"] = 10
    people = [make_staff(f"op{i}", duty_start=date(2026, 11, 25)) for i in range(4)]
    for i in range(240):
        view(people[(i // 20) % 4], jst(TUESDAY, 6 + i // 20, i % 60))  # 20 views an hour each
    db.session.flush()
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        found = analyse(SINCE, UNTIL, now=NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert {f.kind for f in found} == {BULK_VIEWING, OFF_HOURS, OFF_DUTY}
    assert len(statements) <= 2, statements
    assert not any("applicants" in s for s in statements)


# ---- the text report -------------------------------------------------------------------------------
def test_text_report_names_every_kind_and_no_personal_value(ctx, burst):
    """R7.4: the mailed report has Japanese headings, one line per flag with its kind's label, a count
    per kind — and neither the residents' values nor the staff member's name."""
    ctx.config["AUDIT_BULK_VIEWS_PER_HOUR"] = 3
    venue = make_venue()
    applicant = make_applicant(venue)
    staff = make_staff(duty_start=date(2026, 11, 25))
    for i in range(4):  # bulk viewing, off duty (before 11-25), off hours (21:00)
        record(
            AuditTag.BOOKING_VIEWED,
            staff=staff,
            subject_type="applicant",
            subject_id=applicant.id,
            at=jst(TUESDAY, 21, i),
        )
    view(staff, jst(TUESDAY, 21, 30), AuditTag.BOOKING_SEARCHED, results=25, query_kind="phone")
    for i in range(5):
        fail_signin(jst(TUESDAY, 9, i), login_id="op1", addr=f"192.0.2.{i}")
    found = flags()
    assert {f.kind for f in found} == set(KIND_LABELS)
    text = render_text(found, SINCE, UNTIL)
    assert text.startswith("アクセスログ分析報告")
    assert "対象期間: 2026-11-01 00:00 〜 2026-12-31 00:00（日本時間）" in text
    assert "■ 検出一覧" in text and "■ 種別ごとの件数" in text
    for label in KIND_LABELS.values():
        assert f"[{label}]" in text
    body = text.split("■ 種別ごとの件数")[0]
    assert sum(line.startswith("・") for line in body.splitlines()) == len(found)
    assert f"合計 {len(found)}件" in text
    assert "2026-11-24 21:00〜21:30" in text  # Tokyo times
    for value in (
        applicant.name,
        applicant.name_kana,
        "江東",
        applicant.phone,
        "090",
        applicant.email,
        applicant.address,
        applicant.reservation_number,
        STAFF_NAME,
        "花子",
    ):
        assert value not in text
    assert "該当なし" not in text


def test_text_report_when_nothing_is_found(ctx):
    """R7.4: an empty period still yields a report, saying 該当なし."""
    text = render_text(analyse(SINCE, UNTIL, now=NOW), SINCE, UNTIL)
    assert "該当なし" in text
    for label in KIND_LABELS.values():
        assert f"{label} 0件" in text


def test_work_hours_setting_is_checked():
    """R7.4: a malformed AUDIT_WORK_HOURS is refused with the setting's name; overnight ranges work."""
    assert audit_report.parse_work_hours("22:00-06:00")[0].hour == 22
    with pytest.raises(ValueError, match="AUDIT_WORK_HOURS"):
        audit_report.parse_work_hours("8時から20時")
