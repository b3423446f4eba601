"""Audience expressions: who an issue goes to, in one small grammar that is parsed, never run.

    expr   := term ("or" term)*
    term   := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | "topic:" KEY | "lang:" CODE | "everyone"

`topic:ai and not lang:en` is every reader who chose the topic ai and does not read English.
The store turns a parsed expression into SQL (store/audience.py); `matches` is the same
meaning in Python, and a property test holds the two to each other.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from mailer import languages

TOPIC_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_LENGTH = 2000  # characters of expression
MAX_DEPTH = 50  # nested parentheses and nots: deeper is refused, not recursed into

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z]+:[^\s()]*)|([A-Za-z]+)|(\S))")


class AudienceError(ValueError):
    """A bad expression: the message names the column (1-based) where it went wrong."""

    def __init__(self, text: str, column: int, problem: str) -> None:
        self.column = column
        self.problem = problem
        super().__init__(f"audience {text[:80]!r}: {problem} at column {column}")


@dataclass(frozen=True)
class HasTopic:
    key: str

    def __str__(self) -> str:
        return f"topic:{self.key}"


@dataclass(frozen=True)
class ReadsLang:
    code: str

    def __str__(self) -> str:
        return f"lang:{self.code}"


@dataclass(frozen=True)
class Everyone:
    def __str__(self) -> str:
        return "everyone"


@dataclass(frozen=True)
class Not:
    inner: Node

    def __str__(self) -> str:
        return f"not {_wrapped(self.inner)}"


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]

    def __str__(self) -> str:
        return " and ".join(_wrapped(i) for i in self.items)


@dataclass(frozen=True)
class Any_:
    items: tuple[Node, ...]

    def __str__(self) -> str:
        return " or ".join(_wrapped(i) for i in self.items)


Node = HasTopic | ReadsLang | Everyone | Not | All | Any_


def _wrapped(node: Node) -> str:
    return f"({node})" if isinstance(node, All | Any_) else str(node)


@dataclass(frozen=True)
class Audience:
    """A parsed expression. str() is its one spelling, the one the ledger pins."""

    root: Node

    def __str__(self) -> str:
        return str(self.root)

    @property
    def everyone(self) -> bool:
        return isinstance(self.root, Everyone)

    def matches(self, topics: Collection[str], language: str) -> bool:
        """Whether a reader with these topics and this (effective) language is in it."""
        return _matches(self.root, topics, language)

    def topics(self) -> set[str]:
        return {n.key for n in _walk(self.root) if isinstance(n, HasTopic)}

    def languages(self) -> set[str]:
        return {n.code for n in _walk(self.root) if isinstance(n, ReadsLang)}

    def check(self, topics: Collection[str], offered: Collection[str]) -> None:
        """Refuse a topic the newsletter does not declare or a language it does not offer:
        a typo would otherwise quietly send to nobody."""
        for key in sorted(self.topics()):
            if key not in topics:
                known = ", ".join(sorted(topics)) or "none: declare them under [topics]"
                raise ValueError(f"audience names the unknown topic {key!r}; topics: {known}")
        for code in sorted(self.languages()):
            if not any(languages.within(o, code) for o in offered):
                raise ValueError(
                    f"audience names the language {code!r}, which this newsletter does not "
                    f"offer; languages: {', '.join(offered)}"
                )


EVERYONE = Audience(Everyone())


def _matches(node: Node, topics: Collection[str], language: str) -> bool:
    if isinstance(node, HasTopic):
        return node.key in topics
    if isinstance(node, ReadsLang):
        return languages.within(language, node.code)
    if isinstance(node, Everyone):
        return True
    if isinstance(node, Not):
        return not _matches(node.inner, topics, language)
    if isinstance(node, All):
        return all(_matches(i, topics, language) for i in node.items)
    return any(_matches(i, topics, language) for i in node.items)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Not):
        yield from _walk(node.inner)
    elif isinstance(node, All | Any_):
        for i in node.items:
            yield from _walk(i)


def parse(text: str) -> Audience:
    """An expression, or AudienceError naming the column. Blank means everyone."""
    if len(text) > MAX_LENGTH:
        raise AudienceError(text, MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    if not text.strip():
        return EVERYONE
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, column)
        for m in _TOKEN.finditer(text):
            column = m.start(m.lastindex or 0) + 1
            if m.group(1):
                self.tokens.append(("(", "(", column))
            elif m.group(2):
                self.tokens.append((")", ")", column))
            elif m.group(3):
                self.tokens.append(("atom", m.group(3), column))
            elif m.group(4):
                self.tokens.append(("word", m.group(4).lower(), column))
            else:
                raise AudienceError(text, column, f"unexpected {m.group(5)!r}")
        self.at = 0
        self.depth = 0

    def fail(self, problem: str) -> AudienceError:
        column = self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text) + 1
        return AudienceError(self.text, column, problem)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def parse(self) -> Audience:
        root = self.expr()
        if self.peek() is not None:
            _, value, _ = self.tokens[self.at]
            raise self.fail(f"expected 'and', 'or' or the end, found {value!r}")
        return Audience(root)

    def expr(self) -> Node:
        items = [self.term()]
        while (t := self.peek()) is not None and t[:2] == ("word", "or"):
            self.at += 1
            items.append(self.term())
        return items[0] if len(items) == 1 else Any_(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while (t := self.peek()) is not None and t[:2] == ("word", "and"):
            self.at += 1
            items.append(self.factor())
        return items[0] if len(items) == 1 else All(tuple(items))

    def factor(self) -> Node:
        t = self.peek()
        if t is None:
            raise self.fail("expected topic:KEY, lang:CODE, 'not' or '(' but the text ended")
        kind, value, column = t
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH}")
        if kind == "word" and value == "not":
            self.at += 1
            self.depth += 1
            inner = self.factor()
            self.depth -= 1
            return Not(inner)
        if kind == "(":
            self.at += 1
            self.depth += 1
            inner = self.expr()
            self.depth -= 1
            if (close := self.peek()) is None or close[0] != ")":
                raise self.fail("expected ')'")
            self.at += 1
            return inner
        if kind == "word" and value == "everyone":
            self.at += 1
            return Everyone()
        if kind == "atom":
            self.at += 1
            return self.atom(value, column)
        raise self.fail(f"expected topic:KEY, lang:CODE, 'not' or '(', found {value!r}")

    def atom(self, value: str, column: int) -> Node:
        prefix, _, rest = value.partition(":")
        prefix = prefix.lower()
        if prefix == "topic":
            key = rest.lower()
            if not TOPIC_KEY.fullmatch(key):
                raise AudienceError(
                    self.text, column + 6, f"{rest!r} is not a topic key (a-z, 0-9, - and _)"
                )
            return HasTopic(key)
        if prefix == "lang":
            try:
                return ReadsLang(languages.canonical(rest))
            except ValueError as e:
                raise AudienceError(self.text, column + 5, str(e)) from None
        raise AudienceError(self.text, column, f"unknown {prefix + ':'!r}; use topic: or lang:")
