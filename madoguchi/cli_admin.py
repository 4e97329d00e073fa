"""`madoguchi roster …`: the city's applicant list from the command line (R3.1, R8), for files
too large for a web request. Same checks and all-or-nothing import as the screen."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from . import roster
from .extensions import begin_write, db


@click.group("roster", cls=AppGroup)
def roster_group():
    """The city's applicant list (交付対象者名簿)."""


@roster_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def roster_import(file: Path):
    """Import FILE (CSV: UTF-8 with or without BOM, or Shift_JIS/CP932): every row or none.

    Prints counts and each bad row's number and reason (never a value); exits 1 when nothing was
    imported."""
    if file.stat().st_size > roster.MAX_BYTES:
        raise click.ClickException(roster.FILE_REASONS["too_large"].format(limit=roster.MAX_BYTES // 2**20))
    begin_write()
    try:
        report = roster.import_file(file.read_bytes(), staff=None, login_id="cli", remote_addr="cli")
    except roster.RosterImportFailed:
        db.session.rollback()
        raise click.ClickException(
            "取り込み中に同じ予約管理番号が登録されたため、何も取り込んでいません。"
        ) from None
    db.session.commit()  # the import (or only its RosterImport record and audit entry when refused)
    click.echo(f"SHA-256 {report.file_sha256}  encoding {report.encoding or '-'}")
    if report.ok:
        click.echo(f"imported {report.rows_imported} of {report.rows_total} rows (record {report.import_id})")
        return
    if report.file_problem:
        click.echo(report.file_problem, err=True)
    else:
        click.echo(f"{report.bad_rows} of {report.rows_total} rows are wrong; nothing was imported", err=True)
        for problem in report.problems:
            click.echo(
                f"  {problem.row}行目 {roster.COLUMN_LABELS.get(problem.column, '')}: {problem.message}",
                err=True,
            )
    sys.exit(1)
