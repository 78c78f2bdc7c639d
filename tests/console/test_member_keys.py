"""Member keys on the server: stored as the browser wrapped them, shape-checked, never replaced
by other key pairs, readable only by their owner."""

from __future__ import annotations

import copy
import os

import pytest

from core import crypto
from tests.console.conftest import login
from tests.helpers import add_counsellor

API = "/api/v1/console"


def blob(iterations: int = 600_000) -> dict:
    publics = {kind: crypto.b64url(os.urandom(32)) for kind in ("x25519", "ed25519")}
    key = os.urandom(32)
    wrapped = {
        "kdf": "PBKDF2-SHA256",
        "iterations": iterations,
        "salt": crypto.b64url(os.urandom(16)),
    }
    for kind, public in publics.items():
        wrapped[kind] = {
            "public_raw": public,
            "wrapped": crypto.encrypt_sym(
                key=key, plaintext=os.urandom(48), kid=f"me:{kind}", epoch=0, context={}
            ),
        }
    return {
        "x25519_public": publics["x25519"],
        "ed25519_public": publics["ed25519"],
        "wrapped": wrapped,
    }


async def test_keys_are_stored_rewrapped_but_never_replaced(client, counsellor):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    assert (await client.get(f"{API}/me/keys")).status_code == 404
    keys = blob()
    assert (await client.put(f"{API}/me/keys", json=keys, headers=headers)).status_code == 200
    assert (await client.get(f"{API}/me/keys")).json() == keys
    rewrapped = copy.deepcopy(keys)
    rewrapped["wrapped"]["salt"] = crypto.b64url(os.urandom(16))
    assert (await client.put(f"{API}/me/keys", json=rewrapped, headers=headers)).status_code == 200
    other = await client.put(f"{API}/me/keys", json=blob(), headers=headers)
    assert other.status_code == 422 and "new team epoch" in other.json()["detail"]
    assert (await client.get(f"{API}/me/keys")).json() == rewrapped


@pytest.mark.parametrize(
    "spoil",
    [
        lambda k: k["wrapped"].update(iterations=1000),
        lambda k: k["wrapped"].update(kdf="PBKDF2-SHA1"),
        lambda k: k.update(x25519_public="!" * 43),
        lambda k: k.update(ed25519_public=crypto.b64url(os.urandom(31)) + "AAAA"),
        lambda k: k["wrapped"]["x25519"].update(public_raw=crypto.b64url(os.urandom(32))),
        lambda k: k["wrapped"]["ed25519"]["wrapped"].update(alg="none"),
    ],
    ids=["weak-iterations", "other-kdf", "not-base64", "not-32-bytes", "other-public", "plain"],
)
async def test_malformed_or_weakly_wrapped_keys_are_refused(client, counsellor, spoil):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    keys = blob()
    spoil(keys)
    response = await client.put(f"{API}/me/keys", json=keys, headers=headers)
    assert response.status_code == 422, response.text
    assert (await client.get(f"{API}/me/keys")).status_code == 404


async def test_each_counsellor_sees_only_their_own_keys(client, services, counsellor):
    headers = {"X-CSRF-Token": await login(client, "anna")}
    await client.put(f"{API}/me/keys", json=blob(), headers=headers)
    await client.post("/console/logout", headers=headers)
    client.cookies.clear()
    await add_counsellor(services, login="bruno")
    await login(client, "bruno")
    assert (await client.get(f"{API}/me/keys")).status_code == 404
