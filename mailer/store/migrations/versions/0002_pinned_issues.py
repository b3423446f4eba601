"""Pinned issues and identities that are never reused.

- subscribers: a random `nonce` bound into every link token, a one-time `confirm_nonce`,
  and (SQLite) AUTOINCREMENT so an id is never handed out twice;
- issues: `ref` (known before the first send), `source`, the pinned `version`, and the
  random part of Message-IDs; `issue_versions` holds each version as sent;
- recipients: which version each got; `erased_counts`: numbers that outlive erasure;
- `mail_queue`: confirmations the web pages promised, sent after the response.

Revision ID: 0002
Revises: 0001
"""

import hashlib
from typing import Any, Literal

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # SQLite: rebuild the table with AUTOINCREMENT (its ids are then never reused).
    recreate: Literal["auto", "always"] = "always" if sqlite else "auto"
    table_kwargs: dict[str, Any] = {"sqlite_autoincrement": True} if sqlite else {}
    with op.batch_alter_table("subscribers", recreate=recreate, table_kwargs=table_kwargs) as b:
        b.add_column(sa.Column("nonce", sa.BigInteger, nullable=True))
        b.add_column(sa.Column("confirm_nonce", sa.BigInteger, nullable=True))
    random = (
        "(random() & 4611686018427387903)"
        if sqlite
        else "('x' || substr(md5(random()::text || id::text), 1, 15))::bit(60)::bigint"
    )
    op.execute(f"UPDATE subscribers SET nonce = {random}")
    with op.batch_alter_table("subscribers", recreate=recreate, table_kwargs=table_kwargs) as b:
        b.alter_column("nonce", existing_type=sa.BigInteger, nullable=False)

    with op.batch_alter_table("issues", recreate=recreate, table_kwargs=table_kwargs) as b:
        b.add_column(sa.Column("ref", sa.BigInteger, nullable=True))
        b.add_column(sa.Column("source", sa.String(1000), nullable=True))
        b.add_column(sa.Column("version", sa.Integer, nullable=True))
        b.add_column(sa.Column("message_nonce", sa.String(32), nullable=True))
        b.create_unique_constraint("uq_issues_ref", ["ref"])
    for issue_id, slug in bind.execute(sa.text("SELECT id, slug FROM issues")).all():
        ref = int.from_bytes(hashlib.sha256(slug.encode()).digest()[:6], "big")
        bind.execute(
            sa.text("UPDATE issues SET ref = :ref WHERE id = :id"), {"ref": ref, "id": issue_id}
        )
    with op.batch_alter_table("recipients") as b:
        b.add_column(sa.Column("version", sa.Integer, nullable=True))

    op.create_table(
        "issue_versions",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("source", sa.String(1000)),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "version"),
    )
    op.create_table(
        "erased_counts",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "kind"),
    )
    op.create_table(
        "mail_queue",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.String(200)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(400)),
        sa.Column("subscriber_id", sa.Integer),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("attempts", sa.Integer, server_default="0", nullable=False),
        sa.Column("next_at", UTC, nullable=False),
        sa.Column("last_error", sa.String(300)),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_mail_queue_next_at", "mail_queue", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_queue_next_at", "mail_queue")
    op.drop_table("mail_queue")
    op.drop_table("erased_counts")
    op.drop_table("issue_versions")
    with op.batch_alter_table("recipients") as b:
        b.drop_column("version")
    with op.batch_alter_table("issues") as b:
        b.drop_constraint("uq_issues_ref", type_="unique")
        for name in ("message_nonce", "version", "source", "ref"):
            b.drop_column(name)
    with op.batch_alter_table("subscribers") as b:
        b.drop_column("confirm_nonce")
        b.drop_column("nonce")
