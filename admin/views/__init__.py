"""Back office (R6, R7): one blueprint, one module per capability."""

from __future__ import annotations

from flask import Blueprint, render_template

from madoguchi import venues as venue_service
from madoguchi.permissions import Permission
from staffweb.guard import requires

bp = Blueprint("admin", __name__)


@bp.get("/")
@requires(Permission.SIGNED_IN)
def home():
    return render_template("admin/home.html", venues=venue_service.all_venues())


from . import (  # noqa: E402, F401  (routes register on import)
    audit_log,
    dashboard,
    deletions,
    exports,
    incidents,
    ledgers,
    logistics,
    registry,
    roster,
    venue_settings,
    venues,
)
