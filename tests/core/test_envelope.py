"""The envelope format on the Python side: the checked-in vectors open, nothing in them drifts,
and any change to key, header, context or ciphertext fails instead of giving plaintext."""

from __future__ import annotations

import copy
import json

import pytest
from cryptography.exceptions import InvalidTag

from core import crypto
from tests.vectors.make_envelope_vectors import VECTORS, render

VECTORS_DATA = json.loads(VECTORS.read_text(encoding="utf-8"))
PRIVATE = crypto.x25519_from_raw(crypto.from_b64url(VECTORS_DATA["recipient"]["private_raw"]))
KEY = crypto.from_b64url(VECTORS_DATA["symmetric_key"])


def test_the_checked_in_vectors_are_what_the_code_makes():
    assert VECTORS.read_text(encoding="utf-8") == render()


@pytest.mark.parametrize("vector", VECTORS_DATA["sealed"], ids=lambda v: v["context"]["purpose"])
def test_sealed_vectors_open_with_the_private_key(vector):
    opened = crypto.open_sealed(
        private=PRIVATE, envelope=vector["envelope"], context=vector["context"]
    )
    assert opened.decode() == vector["plaintext"]


def test_symmetric_vectors_open_with_the_case_key():
    for vector in VECTORS_DATA["symmetric"]:
        assert (
            crypto.decrypt_sym(
                key=KEY, envelope=vector["envelope"], context=vector["context"]
            ).decode()
            == vector["plaintext"]
        )


def flipped(text: str) -> str:
    raw = bytearray(crypto.from_b64url(text))
    raw[0] ^= 0x01
    return crypto.b64url(bytes(raw))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e, c: (e, {**c, "seq": c["seq"] + 1}),  # another message's place
        lambda e, c: (e, {**c, "conversation": "c-2"}),  # another conversation
        lambda e, c: ({**e, "epoch": e["epoch"] + 1}, c),  # another epoch
        lambda e, c: ({**e, "kid": "kid-other"}, c),  # another key id
        lambda e, c: ({**e, "ct": flipped(e["ct"])}, c),  # a flipped ciphertext byte
        lambda e, c: ({**e, "nonce": flipped(e["nonce"])}, c),  # a flipped nonce byte
        lambda e, c: ({**e, "epk": flipped(e["epk"])}, c),  # another ephemeral key
    ],
    ids=["seq", "conversation", "epoch", "kid", "ct", "nonce", "epk"],
)
def test_any_change_fails_and_never_gives_plaintext(tamper):
    vector = VECTORS_DATA["sealed"][0]
    envelope, context = tamper(copy.deepcopy(vector["envelope"]), dict(vector["context"]))
    with pytest.raises(InvalidTag):
        crypto.open_sealed(private=PRIVATE, envelope=envelope, context=context)


def test_a_wrong_key_or_an_unknown_format_fails():
    vector = VECTORS_DATA["sealed"][0]
    other, _ = crypto.new_x25519()
    with pytest.raises(InvalidTag):
        crypto.open_sealed(private=other, envelope=vector["envelope"], context=vector["context"])
    with pytest.raises(crypto.EnvelopeError):
        crypto.open_sealed(
            private=PRIVATE, envelope={**vector["envelope"], "v": 2}, context=vector["context"]
        )
    with pytest.raises(crypto.EnvelopeError):
        crypto.decrypt_sym(key=KEY, envelope=vector["envelope"], context=vector["context"])
    with pytest.raises(crypto.EnvelopeError):
        crypto.seal_to(
            recipient=crypto.x25519_public_raw(PRIVATE),
            plaintext=b"x",
            kid="k",
            epoch=1,
            context={"flag": True},
        )


def test_each_seal_has_its_own_ephemeral_key_and_nonce_and_random_key_ids():
    public = crypto.x25519_public_raw(PRIVATE)
    a, b = (
        crypto.seal_to(recipient=public, plaintext=b"same", kid="k", epoch=1, context={})
        for _ in range(2)
    )
    assert a["epk"] != b["epk"] and a["nonce"] != b["nonce"] and a["ct"] != b["ct"]
    assert crypto.new_key_id() != crypto.new_key_id()
    assert len(crypto.from_b64url(crypto.new_key_id())) == 16
