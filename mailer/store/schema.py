"""The database schema, in SQLAlchemy Core. Migrations in migrations/ create it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

metadata = sa.MetaData()


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """A point in time, in UTC, aware on both databases: SQLite keeps no zone, so what it
    hands back is made UTC again here, once, for every reader."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


UTC = UtcDateTime()

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("consent_source", sa.String(200)),
    sa.Column("consent_at", UTC),
    sa.Column("consent_ip", sa.String(64)),
    sa.Column("consent_user_agent", sa.String(400)),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
    # A random secret bound into every link token: erase destroys it, so an erased
    # person's links are dead even if an id were ever handed out again.
    sa.Column("nonce", sa.BigInteger, nullable=False),
    # The one live double opt-in request, if any: consumed by its confirmation.
    sa.Column("confirm_nonce", sa.BigInteger),
    sa.Column("language", sa.String(35)),  # None: the list's language
    sa.Column("paused_until", UTC),  # sends skip them until then
    # What the sign-up form asked for (topics, language), applied on confirmation.
    sa.Column("requested", sa.JSON(none_as_null=True)),
    # The last confirmation and preference-link mails: at most one of each a day / an hour.
    # The queued mail that took each slot: its own retry (after a crash) may still send.
    sa.Column("confirm_sent_at", UTC),
    sa.Column("confirm_job", sa.Integer),
    sa.Column("link_sent_at", UTC),
    sa.Column("link_job", sa.Integer),
    # No index on status: see migration 0004.
    sqlite_autoincrement=True,  # ids are never reused, on SQLite as on PostgreSQL
)

# The topics each reader chose. Keyed by topic too: an audience asks "who has topic:ai".
subscriber_topics = sa.Table(
    "subscriber_topics",
    metadata,
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Index("ix_subscriber_topics_topic", "topic", "subscriber_id"),
)

status_changes = sa.Table(
    "status_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("old_status", sa.String(16)),
    sa.Column("new_status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("at", UTC, nullable=False),
)

erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("erased_at", UTC, nullable=False),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("created_at", UTC, nullable=False),
    # Known before the first send (derived from the slug), so links in a preview are the
    # links that will be sent.
    sa.Column("ref", sa.BigInteger, unique=True),
    sa.Column("source", sa.String(1000)),  # the issue file, relative to the project
    sa.Column("version", sa.Integer),  # the pinned version the rest of the list gets
    sa.Column("message_nonce", sa.String(32)),  # random part of every Message-ID
    sa.Column("audience", sa.Text),  # the expression its list was chosen by; None: everyone
    sqlite_autoincrement=True,
)

# The issue as sent: everything needed to send it again without the Markdown or templates.
issue_versions = sa.Table(
    "issue_versions",
    metadata,
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("source", sa.String(1000)),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("web_html", sa.Text),  # the web version; none for mail that is not an issue
    sa.Column("archive", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("issue_date", sa.String(40), nullable=False, server_default=""),
    sa.Column("language", sa.String(35), nullable=False, server_default=""),  # the main's
)

# The other language editions of a pinned version (issue_versions holds the main one).
issue_editions = sa.Table(
    "issue_editions",
    metadata,
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

# Local images of pinned issues, converted, by content hash: /media/NAME serves them.
media = sa.Table(
    "media",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTC, nullable=False),
)

# What erased people contributed to an issue's numbers: counts survive, people do not.
erased_counts = sa.Table(
    "erased_counts",
    metadata,
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires", UTC),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTC, nullable=False),
    # The language edition every recipient in it gets ("": the main one).
    sa.Column("edition", sa.String(35), nullable=False, server_default=""),
    sa.UniqueConstraint("issue_id", "seq", name="uq_batches_issue_seq"),
    sa.Index("ix_batches_issue_state", "issue_id", "state"),
)

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("batch_seq", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(200)),
    sa.Column("error", sa.String(500)),
    sa.Column("updated_at", UTC),
    sa.Column("version", sa.Integer),  # the issue version this recipient was sent
    sa.Index("ix_recipients_batch", "issue_id", "batch_seq"),
    sa.Index("ix_recipients_subscriber", "subscriber_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider_event_id", sa.String(200), unique=True),
    sa.Column("issue_id", sa.Integer),
    sa.Column("subscriber_id", sa.Integer),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("at", UTC, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("data", sa.JSON(none_as_null=True)),  # what else the report said worth keeping
    sa.Index("ix_events_issue_subscriber", "issue_id", "subscriber_id"),
)

# Mail the web pages promised, sent after the response: the page answers the same, as fast,
# whoever the address is, and a provider that is down delays a confirmation, never loses it.
mail_queue = sa.Table(
    "mail_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # "signup", "confirm", "welcome" or "link" (a preference page's link, asked for)
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("name", sa.String(200)),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(400)),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE")),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", UTC, nullable=False),
    sa.Column("last_error", sa.String(300)),
    # host:pid:nonce of the process sending it: another takes over at once if it died
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("choices", sa.JSON(none_as_null=True)),  # a sign-up's topics and language
    sa.Index("ix_mail_queue_next_at", "next_at"),
    # ids never reused: a subscriber row names the queued mail that took a slot
    sqlite_autoincrement=True,
)

# Messages of the bounce mailbox examined and left there (not a report, too large...), by
# UID under the mailbox's UIDVALIDITY: listed once, never downloaded again.
mailbox_uids = sa.Table(
    "mailbox_uids",
    metadata,
    sa.Column("mailbox", sa.String(300), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger, primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("at", UTC, nullable=False),
)

# One holder at a time of a named job (a mailbox's fetch), across processes and hosts.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires", UTC, nullable=False),
)

# Proof-of-work challenges already solved once: a solution is good for one sign-up.
spent_challenges = sa.Table(
    "spent_challenges",
    metadata,
    sa.Column("salt", sa.String(200), primary_key=True),
    sa.Column("expires", UTC, nullable=False),
)

# `mailer draft`'s conditional GET: each feed's validators and last body, so a 304 still
# drafts from what the feed held.
feed_cache = sa.Table(
    "feed_cache",
    metadata,
    sa.Column("url", sa.String(2000), primary_key=True),
    sa.Column("etag", sa.String(500)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("body", sa.LargeBinary),
    sa.Column("fetched_at", UTC, nullable=False),
)

# With count_clicks: each article link of a pinned issue by its number, and how many times
# its redirect was followed. Per link only: nothing here names a reader.
issue_links = sa.Table(
    "issue_links",
    metadata,
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("clicks", sa.Integer, nullable=False, server_default="0"),
)
