"""Writes tests/vectors/envelope_v1.json: fixed keys, ephemeral keys and nonces, so Python and
the browser can check each other's envelopes. Run it as a module
(`python -m tests.vectors.make_envelope_vectors`) after a deliberate change of the format;
tests/core/test_envelope.py fails if the file drifts from the code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core import crypto

VECTORS = Path(__file__).with_name("envelope_v1.json")


def _bytes(label: str, size: int) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:size]


def build() -> dict[str, Any]:
    recipient = crypto.x25519_from_raw(_bytes("recipient", 32))
    recipient_public = crypto.x25519_public_raw(recipient)
    sealed = []
    transcript = {"team": "t-1", "conversation": "c-1", "purpose": "transcript"}
    for n, (text, context) in enumerate(
        [
            ("Hallo, ich bin 14 und mein Papa ist in Haft.", {**transcript, "seq": 1}),
            ("Grüße aus Köln – ümlaut, ß, emoji 🌱", {**transcript, "seq": 2}),
            ("", {"purpose": "empty"}),
        ]
    ):
        envelope = crypto.seal_to(
            recipient=recipient_public,
            plaintext=text.encode(),
            kid="kid-transcript-1",
            epoch=3,
            context=context,
            _ephemeral=crypto.x25519_from_raw(_bytes(f"ephemeral-{n}", 32)),
            _nonce=_bytes(f"nonce-{n}", 12),
        )
        sealed.append({"plaintext": text, "context": context, "envelope": envelope})
    key = _bytes("case-key", 32)
    symmetric = []
    note = {"team": "t-1", "case": "c-1", "author": "a-1", "purpose": "note"}
    for n, (text, context) in enumerate([("Notiz: Vater in JVA, Besuch geplant.", note)]):
        envelope = crypto.encrypt_sym(
            key=key,
            plaintext=text.encode(),
            kid="kid-case-1",
            epoch=3,
            context=context,
            _nonce=_bytes(f"sym-nonce-{n}", 12),
        )
        symmetric.append({"plaintext": text, "context": context, "envelope": envelope})
    return {
        "_doc": "Made by tests/vectors/make_envelope_vectors.py; keys are test keys, never real.",
        "recipient": {
            "private_raw": crypto.b64url(crypto.x25519_private_raw(recipient)),
            "public_raw": crypto.b64url(recipient_public),
        },
        "sealed": sealed,
        "symmetric_key": crypto.b64url(key),
        "symmetric": symmetric,
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    VECTORS.write_text(render(), encoding="utf-8")
