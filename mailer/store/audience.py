"""An audience expression as SQL over subscribers: the same meaning as Audience.matches,
which a property test holds it to on both databases."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mailer.audience import (
    All,
    Any_,
    Audience,
    Everyone,
    HasTopic,
    Node,
    Not,
    ReadsLang,
)
from mailer.store.schema import subscriber_topics, subscribers


def effective_language(default: str) -> sa.ColumnElement[Any]:
    """A reader's language: their own, or the list's."""
    return sa.func.coalesce(subscribers.c.language, default)


def within(column: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
    """languages.within in SQL: the tag itself or a narrower form (en-GB within en). Tags
    are canonical and hold only letters, digits and '-', so LIKE sees no wildcard in them."""
    return sa.or_(column == tag, column.like(tag + "-%"))


def where(audience: Audience, default_language: str) -> sa.ColumnElement[bool]:
    """The condition on `subscribers` rows that the audience holds."""
    return _sql(audience.root, effective_language(default_language))


def _sql(node: Node, language: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    if isinstance(node, HasTopic):
        return sa.exists().where(
            subscriber_topics.c.subscriber_id == subscribers.c.id,
            subscriber_topics.c.topic == node.key,
        )
    if isinstance(node, ReadsLang):
        return within(language, node.code)
    if isinstance(node, Everyone):
        return sa.true()
    if isinstance(node, Not):
        return sa.not_(_sql(node.inner, language))
    if isinstance(node, All):
        return sa.and_(*(_sql(i, language) for i in node.items))
    assert isinstance(node, Any_)
    return sa.or_(*(_sql(i, language) for i in node.items))
