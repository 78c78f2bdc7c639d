"""A counsellor's key pairs in a real Chromium: made and wrapped under the unlock passphrase
(PBKDF2-SHA-256, 600,000 iterations), unlocked as non-extractable keys that open what Python
sealed to them; a wrong passphrase fails; nothing lands in the browser's storage."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import load_der_private_key
from playwright.sync_api import Page

from core import crypto
from tests.e2e.conftest import RunningService

pytestmark = pytest.mark.e2e
PASSPHRASE = "mein langer Entsperrsatz 2026"

MAKE = """
async ([owner, passphrase]) => {
  const stored = await window.LotseKeys.createMemberKeys(owner, passphrase);
  let short = false;
  try { await window.LotseKeys.createMemberKeys(owner, "kurz"); } catch (e) { short = true; }
  return { stored, short };
}
"""

UNLOCK = """
async ([owner, passphrase, stored, envelope, context]) => {
  const E = window.LotseEnvelope;
  const keys = await window.LotseKeys.unlock(owner, passphrase, stored);
  const opened = new TextDecoder().decode(
    await E.openSealed(keys.x25519, keys.x25519_public_raw, envelope, context));
  const signature = await crypto.subtle.sign("Ed25519", keys.ed25519,
    new TextEncoder().encode("roster v1"));
  let wrong = null;
  try { await window.LotseKeys.unlock(owner, passphrase + "x", stored); }
  catch (error) { wrong = error.name; }
  return {
    opened, wrong,
    extractable: [keys.x25519.extractable, keys.ed25519.extractable],
    signature: E.b64url(signature),
    storage: localStorage.length + sessionStorage.length,
  };
}
"""


def test_member_keys_are_made_wrapped_and_unlocked_in_the_browser(
    service: RunningService, page: Page
) -> None:
    page.goto(service.url + "/console/login")
    page.add_script_tag(url=service.url + "/console/static/envelope.js")
    page.add_script_tag(url=service.url + "/console/static/keys.js")
    made = page.evaluate(MAKE, ["counsellor-1", PASSPHRASE])
    stored = made["stored"]
    assert made["short"], "a short passphrase is refused"
    assert stored["kdf"] == "PBKDF2-SHA256" and stored["iterations"] >= 600_000
    assert PASSPHRASE not in str(stored)

    # The wrapped private key is what Python unwraps with the passphrase (format check only:
    # the server never has the passphrase) and it matches the public key beside it.
    pkcs8 = crypto.unwrap_member_key(
        owner="counsellor-1", kind="x25519", passphrase=PASSPHRASE, stored=stored
    )
    private = load_der_private_key(pkcs8, password=None)
    public = crypto.from_b64url(stored["x25519"]["public_raw"])
    assert crypto.x25519_public_raw(private) == public

    context = {"team": "t-1", "epoch": 1, "purpose": "team-key"}
    envelope = crypto.seal_to(
        recipient=public, plaintext=b"team key epoch 1", kid="team-1", epoch=1, context=context
    )
    result = page.evaluate(UNLOCK, ["counsellor-1", PASSPHRASE, stored, envelope, context])
    assert result["opened"] == "team key epoch 1"
    assert result["wrong"] == "OperationError", "a wrong passphrase unlocks nothing"
    assert result["extractable"] == [False, False]
    assert result["storage"] == 0, "nothing in localStorage or sessionStorage"

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    verifier = Ed25519PublicKey.from_public_bytes(
        crypto.from_b64url(stored["ed25519"]["public_raw"])
    )
    verifier.verify(crypto.from_b64url(result["signature"]), b"roster v1")


def test_a_counsellor_sets_up_keys_in_the_console_and_unlocks_them_after_a_reload(
    service: RunningService, page: Page
) -> None:
    import re

    from playwright.sync_api import expect

    from tests.e2e.conftest import SCREENSHOTS, console_login

    printed = service.lotse("account", "create", "schluessel")
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    console_login(page, service, "schluessel", password)
    state = page.locator("#keys-state")
    expect(state).to_have_text("Schlüssel einrichten")
    state.click()
    page.get_by_label("Entsperrsatz (mindestens 12 Zeichen)").fill(PASSPHRASE)
    page.get_by_label("Entsperrsatz noch einmal").fill(PASSPHRASE + "!")
    page.get_by_role("button", name="Schlüssel erzeugen").click()
    expect(page.locator("#keys-error")).to_have_text(
        "Die beiden Entsperrsätze stimmen nicht überein."
    )
    page.get_by_label("Entsperrsatz noch einmal").fill(PASSPHRASE)
    page.get_by_role("button", name="Schlüssel erzeugen").click()
    expect(state).to_have_text("Schlüssel: entsperrt", timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "console-keys.png"))

    page.reload()
    expect(state).to_have_text("Schlüssel: gesperrt")
    state.click()
    page.get_by_label("Entsperrsatz", exact=True).fill("falscher Entsperrsatz")
    page.get_by_role("button", name="Entsperren").click()
    expect(page.locator("#keys-error")).to_have_text("Der Entsperrsatz stimmt nicht.")
    page.get_by_label("Entsperrsatz", exact=True).fill(PASSPHRASE)
    page.get_by_role("button", name="Entsperren").click()
    expect(state).to_have_text("Schlüssel: entsperrt", timeout=15_000)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert PASSPHRASE not in service.logs()
