"""The audit analysis (R7.4; 003 第20条⑹エ): flag unusual patterns in the access and operation log.

``analyse(since, until)`` reads the entries in ``[since, until)`` once, as plain columns in time order,
and looks for five patterns; thresholds come from the ``AUDIT_*`` settings:

- ``bulk_viewing``   a staff member viewed more personal records in one clock hour (Asia/Tokyo) than
                     AUDIT_BULK_VIEWS_PER_HOUR (a list or a search counts the records it showed);
- ``off_hours``      a staff member worked outside AUDIT_WORK_HOURS, or on a Saturday, Sunday or public
                     holiday (one flag per staff member per day);
- ``off_duty``       a staff member's entry falls on a date outside their period of duty (R7.3);
- ``failed_signins`` AUDIT_FAILED_SIGNIN_BURST or more failed sign-ins (password or second factor) within
                     AUDIT_FAILED_SIGNIN_WINDOW_MINUTES, for one login id, and separately from one address;
- ``large_search``   one search returned AUDIT_LARGE_SEARCH_RESULTS or more records.

Entries hold ids, counts and reasons only, and the analysis never joins the applicants: neither the
flags nor the text report can carry a resident's personal value.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import jpholiday
from flask import current_app
from sqlalchemy import case, select

from . import dates
from .audit import AuditTag
from .extensions import db
from .models import AuditEntry, Staff

BULK_VIEWING = "bulk_viewing"
OFF_HOURS = "off_hours"
OFF_DUTY = "off_duty"
FAILED_SIGNINS = "failed_signins"
LARGE_SEARCH = "large_search"

KIND_LABELS = {
    BULK_VIEWING: "大量閲覧",
    OFF_HOURS: "業務時間外・休日の操作",
    OFF_DUTY: "在任期間外の操作",
    FAILED_SIGNINS: "サインイン失敗の集中",
    LARGE_SEARCH: "大量該当の検索",
}
SUBJECT_LABELS = {"login_id": "ログインID", "remote_addr": "接続元"}

VIEWED = AuditTag.BOOKING_VIEWED.value
LISTED = AuditTag.BOOKING_LISTED.value
SEARCHED = AuditTag.BOOKING_SEARCHED.value
# Reading a received FAX page or playing a recording is reading personal data too: one record each.
VIEW_ACTIONS = (VIEWED, LISTED, SEARCHED, AuditTag.FAX_VIEWED.value, AuditTag.RECORDING_PLAYED.value)
FAILED_SIGNIN_ACTIONS = (AuditTag.SIGNIN_FAILED.value, AuditTag.MFA_FAILED.value)
WEEKDAY_NAMES = "月火水木金土日"
FETCH_BATCH = 2000


@dataclass(frozen=True)
class Flag:
    """One unusual pattern. ``subject`` is a login id or a remote address (``subject_kind`` says which:
    "login_id" or "remote_addr"); ``first_at``/``last_at`` are UTC; ``detail`` is for the auditor."""

    kind: str
    subject: str
    staff_id: int | None
    first_at: datetime
    last_at: datetime
    count: int
    detail: str
    subject_kind: str = "login_id"

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class _Duty:
    login_id: str
    start: date
    end: date


class _Run:
    """Entries of one group (a staff member's hour or day): how many, first and last time."""

    __slots__ = ("count", "first", "last", "login_id")

    def __init__(self, at: datetime, login_id: str):
        self.count, self.first, self.last, self.login_id = 0, at, at, login_id

    def add(self, at: datetime, amount: int = 1) -> None:
        self.count += amount
        self.last = at


def analyse(since: datetime, until: datetime, *, now: datetime | None = None) -> list[Flag]:
    """The flags for entries in ``[since, until)`` (aware datetimes), sorted by ``first_at``.

    ``now`` is the caller's clock (default: the application's). The result does not depend on it: a
    period still running is analysed as far as the log goes, so a report run twice agrees with itself."""
    del now  # accepted so every service takes an injected clock alike; nothing here is relative to it
    if since >= until:
        raise ValueError("the period must end after it starts")
    config = current_app.config
    bulk_limit = int(config["AUDIT_BULK_VIEWS_PER_HOUR"])
    work_start, work_end = parse_work_hours(config["AUDIT_WORK_HOURS"])
    burst = int(config["AUDIT_FAILED_SIGNIN_BURST"])
    window = timedelta(minutes=int(config["AUDIT_FAILED_SIGNIN_WINDOW_MINUTES"]))
    large = int(config["AUDIT_LARGE_SEARCH_RESULTS"])

    duties = _duty_periods()
    views: dict[tuple, _Run] = {}  # (staff key, Tokyo hour) -> views
    off_hours: dict[tuple, _Run] = {}  # (staff id, Tokyo date) -> entries
    off_duty: dict[tuple, _Run] = {}
    failures_by_login: dict[str, list[tuple[datetime, int | None]]] = defaultdict(list)
    failures_by_addr: dict[str, list[tuple[datetime, int | None]]] = defaultdict(list)
    flags: list[Flag] = []
    free_days: dict[date, str | None] = {}

    for at, staff_id, login_id, action, result, remote_addr, details in _entries(since, until):
        local = dates.tokyo(at)
        day = local.date()
        subject = duties[staff_id].login_id if staff_id in duties else login_id

        if action in VIEW_ACTIONS:
            parsed = _parse(details)
            key = (
                staff_id if staff_id is not None else f"login:{login_id}",
                local.replace(minute=0, second=0),
            )
            _add(views, key, at, subject, _viewed_count(action, parsed))
            results = _int(parsed.get("results")) if action == SEARCHED else None
            if results is not None and results >= large:
                flags.append(
                    Flag(
                        LARGE_SEARCH,
                        subject,
                        staff_id,
                        at,
                        at,
                        results,
                        f"検索結果{results}件（基準{large}件）",
                    )
                )

        if action in FAILED_SIGNIN_ACTIONS and result != "ok":
            if login_id:
                failures_by_login[login_id].append((at, staff_id))
            if remote_addr:
                failures_by_addr[remote_addr].append((at, staff_id))

        if staff_id is None:
            continue
        if day not in free_days:
            free_days[day] = _day_off(day)
        if free_days[day] is not None or not _within(local.time(), work_start, work_end):
            _add(off_hours, (staff_id, day), at, subject)
        duty = duties.get(staff_id)
        if duty is not None and not (duty.start <= day <= duty.end):
            _add(off_duty, (staff_id, day), at, subject)

    for (staff_key, hour), run in views.items():
        if run.count > bulk_limit:
            staff_id = staff_key if isinstance(staff_key, int) else None
            detail = f"{hour:%H}時台の1時間に閲覧{run.count}件（基準{bulk_limit}件）"
            flags.append(Flag(BULK_VIEWING, run.login_id, staff_id, run.first, run.last, run.count, detail))
    hours_text = f"{work_start:%H:%M}〜{work_end:%H:%M}"
    for (staff_id, day), run in off_hours.items():
        first = dates.tokyo(run.first)
        reason = free_days[day] or f"業務時間（{hours_text}）外"
        detail = f"{_day_text(day)} {reason}の操作{run.count}件（最初 {first:%H:%M}）"
        flags.append(Flag(OFF_HOURS, run.login_id, staff_id, run.first, run.last, run.count, detail))
    for (staff_id, day), run in off_duty.items():
        duty = duties[staff_id]
        detail = (
            f"{_day_text(day)} 在任期間（{duty.start:%Y-%m-%d}〜{duty.end:%Y-%m-%d}）外の操作{run.count}件"
        )
        flags.append(Flag(OFF_DUTY, run.login_id, staff_id, run.first, run.last, run.count, detail))
    minutes = int(window.total_seconds() // 60)
    for subject_kind, groups in (("login_id", failures_by_login), ("remote_addr", failures_by_addr)):
        for subject, failures in groups.items():
            for group in _bursts(failures, burst, window):
                staff_ids = {staff_id for _, staff_id in group}
                staff_id = staff_ids.pop() if len(staff_ids) == 1 else None
                detail = (
                    f"{SUBJECT_LABELS[subject_kind]}単位: {minutes}分以内にサインイン失敗{len(group)}回"
                    f"（基準{burst}回）"
                )
                flags.append(
                    Flag(
                        FAILED_SIGNINS,
                        subject,
                        staff_id,
                        group[0][0],
                        group[-1][0],
                        len(group),
                        detail,
                        subject_kind=subject_kind,
                    )
                )
    flags.sort(key=lambda f: (f.first_at, f.kind, f.subject_kind, f.subject))
    return flags


def _add(runs: dict[tuple, _Run], key: tuple, at: datetime, subject: str, amount: int = 1) -> None:
    run = runs.get(key)
    if run is None:
        run = runs[key] = _Run(at, subject)
    run.add(at, amount)


def parse_work_hours(text: str) -> tuple[time, time]:
    """ "08:00-20:00" → (08:00, 20:00). A range that crosses midnight ("22:00-06:00") is allowed."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"AUDIT_WORK_HOURS must look like 08:00-20:00, not {text!r}") from None
    return start, end


def _within(at: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= at < end
    return at >= start or at < end


def _day_off(day: date) -> str | None:
    """Why ``day`` is not a working day (祝日名, 土曜日, 日曜日), or None."""
    holiday = jpholiday.is_holiday_name(day)
    if holiday:
        return f"祝日（{holiday}）"
    if day.weekday() >= 5:
        return f"{WEEKDAY_NAMES[day.weekday()]}曜日"
    return None


def _day_text(day: date) -> str:
    return f"{day:%Y-%m-%d}（{WEEKDAY_NAMES[day.weekday()]}）"


def _entries(since: datetime, until: datetime):
    """The entries' needed columns in time order, streamed; details only where they are read."""
    query = (
        select(
            AuditEntry.at,
            AuditEntry.staff_id,
            AuditEntry.login_id,
            AuditEntry.action,
            AuditEntry.result,
            AuditEntry.remote_addr,
            case((AuditEntry.action.in_(VIEW_ACTIONS), AuditEntry.details), else_=None),
        )
        .where(AuditEntry.at >= since, AuditEntry.at < until)
        .order_by(AuditEntry.at, AuditEntry.id)
        .execution_options(yield_per=FETCH_BATCH)
    )
    for at, staff_id, login_id, action, result, remote_addr, details in db.session.execute(query):
        yield dates.utc(at), staff_id, login_id or "", action, result, remote_addr or "", details


def _duty_periods() -> dict[int, _Duty]:
    """Every staff member's login id and period of duty, in one query (the registry is small)."""
    rows = db.session.execute(select(Staff.id, Staff.login_id, Staff.duty_start, Staff.duty_end))
    return {staff_id: _Duty(login_id, start, end) for staff_id, login_id, start, end in rows}


def _parse(details: str | None) -> dict:
    if not details:
        return {}
    try:
        parsed = json.loads(details)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _viewed_count(action: str, details: dict) -> int:
    """A viewed booking is one record; a list or search shows ``count`` (or ``results``) records."""
    if action == VIEWED:
        return 1
    for key in ("count", "results"):
        value = _int(details.get(key))
        if value is not None:
            return value
    return 1


def _bursts(failures: list[tuple[datetime, int | None]], burst: int, window: timedelta):
    """Maximal runs in which every failure lies in some window of ``window`` holding ``burst`` or more
    failures (time-ordered input). Overlapping windows make one run, so one attack gives one flag."""
    if burst < 1:
        burst = 1
    start = 0
    run_start = run_end = None
    for end in range(len(failures)):
        while failures[end][0] - failures[start][0] > window:
            start += 1
        if end - start + 1 >= burst:
            if run_end is not None and start <= run_end:
                run_end = end
            else:
                if run_end is not None:
                    yield failures[run_start : run_end + 1]
                run_start, run_end = start, end
    if run_end is not None:
        yield failures[run_start : run_end + 1]


def render_text(flags: list[Flag], since: datetime, until: datetime) -> str:
    """A plain-text report a scheduler can mail: the period, one line per flag, counts per kind."""
    since_local, until_local = dates.tokyo(since), dates.tokyo(until)
    lines = [
        "アクセスログ分析報告（R7.4）",
        f"対象期間: {since_local:%Y-%m-%d %H:%M} 〜 {until_local:%Y-%m-%d %H:%M}（日本時間）",
        "",
        "■ 検出一覧",
    ]
    if not flags:
        lines.append("該当なし")
    for flag in sorted(flags, key=lambda f: (f.first_at, f.kind, f.subject_kind, f.subject)):
        first, last = dates.tokyo(flag.first_at), dates.tokyo(flag.last_at)
        span = f"{first:%Y-%m-%d %H:%M}"
        if last != first:
            span += f"〜{last:%H:%M}" if last.date() == first.date() else f"〜{last:%Y-%m-%d %H:%M}"
        who = f"{SUBJECT_LABELS.get(flag.subject_kind, '対象')} {flag.subject or '（空）'}"
        if flag.staff_id is not None:
            who += f"（職員番号 {flag.staff_id}）"
        lines.append(f"・[{flag.label}] {span} {who} {flag.detail}")
    lines += ["", "■ 種別ごとの件数"]
    counts = {kind: 0 for kind in KIND_LABELS}
    for flag in flags:
        counts[flag.kind] = counts.get(flag.kind, 0) + 1
    summary = "、".join(f"{KIND_LABELS.get(kind, kind)} {n}件" for kind, n in counts.items())
    lines.append(f"{summary}（合計 {len(flags)}件）" if flags else f"{summary}（該当なし）")
    return "\n".join(lines) + "\n"
