"""`madoguchi …` commands: keys, demo data, slots, holds, outbox, plus Flask-Migrate's `db`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup

from . import audit, audit_report, auth, booking, dates, demo, keys, notify, permissions, venues
from .appbase import create_base_app
from .crypto import KeyError_, KeyRing
from .extensions import begin_write, db


def create_cli_app():
    # The CLI starts without keys so that `madoguchi keys init` can create them.
    return create_base_app("madoguchi", require_keys=False)


@click.group(cls=FlaskGroup, create_app=create_cli_app, add_default_commands=True)
def main():
    """Madoguchi administration commands."""


def _key_file() -> Path:
    path = current_app.config.get("MADOGUCHI_KEY_FILE")
    if not path:
        raise click.ClickException("MADOGUCHI_KEY_FILE is not set; key commands manage a key file")
    return Path(path)


@main.group("keys")
def keys_group():
    """Create, rotate and retire the field-encryption keys (R2.4, R2.5)."""


@keys_group.command("init")
@click.option("--if-missing", is_flag=True, help="Do nothing when the key file already exists.")
def keys_init(if_missing: bool):
    path = _key_file()
    if path.exists():
        if if_missing:
            return
        raise click.ClickException(f"{path} exists; use `madoguchi keys rotate` to add a key")
    KeyRing.generate().save(path)
    click.echo(
        f"created {path} (mode 600). Back it up apart from the database: without it no "
        "personal value can ever be read again."
    )


@keys_group.command("rotate")
@click.option("--batch-size", default=500, show_default=True)
def keys_rotate(batch_size: int):
    """Add a new key, make it active, and re-encrypt every row under it in batches."""
    path = _key_file()
    ring = KeyRing.from_json(path.read_text())
    new_id = ring.add_key()
    ring.save(path)
    current_app.extensions["madoguchi.keys"].reload()
    click.echo(f"active key is now {new_id}; re-encrypting…")
    count = keys.reencrypt(batch_size, progress=lambda table, n: click.echo(f"  {table}: {n}"))
    click.echo(f"re-encrypted {count} rows. Old keys stay in the file until `madoguchi keys retire`.")


@keys_group.command("reencrypt")
@click.option("--batch-size", default=500, show_default=True)
def keys_reencrypt(batch_size: int):
    """Finish an interrupted rotation: re-encrypt rows not yet under the active key."""
    click.echo(f"re-encrypted {keys.reencrypt(batch_size)} rows")


@keys_group.command("status")
def keys_status():
    ring = current_app.extensions["madoguchi.keys"].reload()
    for key_id in ring.data_keys:
        marker = "active" if key_id == ring.active else "      "
        click.echo(f"{marker} {key_id}: {keys.usage().get(key_id, 0)} values")


@keys_group.command("retire")
@click.argument("key_id")
def keys_retire(key_id: str):
    """Remove an old key once no stored value uses it."""
    in_use = keys.usage().get(key_id, 0)
    if in_use:
        raise click.ClickException(
            f"{in_use} values still use {key_id}; run `madoguchi keys reencrypt` first"
        )
    path = _key_file()
    ring = KeyRing.from_json(path.read_text())
    try:
        ring.retire(key_id)
    except KeyError_ as refused:
        raise click.ClickException(str(refused)) from None
    ring.save(path)
    click.echo(f"retired {key_id}")


@main.command("demo")
@click.option("--if-empty", is_flag=True, help="Load only when there are no venues yet.")
@click.option("--applicants", default=300, show_default=True)
@click.option("--weeks", default=4, show_default=True)
def demo_command(if_empty: bool, applicants: int, weeks: int):
    """Load the three Koto venues, slots and a roster of fictitious applicants."""
    begin_write()
    if if_empty and venues.all_venues():
        click.echo("demo data already loaded")
        return
    samples = demo.load(applicants=applicants, weeks=weeks)
    db.session.commit()
    click.echo(
        f"loaded {applicants} fictitious applicants, {len(venues.all_venues())} venues, slots for {weeks} weeks"
    )
    click.echo("try these (fictitious) 予約管理番号 + 生年月日:")
    for number, birth in samples:
        click.echo(f"  {number}  {birth.isoformat()}")
    click.echo(
        f"staff accounts ({', '.join(s[0] for s in demo.DEMO_STAFF)}), demo password "
        f"{demo.DEMO_STAFF_PASSWORD!r}; each enrols TOTP at first sign-in"
    )


@main.group("slots")
def slots_group():
    """Slot calendars."""


@slots_group.command("generate")
@click.option("--weeks", default=4, show_default=True)
def slots_generate(weeks: int):
    begin_write()
    today = dates.today()
    created = sum(
        venues.generate_slots(v, today, today + timedelta(weeks=weeks)) for v in venues.all_venues()
    )
    db.session.commit()
    click.echo(f"created {created} slots")


@main.group("holds")
def holds_group():
    """Holds (仮押さえ)."""


@holds_group.command("sweep")
def holds_sweep():
    """Give back the places of lapsed holds (safe to run from a scheduler every minute)."""
    begin_write()
    released = booking.sweep_expired_holds()
    db.session.commit()
    click.echo(f"released {released} lapsed holds")


@main.group("outbox")
def outbox_group():
    """Messages to residents."""


@outbox_group.command("deliver")
def outbox_deliver():
    """Send due e-mails and SMS, retrying failed ones (safe to run from a scheduler).

    Exits 1 when a message failed or was given up in this run, so the scheduler reports it."""
    result = notify.deliver(limit=1000)  # commits each message as it goes
    _report_delivery(result)
    if result.failed or result.undeliverable:
        sys.exit(1)


def _report_delivery(result: notify.Delivery) -> None:
    # Counts only: recipients and bodies stay in the database and the outbox folders.
    click.echo(
        f"sent {result.sent}, failed {result.failed} (will retry), undeliverable {result.undeliverable}"
    )
    counts = notify.status_counts()
    click.echo(
        f"waiting: {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed; "
        f"{counts.get('undeliverable', 0)} undeliverable in all (staff can retry them)"
    )


@main.group("reminders")
def reminders_group():
    """Reminders the day before a booking."""


@reminders_group.command("send")
@click.option(
    "--day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The booking day (Asia/Tokyo) to remind; default: tomorrow.",
)
def reminders_send(day):
    """Queue a reminder (e-mail and/or SMS) for every booking on the day, then deliver.

    Running it twice sends nothing twice; a booking moved since its reminder is reminded again."""
    begin_write()
    target = day.date() if day else dates.today() + timedelta(days=1)
    bookings, messages = notify.queue_reminders(target)
    db.session.commit()
    click.echo(f"{target.isoformat()}: queued {messages} reminders for {bookings} bookings")
    result = notify.deliver(limit=max(1000, messages))
    _report_delivery(result)
    if result.failed or result.undeliverable:
        sys.exit(1)


@main.group("staff")
def staff_group():
    """Staff accounts (R7.1, R7.3)."""


@staff_group.command("create")
@click.option("--login-id", required=True)
@click.option("--name", required=True)
@click.option("--affiliation", required=True)
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in permissions.Role])
)
@click.option("--venue", "venue_code", default=None, help="Venue code, for venue staff.")
@click.option("--start", "duty_start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--end", "duty_end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.password_option(prompt="Initial password", confirmation_prompt=True)
def staff_create(login_id, name, affiliation, roles, venue_code, duty_start, duty_end, password):
    """Register a staff member (the first administrator is created this way). They enrol TOTP at
    their first sign-in."""
    begin_write()
    problems = auth.password_problems(password, user_inputs=(login_id, name))
    if problems:
        raise click.ClickException(" ".join(problems))
    venue = venues.by_code(venue_code) if venue_code else None
    if venue_code and venue is None:
        raise click.ClickException(f"unknown venue {venue_code}")
    if set(roles) & {r.value for r in permissions.VENUE_SCOPED} and venue is None:
        raise click.ClickException("venue staff need --venue")
    auth.create_staff(
        login_id=login_id,
        name=name,
        affiliation=affiliation,
        roles=roles,
        venue_id=venue.id if venue else None,
        duty_start=duty_start.date(),
        duty_end=duty_end.date(),
        password=password,
        remote_addr="cli",
    )
    db.session.commit()
    click.echo(f"created {login_id}; TOTP is enrolled at the first sign-in")


@main.group("audit")
def audit_group():
    """The access and operation log (R7.4)."""


@audit_group.command("verify")
def audit_verify():
    """Check the hash chain; exit 1 and name the first bad entry if it is broken."""
    result = audit.verify()
    if result.ok:
        # Keep this line outside the database (the scheduler's mail): a chain cut back to an earlier
        # head is only detectable against a copy of the head kept elsewhere.
        click.echo(
            f"audit log intact: {result.checked} entries verified; head {result.last_id} {result.last_hash}"
        )
        return
    click.echo(
        f"AUDIT LOG BROKEN at entry {result.first_bad_id}: {result.reason} "
        f"({result.checked} entries verified before it)",
        err=True,
    )
    sys.exit(1)


@audit_group.command("report")
@click.option("--days", default=1, show_default=True, help="Analyse the last N days (Asia/Tokyo).")
def audit_report_command(days: int):
    """The daily analysis: bulk viewing, off-hours, off-duty, failed sign-ins, large searches."""
    from datetime import datetime, time

    today = dates.today()
    since = datetime.combine(today - timedelta(days=days), time(0), tzinfo=dates.TOKYO)
    until = datetime.combine(today + timedelta(days=1), time(0), tzinfo=dates.TOKYO)
    flags = audit_report.analyse(since, until)
    click.echo(audit_report.render_text(flags, since, until))


@audit_group.command("purge")
def audit_purge():
    """Delete entries past AUDIT_RETENTION_DAYS (the chain's anchor moves past them)."""
    begin_write()
    count = audit.purge_expired()
    db.session.commit()
    click.echo(f"deleted {count} entries past their retention period")


@main.group("purge")
def purge_group():
    """Delete what has passed its retention period, with a deletion record (safe to run daily)."""


# Commands that live in their own modules (one per capability).
from .cli_fax import fax_group, purge_fax_images  # noqa: E402
from .cli_recordings import purge_recordings, recordings_group  # noqa: E402

main.add_command(recordings_group)
main.add_command(fax_group)
purge_group.add_command(purge_recordings)
purge_group.add_command(purge_fax_images)

from .cli_compliance import register as _register_compliance  # noqa: E402

_register_compliance(main)
from .cli_admin import roster_group  # noqa: E402

main.add_command(roster_group)
