"""The writer's desk: feeds' conditional-GET cache for `mailer draft`, and counted links.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feed_cache",
        sa.Column("url", sa.String(2000), primary_key=True),
        sa.Column("etag", sa.String(500)),
        sa.Column("last_modified", sa.String(100)),
        sa.Column("body", sa.LargeBinary),
        sa.Column("fetched_at", UTC, nullable=False),
    )
    op.create_table(
        "issue_links",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("clicks", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("issue_links")
    op.drop_table("feed_cache")
