"""Key rotation over the stored rows (R2.4): re-encrypt, in short batches, every encrypted value
not yet under the active key. Safe while the app runs: each batch is its own transaction."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import or_, select

from .crypto import EncryptedField, current_keyring
from .extensions import db


def encrypted_models() -> list[tuple[type, list[str]]]:
    found = []
    for mapper in db.Model.registry.mappers:
        cls = mapper.class_
        fields = [name for name, attr in vars(cls).items() if isinstance(attr, EncryptedField)]
        if fields:
            found.append((cls, fields))
    return sorted(found, key=lambda item: item[0].__tablename__)


def _stale_filter(cls, fields, active):
    return or_(
        *[
            (getattr(cls, f"{name}_ct").is_not(None)) & (getattr(cls, f"{name}_ct").not_like(f"{active}.%"))
            for name in fields
        ]
    )


def reencrypt(batch_size: int = 500, progress=None) -> int:
    """Re-encrypt every stale row; commits per batch; returns the number of rows rewritten."""
    total = 0
    for cls, fields in encrypted_models():
        while True:
            active = current_keyring().active
            rows = db.session.scalars(
                select(cls).where(_stale_filter(cls, fields, active)).limit(batch_size)
            ).all()
            if not rows:
                break
            for row in rows:
                for name in fields:
                    value = getattr(row, name)
                    setattr(row, name, value)
            db.session.commit()
            total += len(rows)
            if progress:
                progress(cls.__tablename__, total)
    return total


def usage() -> Counter:
    """How many stored values each key id protects (to know when an old key may be retired)."""
    counts: Counter = Counter()
    ring = current_keyring()
    for cls, fields in encrypted_models():
        for name in fields:
            column = getattr(cls, f"{name}_ct")
            for (stored,) in db.session.execute(select(column).where(column.is_not(None))):
                counts[ring.key_id_of(stored)] += 1
    return counts
