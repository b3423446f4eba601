"""Audiences: readers' topics, language and pause; sign-up choices awaiting confirmation;
when the last confirmation and preference-link mails went (one a day, one an hour); an
issue's pinned audience; language editions of a version and each batch's edition; spent
proof-of-work challenges.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as b:
        b.add_column(sa.Column("language", sa.String(35), nullable=True))
        b.add_column(sa.Column("paused_until", UTC, nullable=True))
        b.add_column(sa.Column("requested", sa.JSON(none_as_null=True), nullable=True))
        b.add_column(sa.Column("confirm_sent_at", UTC, nullable=True))
        b.add_column(sa.Column("confirm_job", sa.Integer, nullable=True))
        b.add_column(sa.Column("link_sent_at", UTC, nullable=True))
        b.add_column(sa.Column("link_job", sa.Integer, nullable=True))
    op.create_table(
        "subscriber_topics",
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("topic", sa.String(64), primary_key=True),
    )
    op.create_index("ix_subscriber_topics_topic", "subscriber_topics", ["topic", "subscriber_id"])
    with op.batch_alter_table("issues") as b:
        b.add_column(sa.Column("audience", sa.Text, nullable=True))
    with op.batch_alter_table("issue_versions") as b:
        b.add_column(sa.Column("language", sa.String(35), nullable=False, server_default=""))
    op.create_table(
        "issue_editions",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("language", sa.String(35), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(1000)),
        sa.Column("web_html", sa.Text),
    )
    with op.batch_alter_table("batches") as b:
        b.add_column(sa.Column("edition", sa.String(35), nullable=False, server_default=""))
    # Rebuilt on SQLite with AUTOINCREMENT: a queued mail's id is never handed out again,
    # since subscribers.confirm_job and link_job name the mail that took a slot.
    with op.batch_alter_table(
        "mail_queue", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as b:
        b.add_column(sa.Column("choices", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "spent_challenges",
        sa.Column("salt", sa.String(200), primary_key=True),
        sa.Column("expires", UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spent_challenges")
    with op.batch_alter_table("mail_queue") as b:
        b.drop_column("choices")
    with op.batch_alter_table("batches") as b:
        b.drop_column("edition")
    op.drop_table("issue_editions")
    with op.batch_alter_table("issue_versions") as b:
        b.drop_column("language")
    with op.batch_alter_table("issues") as b:
        b.drop_column("audience")
    op.drop_index("ix_subscriber_topics_topic", table_name="subscriber_topics")
    op.drop_table("subscriber_topics")
    with op.batch_alter_table("subscribers") as b:
        for name in (
            "link_job",
            "link_sent_at",
            "confirm_job",
            "confirm_sent_at",
            "requested",
            "paused_until",
            "language",
        ):
            b.drop_column(name)
