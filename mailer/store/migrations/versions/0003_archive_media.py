"""The issue on the web: each pinned version's web version, whether it is archived and its
date; converted local images (`media`).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("issue_versions") as b:
        b.add_column(sa.Column("web_html", sa.Text, nullable=True))
        b.add_column(sa.Column("archive", sa.Boolean, nullable=False, server_default=sa.true()))
        b.add_column(sa.Column("issue_date", sa.String(40), nullable=False, server_default=""))
    op.create_table(
        "media",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("media")
    with op.batch_alter_table("issue_versions") as b:
        b.drop_column("issue_date")
        b.drop_column("archive")
        b.drop_column("web_html")
