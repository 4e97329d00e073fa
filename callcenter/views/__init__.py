"""Call-center console (R4): one blueprint, one module per capability."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, request
from flask_babel import gettext as _

from madoguchi import dates

bp = Blueprint("callcenter", __name__)

MAX_PERIOD_DAYS = 93


def period_asked(default_first: date) -> tuple[date, date]:
    """The ``first``..``last`` dates a report screen was asked for (ISO dates in the query), or
    ``default_first``..today; a reversed or over-long period gets a message and the default."""
    today = dates.today()
    try:
        first = date.fromisoformat(request.args.get("first", ""))
        last = date.fromisoformat(request.args.get("last", ""))
    except ValueError:
        return default_first, today
    if last < first or (last - first).days >= MAX_PERIOD_DAYS:
        flash(_("期間は開始日から終了日まで、93日以内で指定してください。"), "error")
        return default_first, today
    return first, last


from . import calls, console, fax, messages, recordings  # noqa: E402, F401  (routes register on import)
