"""The register of 漏えい等 incidents (R8.3; 002 第14, 004 別紙⑦第15条): what happened, how many
people, where, how, what was done, and when it was found and reported to the city and to the
個人情報保護委員会.

Free text may name people, so it is stored encrypted (the model's EncryptedField) and every read
by staff is audited by the views; audit entries carry the incident's id and the names of the
fields that changed, never their text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select

from . import audit, dates
from .audit import AuditTag
from .crypto import new_row_id
from .extensions import db
from .models import Incident, Staff

STATUSES = ("open", "closed")
TEXT_MAX = 4000
TEXT_FIELDS = ("content", "place", "circumstances", "actions")
FIELDS = (
    "occurred_on",
    "discovered_at",
    "affected_count",
    *TEXT_FIELDS,
    "reported_to_city_at",
    "reported_to_commission_at",
    "status",
)


class IncidentRejected(ValueError):
    """``reason`` names the field and problem for the message (no personal value)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class IncidentValues:
    content: str
    discovered_at: datetime  # aware
    occurred_on: date | None = None
    affected_count: int | None = None
    place: str | None = None
    circumstances: str | None = None
    actions: str | None = None
    reported_to_city_at: datetime | None = None
    reported_to_commission_at: datetime | None = None
    status: str = "open"


def local_to_utc(value: datetime | None) -> datetime | None:
    """A date and time typed on a form is Tokyo time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dates.TOKYO)
    return value.astimezone(UTC)


def _check(values: IncidentValues, now: datetime) -> None:
    if not (values.content or "").strip():
        raise IncidentRejected("content", "empty")
    for name in TEXT_FIELDS:
        if len(getattr(values, name) or "") > TEXT_MAX:
            raise IncidentRejected(name, "too_long")
    if values.status not in STATUSES:
        raise IncidentRejected("status", "unknown")
    if values.affected_count is not None and values.affected_count < 0:
        raise IncidentRejected("affected_count", "negative")
    discovered = values.discovered_at
    if discovered > now:
        raise IncidentRejected("discovered_at", "future")
    if values.occurred_on and values.occurred_on > dates.tokyo(discovered).date():
        raise IncidentRejected("occurred_on", "after_discovery")
    for name in ("reported_to_city_at", "reported_to_commission_at"):
        reported = getattr(values, name)
        if reported is not None and reported < discovered:
            raise IncidentRejected(name, "before_discovery")


def _write(incident: Incident, values: IncidentValues) -> list[str]:
    changed = []
    for name in FIELDS:
        value = getattr(values, name)
        if isinstance(value, str):
            value = value.strip() or None
        current = getattr(incident, name) if incident.created_at is not None else None
        if name.endswith("_at") and current is not None:
            current = dates.utc(current)
        if current != value:
            setattr(incident, name, value)
            changed.append(name)
    return changed


def create(
    values: IncidentValues, *, staff: Staff, remote_addr: str = "", now: datetime | None = None
) -> Incident:
    now = now or dates.now()
    _check(values, now)
    incident = Incident(id=new_row_id(), created_by=staff.id)
    _write(incident, values)
    incident.created_at = incident.updated_at = now
    db.session.add(incident)
    db.session.flush()
    audit.record(
        AuditTag.INCIDENT_CREATED,
        staff=staff,
        subject_type="incident",
        subject_id=incident.id,
        remote_addr=remote_addr,
        at=now,
        status=incident.status,
        affected_count=incident.affected_count,
    )
    return incident


def update(
    incident: Incident,
    values: IncidentValues,
    *,
    staff: Staff,
    remote_addr: str = "",
    now: datetime | None = None,
) -> list[str]:
    """Returns the names of the fields that changed (they, not the text, go into the audit entry)."""
    now = now or dates.now()
    _check(values, now)
    changed = _write(incident, values)
    if changed:
        incident.updated_at = now
        db.session.flush()
        audit.record(
            AuditTag.INCIDENT_UPDATED,
            staff=staff,
            subject_type="incident",
            subject_id=incident.id,
            remote_addr=remote_addr,
            at=now,
            fields=changed,
            status=incident.status,
        )
    return changed


def get(incident_id: str) -> Incident | None:
    return db.session.get(Incident, incident_id[:64])


def register() -> list[Incident]:
    """Every incident, the most recently discovered first."""
    return list(db.session.scalars(select(Incident).order_by(Incident.discovered_at.desc(), Incident.id)))
