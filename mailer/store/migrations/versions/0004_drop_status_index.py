"""subscribers: no index on (status, id).

Every write to subscribers maintained it (a quarter of the server's work in a million-row
import on PostgreSQL) and no query needs it: a send's snapshot and every listing walk the
table in id order by its primary key, filtering on status as they go, as fast without it;
a count by status is a scan either way.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subscribers_status_id", table_name="subscribers")


def downgrade() -> None:
    op.create_index("ix_subscribers_status_id", "subscribers", ["status", "id"], unique=False)
