"""`madoguchi recordings …` and `madoguchi purge recordings` (R4.4): reconcile with Twilio, download
to local storage where configured, and delete what has passed its retention — safe to run from a
scheduler every day."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from . import dates, deletion, recordings, telephony
from .cli_support import responsible_staff
from .extensions import begin_write, db
from .models import CallRecording

MEDIUM = "Twilio（クラウド上の録音）及び録音ファイル保存領域（個別鍵で暗号化）"
METHOD = (
    "Twilio: REST API による削除（HTTP 204、再照会で 404 を確認）／"
    "ローカル: ファイル個別鍵の破棄、乱数による上書き後にファイル削除"
)


@click.group("recordings", cls=AppGroup)
def recordings_group():
    """Call recordings: reconcile with Twilio, store locally, retention."""


@recordings_group.command("sync")
@click.option("--days", default=3, show_default=True, help="Look back this many days at Twilio.")
def recordings_sync(days: int):
    """Add recordings whose status callback was lost, and download completed ones where local
    storage is configured. Counts only are printed."""
    if not telephony.configured():
        raise click.ClickException("Twilio is not configured (MADOGUCHI_TWILIO_*)")
    begin_write()
    try:
        added = recordings.reconcile(dates.now() - timedelta(days=days))
    except telephony.TelephonyUnavailable as unavailable:
        raise click.ClickException(f"Twilio could not be reached: {unavailable.reason}") from None
    db.session.commit()
    stored = failed = 0
    pending = db.session.scalars(
        select(CallRecording.id).where(
            CallRecording.status == "completed",
            CallRecording.storage == "twilio",
            CallRecording.deleted_at.is_(None),
        )
    ).all()
    for recording_id in pending:
        begin_write()
        try:
            stored += recordings.store_locally(db.session.get(CallRecording, recording_id))
            db.session.commit()
        except telephony.TelephonyUnavailable:
            db.session.rollback()
            failed += 1
    click.echo(f"added {added} recordings from Twilio; stored {stored} locally; {failed} downloads to retry")
    if failed:
        sys.exit(1)


@click.command("recordings")
@with_appcontext
@click.option(
    "--responsible", "responsible_login", default=None, help="Staff login id of the person responsible."
)
@click.option("--witness", default=None, help="Name of the witness (立会者), if any.")
def purge_recordings(responsible_login: str | None, witness: str | None):
    """Delete recordings past their retention everywhere (Twilio and local), then write the
    deletion record. Idempotent and resumable: Twilio's 404 counts as deleted; a network or 5xx
    error leaves the recording queued for the next run and makes the command exit 1."""
    responsible = responsible_staff(responsible_login)
    outcome = recordings.PurgeOutcome()
    due_ids = [r.id for r in recordings.due()]
    if due_ids and not telephony.configured():
        raise click.ClickException("recordings are due but Twilio is not configured: nothing deleted")
    for recording_id in due_ids:
        begin_write()
        recordings.purge_one(db.session.get(CallRecording, recording_id), outcome)
        db.session.commit()  # one recording at a time: a crash loses no finished deletion
    if due_ids:
        begin_write()
        deletion.record(
            kind="call_recordings",
            medium=MEDIUM,
            count=len(outcome.deleted),
            method=METHOD,
            responsible=responsible,
            witness_name=witness,
            outcome="partial" if outcome.failed else "done",
            details={
                "deleted": outcome.deleted,
                "evidence": outcome.evidence,
                "local_files_destroyed": outcome.local_files,
                "still_queued": outcome.failed,
            },
        )
        db.session.commit()
    click.echo(
        f"deleted {len(outcome.deleted)} recordings ({outcome.local_files} local files destroyed); "
        f"{len(outcome.failed)} still queued"
    )
    for sid, reason in outcome.failed.items():
        click.echo(f"  queued: {sid} ({reason})", err=True)
    if outcome.failed:
        sys.exit(1)
