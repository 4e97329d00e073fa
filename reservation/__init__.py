"""The residents' app (public). It registers no staff route."""

from __future__ import annotations

import time

from flask import Flask, g, render_template, request

from madoguchi import admission, dates
from madoguchi.appbase import begin_request_transaction, create_base_app, ready_to_serve
from madoguchi.extensions import begin_write_now, db

# Booking requests whose latency steers the waiting room's rate (when WAITING_ROOM_LATENCY_TARGET_MS is set).
_TIMED = frozenset({"reservation.hold", "reservation.book"})
# Requests a hold vouches for: a hold is only made behind the room (POST /hold), so the confirmation
# that turns it into a booking asks for no ticket — and does not pay for reading one in the request
# a burst is made of (R9.2). A visitor without a hold gets nothing from it (the booking service
# refuses) and is sent back to pages that are behind the room.
_VOUCHED_FOR_BY_A_HOLD = frozenset({"reservation.book"})


# The residents' forms are a few fields of text (the registration, the largest, is under 4 kB): any
# bigger request body is refused with 413 before it is read (R9.3).
RESIDENT_REQUEST_BYTES = 64 * 1024


def create_app(overrides: dict | None = None):
    from .views import bp

    settings = {"MAX_CONTENT_LENGTH": RESIDENT_REQUEST_BYTES, **(overrides or {})}
    app = create_base_app(__name__, overrides=settings, blueprints=[bp])
    _install_waiting_room(app)
    ready_to_serve(app, *TEMPLATES)
    return app


# What this app renders: its pages and the messages it sends.
TEMPLATES = ("reservation/", "emails/", "sms/")


def _install_waiting_room(app: Flask) -> None:
    """The thin hook of the waiting room (R9.2); the logic lives in ``madoguchi.admission``.

    Only this app's pages queue: the call center and the back office are other apps and never
    wait behind it. Static files are not gated (they are the same for everyone and cached).
    """
    app.extensions["madoguchi.admission"] = admission.settings_from(app.config)
    control = admission.LatencyControl()
    secret = app.config["SECRET_KEY"]
    order_keys: dict[str, bytes] = {}

    @app.before_request
    def _deferred_delivery():
        if not app.config.get("DELIVER_INLINE", True):
            g.deliver_messages = False  # left to `madoguchi outbox deliver` (docs/capacity.md)

    @app.before_request
    def _waiting_room():
        settings = app.extensions["madoguchi.admission"]  # read per request: tests and tools swap it
        if not settings.enabled:
            return None
        endpoint = request.endpoint or ""
        if not endpoint.startswith("reservation."):
            return None
        if endpoint in _TIMED and request.method == "POST":
            g.admission_started = time.perf_counter()
            if endpoint in _VOUCHED_FOR_BY_A_HOLD:
                return None
        now = dates.now()
        ticket = admission.read(request.cookies.get(admission.COOKIE), settings, secret, now)
        if ticket is None:
            # The one write of a visitor in the queue, taking a place, is committed at once: the
            # room's row (SQLite's write lock, PostgreSQL's row lock) is never held while the rest
            # of the request runs or the waiting page renders — every arrival needs it (R9.2).
            begin_write_now()
            ticket = admission.arrive(settings, now)
            db.session.commit()
            begin_request_transaction()  # the rest of the request, as it would have begun
        if not ticket.admitted:
            key = order_keys.get(settings.room) or order_keys.setdefault(
                settings.room, admission.order_key(secret, settings.room)
            )
            standing = admission.standing(ticket, settings, now, key)
            if not standing.admitted:
                g.admission_ticket = ticket
                g.deliver_messages = False  # no outbox query behind a waiting page
                return _waiting_page(settings, standing)
            ticket = admission.admitted_ticket(ticket, now)
        g.admission_ticket = ticket
        return None

    @app.after_request
    def _ticket_cookie(response):
        request_g = g._get_current_object()  # one look-up through Flask's proxy, not two
        if request_g.pop("admission_clear", False):
            response.delete_cookie(admission.COOKIE)
            return response
        ticket = request_g.get("admission_ticket")
        if ticket is not None and admission.needs_reissue(ticket, dates.now()):
            settings = app.extensions["madoguchi.admission"]
            # Reissued as the visitor uses it (at most once a minute): an admitted ticket lapses
            # only after idle time.
            response.set_cookie(
                admission.COOKIE,
                admission.sign(ticket, secret, dates.now()),
                max_age=int(settings.ticket_hours * 3600),
                httponly=True,
                secure=app.config["SESSION_COOKIE_SECURE"],
                samesite="Lax",
            )
        return response

    @app.teardown_request
    def _latency(_exc):
        # After the commit (teardown), so the rate change never waits on this request's own lock.
        started = g.pop("admission_started", None)
        settings = app.extensions["madoguchi.admission"]
        if started is None or settings.latency_target_ms <= 0:
            return
        control.observe(time.perf_counter() - started)
        try:
            admission.adjust_rate(settings, control, dates.now())
        except Exception:  # noqa: BLE001 - steering is best effort; the booking itself is done
            app.logger.exception("waiting room: the rate could not be adjusted")


def _waiting_page(settings: admission.Settings, standing: admission.Standing):
    # Back to the page asked for (GET), else to the start: a form posted while waiting is not replayed.
    target = request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # never a refresh to another site
    return render_template(
        "reservation/waiting.html",
        standing=standing,
        minutes=max(int(standing.wait_seconds // 60) + 1, 1),
        refresh=admission.refresh_seconds(standing),
        target=request.script_root + target,
        opens_at=settings.opens_at,
    )
