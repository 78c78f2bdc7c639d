import pytest
from cryptography.exceptions import InvalidTag

from core import crypto
from core.settings import load_settings, new_secret


def test_pseudonym_is_stable_and_changes_with_the_pepper():
    a = crypto.pseudonym(pepper=b"k" * 32, version=1, channel="tg", identifier="42")
    assert a == crypto.pseudonym(pepper=b"k" * 32, version=1, channel="tg", identifier="42")
    assert a != crypto.pseudonym(pepper=b"j" * 32, version=1, channel="tg", identifier="42")
    assert "42" not in a.split(".", 1)[1]


def test_routing_reference_opens_only_with_its_own_pseudonym():
    key = b"r" * 32
    sealed = crypto.seal_routing(key=key, pseudonym="p1.abc", chat_id=123456789)
    assert b"123456789" not in sealed
    assert crypto.open_routing(key=key, pseudonym="p1.abc", sealed=sealed) == 123456789
    with pytest.raises(InvalidTag):
        crypto.open_routing(key=key, pseudonym="p1.abd", sealed=sealed)


def test_routing_nonces_are_never_reused():
    key = b"r" * 32
    seals = {crypto.seal_routing(key=key, pseudonym="p", chat_id=1)[1:13] for _ in range(200)}
    assert len(seals) == 200


def test_password_hash_is_argon2id_and_verifies():
    hashed = crypto.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert crypto.verify_password(hashed, "correct horse")
    assert not crypto.verify_password(hashed, "wrong")
    assert not crypto.verify_password("not-a-hash", "x")


def test_identities_use_the_configured_pepper(tmp_path):
    from core.identity import Identities

    settings = load_settings(
        env="test",
        data_dir=tmp_path,
        pseudonym_pepper=new_secret(),
        routing_key=new_secret(),
    )
    ids = Identities(settings)
    p = ids.pseudonym(channel="telegram", identifier="777")
    assert ids.open_chat(pseudonym=p, sealed=ids.seal_chat(pseudonym=p, chat_id=777)) == 777
