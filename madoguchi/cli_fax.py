"""`madoguchi fax watch` (the FAX inbox worker) and `madoguchi purge fax-images` (R5.2, R5.3)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from . import deletion
from .cli_support import responsible_staff
from .extensions import begin_write, db
from .fax import queue

MEDIUM = "FAX画像保存領域（ファイルごとの鍵で暗号化）"
METHOD = "ファイル個別鍵の破棄、乱数による上書き後にファイル削除"


@click.group("fax", cls=AppGroup)
def fax_group():
    """Received FAX sheets."""


@fax_group.command("watch")
@click.option("--once", is_flag=True, help="Scan the inbox once and exit (for a scheduler).")
@click.option("--interval", default=10.0, show_default=True, help="Seconds between scans.")
def fax_watch(once: bool, interval: float):
    """Queue every file the FAX server drops into FAX_INBOX_DIR (TIFF, PDF, PNG). Each file is
    stored encrypted and its plain copy shredded; unreadable files are queued too, with the reason."""
    folder = Path(current_app.config["FAX_INBOX_DIR"])
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        begin_write()
        files, pages = queue.scan_inbox(folder)
        db.session.commit()
        if files:
            click.echo(f"queued {files} files ({pages} pages)")
        if once:
            return
        time.sleep(interval)


@click.command("fax-images")
@with_appcontext
@click.option(
    "--responsible", "responsible_login", default=None, help="Staff login id of the person responsible."
)
@click.option("--witness", default=None, help="Name of the witness (立会者), if any.")
def purge_fax_images(responsible_login: str | None, witness: str | None):
    """Shred the images of handled FAX sheets whose retention ended (FAX_IMAGE_RETENTION_DAYS after
    the last page was handled); a sheet still waiting in the queue keeps its image."""
    responsible = responsible_staff(responsible_login)
    begin_write()
    documents = queue.due_documents()
    for document in documents:
        queue.destroy_image(document)
    if documents:
        deletion.record(
            kind="fax_images",
            medium=MEDIUM,
            count=len(documents),
            method=METHOD,
            responsible=responsible,
            witness_name=witness,
            details={"documents": [d.id for d in documents], "pages": sum(d.pages for d in documents)},
        )
    db.session.commit()
    click.echo(f"deleted the images of {len(documents)} received FAX files")
