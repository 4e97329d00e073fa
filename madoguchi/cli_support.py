"""What several `madoguchi …` command modules share."""

from __future__ import annotations

import click
from sqlalchemy import select

from .extensions import db
from .models import Staff


def responsible_staff(login_id: str | None) -> Staff | None:
    """The staff member named (by login id) as responsible for a deletion or export; None means the
    scheduled job itself. An unknown login stops the command before anything is done."""
    if not login_id:
        return None
    staff = db.session.scalars(select(Staff).where(Staff.login_id == login_id)).one_or_none()
    if staff is None:
        raise click.ClickException(f"no staff account {login_id!r}")
    return staff
