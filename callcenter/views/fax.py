"""FAX intake (R5): the queue, uploads, each item's image beside what was read, confirming (which
books through the one booking service), the reply sheet, and printing the sheets residents fill in.
Only FAX intake staff see the images (FAX_INTAKE), and every look is audited (R5.3)."""

from __future__ import annotations

from datetime import date, time, timedelta

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from madoguchi import audit, availability, booking, dates, guidance, numbers
from madoguchi.audit import AuditTag
from madoguchi.extensions import db
from madoguchi.fax import queue, sheet
from madoguchi.models import Applicant, Booking, FaxItem, Venue
from madoguchi.permissions import Permission
from madoguchi.printing.fax_reply import FaxReply, fax_reply
from staffweb.guard import remote_addr, requires

from ..forms import PlainForm
from . import bp

REFUSALS = {
    "handled": "この用紙はすでに処理されています。",
    "number": "予約管理番号が正しくありません（12桁・確認用の数字）。画像を見て直してください。",
    "unknown_number": "この予約管理番号の交付対象者が見つかりません。",
    "no_venue": "この方の会場が決まっていません。住所を確認してください。",
    "no_wishes": "希望日時を1つ以上選んでください。",
    "not_changeable": "この方の予約は変更できない状態です（来場済みなど）。",
    "reply_method": "通知の方法を選んでください。",
    "not_handled": "予約を確定してから通知を記録してください。",
    "image_deleted": "画像は保存期間が終わり削除されました。",
    "no_image": "画像を表示できません。",
}
BANDS = (
    sheet.TimeBand("午前", time(9, 0), time(12, 0)),
    sheet.TimeBand("午後", time(13, 0), time(17, 0)),
)
SHEET_DAYS = 14


@bp.app_template_filter("iso_date")
def iso_date(value: str) -> date:
    return date.fromisoformat(value)


def _item(item_id: str) -> FaxItem:
    item = db.session.get(FaxItem, item_id) if len(item_id) <= 32 else None
    if item is None:
        abort(404)
    return item


def _audit_view(item: FaxItem, what: str) -> None:
    audit.record(
        AuditTag.FAX_VIEWED,
        staff=g.staff,
        subject_type="fax_item",
        subject_id=item.id,
        remote_addr=remote_addr(),
        what=what,
    )


@bp.get("/fax")
@requires(Permission.FAX_INTAKE)
def fax_queue():
    return render_template(
        "callcenter/fax_queue.html", items=queue.open_items(), handled=queue.recent_items(), form=PlainForm()
    )


@bp.post("/fax/upload")
@requires(Permission.FAX_INTAKE)
def fax_upload():
    if not PlainForm().validate_on_submit():
        abort(400)
    upload = request.files.get("fax")
    data = upload.read(queue.MAX_FILE_BYTES + 1) if upload else b""
    if not data:
        flash(_("FAXの画像ファイル（TIFF・PDF・PNG）を選んでください。"), "error")
        return redirect(url_for(".fax_queue"))
    if len(data) > queue.MAX_FILE_BYTES:
        flash(_("ファイルが大きすぎます（20MBまで）。"), "error")
        return redirect(url_for(".fax_queue"))
    document = queue.receive(data, source="upload", staff=g.staff)
    audit.record(
        AuditTag.FAX_RECEIVED,
        staff=g.staff,
        subject_type="fax_document",
        subject_id=document.id,
        remote_addr=remote_addr(),
        pages=document.pages,
    )
    flash(_("{n}ページを受け付けました。").format(n=document.pages), "success")
    return redirect(url_for(".fax_queue"))


def _wish_value(mark: dict) -> str:
    return f"{mark['day']}|{mark['start']}|{mark['end']}"


@bp.get("/fax/items/<item_id>")
@requires(Permission.FAX_INTAKE)
def fax_item(item_id: str):
    item = _item(item_id)
    _audit_view(item, "reading")
    read = queue.reading(item)
    review = set((item.review or "").split(","))
    return render_template(
        "callcenter/fax_item.html",
        item=item,
        read=read,
        review=review,
        wish_value=_wish_value,
        form=PlainForm(),
        booking_shown=item.booking,
        refusals=REFUSALS,
    )


@bp.get("/fax/items/<item_id>/image")
@requires(Permission.FAX_INTAKE)
def fax_image(item_id: str):
    item = _item(item_id)
    try:
        png = queue.page_png(item)
    except queue.FaxRefused as refused:
        return Response(_(REFUSALS[refused.reason]), status=404, mimetype="text/plain")
    _audit_view(item, "image")
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _wishes_from_form() -> list[queue.Preference]:
    wishes = []
    for value in request.form.getlist("wish"):
        try:
            day, start, end = value.split("|")
            wishes.append(
                queue.Preference(date.fromisoformat(day), time.fromisoformat(start), time.fromisoformat(end))
            )
        except ValueError:
            continue
    return sorted(set(wishes), key=lambda w: (w.day, w.start))


@bp.post("/fax/items/<item_id>/confirm")
@requires(Permission.FAX_INTAKE)
def fax_confirm(item_id: str):
    item = _item(item_id)
    if not PlainForm().validate_on_submit():
        abort(400)
    phone = "".join(ch for ch in request.form.get("phone", "") if ch.isdigit())[:11] or None
    try:
        queue.confirm(
            item,
            number=request.form.get("number", ""),
            wishes=_wishes_from_form(),
            phone=phone,
            staff=g.staff,
        )
    except queue.FaxRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
        return redirect(url_for(".fax_item", item_id=item.id))
    audit.record(
        AuditTag.FAX_CONFIRMED,
        staff=g.staff,
        subject_type="fax_item",
        subject_id=item.id,
        remote_addr=remote_addr(),
        result=item.status,
    )
    if item.status == "confirmed":
        flash(_("予約しました。受付結果を申込者に知らせてください。"), "success")
    else:
        flash(
            _("希望の日時はいずれも満員でした。受付結果（予約できなかったこと）を知らせてください。"), "error"
        )
    return redirect(url_for(".fax_item", item_id=item.id))


@bp.post("/fax/items/<item_id>/reject")
@requires(Permission.FAX_INTAKE)
def fax_reject(item_id: str):
    item = _item(item_id)
    if not PlainForm().validate_on_submit():
        abort(400)
    try:
        queue.reject(item, staff=g.staff)
    except queue.FaxRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
    else:
        audit.record(
            AuditTag.FAX_REJECTED,
            staff=g.staff,
            subject_type="fax_item",
            subject_id=item.id,
            remote_addr=remote_addr(),
        )
        flash(_("キューから外しました（画像は保存期間のあと削除されます）。"), "success")
    return redirect(url_for(".fax_queue"))


@bp.post("/fax/items/<item_id>/replied")
@requires(Permission.FAX_INTAKE)
def fax_replied(item_id: str):
    item = _item(item_id)
    if not PlainForm().validate_on_submit():
        abort(400)
    try:
        queue.record_reply(item, method=request.form.get("method", ""))
    except queue.FaxRefused as refused:
        flash(_(REFUSALS[refused.reason]), "error")
    else:
        flash(_("通知を記録しました。"), "success")
    return redirect(url_for(".fax_item", item_id=item.id))


@bp.get("/fax/items/<item_id>/reply.pdf")
@requires(Permission.FAX_INTAKE)
def fax_reply_sheet(item_id: str):
    """The reply to fax back (R5.4)."""
    item = _item(item_id)
    if item.status not in ("confirmed", "no_slot") or item.applicant is None:
        abort(404)
    config = current_app.config
    made: Booking | None = item.booking
    pdf = fax_reply(
        FaxReply(
            number=item.applicant.reservation_number,
            name=item.applicant.name or "",
            booked_at=dates.tokyo(made.slot.starts_at) if made is not None else None,
            venue=made.slot.venue.display_name if made is not None else "",
            venue_address=made.slot.venue.address if made is not None else "",
            bring=tuple(str(x) for x in guidance.ALWAYS),
            call_center_phone=config["CALL_CENTER_PHONE"],
            call_center_hours=config["CALL_CENTER_HOURS"],
            city_name=config["CITY_NAME"],
            residents_url=config["RESIDENTS_URL"],
        )
    )
    _audit_view(item, "reply_sheet")
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = "inline"
    return response


# ---- printing the sheets residents fill in (R5.1) --------------------------------------------------
def _sheet_for(applicant: Applicant, days: list[date]) -> sheet.FaxSheet:
    config = current_app.config
    return sheet.FaxSheet(
        number=applicant.reservation_number,
        venue_name=applicant.venue.display_name,
        dates=days,
        bands=BANDS,
        fax_number=config["FAX_NUMBER"],
        call_center_phone=config["CALL_CENTER_PHONE"],
        city_name=config["CITY_NAME"],
        applicant_name=applicant.name or "",
        applicant_address=applicant.address or "",
    )


def _open_days(venue: Venue, first: date) -> list[date]:
    week = availability.week(venue, first)
    days = [day for day, entries in week.by_day.items() if entries]
    following = week.following
    while len(days) < SHEET_DAYS and following is not None:
        week = availability.week(venue, following)
        days += [day for day, entries in week.by_day.items() if entries]
        following = week.following
    return days[:SHEET_DAYS]


@bp.get("/fax/sheets")
@requires(Permission.FAX_INTAKE)
def fax_sheets_form():
    venues = db.session.scalars(select(Venue).order_by(Venue.id)).all()
    return render_template("callcenter/fax_sheets.html", venues=venues, form=PlainForm())


@bp.post("/fax/sheets")
@requires(Permission.FAX_INTAKE)
def fax_sheets_print():
    """One applicant (by number) or every applicant of a venue without a live booking, as one PDF."""
    if not PlainForm().validate_on_submit():
        abort(400)
    number = request.form.get("number", "").strip()
    if number:
        if not numbers.is_valid(number):
            flash(_(REFUSALS["number"]), "error")
            return redirect(url_for(".fax_sheets_form"))
        people = [a for a in [queue.applicant_of(number)] if a is not None and a.venue is not None]
    else:
        venue = db.session.get(Venue, request.form.get("venue_id", type=int) or 0)
        if venue is None:
            abort(404)
        live = select(Booking.applicant_id).where(Booking.status.in_([s.value for s in booking.LIVE]))
        people = db.session.scalars(
            select(Applicant).where(Applicant.venue_id == venue.id, Applicant.id.notin_(live)).limit(500)
        ).all()
    if not people:
        flash(_("印刷する対象者がいません。"), "error")
        return redirect(url_for(".fax_sheets_form"))
    first = dates.today() + timedelta(days=7)  # time for the post and the reply
    days = {
        venue_id: _open_days(db.session.get(Venue, venue_id), first)
        for venue_id in {p.venue_id for p in people}
    }
    printable = [p for p in people if days[p.venue_id]]
    if not printable:
        flash(_("この先に予約できる日がないため、用紙を作れません。"), "error")
        return redirect(url_for(".fax_sheets_form"))
    pdf = sheet.fax_sheets([_sheet_for(p, days[p.venue_id]) for p in printable])
    audit.record(
        AuditTag.FAX_SHEETS_PRINTED,
        staff=g.staff,
        subject_type="fax_sheets",
        remote_addr=remote_addr(),
        count=len(printable),
    )
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = "inline"
    return response
