"""The administrators' dashboard: charts (server-side SVG, no script) with a table beside each,
aggregates only (no personal data)."""

from __future__ import annotations

from datetime import date

from flask import g, render_template, request

from madoguchi import audit, dashboard
from madoguchi.audit import AuditTag
from madoguchi.models import CALL_CATEGORY_LABELS
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from . import bp


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/dashboard")
@requires(Permission.DASHBOARD)
def dashboard_screen():
    first, last = dashboard.period(_day("first"), _day("last"))
    figures = dashboard.figures(first, last)
    audit.record(
        AuditTag.DASHBOARD_VIEWED,
        staff=g.staff,
        remote_addr=remote_addr(),
        first=first.isoformat(),
        last=last.isoformat(),
    )
    call_labels = {k.value: v for k, v in CALL_CATEGORY_LABELS.items()}
    call_labels["unlogged"] = "未入力"
    return render_template(
        "admin/dashboard.html",
        f=figures,
        call_labels=call_labels,
        bars=dashboard.bars,
        peak=dashboard.peak,
        share=dashboard.share,
        channels=dashboard.CHANNELS,
    )
