"""one unique (applicant, live) index for the one-live-booking rule and the applicant's bookings (R9.2)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:00:00

Every booking writes its row into each of its table's B-trees, and on SQLite each one is a page its
commit writes to the WAL (two system calls, and copied back at the next checkpoint). The partial
unique index (one live booking per applicant) and the plain applicant index become one unique index
on (applicant_id, live), ``live`` being computed by the database from ``status`` (1 while live,
NULL once ended; SQLite computes it when read, PostgreSQL stores it). No table is rebuilt.
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

LIVE_SQL = "status IN ('booked', 'arrived', 'handed_over')"
LIVE_MARK_SQL = f"CASE WHEN {LIVE_SQL} THEN 1 END"


def upgrade():
    # SQLite adds a virtual column without copying the table; PostgreSQL indexes stored ones only.
    stored = True if op.get_bind().dialect.name == "postgresql" else None
    op.add_column('bookings', sa.Column('live', sa.Integer(), sa.Computed(LIVE_MARK_SQL, persisted=stored), nullable=True))
    op.create_index('uq_bookings_applicant_id_live', 'bookings', ['applicant_id', 'live'], unique=True)
    op.drop_index('uq_bookings_one_live_per_applicant', table_name='bookings')
    op.drop_index('ix_bookings_applicant_id', table_name='bookings')


def downgrade():
    op.create_index('ix_bookings_applicant_id', 'bookings', ['applicant_id'], unique=False)
    op.create_index('uq_bookings_one_live_per_applicant', 'bookings', ['applicant_id'], unique=True, sqlite_where=sa.text(LIVE_SQL), postgresql_where=sa.text(LIVE_SQL))
    op.drop_index('uq_bookings_applicant_id_live', table_name='bookings')
    op.drop_column('bookings', 'live')
