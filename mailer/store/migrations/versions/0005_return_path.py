"""The return path: messages of the bounce mailbox already examined (by UID, with the
mailbox's UIDVALIDITY), who holds a queued mail's lease, named leases (one fetch of a
mailbox at a time), and one index on events (issue, subscriber) instead of two.

Every webhook event written maintained both single-column indexes (a quarter of the
database's work per event); the pair serves the report (by issue, counting people) and
soft-bounce streaks (by person, over the last issues). Erasing a person, rare, scans.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index("ix_events_issue_id", table_name="events")
    op.drop_index("ix_events_subscriber_id", table_name="events")
    op.create_index("ix_events_issue_subscriber", "events", ["issue_id", "subscriber_id"])
    op.create_table(
        "mailbox_uids",
        sa.Column("mailbox", sa.String(300), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("at", UTC, nullable=False),
    )
    with op.batch_alter_table("mail_queue") as b:
        b.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires", UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_events_issue_subscriber", table_name="events")
    op.create_index("ix_events_issue_id", "events", ["issue_id"])
    op.create_index("ix_events_subscriber_id", "events", ["subscriber_id"])
    op.drop_table("leases")
    with op.batch_alter_table("mail_queue") as b:
        b.drop_column("lease_owner")
    op.drop_table("mailbox_uids")
