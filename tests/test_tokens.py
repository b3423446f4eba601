"""Link tokens and sealed ids: one implementation each, checked against known answers
and against what could be forged."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import Signer

from mailer.tokens import (
    MAILTO,
    VERP,
    Sealer,
    TokenSigner,
    message_id_token,
    open_message_id,
    verp_ids,
    verp_token,
)

SECRET = "mailer-known-answer-secret-123"


@pytest.mark.parametrize(
    "namespace,ids,token",
    [
        ("unsubscribe", (1, 2, 3), "1.2.3.3EfCdNmvJVHXqUlO42jH5eXy2ntV-1gjcoddpPzNWQo"),
        (
            "confirm",
            (0x2A, 0x3FFFFFFFFFFFFFFF, 1),
            "2a.3fffffffffffffff.1.aZmrlfexH33c24-e6FNVD40m6v5t0KNwfEKCb0N3NrQ",
        ),
        ("resubscribe", (7, 11), "7.b.KTF717cojO0Zrom9D8HY8z_QF8UMJN-eno1c6XaXXAo"),
    ],
)
def test_link_tokens_known_answers(namespace: str, ids: tuple[int, ...], token: str) -> None:
    """The bytes itsdangerous made before: links already in people's mailboxes still work."""
    signer = TokenSigner(SECRET, namespace)
    assert signer.sign(*ids) == token
    assert signer.unsign(token, len(ids)) == ids


ids = st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4).map(tuple)


@given(ids)
def test_itsdangerous_agrees_with_every_token(values: tuple[int, ...]) -> None:
    token = TokenSigner(SECRET, "unsubscribe").sign(*values)
    reference = Signer(SECRET, salt="mailer.unsubscribe", digest_method=hashlib.sha256)
    assert reference.unsign(token).decode() == ".".join(f"{v:x}" for v in values)


@given(ids, st.integers(0, 60), st.sampled_from("0123456789abcdefABCDEF-_.x=+/ "))
def test_an_altered_token_never_opens(values: tuple[int, ...], at: int, char: str) -> None:
    signer = TokenSigner(SECRET, "unsubscribe")
    token = signer.sign(*values)
    altered = token[:at] + char + token[at + 1 :]
    if altered != token:
        assert signer.unsign(altered, len(values)) is None
    assert TokenSigner(SECRET, "confirm").unsign(token, len(values)) is None  # namespaced
    assert (
        TokenSigner("another secret, long enough", "unsubscribe").unsign(token, len(values)) is None
    )


@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_sealed_verp_ids_round_trip_and_stay_opaque(subscriber: int, issue: int) -> None:
    sealer = Sealer(SECRET)
    token = verp_token(sealer, VERP, subscriber, issue)
    assert len(token) == 39 and token == token.lower()
    neighbour = verp_token(sealer, VERP, subscriber ^ 1, issue)
    assert token[:6] != neighbour[:6]  # nothing in it counts up with the id (odds 1 in 10^9)
    assert verp_ids(sealer, VERP, token.upper()) == (subscriber, issue)  # case-blind, as MTAs are
    assert verp_ids(sealer, MAILTO, token) is None  # a bounce token is no unsubscribe
    assert verp_ids(Sealer("another secret, long enough"), VERP, token) is None


@given(st.binary(min_size=8, max_size=8), st.integers(1, 2**31 - 1))
def test_message_ids_are_stable_and_only_ours_open(nonce: bytes, subscriber: int) -> None:
    sealer = Sealer(SECRET)
    token = message_id_token(sealer, nonce.hex(), subscriber)
    assert token == message_id_token(sealer, nonce.hex(), subscriber)  # a resend keeps it
    assert open_message_id(sealer, token) == (nonce.hex(), subscriber)
    flipped = token[:10] + ("0" if token[10] != "0" else "1") + token[11:]
    assert open_message_id(sealer, flipped) is None
