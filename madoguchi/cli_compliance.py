"""`madoguchi export open`, `madoguchi purge expired|report`, `madoguchi backup …`, `madoguchi restore`,
`madoguchi contract-end` (R7.5, R8.1, R8.2, R8.4). Registered on the main group by ``register``.

Other kinds of purge are commands on the same `purge` group (``madoguchi purge recordings``).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from . import backup, contract_end, dates, exports, retention, sealed
from .cli_support import responsible_staff
from .crypto import DecryptionError
from .extensions import begin_write, db
from .printing.deletion_report import deletion_report

DAY = click.DateTime(["%Y-%m-%d"])


# ---- export files (R7.5) -----------------------------------------------------------------------------
@click.group("export", cls=AppGroup)
def export_group():
    """Encrypted export files (the export ledger is in the back office)."""


@export_group.command("open", with_appcontext=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="A new or empty folder."
)
@click.option(
    "--passphrase-file",
    type=click.File("r"),
    default=None,
    help="Read the passphrase from this file instead of asking.",
)
def export_open(file: Path, out_dir: Path, passphrase_file):
    """Decrypt an export file into OUT (manifest.json and CSV files). Needs no database and no keys:
    only the passphrase shown to the person who produced the file."""
    passphrase = (
        passphrase_file.readline().strip() if passphrase_file else click.prompt("Passphrase", hide_input=True)
    )
    try:
        header = exports.open_file(file, passphrase, out_dir)
    except DecryptionError as refused:
        raise click.ClickException(f"{refused} — nothing was written") from None
    click.echo(
        f"opened {header['dataset']} ({header['record_count']} records, created {header['created_at']}, "
        f"request {header['request_id']}) into {out_dir}"
    )


@export_group.command("info", with_appcontext=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def export_info(file: Path):
    """Print the file's clear header (no passphrase needed; nothing personal in it) and its SHA-256."""
    try:
        header = exports.read_header(file)
    except DecryptionError as refused:
        raise click.ClickException(str(refused)) from None
    for key in ("dataset", "record_count", "created_at", "request_id", "payload_sha256"):
        click.echo(f"{key}: {header.get(key)}")
    click.echo(f"file_sha256: {sealed.file_sha256(file)}")


# ---- retention and deletion (R8.1) -----------------------------------------------------------------
@click.group("purge", cls=AppGroup)
def purge_group():
    """Delete what is past its retention period, writing deletion records."""


@purge_group.command("expired")
@click.option(
    "--kind", "kinds", multiple=True, type=click.Choice(sorted(retention.KINDS)), help="Only these kinds."
)
@click.option(
    "--responsible", "responsible_login", default=None, help="Staff login id of the person responsible."
)
@click.option("--witness", default=None, help="Name of the witness (立会者), if any.")
@click.option("--dry-run", is_flag=True, help="Only count what is due.")
def purge_expired(kinds, responsible_login, witness, dry_run):
    """Purge every kind (or those named); idempotent, safe to run daily from a scheduler."""
    names = list(kinds) or list(retention.KINDS)
    if dry_run:
        due = retention.due()
        for name in names:
            click.echo(f"{name}: {due[name]} due")
        return
    responsible = responsible_staff(responsible_login)
    for name in names:
        begin_write()
        entry = retention.purge_kind(name, responsible=responsible, witness=witness)
        db.session.commit()
        click.echo(f"{name}: deleted {entry.count if entry else 0}")
    retention.compact()


@purge_group.command("report")
@click.option("--since", type=DAY, required=True, help="First day (Asia/Tokyo).")
@click.option("--until", type=DAY, required=True, help="Last day (Asia/Tokyo), included.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def purge_report(since: datetime, until: datetime, out: Path):
    """Write the deletion report (PDF, A4) for a period."""
    first, last = since.date(), until.date()
    rows = retention.report_rows(dates.day_bounds(first)[0], dates.day_bounds(last)[1])
    out.write_bytes(
        deletion_report(
            rows,
            period=f"{dates.wareki(first)}〜{dates.wareki(last)}",
            printed_at=dates.now(),
            city_name=current_app.config["CITY_NAME"],
        )
    )
    click.echo(f"wrote {out} ({len(rows)} deletion records)")


# ---- backups (R8.4) --------------------------------------------------------------------------------
class _BackupGroup(AppGroup):
    """`madoguchi backup FILE` is `madoguchi backup make FILE`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


@click.group("backup", cls=_BackupGroup)
def backup_group():
    """Encrypted backups: make (the default), verify, prune."""


@backup_group.command("make")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_make(file: Path):
    """Write an encrypted backup of every table to FILE."""
    if file.exists():
        raise click.ClickException(f"{file} exists")
    info = backup.make(file)
    begin_write()
    backup.record_made(info)
    db.session.commit()
    click.echo(
        f"wrote {file}: {sum(info.tables.values())} rows in {len(info.tables)} tables; sha256 {info.sha256}"
    )


@backup_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def backup_verify(file: Path):
    """Decrypt and check the whole backup without restoring it; exit 1 if it is not sound."""
    try:
        counts = backup.verify(file)
    except DecryptionError as refused:
        click.echo(f"BACKUP NOT USABLE: {refused}", err=True)
        sys.exit(1)
    click.echo(f"backup intact: {sum(counts.values())} rows in {len(counts)} tables")


@backup_group.command("prune")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--keep-days", type=int, default=None, help="Default: BACKUP_RETENTION_DAYS.")
def backup_prune(folder: Path, keep_days: int | None):
    """Shred backups older than the retention period and write a deletion record."""
    keep = keep_days if keep_days is not None else current_app.config["BACKUP_RETENTION_DAYS"]
    begin_write()
    count = backup.prune(folder, keep_days=keep)
    db.session.commit()
    click.echo(f"shredded {count} backups older than {keep} days")


@click.command("restore")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Delete the rows this database holds first.")
def restore_command(file: Path, replace: bool):
    """Restore a backup into this database (same migration; empty unless --replace). The whole
    file is checked first; a tampered or foreign file is refused and nothing changes."""
    try:
        counts = backup.restore(file, replace=replace)
    except DecryptionError as refused:
        raise click.ClickException(f"{refused} — nothing was changed") from None
    begin_write()
    backup.record_restored(counts, sealed.file_sha256(file))
    db.session.commit()
    click.echo(f"restored {sum(counts.values())} rows in {len(counts)} tables")


# ---- end of contract (R8.2) ------------------------------------------------------------------------
@click.command("contract-end")
@with_appcontext
@click.option("--return-to", "return_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--confirm", is_flag=True, help="Required: this destroys all data and the keys.")
@click.option(
    "--responsible", "responsible_login", default=None, help="Staff login id of the person responsible."
)
@click.option("--witness", default=None, help="The city's witness (立会者, 003 第22条イ).")
@click.option(
    "--wipe", "extra", multiple=True, type=click.Path(file_okay=False), help="Another folder to destroy."
)
@click.option(
    "--backup-dir", default=None, type=click.Path(file_okay=False), help="Where backups are kept (listed)."
)
def contract_end_command(return_dir: Path, confirm: bool, responsible_login, witness, extra, backup_dir):
    """Export everything for return (encrypted), then destroy the data, the files and the keys, and
    write the final deletion report (PDF + JSON) next to the return file."""
    if not confirm:
        raise click.ClickException("this destroys every record and the keys: add --confirm")
    responsible = responsible_staff(responsible_login)
    try:
        outcome = contract_end.run(
            return_dir, responsible=responsible, witness=witness, extra_folders=extra, backup_dir=backup_dir
        )
    except contract_end.ContractEndRefused as refused:
        raise click.ClickException(f"{refused} — nothing was destroyed") from None
    click.echo(f"return file: {outcome.export_path} (sha256 {outcome.export_sha256})")
    click.echo(f"passphrase (shown once; hand it over apart from the file): {outcome.passphrase}")
    click.echo(f"deletion report: {outcome.report_pdf} and {outcome.report_json}")
    for warning in outcome.warnings:
        click.echo(f"ACTION NEEDED: {warning}", err=True)


def register(main: click.Group) -> None:
    for command in (export_group, backup_group, restore_command, contract_end_command):
        main.add_command(command)
    # `purge` may already exist (other kinds, e.g. `purge recordings`, hang on it): join it.
    existing = main.commands.get("purge")
    if existing is None:
        main.add_command(purge_group)
    else:
        for command in purge_group.commands.values():
            existing.add_command(command)
