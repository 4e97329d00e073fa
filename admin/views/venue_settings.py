"""Venue settings (R3.3, R6): details, the slot template, capacities, closed days and 休日開庁.

Every calendar change goes through ``madoguchi.calendar_admin``: a plan first; when it would leave
bookings without a place, a screen asks for a decision on each (move or cancel), and only then is
the change applied, all in one transaction.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from madoguchi import calendar_admin, dates, venues
from madoguchi.calendar_admin import CalendarConflict, CalendarRejected, DecisionsMissing
from madoguchi.extensions import db
from madoguchi.models import Slot, Venue
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms_settings import CapacityForm, DayForm, SpecialOpeningForm, TemplateForm, VenueInfoForm
from . import bp

REJECTED = {
    "capacity": _l("定員は0〜999の整数で入力してください。"),
    "unknown_slot": _l("その予約枠は見つかりません。"),
    "past": _l("過ぎた日時は変更できません。今日以降を指定してください。"),
    "hours": _l("受付終了は受付開始より後にしてください。"),
    "slot_minutes": _l("1枠の長さは5〜240分で入力してください。"),
    "weekdays": _l("曜日の指定が正しくありません。"),
    "already_closed": _l("その日はすでに休みです。"),
    "not_closed": _l("その日は休止していません。"),
    "special_exists": _l("その日にはすでに休日開庁が登録されています。"),
    "unknown_special": _l("その休日開庁は見つかりません。"),
}
CONFLICT = {
    "slot_full": _l("移動先の枠に空きがなくなりました。別の枠を選んでください。"),
    "slot_not_bookable": _l("移動先の枠は選べません（過ぎた枠か、別の会場の枠です）。"),
    "not_changeable": _l("対象の予約の状態が変わりました。画面を開き直してください。"),
    "same_slot": _l("移動先が元の枠と同じです。"),
    "move_target": _l("移動先の枠が正しくありません。"),
    "capacity_below_taken": _l("この間に予約が入り、定員が予約数を下回ります。もう一度確認してください。"),
}
STATE_LABELS = {
    "open": _l("開庁"),
    "special": _l("休日開庁"),
    "closed_by_admin": _l("休止"),
    "holiday": _l("祝日（休み）"),
    "year_end": _l("年末年始（休み）"),
    "weekday": _l("休み（曜日）"),
    "no_slots": _l("枠なし"),
}
PROBLEMS = {
    "missing": _l("対応を選んでください。"),
    "same_slot": _l("移動先が元の枠と同じです。"),
    "too_many_kept": _l("この枠に残す予約が新しい定員を超えています。"),
}


def _venue_or_404(venue_id: int) -> Venue:
    venue = db.session.get(Venue, venue_id)
    if venue is None:
        abort(404)
    return venue


def _calendar_url(venue: Venue, day: date | None = None) -> str:
    return url_for("admin.venue_calendar", venue_id=venue.id, **({"from": day.isoformat()} if day else {}))


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


@bp.get("/settings/venues")
@requires(Permission.VENUE_MANAGE)
def venue_settings():
    return render_template(
        "admin/settings_venues.html",
        venues=venues.all_venues(),
        holidays=calendar_admin.upcoming_holidays(dates.today()),
    )


@bp.route("/settings/venues/<int:venue_id>", methods=["GET", "POST"])
@requires(Permission.VENUE_MANAGE)
def venue_info(venue_id: int):
    venue = _venue_or_404(venue_id)
    form = VenueInfoForm(obj=venue if request.method == "GET" else None)
    if form.validate_on_submit():
        changed = calendar_admin.update_venue_info(
            venue,
            staff=g.staff,
            remote_addr=remote_addr(),
            **{name: getattr(form, name).data for name in calendar_admin.VENUE_TEXT_FIELDS},
        )
        flash(_("保存しました。") if changed else _("変更はありませんでした。"), "success")
        return redirect(url_for("admin.venue_info", venue_id=venue.id))
    return render_template("admin/settings_venue.html", venue=venue, form=form)


@bp.get("/settings/venues/<int:venue_id>/calendar")
@requires(Permission.VENUE_MANAGE)
def venue_calendar(venue_id: int):
    venue = _venue_or_404(venue_id)
    first = max(_parse_day(request.args.get("from")) or dates.today(), dates.today())
    template = TemplateForm(formdata=None, obj=venue, first_day=dates.today() + timedelta(days=1))
    template.open_weekdays.data = list(venue.open_weekdays)
    return render_template(
        "admin/settings_calendar.html",
        venue=venue,
        first=first,
        days=calendar_admin.overview(venue, first),
        state_labels=STATE_LABELS,
        template=template,
        special_form=SpecialOpeningForm(formdata=None),
        specials=sorted((s for s in venue.special_openings if s.day >= dates.today()), key=lambda s: s.day),
        previous=first - timedelta(days=14) if first > dates.today() else None,
        following=first + timedelta(days=14),
    )


@bp.get("/settings/venues/<int:venue_id>/days/<day>")
@requires(Permission.VENUE_MANAGE)
def venue_day(venue_id: int, day: str):
    venue = _venue_or_404(venue_id)
    parsed = _parse_day(day)
    if parsed is None:
        abort(404)
    return render_template(
        "admin/settings_day.html",
        venue=venue,
        day=parsed,
        slots=calendar_admin.slots_of_day(venue, parsed),
        now=dates.now(),
        form=CapacityForm(formdata=None),
        day_form=DayForm(formdata=None, day=parsed),
    )


# ---- changes that may need decisions -----------------------------------------------------------
def _carry_out(make_plan, *, hidden: dict, back: str, title: str):
    """Plan, ask for decisions when bookings would lose their place, then apply (one transaction)."""
    try:
        plan = make_plan()
    except CalendarRejected as refused:
        flash(str(REJECTED.get(refused.reason, REJECTED["past"])), "error")
        return redirect(back)
    decisions = calendar_admin.parse_decisions(request.form)
    if plan.needs_decisions and not request.form.get("decided"):
        return _decision_page(plan, hidden, title, back, decisions, problems={}, message="")
    try:
        outcome = calendar_admin.apply(plan, decisions, staff=g.staff, remote_addr=remote_addr())
    except DecisionsMissing as missing:
        problems = {key: str(PROBLEMS.get(code, PROBLEMS["missing"])) for key, code in missing.problems}
        message = _("すべての予約について対応を選んでください。")
        return _decision_page(plan, hidden, title, back, decisions, problems, message)
    except CalendarConflict as conflict:
        message = str(CONFLICT.get(conflict.reason, _("変更できませんでした。もう一度確認してください。")))
        message += " " + _("何も変更していません。")
        return _decision_page(plan, hidden, title, back, decisions, {}, message)
    flash(
        _(
            "変更しました（移動 %(moved)d 件、取消し %(cancelled)d 件、変更した枠 %(changed)d、追加した枠 %(created)d）。",
            moved=outcome.moved,
            cancelled=outcome.cancelled,
            changed=outcome.slots_changed,
            created=outcome.slots_created,
        ),
        "success",
    )
    return redirect(back)


def _decision_page(plan, hidden, title, back, decisions, problems, message):
    # Shows bookings by reference, time, channel and whether a message can reach the person:
    # enough to decide, and no personal value (administrators do not read applicants' data).
    plan_view = [(item, calendar_admin.move_options(plan, item)) for item in plan.affected]
    return render_template(
        "admin/settings_decide.html",
        plan=plan,
        affected=plan_view,
        hidden=hidden,
        title=title,
        back=back,
        action=request.path,
        decisions={key: d for key, d in decisions.items()},
        problems=problems,
        message=message,
    )


@bp.post("/settings/slots/<int:slot_id>/capacity")
@requires(Permission.VENUE_MANAGE)
def slot_capacity(slot_id: int):
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        abort(404)
    day = dates.tokyo(slot.starts_at).date()
    back = url_for("admin.venue_day", venue_id=slot.venue_id, day=day.isoformat())
    form = CapacityForm()
    if not form.validate():
        flash(" ".join(str(e) for e in form.capacity.errors), "error")
        return redirect(back)
    return _carry_out(
        lambda: calendar_admin.plan_slot_capacity(slot.id, form.capacity.data),
        hidden={"capacity": form.capacity.data},
        back=back,
        title=_("予約枠の定員を %(n)d 人にする", n=form.capacity.data),
    )


@bp.post("/settings/venues/<int:venue_id>/template")
@requires(Permission.VENUE_MANAGE)
def venue_template(venue_id: int):
    venue = _venue_or_404(venue_id)
    form = TemplateForm()
    if not form.validate():
        flash(" ".join(str(e) for f in form for e in f.errors), "error")
        return redirect(_calendar_url(venue))
    template = calendar_admin.Template(
        open_time=form.open_time.data,
        close_time=form.close_time.data,
        slot_minutes=form.slot_minutes.data,
        slot_capacity=form.slot_capacity.data,
        open_weekdays="".join(form.open_weekdays.data or []),
    )
    return _carry_out(
        lambda: calendar_admin.plan_template(venue, template, form.first_day.data),
        hidden={
            "open_time": form.open_time.data.strftime("%H:%M"),
            "close_time": form.close_time.data.strftime("%H:%M"),
            "slot_minutes": form.slot_minutes.data,
            "slot_capacity": form.slot_capacity.data,
            "open_weekdays": list(form.open_weekdays.data or []),
            "first_day": form.first_day.data.isoformat(),
        },
        back=_calendar_url(venue),
        title=_("予約枠の設定を変えて、%(day)s 以降の枠を作り直す", day=form.first_day.data.isoformat()),
    )


def _day_action(venue_id: int, make_plan, title: str):
    venue = _venue_or_404(venue_id)
    form = DayForm()
    if not form.validate():
        flash(_("日付を入力してください。"), "error")
        return redirect(_calendar_url(venue))
    day = form.day.data
    return _carry_out(
        lambda: make_plan(venue, day),
        hidden={"day": day.isoformat()},
        back=url_for("admin.venue_day", venue_id=venue.id, day=day.isoformat()),
        title=title.format(day=day.isoformat()),
    )


@bp.post("/settings/venues/<int:venue_id>/close")
@requires(Permission.VENUE_MANAGE)
def close_day(venue_id: int):
    return _day_action(venue_id, calendar_admin.plan_close_day, _("{day} を休止する（予約を受け付けない）"))


@bp.post("/settings/venues/<int:venue_id>/reopen")
@requires(Permission.VENUE_MANAGE)
def reopen_day(venue_id: int):
    return _day_action(venue_id, calendar_admin.plan_reopen_day, _("{day} の休止をやめる"))


@bp.post("/settings/venues/<int:venue_id>/specials")
@requires(Permission.VENUE_MANAGE)
def special_add(venue_id: int):
    venue = _venue_or_404(venue_id)
    form = SpecialOpeningForm()
    if not form.validate():
        flash(" ".join(str(e) for f in form for e in f.errors), "error")
        return redirect(_calendar_url(venue))
    data = form.data
    return _carry_out(
        lambda: calendar_admin.plan_special_add(
            venue, data["day"], data["open_time"], data["close_time"], data["note"] or ""
        ),
        hidden={
            "day": data["day"].isoformat(),
            "open_time": data["open_time"].strftime("%H:%M"),
            "close_time": data["close_time"].strftime("%H:%M"),
            "note": data["note"] or "",
        },
        back=_calendar_url(venue, data["day"]),
        title=_("%(day)s に休日開庁を追加する", day=data["day"].isoformat()),
    )


@bp.post("/settings/venues/<int:venue_id>/specials/<int:special_id>/delete")
@requires(Permission.VENUE_MANAGE)
def special_remove(venue_id: int, special_id: int):
    venue = _venue_or_404(venue_id)
    return _carry_out(
        lambda: calendar_admin.plan_special_remove(venue, special_id),
        hidden={},
        back=_calendar_url(venue),
        title=_("休日開庁を取り消す"),
    )
