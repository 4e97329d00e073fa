"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.types import TypeDecorator

from ..crypto import new_row_id

__all__ = ["UTCDateTime", "RowId", "Ciphertext", "BlindIndex", "new_row_id"]


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on SQLite (which keeps no zone) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def RowId():  # noqa: N802 - reads like a type in the models
    return String(32)


def Ciphertext():  # noqa: N802
    return Text()


def BlindIndex():  # noqa: N802
    return String(32)
