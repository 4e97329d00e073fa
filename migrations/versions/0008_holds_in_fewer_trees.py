"""holds in fewer B-trees: one (slot, expiry) index; on SQLite WITHOUT ROWID (R9.2)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:10:00

Every confirmation deletes its hold from each of the table's B-trees; on SQLite each is a page its
commit writes to the WAL. Holds live minutes, so rebuilding the table is cheap at any size.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _rebuild_sqlite(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL has no such storage choice: only the indexes change there
    with op.batch_alter_table('holds', recreate='always', table_kwargs={'sqlite_with_rowid': with_rowid}):
        pass


def upgrade():
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_expires_at')
        batch_op.drop_index('ix_holds_slot_id')
        batch_op.create_index('ix_holds_slot_id_expires_at', ['slot_id', 'expires_at'], unique=False)
    _rebuild_sqlite(with_rowid=False)


def downgrade():
    _rebuild_sqlite(with_rowid=True)
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_slot_id_expires_at')
        batch_op.create_index('ix_holds_slot_id', ['slot_id'], unique=False)
        batch_op.create_index('ix_holds_expires_at', ['expires_at'], unique=False)
