"""Search, the applicant card, and booking, changing and cancelling for a caller (R4.1).

Every action goes through ``madoguchi.booking`` with channel "phone" and the operator recorded;
every view of personal data is audited. Searches are POSTed so that no name or number is ever
part of a URL.
"""

from __future__ import annotations

import secrets

from flask import abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from madoguchi import audit, availability, booking, calls, dates, search
from madoguchi.appbase import reads_only
from madoguchi.audit import AuditTag
from madoguchi.errors import AlreadyBooked, NotChangeable, SameSlot, SlotFull, SlotNotBookable
from madoguchi.extensions import db
from madoguchi.models import Applicant, BookingEvent, Call, Channel, Venue
from madoguchi.permissions import Permission
from staffweb.guard import background, remote_addr, requires

from ..forms import CancelForm, SearchForm, SlotForm
from . import bp

SEARCH_ERRORS = {
    "check_digit": "予約管理番号の数字が正しくありません（確認用の数字が合いません）。もう一度お聞きください。",
    "digits": "数字は予約管理番号（12桁）か電話番号（10〜11桁）で入力してください。",
    "not_kana": "氏名はカタカナかひらがなで入力してください（漢字では検索できません）。",
    "empty": "予約管理番号、電話番号、または氏名のカナを入力してください。",
}
BOOKING_ERRORS = {
    SlotFull: "選んだ時間帯はちょうど満員になりました。別の時間帯を選んでください。",
    SlotNotBookable: "選んだ時間帯は予約できません（過ぎた時間か、別の会場です）。",
    AlreadyBooked: "この方にはすでに予約があります。変更してください。",
    NotChangeable: "この予約は変更・取消できない状態です（来場済みなど）。",
    SameSlot: "いまの予約と同じ時間帯です。",
}


def active_call() -> Call | None:
    """The call this operator took and has not logged yet (kept in the session)."""
    call_id = session.get("active_call")
    call = db.session.get(Call, call_id) if call_id else None
    if call is None or call.operator_id != g.staff.id or call.logged_at is not None:
        session.pop("active_call", None)
        return None
    return call


def load_applicant(applicant_id: str) -> Applicant:
    """Load an applicant for the console and audit the view (standard 4: every read is recorded)."""
    applicant = db.session.get(Applicant, applicant_id) if len(applicant_id) <= 32 else None
    audit.record(
        AuditTag.BOOKING_VIEWED,
        staff=g.staff,
        subject_type="applicant",
        subject_id=applicant_id[:64],
        result="ok" if applicant is not None else "not_found",
        remote_addr=remote_addr(),
        channel="callcenter",
    )
    if applicant is None:
        abort(404)
    return applicant


def audit_search(kind: str, results: int) -> None:
    audit.record(
        AuditTag.BOOKING_SEARCHED,
        staff=g.staff,
        subject_type="search",
        subject_id=kind,
        remote_addr=remote_addr(),
        kind=kind,
        results=results,
    )


@bp.get("/")
@requires(Permission.BOOKING_SEARCH)
def console():
    return render_template(
        "callcenter/console.html",
        form=SearchForm(),
        hits=None,
        call=active_call(),
        unlogged=calls.count_unlogged(g.staff.id),
    )


@bp.post("/search")
@requires(Permission.BOOKING_SEARCH)
@reads_only
def search_applicants():
    form = SearchForm()
    hits = None
    if form.validate_on_submit():
        birth = None
        try:
            if form.birth.data:
                birth = dates.parse_birth_date(form.birth.data)
            query = search.interpret(form.q.data, birth)
        except dates.InvalidDate:
            form.birth.errors.append(_("生年月日が読み取れません。例: 1980-04-01、昭和55年4月1日"))
        except search.UnclearQuery as unclear:
            form.q.errors.append(_(SEARCH_ERRORS[unclear.reason]))
        else:
            hits = search.find(query)
            audit_search(query.kind.value, len(hits))
    return render_template(
        "callcenter/console.html",
        form=form,
        hits=hits,
        call=active_call(),
        unlogged=calls.count_unlogged(g.staff.id),
    )


@bp.get("/applicants/<applicant_id>")
@requires(Permission.BOOKING_SEARCH)
def applicant_card(applicant_id: str):
    applicant = load_applicant(applicant_id)
    live = booking.live_booking_for(applicant)
    history = (
        db.session.query(BookingEvent)
        .join(BookingEvent.booking)
        .filter_by(applicant_id=applicant.id)
        .order_by(BookingEvent.at.desc())
        .limit(20)
        .all()
    )
    return render_template(
        "callcenter/applicant.html",
        applicant=applicant,
        live=live,
        history=history,
        cancel_form=CancelForm(),
        call=active_call(),
    )


@bp.get("/applicants/<applicant_id>/slots")
@requires(Permission.BOOKING_WRITE)
def choose_slot(applicant_id: str):
    applicant = load_applicant(applicant_id)
    if applicant.venue is None:
        flash(_("この方の住所から会場が決まっていません。住所を確認してください。"), "error")
        return redirect(url_for(".applicant_card", applicant_id=applicant.id))
    shown = availability.week(applicant.venue, availability.parse_first_day(request.args.get("from")))
    return render_template(
        "callcenter/slots.html",
        applicant=applicant,
        live=booking.live_booking_for(applicant),
        week=shown,
        form=SlotForm(request_key=secrets.token_hex(16)),
        call=active_call(),
    )


@bp.get("/venues/<int:venue_id>/places")
@requires(Permission.BOOKING_SEARCH)
@background
def places(venue_id: int):
    """Places left for a week, refreshed by the slot picker every few seconds (no personal data)."""
    venue = db.session.get(Venue, venue_id)
    if venue is None:
        abort(404)
    shown = availability.week(venue, availability.parse_first_day(request.args.get("from")))
    return jsonify({str(slot_id): left for slot_id, left in shown.places().items()})


def _actor() -> booking.Actor:
    return booking.Actor(Channel.PHONE, staff_id=g.staff.id)


def _after_booking(applicant: Applicant, made, action: str):
    audit.record(
        AuditTag.BOOKING_MADE_BY_STAFF,
        staff=g.staff,
        subject_type="booking",
        subject_id=made.id,
        remote_addr=remote_addr(),
        action=action,
        channel=Channel.PHONE.value,
    )
    call = active_call()
    if call is not None and call.booking_id is None:
        # The call is about this booking: the call log offers it first.
        call.applicant_id, call.booking_id = applicant.id, made.id
    return redirect(url_for(".applicant_card", applicant_id=applicant.id))


@bp.post("/applicants/<applicant_id>/book")
@requires(Permission.BOOKING_WRITE)
def book(applicant_id: str):
    applicant = load_applicant(applicant_id)
    form = SlotForm()
    if not form.validate_on_submit():
        flash(_("日時を選んでください。"), "error")
        return redirect(url_for(".choose_slot", applicant_id=applicant.id))
    live = booking.live_booking_for(applicant)
    try:
        if live is None:
            made = booking.book(
                applicant, form.slot_id.data, actor=_actor(), request_key=form.request_key.data or None
            )
            message, action = _("予約しました。予約内容を読み上げて確認してください。"), "booked"
        else:
            made = booking.change(
                live, form.slot_id.data, actor=_actor(), request_key=form.request_key.data or None
            )
            message, action = _("予約を変更しました。新しい日時を読み上げて確認してください。"), "changed"
    except tuple(BOOKING_ERRORS) as refused:
        flash(_(BOOKING_ERRORS[type(refused)]), "error")
        return redirect(url_for(".choose_slot", applicant_id=applicant.id))
    flash(message, "success")
    return _after_booking(applicant, made, action)


@bp.post("/applicants/<applicant_id>/cancel")
@requires(Permission.BOOKING_WRITE)
def cancel(applicant_id: str):
    applicant = load_applicant(applicant_id)
    live = booking.live_booking_for(applicant)
    if not CancelForm().validate_on_submit() or live is None:
        flash(_("取り消す予約がありません。"), "error")
        return redirect(url_for(".applicant_card", applicant_id=applicant.id))
    try:
        booking.cancel(live, actor=_actor())
    except NotChangeable:
        flash(_(BOOKING_ERRORS[NotChangeable]), "error")
        return redirect(url_for(".applicant_card", applicant_id=applicant.id))
    flash(_("予約を取り消しました。"), "success")
    return _after_booking(applicant, live, "cancelled")
