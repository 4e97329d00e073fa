"""Roles and permissions (R7.2). A staff view declares the one Permission it needs; nothing else
decides access. Deny by default: a view that declares nothing is refused (see staffweb.guard)."""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    BOOKING_READ = "booking:read"  # see a booking and its applicant's minimal fields
    BOOKING_SEARCH = "booking:search"  # search by number, phone, kana, birth date
    BOOKING_WRITE = "booking:write"  # book, change, cancel for a resident
    VENUE_LIST = "venue:list"  # a venue's list of the day (scoped to the staff's venue)
    VENUE_CHECKIN = "venue:checkin"  # record arrived / handed over / no-show / postponed, and undo
    LEDGER_PRINT = "ledger:print"  # 各会場送付台帳 and re-issue notices (PDFs with personal data)
    LOGISTICS = "logistics:count"  # record and correct notice and card counts; see the balances
    # The export ledger (R7.5) and deletion records (R8.1). Approval is by another person: the
    # service refuses self-approval whatever roles a person holds.
    EXPORT_LEDGER = "export:ledger"  # see and print the ledger (no personal value in it)
    EXPORT_REQUEST = "export:request"  # ask to take personal data out; produce the approved file
    EXPORT_APPROVE = "export:approve"  # approve or reject someone else's request
    DELETION_REPORT = "deletion:report"  # the deletion records and their printed report
    FAX_INTAKE = "fax:intake"
    CALL_STATS = "call:stats"  # all calls, the call log statistics (supervisors)
    RECORDINGS = "recordings:manage"  # list, play (audited), keep longer, the provision ledger
    MESSAGES = "messages:manage"  # SMS and e-mail that could not be delivered: see and retry
    STAFF_READ = "staff:read"  # the staff registry
    STAFF_MANAGE = "staff:manage"
    AUDIT_READ = "audit:read"  # the access log and its analysis
    VENUE_MANAGE = "venue:manage"  # venues, slot templates, capacities, closings, 休日開庁 (R3.3, R6)
    ROSTER_IMPORT = "roster:import"  # load the city's applicant list; the report shows no values
    INCIDENT_READ = "incident:read"  # the 漏えい等 register (R8.3); its free text may name people
    INCIDENT_MANAGE = "incident:manage"  # record and update incidents
    DASHBOARD = "dashboard:read"  # aggregates only: bookings, fill and no-show rates, call categories
    SIGNED_IN = "signed_in"  # any signed-in staff member (home page, own password)


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    FAX_INTAKE = "fax_intake"
    VENUE_STAFF = "venue_staff"
    ADMINISTRATOR = "administrator"
    AUDITOR = "auditor"
    LOGISTICS = "logistics"


ROLE_LABELS = {
    Role.OPERATOR: "オペレーター",
    Role.SUPERVISOR: "スーパーバイザー",
    Role.FAX_INTAKE: "FAX受付担当",
    Role.VENUE_STAFF: "会場担当",
    Role.ADMINISTRATOR: "システム管理者",
    Role.AUDITOR: "監査担当",
    Role.LOGISTICS: "物流・事務センター担当",
}

P = Permission
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset({P.SIGNED_IN, P.BOOKING_READ, P.BOOKING_SEARCH, P.BOOKING_WRITE}),
    Role.SUPERVISOR: frozenset(
        {
            P.SIGNED_IN,
            P.BOOKING_READ,
            P.BOOKING_SEARCH,
            P.BOOKING_WRITE,
            P.CALL_STATS,
            P.MESSAGES,
            P.RECORDINGS,
        }
    ),
    Role.FAX_INTAKE: frozenset(
        {P.SIGNED_IN, P.FAX_INTAKE, P.BOOKING_READ, P.BOOKING_SEARCH, P.BOOKING_WRITE}
    ),
    # Venue staff see only their own venue's bookings: enforced where a booking is loaded.
    Role.VENUE_STAFF: frozenset({P.SIGNED_IN, P.VENUE_LIST, P.VENUE_CHECKIN, P.BOOKING_READ, P.LEDGER_PRINT}),
    # The logistics desk ships cards to every venue and prints their ledgers and notices (R6.2–R6.4).
    Role.LOGISTICS: frozenset({P.SIGNED_IN, P.VENUE_LIST, P.LEDGER_PRINT, P.LOGISTICS}),
    # Administrators manage accounts and settings; they see no personal data through that role.
    # The roster import writes personal values but shows none back (row numbers and reasons only),
    # so it stays with the administrators who run the system; see docs/administration.md.
    Role.ADMINISTRATOR: frozenset(
        {
            P.SIGNED_IN,
            P.STAFF_READ,
            P.STAFF_MANAGE,
            P.VENUE_MANAGE,
            P.ROSTER_IMPORT,
            P.INCIDENT_READ,
            P.INCIDENT_MANAGE,
            P.DASHBOARD,
        }
    ),
    # Auditors read logs and reports; no personal data unless also given another role. The incident
    # register is a report they check (R8.3), and its reads are logged like any other.
    Role.AUDITOR: frozenset({P.SIGNED_IN, P.AUDIT_READ, P.STAFF_READ, P.INCIDENT_READ, P.DASHBOARD}),
}

# Compliance grants, kept apart so the role table above stays readable: supervisors ask for exports
# (they see bookings anyway) and may approve a colleague's; administrators approve, never producing
# a file of their own request; auditors and administrators read the ledger and the deletion records.
_COMPLIANCE_GRANTS = {
    Role.SUPERVISOR: frozenset({P.EXPORT_LEDGER, P.EXPORT_REQUEST, P.EXPORT_APPROVE}),
    Role.ADMINISTRATOR: frozenset({P.EXPORT_LEDGER, P.EXPORT_APPROVE, P.DELETION_REPORT}),
    Role.AUDITOR: frozenset({P.EXPORT_LEDGER, P.DELETION_REPORT}),
}
GRANTS = {role: granted | _COMPLIANCE_GRANTS.get(role, frozenset()) for role, granted in GRANTS.items()}

# Roles whose holder must be tied to one venue.
VENUE_SCOPED = frozenset({Role.VENUE_STAFF})


def permissions_of(roles) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= GRANTS.get(Role(role), frozenset())
    return frozenset(granted)
