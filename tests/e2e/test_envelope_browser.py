"""The envelope format in a real Chromium (WebCrypto X25519, HKDF, AES-GCM): Python's vectors
open in the browser, the browser's envelopes open in Python, and a flipped associated-data byte
fails on both sides."""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidTag
from playwright.sync_api import Page

from core import crypto
from tests.e2e.conftest import RunningService
from tests.vectors.make_envelope_vectors import VECTORS

pytestmark = pytest.mark.e2e
DATA = json.loads(VECTORS.read_text(encoding="utf-8"))

BROWSER_SIDE = """
async (data) => {
  const E = window.LotseEnvelope;
  const subtle = crypto.subtle;
  const r = data.recipient;
  const priv = await subtle.importKey("jwk",
    { kty: "OKP", crv: "X25519", d: r.private_raw, x: r.public_raw },
    { name: "X25519" }, false, ["deriveBits"]);
  const pub = E.fromB64url(r.public_raw);
  const dec = (bytes) => new TextDecoder().decode(bytes);
  const opened = [];
  for (const v of data.sealed) {
    opened.push(dec(await E.openSealed(priv, pub, v.envelope, v.context)));
  }
  const caseKey = await subtle.importKey("raw", E.fromB64url(data.symmetric_key),
    { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  const notes = [];
  for (const v of data.symmetric) {
    notes.push(dec(await E.decryptSym(caseKey, v.envelope, v.context)));
  }
  let tamperFails = false;
  const first = data.sealed[0];
  try {
    await E.openSealed(priv, pub, first.envelope, Object.assign({}, first.context, { seq: 99 }));
  } catch (error) { tamperFails = error.name === "OperationError"; }
  const context = { team: "t-1", conversation: "c-9", purpose: "transcript", seq: 7 };
  const made = await E.sealTo(pub, new TextEncoder().encode("Aus dem Browser: Grüße 🌱"),
    { kid: "kid-browser", epoch: 4 }, context);
  const note = await E.encryptSym(caseKey, new TextEncoder().encode("Notiz aus dem Browser"),
    { kid: "kid-case-1", epoch: 4 }, { case: "c-9", purpose: "note" });
  return { opened, notes, tamperFails, made, context, note, secure: window.isSecureContext };
}
"""


def test_vectors_in_both_directions_and_tampering_fails_in_both(
    service: RunningService, page: Page
) -> None:
    page.goto(service.url + "/console/login")
    page.add_script_tag(url=service.url + "/console/static/envelope.js")
    result = page.evaluate(BROWSER_SIDE, DATA)

    assert result["secure"], "WebCrypto needs a secure context (127.0.0.1 is one)"
    assert result["opened"] == [v["plaintext"] for v in DATA["sealed"]]
    assert result["notes"] == [v["plaintext"] for v in DATA["symmetric"]]
    assert result["tamperFails"], "a changed context fails in the browser"

    private = crypto.x25519_from_raw(crypto.from_b64url(DATA["recipient"]["private_raw"]))
    made, context = result["made"], result["context"]
    assert made["alg"] == crypto.SEAL_ALG and made["epoch"] == 4
    assert crypto.open_sealed(private=private, envelope=made, context=context).decode() == (
        "Aus dem Browser: Grüße 🌱"
    )
    key = crypto.from_b64url(DATA["symmetric_key"])
    note_context = {"case": "c-9", "purpose": "note"}
    assert crypto.decrypt_sym(key=key, envelope=result["note"], context=note_context) == (
        b"Notiz aus dem Browser"
    )
    with pytest.raises(InvalidTag):
        crypto.open_sealed(private=private, envelope=made, context={**context, "seq": 8})
