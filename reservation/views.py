"""Residents' pages (R3). Views are thin: validate a form, call one service, render."""

from __future__ import annotations

import functools
from datetime import date
from types import SimpleNamespace

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from madoguchi import admission, applicants, availability, booking, cache, dates, guidance, numbers, venues
from madoguchi.appbase import writes_late
from madoguchi.errors import (
    AlreadyBooked,
    HoldExpired,
    IdentityMismatch,
    LookupLocked,
    NotChangeable,
    SameSlot,
    SlotFull,
    SlotNotBookable,
)
from madoguchi.extensions import db, nothing_begun, rate_limited
from madoguchi.models import Applicant, Hold, Venue

from .forms import (
    ConfirmForm,
    ContactForm,
    HoldForm,
    IdentifyForm,
    PlainForm,
    RegisterForm,
    VenueChoiceForm,
    confirmed_hold_id,
)

bp = Blueprint("reservation", __name__)

RESIDENT = booking.Actor.resident()


def _lookup_limit() -> str:
    return current_app.config["RATELIMIT_LOOKUP"]


# ---- the resident in this browser ------------------------------------------------------------
def _sign_in(applicant: Applicant, flow: str) -> None:
    """Only the random row id goes into the (signed, not encrypted) cookie: never a personal value."""
    session.clear()
    session.permanent = True
    session["applicant_id"] = applicant.id
    session["flow"] = flow


def requires_applicant(view):
    """Load the identified applicant for this browser, or send the resident to the start."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        applicant_id = session.get("applicant_id")
        applicant = db.session.get(Applicant, applicant_id) if applicant_id else None
        if applicant is None:
            return _to_start()
        g.applicant = applicant
        return view(*args, **kwargs)

    return wrapper


def _identify(form: IdentifyForm):
    """The shared step of booking and managing: number + birth date. Returns the applicant or None
    (with the form's errors set)."""
    number = form.reservation_number.data
    try:
        applicant = applicants.identify(number, form.birth_date.parsed)
    except LookupLocked:
        form.reservation_number.errors.append(
            _(
                "入力の誤りが続いたため、この番号での確認を一時的に停止しています。30分ほどたってから、"
                "またはコールセンターへお問い合わせください。"
            )
        )
        return None
    except IdentityMismatch:
        locked = applicants.record_failed_lookup(number)
        message = _(
            "予約管理番号と生年月日の組み合わせが確認できませんでした。交付通知書の番号と生年月日をお確かめください。"
        )
        if locked:
            message = _(
                "入力の誤りが続いたため、この番号での確認を一時的に停止しました。30分ほどたってから、"
                "またはコールセンターへお問い合わせください。"
            )
        form.birth_date.errors.append(message)
        return None
    applicants.clear_failed_lookups(number)
    return applicant


def _to_start():
    flash(_("はじめに予約管理番号と生年月日を入力してください。"), "info")
    return redirect(url_for(".start"))


# ---- the waiting room's checks at identification (R9.2) --------------------------------------
def _wave_closed(form) -> bool:
    """A staggered wave: this number may not book yet. Puts the opening time on the form."""
    settings = current_app.extensions["madoguchi.admission"]
    opens = admission.wave_opening(settings, form.reservation_number.data, dates.now())
    if opens is None:
        return False
    local = opens.astimezone(dates.TOKYO)
    weekday = "月火水木金土日"[local.weekday()]
    form.reservation_number.errors.append(
        _(
            "この予約管理番号の方の予約受付は、{month}月{day}日（{weekday}）{hhmm}からです。その時刻以降にお越しください。"
        ).format(month=local.month, day=local.day, weekday=weekday, hhmm=f"{local:%H:%M}")
    )
    return True


def _pass_refused() -> bool:
    """An admitted ticket identifies a few residents at most (a family), so a ticket copied to
    other browsers cannot let a crowd past the queue. Refused: the visitor queues again."""
    settings = current_app.extensions["madoguchi.admission"]
    ticket = g.get("admission_ticket")
    if not settings.enabled or ticket is None or admission.claim_pass(ticket, settings, dates.now()):
        return False
    g.admission_ticket = None
    g.admission_clear = True
    flash(
        _("この受付では、これ以上の本人確認はできません。お手数ですが、もう一度順番をお待ちください。"),
        "error",
    )
    return True


# ---- pages ---------------------------------------------------------------------------------
@bp.get("/")
def index():
    return render_template("reservation/index.html", guidance=guidance, venues=venues.all_venues())


@bp.route("/start", methods=["GET", "POST"])
@rate_limited(_lookup_limit, methods=["POST"])
@writes_late
def start():
    form = IdentifyForm()
    if form.validate_on_submit() and not _wave_closed(form):
        number = form.reservation_number.data
        if applicants.find_by_number(number) is None and not current_app.config["ROSTER_REQUIRED"]:
            # Not on the roster: register with the minimal fields, keeping what was typed.
            register_form = RegisterForm(
                formdata=None,
                reservation_number=numbers.display(number),
                birth_date=request.form.get("birth_date", ""),
            )
            return render_template("reservation/register.html", form=register_form, first_time=True)
        applicant = _identify(form)
        if applicant is not None:
            if _pass_refused():
                return redirect(url_for(".index"))
            _sign_in(applicant, "book")
            if booking.live_booking_for(applicant) is not None:
                flash(_("すでに予約があります。予約の内容は次のとおりです。"), "info")
                return redirect(url_for(".manage_booking"))
            return redirect(url_for(".contact"))
    return render_template("reservation/start.html", form=form)


@bp.route("/register", methods=["GET", "POST"])
@rate_limited(_lookup_limit, methods=["POST"])
def register():
    form = RegisterForm()
    if request.method == "POST" and form.lookup_postal.data:
        form.postal_code.validate(form)
        filled = venues.postal_address(form.postal_code.data or "") if not form.postal_code.errors else None
        if filled:
            form.address.data = filled
            flash(_("郵便番号から住所の前半を入力しました。丁目・番地を続けて入力してください。"), "info")
        elif not form.postal_code.errors:
            form.postal_code.errors = [_("この郵便番号の住所が見つかりません。住所を直接入力してください。")]
        return render_template("reservation/register.html", form=form)
    if form.validate_on_submit() and not _wave_closed(form):
        number = form.reservation_number.data
        if applicants.find_by_number(number) is not None:
            form.reservation_number.errors.append(
                _("この予約管理番号は登録済みです。「予約する」から予約管理番号と生年月日で進んでください。")
            )
            return render_template("reservation/register.html", form=form)
        if _pass_refused():
            return redirect(url_for(".index"))
        applicant = applicants.register(
            number=number,
            name=form.name.data.strip(),
            name_kana=form.name_kana.data,
            birth_date=form.birth_date.parsed,
            sex=form.sex.data,
            postal_code=form.postal_code.data,
            address=form.address.data.strip(),
            email=form.email.data or None,
            phone=form.phone.data or None,
            source="web",
        )
        _sign_in(applicant, "book")
        return redirect(url_for(".venue"))
    return render_template("reservation/register.html", form=form)


@bp.route("/contact", methods=["GET", "POST"])
@writes_late
@requires_applicant
def contact():
    applicant = g.applicant
    form = ContactForm(obj=None if request.method == "POST" else applicant)
    if form.validate_on_submit():
        applicants.update_contact(applicant, email=form.email.data or None, phone=form.phone.data or None)
        return redirect(url_for(".venue"))
    return render_template("reservation/contact.html", form=form)


@bp.route("/venue", methods=["GET", "POST"])
@requires_applicant
def venue():
    applicant = g.applicant
    route = venues.route_address(applicant.address or "")
    if route.venue_code and applicant.venue is not None:
        return render_template("reservation/venue.html", venue=applicant.venue, form=None, route=route)
    choices = route.candidates or tuple(v.code for v in venues.all_venues())
    options = [venues.by_code(code) for code in choices]
    form = VenueChoiceForm()
    form.venue.choices = [SelectChoice(v.code, v.display_name) for v in options if v is not None]
    if form.validate_on_submit():
        applicants.assign_venue(applicant, form.venue.data)
        return redirect(url_for(".slots"))
    return render_template("reservation/venue.html", venue=None, form=form, route=route, options=options)


@bp.get("/slots")
@requires_applicant
def slots():
    applicant = g.applicant
    if applicant.venue is None:
        return redirect(url_for(".venue"))
    first = availability.parse_first_day(request.args.get("from"))
    previous, following = availability.neighbours(first)
    return render_template(
        "reservation/slots.html",
        venue=applicant.venue,
        # A resident sent back here with a message (a hold refused, a hold lapsed…) sees the places
        # as they are now; the messages stay for the page (Flask keeps them for the request).
        grid=_week_grid(applicant.venue, first, fresh=bool(get_flashed_messages())),
        previous=previous,
        following=following,
        live=booking.live_booking_for(applicant),
        # One form around the week (each free slot is a button naming it): its CSRF field is
        # rendered once, outside the shared grid.
        form=_hold_form_once(),
        hold_minutes=current_app.config["HOLD_MINUTES"],
    )


# Venues × first days × today (× locales): bounded anyway; a grid is ~20 kB.
GRID_CACHE = "calendar_grid"
GRID_CACHE_ENTRIES = 256


def _week_grid(venue: Venue, first: date, *, fresh: bool = False) -> Markup:
    """The week's slot grid as HTML, shared by every resident of the venue in this worker for up to
    ``CALENDAR_PLACES_SECONDS`` (R9.2; docs/capacity.md). Nothing personal is in it: the CSRF
    field, the resident's own booking and the flashes are rendered around it for each request.
    ``fresh``: read the places now (and share that grid from now on)."""

    def render() -> Markup:
        days = _grid_days(availability.week(venue, first, cached=True))
        html = render_template("reservation/_week.html", days=days)
        return Markup(html)  # noqa: S704 — the output of an autoescaped template, not raw input

    key = (venue.id, first, dates.today(), str(get_locale()))
    grids = cache.of_app(GRID_CACHE, GRID_CACHE_ENTRIES)
    if fresh:
        grids.forget(key)
    return grids.get(key, current_app.config["CALENDAR_PLACES_SECONDS"], render)


def _grid_days(shown: availability.Week) -> list[SimpleNamespace]:
    """The week's days with each slot's labels as plain text: (id, times, places left, what a screen
    reader says, the places label). Made here once per grid; in the template, the formatting was
    most of a grid's cost (R9.2)."""
    jp_date = current_app.jinja_env.filters["jp_date"]
    left_label, left_spoken, full_label = _("残り{n}"), _("残り{n}人"), _("満員")
    days = []
    for day, entries in shown.by_day.items():
        label = jp_date(day)
        slots = []
        for slot, left in entries:
            spoken = f"{label} {slot.times} {left_spoken.format(n=left)}"
            slots.append(
                (slot.id, slot.times, left, spoken, left_label.format(n=left) if left > 0 else full_label)
            )
        days.append(SimpleNamespace(iso=day.isoformat(), label=label, slots=slots, closed=shown.closed[day]))
    return days


def _hold_form_once() -> SimpleNamespace:
    form = HoldForm()
    # No field when CSRF protection is off (tests): render nothing, as the template would.
    return SimpleNamespace(csrf_token=form.csrf_token() if hasattr(form, "csrf_token") else "")


@bp.post("/hold")
@writes_late
@requires_applicant
def hold():
    form = HoldForm()
    if not form.validate_on_submit():
        flash(_("時間帯を選び直してください。"), "error")
        return redirect(url_for(".slots"))
    try:
        booking.hold(g.applicant, int(form.slot_id.data))
    except SlotFull:
        flash(_("選んだ時間帯はちょうど満員になりました。別の時間帯をお選びください。"), "error")
        return redirect(url_for(".slots"))
    except SameSlot:
        flash(_("その時間帯はすでに予約済みです。別の時間帯をお選びください。"), "error")
        return redirect(url_for(".slots"))
    except SlotNotBookable:
        flash(_("その時間帯は選べません。表示されている時間帯からお選びください。"), "error")
        return redirect(url_for(".slots"))
    return redirect(url_for(".confirm"))


@bp.get("/confirm")
@requires_applicant
def confirm():
    applicant = g.applicant
    held: Hold | None = booking.current_hold(applicant)
    if held is None or held.expires_at <= dates.now():
        flash(_("時間帯を選んでください。"), "info")
        return redirect(url_for(".slots"))
    form = ConfirmForm(hold_id=held.id)
    return render_template(
        "reservation/confirm.html",
        form=form,
        release_form=PlainForm(),
        held=held,
        slot=held.slot,
        venue=held.slot.venue,
        live=booking.live_booking_for(applicant),
        applicant=applicant,
    )


@bp.post("/confirm")
@writes_late
def book():
    """The request of a burst (R9.2): nothing is loaded but what the booking service reads in its
    own short write transaction; the applicant is the one this browser identified."""
    applicant_id = session.get("applicant_id")
    if not applicant_id:
        return _to_start()
    hold_id = confirmed_hold_id(request.form)
    if hold_id is None:
        flash(_("もう一度「この内容で予約する」を押してください。"), "error")
        return redirect(url_for(".confirm"))
    try:
        booking.confirm_hold(applicant_id, hold_id, actor=RESIDENT)
        # A first booking committed its own transaction; a change is committed here, not after
        # the response is built: SQLite's write lock ends with the booking's last statement (R9.2).
        if not nothing_begun():
            db.session.commit()
    except HoldExpired:
        flash(
            _(
                "仮押さえの時間（{minutes}分）が過ぎたため、時間帯が解除されました。もう一度お選びください。"
            ).format(minutes=current_app.config["HOLD_MINUTES"]),
            "error",
        )
        return redirect(url_for(".slots"))
    except (NotChangeable, SameSlot):
        flash(_("この予約は変更できません。コールセンターへお問い合わせください。"), "error")
        return redirect(url_for(".manage_booking"))
    # The done page shows the applicant's live booking: nothing is written into the session, so
    # its cookie is not signed again (R9.2).
    return redirect(url_for(".done"))


@bp.post("/release")
@requires_applicant
def release():
    if PlainForm().validate_on_submit():
        booking.release_hold(g.applicant)
    return redirect(url_for(".slots"))


@bp.get("/done")
@requires_applicant
def done():
    done_booking = booking.live_booking_for(g.applicant)
    if done_booking is None:
        return redirect(url_for(".manage_booking"))
    return render_template(
        "reservation/done.html",
        booking=done_booking,
        applicant=g.applicant,
        slot=done_booking.slot,
        venue=done_booking.slot.venue,
        guidance=guidance,
    )


# ---- change and cancel (R3.5) ----------------------------------------------------------------
@bp.route("/manage", methods=["GET", "POST"])
@rate_limited(_lookup_limit, methods=["POST"])
def manage():
    form = IdentifyForm()
    if form.validate_on_submit():
        applicant = _identify(form)
        if applicant is not None:
            if _pass_refused():
                return redirect(url_for(".index"))
            _sign_in(applicant, "manage")
            return redirect(url_for(".manage_booking"))
    return render_template("reservation/manage.html", form=form)


@bp.get("/manage/booking")
@requires_applicant
def manage_booking():
    live = booking.live_booking_for(g.applicant)
    return render_template(
        "reservation/manage_booking.html",
        booking=live,
        applicant=g.applicant,
        slot=live.slot if live else None,
        venue=live.slot.venue if live else None,
        cancel_form=PlainForm(),
        guidance=guidance,
    )


@bp.route("/manage/cancel", methods=["GET", "POST"])
@requires_applicant
def manage_cancel():
    live = booking.live_booking_for(g.applicant)
    if live is None:
        return redirect(url_for(".manage_booking"))
    form = PlainForm()
    if form.validate_on_submit():
        try:
            booking.cancel(live, actor=RESIDENT)
        except NotChangeable:
            flash(_("この予約は取り消せません。コールセンターへお問い合わせください。"), "error")
            return redirect(url_for(".manage_booking"))
        return render_template("reservation/cancelled.html")
    return render_template(
        "reservation/cancel.html", form=form, booking=live, slot=live.slot, venue=live.slot.venue
    )


@bp.post("/signout")
def signout():
    if PlainForm().validate_on_submit():
        session.clear()
        flash(_("終了しました。ご利用ありがとうございました。"), "info")
    return redirect(url_for(".index"))


@bp.errorhandler(AlreadyBooked)
def _already_booked(_exc):
    flash(_("すでに予約があります。変更する場合は「予約の確認・変更・取消」からお進みください。"), "error")
    return redirect(url_for(".manage_booking"))
