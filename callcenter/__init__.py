"""The call center (internal network): operators book, change and cancel for callers, incoming
calls pop up the caller's bookings, and every call is logged (R4). Twilio's webhooks come in
through ``telephony``, which trusts a request only by its signature."""

from __future__ import annotations

import threading

from madoguchi.appbase import ready_to_serve
from staffweb import create_staff_app


def create_app(overrides: dict | None = None):
    from madoguchi.extensions import csrf

    from .telephony import bp as telephony_bp
    from .views import bp

    settings = {"STAFF_HOME_ENDPOINT": "callcenter.console"}
    settings.update(overrides or {})
    app = create_staff_app(__name__, overrides=settings, blueprints=[bp, telephony_bp])
    # Twilio cannot hold a CSRF token: its signature authenticates these requests instead.
    csrf.exempt(telephony_bp)
    if not app.testing:
        # The FAX reader's digit classifier trains in a few seconds on first use: do it now, in the
        # background, rather than in the first upload's request.
        from madoguchi.fax import digits

        threading.Thread(target=digits.classifier, name="fax-digits-warm-up", daemon=True).start()
    ready_to_serve(app, *TEMPLATES)
    return app


# What this app renders: its pages, the staff sign-in pages and the messages operators' bookings send.
TEMPLATES = ("callcenter/", "staff/", "emails/", "sms/")
