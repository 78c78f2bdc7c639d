"""Team key epochs, rosters, sealed transcripts and notes through the console API, with Python
playing the browsers (core/keyring.py is the mirror of team_keys.js; tests/e2e has the same
flows in Chromium). Each SECURITY.md property of the issue gets its test here."""

from __future__ import annotations

import base64
import copy
import secrets
import uuid

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select, update

from core import crypto, keyring
from core.conversations import Profile
from core.db import transaction
from core.models import Counsellor, TeamRoster
from lotse import keyops
from lotse.devkeys import store_member_keys
from tests.console.conftest import BASE, login
from tests.helpers import add_counsellor, add_team
from tests.keyring import table_dump


async def member(services, login_name: str, *, role: str = "counsellor", team: str = "be"):
    """An account with member keys, as if set up in its browser."""
    account = await add_counsellor(services, login=login_name, team_slug=team)
    secrets_, blob = keyring.make_member_keys(
        owner=str(account.id), role=role, passphrase="p" * 12, iterations=1
    )
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Counsellor).where(Counsellor.id == account.id).values(role=role)
        )
        store_member_keys(session, counsellor_id=account.id, blob=blob, clock=services.clock)
    return account, secrets_


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def logged_in(app, login_name: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    client = client_for(app)
    csrf = await login(client, login_name)
    return client, {"X-CSRF-Token": csrf}


@pytest.fixture
async def team(services):
    """Team Berlin without keys yet: its lead's browser makes them in the tests."""
    return await add_team(services, slug="be", states=["BE"], keys=False)


async def start_epoch(client, headers, payload) -> httpx.Response:
    return await client.post("/api/v1/console/team/epochs", json=payload, headers=headers)


def roster_members(*holders: keyring.MemberSecrets) -> list[keyring.RosterMember]:
    return [h.public for h in holders]


async def user_writes(services, name: str, text: str) -> uuid.UUID:
    pseudonym = services.identities.pseudonym(channel="test", identifier=name)
    await services.conversations.request_handover(
        channel="web", pseudonym=pseudonym, chat_ref=None, profile=Profile(federal_state="BE")
    )
    stored = await services.conversations.record_user_message(pseudonym=pseudonym, text=text)
    return stored.conversation_id


def unlock(keys_json: dict, me: keyring.MemberSecrets) -> dict[int, tuple[bytes, object]]:
    """What team_keys.js `unlockTeam` does: the newest own wrap, then back along previous_key;
    per epoch (team key, transcript private key)."""
    team, epochs = str(keys_json["team_id"]), keys_json["epochs"]
    roster = keyring.check_roster_chain(keys_json["rosters"], team=team, epoch=epochs[-1]["epoch"])
    mine = [e for e in epochs if e["wrap"]][-1]
    assert mine is epochs[-1], "wrapped into the current epoch"
    assert roster["keys"] == keyring.epoch_keys(
        kid=mine["kid"],
        transcript_kid=mine["transcript_kid"],
        transcript_public=mine["transcript_public"],
    ), "the epoch's keys are the ones the lead signed"
    key = keyring.open_team_key(private=me.x25519, team=team, member=me.id, envelope=mine["wrap"])
    current = keyring.open_transcript_key(
        team_key=key, team=team, epoch=mine["epoch"], envelope=mine["wrapped_transcript_key"]
    )
    if not keyring.matches_public(current, mine["transcript_public"]):
        raise keyring.RosterError("the team key is not the one the lead signed")
    found = {}
    for epoch in reversed([e for e in epochs if e["epoch"] <= mine["epoch"]]):
        found[epoch["epoch"]] = (
            key,
            keyring.open_transcript_key(
                team_key=key,
                team=team,
                epoch=epoch["epoch"],
                envelope=epoch["wrapped_transcript_key"],
            ),
        )
        if epoch["previous_key"]:
            key = crypto.decrypt_sym(
                key=key,
                envelope=epoch["previous_key"],
                context=keyring.previous_key_context(team=team, epoch=epoch["epoch"] - 1),
            )
    return found


def read(unlocked, team_id, message: dict) -> str:
    envelope = message["envelope"]
    return keyring.open_message(
        transcript=unlocked[envelope["epoch"]][1],
        team=str(team_id),
        conversation=message["conversation_id"],
        message=message["id"],
        sender=message["sender"],
        envelope=envelope,
    )


async def test_no_team_without_keys_takes_a_conversation(services, team):
    conversation_id = await user_writes(services, "früh", "Hallo")
    detail = await services.conversations.get_conversation(
        conversation_id=conversation_id,
        counsellor=await add_counsellor(services, login="bund"),
    )
    assert detail.team_id != team, "the national team (with keys) took it"


async def test_a_lead_starts_an_epoch_and_the_team_reads_what_the_server_sealed(
    app, services, team
):
    _, lead = await member(services, "lea", role="team_lead")
    _, colleague = await member(services, "cem")
    client, headers = await logged_in(app, "lea")
    made = keyring.new_epoch(
        team=str(team), epoch=1, signer=lead, members=roster_members(lead, colleague)
    )
    created = await start_epoch(client, headers, made.payload)
    assert created.status_code == 201, created.text
    conversation_id = await user_writes(services, "mia", "Kanarienvogel-4711 im Gefängnis")

    other, _ = await logged_in(app, "cem")
    keys_json = (await other.get("/api/v1/console/team/keys")).json()
    assert [m["wrapped"] for m in keys_json["members"]] == [True, True]
    detail = (await other.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert detail["team_id"] == str(team)
    assert read(unlock(keys_json, colleague), team, detail["messages"][0]) == (
        "Kanarienvogel-4711 im Gefängnis"
    )
    dump = await table_dump(services)
    for form in crypto_forms("Kanarienvogel-4711"):
        assert form not in dump, "the server stored no readable copy"
    await client.aclose()
    await other.aclose()


def crypto_forms(text: str) -> list[str]:
    """The text as it would show in a dump: plain, hex, base64 and base64url."""
    raw = text.encode()
    return [text, raw.hex(), base64.b64encode(raw).decode(), crypto.b64url(raw)]


async def test_the_server_refuses_rosters_that_break_the_rules(app, services, team):
    _, lead = await member(services, "lea", role="team_lead")
    _, colleague = await member(services, "cem")
    _, admin = await member(services, "adm", role="admin")
    client, headers = await logged_in(app, "lea")

    def payload(members, **changes):
        made = keyring.new_epoch(team=str(team), epoch=1, signer=lead, members=members)
        return {**made.payload, **changes}

    good = payload(roster_members(lead))
    injected = copy.deepcopy(good)  # a member added after the lead signed
    injected["roster"]["members"].append(colleague.public.as_dict())
    injected["roster"]["members"].sort(key=lambda m: m["id"])
    injected["wraps"][colleague.id] = good["wraps"][lead.id]
    assert (await start_epoch(client, headers, injected)).status_code == 422
    with_admin = payload(roster_members(lead, admin))
    assert (await start_epoch(client, headers, with_admin)).status_code == 422
    missing_wrap = payload(roster_members(lead, colleague))
    del missing_wrap["wraps"][colleague.id]
    assert (await start_epoch(client, headers, missing_wrap)).status_code == 422
    assert (await start_epoch(client, headers, {**good, "epoch": 2})).status_code == 422
    assert (await start_epoch(client, headers, good)).status_code == 201
    assert (await start_epoch(client, headers, good)).status_code == 409, "epoch 1 exists"

    counsellor, counsellor_headers = await logged_in(app, "cem")
    by_counsellor = keyring.new_epoch(
        team=str(team), epoch=2, signer=colleague, members=roster_members(colleague)
    )
    refused = await start_epoch(counsellor, counsellor_headers, by_counsellor.payload)
    assert refused.status_code == 403, "only a team lead signs rosters"
    for closed in (client, counsellor):
        await closed.aclose()


async def test_an_admin_holds_no_team_keys(app, services, team):
    await member(services, "adm", role="admin")
    client, _ = await logged_in(app, "adm")
    assert (await client.get("/api/v1/console/team/keys")).status_code == 403
    await client.aclose()


async def test_a_newcomer_waits_then_reads_older_messages_after_the_lead_wraps_them_in(
    app, services, team
):
    _, lead = await member(services, "lea", role="team_lead")
    client, headers = await logged_in(app, "lea")
    made = keyring.new_epoch(team=str(team), epoch=1, signer=lead, members=[lead.public])
    assert (await start_epoch(client, headers, made.payload)).status_code == 201
    conversation_id = await user_writes(services, "mia", "vor deiner Zeit")
    _, newcomer = await member(services, "neu")
    newbie, _ = await logged_in(app, "neu")
    waiting = (await newbie.get("/api/v1/console/team/keys")).json()
    assert waiting["epochs"][0]["wrap"] is None, "awaiting keys"
    assert {m["id"]: m["wrapped"] for m in waiting["members"]}[newcomer.id] is False

    # A roster version the server adds by itself is refused, by browsers and by the API.
    async with transaction(services.sessions) as session:
        [v1] = (await session.scalars(select(TeamRoster).where(TeamRoster.team_id == team))).all()
        forged = keyring.build_roster(
            team=str(team),
            epoch=1,
            version=2,
            previous=keyring.roster_digest(v1.roster),
            signer=lead.id,
            members=[lead.public, newcomer.public],
            keys=v1.roster["keys"],
        )
        session.add(
            TeamRoster(
                team_id=team,
                epoch=1,
                version=2,
                roster=forged,
                signature="A" * 86,
                created_at=services.clock.now(),
            )
        )
    chain = (await client.get("/api/v1/console/team/keys")).json()["rosters"]
    with pytest.raises(keyring.RosterError):
        keyring.check_roster_chain(chain, team=str(team), epoch=1)
    async with transaction(services.sessions) as session:
        await session.execute(
            delete(TeamRoster).where(TeamRoster.team_id == team, TeamRoster.version == 2)
        )

    body = keyring.add_members(
        secrets_=made, signer=lead, latest=made.payload["roster"], newcomers=[newcomer.public]
    )
    added = await client.post("/api/v1/console/team/epochs/1/members", json=body, headers=headers)
    assert added.status_code == 201, added.text
    keys_json = (await newbie.get("/api/v1/console/team/keys")).json()
    keyring.check_roster_chain(keys_json["rosters"], team=str(team), epoch=1)
    detail = (await newbie.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert read(unlock(keys_json, newcomer), team, detail["messages"][0]) == "vor deiner Zeit"
    again = await client.post("/api/v1/console/team/epochs/1/members", json=body, headers=headers)
    assert again.status_code == 409, "that version exists"
    await client.aclose()
    await newbie.aclose()


async def test_a_leaver_loses_sessions_and_wraps_and_cannot_open_the_next_epoch(
    app, services, team
):
    _, lead = await member(services, "lea", role="team_lead")
    _, leaver = await member(services, "geht")
    client, headers = await logged_in(app, "lea")
    first = keyring.new_epoch(
        team=str(team), epoch=1, signer=lead, members=roster_members(lead, leaver)
    )
    assert (await start_epoch(client, headers, first.payload)).status_code == 201
    conversation_id = await user_writes(services, "mia", "in Epoche eins")
    gone, _ = await logged_in(app, "geht")
    old_keys = unlock((await gone.get("/api/v1/console/team/keys")).json(), leaver)

    await keyops.leave(services.sessions, login="geht")
    assert (await gone.get("/api/v1/console/me")).status_code == 401, "sessions end"
    keys_json = (await client.get("/api/v1/console/team/keys")).json()
    assert keys_json["rotation_due"] is True
    assert leaver.id not in {m["id"] for m in keys_json["members"]}

    second = keyring.new_epoch(
        team=str(team),
        epoch=2,
        signer=lead,
        members=[lead.public],
        previous_team_key=first.team_key,
    )
    assert (await start_epoch(client, headers, second.payload)).status_code == 201
    await services.conversations.record_user_message(
        pseudonym=services.identities.pseudonym(channel="test", identifier="mia"),
        text="in Epoche zwei",
    )
    keys_json = (await client.get("/api/v1/console/team/keys")).json()
    assert keys_json["rotation_due"] is False
    detail = (await client.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    lead_view = unlock(keys_json, lead)
    assert [read(lead_view, team, m) for m in detail["messages"]] == [
        "in Epoche eins",
        "in Epoche zwei",
    ], "the lead reaches epoch 1 through epoch 2's previous key"
    assert detail["messages"][1]["envelope"]["epoch"] == 2
    leaver_team_key = old_keys[1][0]
    with pytest.raises(InvalidTag):
        keyring.open_transcript_key(
            team_key=leaver_team_key,
            team=str(team),
            epoch=2,
            envelope=keys_json["epochs"][1]["wrapped_transcript_key"],
        )
    with pytest.raises(InvalidTag):
        read({2: (None, old_keys[1][1])}, team, detail["messages"][1])
    await client.aclose()
    await gone.aclose()


async def test_the_recovery_key_restores_access_after_every_key_is_lost(app, services, team):
    recovery, recovery_public = crypto.new_x25519()
    services.settings.recovery_public_key = crypto.b64url(recovery_public)
    _, lead = await member(services, "lea", role="team_lead")
    client, headers = await logged_in(app, "lea")
    made = keyring.new_epoch(team=str(team), epoch=1, signer=lead, members=[lead.public])
    without = {**made.payload, "recovery_wrap": None}
    assert (await start_epoch(client, headers, without)).status_code == 422, "must be wrapped"
    made = keyring.new_epoch(
        team=str(team),
        epoch=1,
        signer=lead,
        members=[lead.public],
        recovery_public=crypto.b64url(recovery_public),
    )
    assert (await start_epoch(client, headers, made.payload)).status_code == 201
    conversation_id = await user_writes(services, "mia", "nicht verloren")

    # The lead forgot the passphrase: their keys go, new ones are made, the recovery key
    # wraps the team key for them again.
    assert await keyops.reset_keys(services.sessions, login="lea")
    lead_account = await services_account(services, "lea")
    renewed, blob = keyring.make_member_keys(
        owner=str(lead_account), role="team_lead", passphrase="q" * 12, iterations=1
    )
    async with transaction(services.sessions) as session:
        store_member_keys(session, counsellor_id=lead_account, blob=blob, clock=services.clock)
    pem = crypto.private_key_pem(recovery, b"offline")
    private = crypto.load_private_key_pem(pem, b"offline")
    epoch = await keyops.recover(
        services.sessions,
        clock=services.clock,
        team_slug="be",
        login="lea",
        recovery_private=private,
    )
    assert epoch == 1
    keys_json = (await client.get("/api/v1/console/team/keys")).json()
    detail = (await client.get(f"/api/v1/console/conversations/{conversation_id}")).json()
    assert read(unlock(keys_json, renewed), team, detail["messages"][0]) == "nicht verloren"
    await client.aclose()


async def services_account(services, login_name: str) -> uuid.UUID:
    async with services.sessions() as session:
        found = await session.scalar(select(Counsellor.id).where(Counsellor.login == login_name))
    assert found is not None
    return found


async def test_notes_are_envelopes_made_by_the_browser_and_nothing_else(app, services, team):
    _, lead = await member(services, "lea", role="team_lead")
    client, headers = await logged_in(app, "lea")
    made = keyring.new_epoch(team=str(team), epoch=1, signer=lead, members=[lead.public])
    assert (await start_epoch(client, headers, made.payload)).status_code == 201
    conversation_id = await user_writes(services, "mia", "Hallo")
    notes_url = f"/api/v1/console/conversations/{conversation_id}/notes"
    case_key, case_kid, note_id = secrets.token_bytes(32), crypto.new_key_id(), uuid.uuid4()
    wrapped_case_key = crypto.encrypt_sym(
        key=made.team_key,
        plaintext=case_key,
        kid=case_kid,
        epoch=1,
        context=keyring.case_key_context(team=str(team), conversation=str(conversation_id)),
    )
    note = crypto.encrypt_sym(
        key=case_key,
        plaintext=b"Notiz-Kanarie-0815: Vater in Tegel",
        kid=case_kid,
        epoch=1,
        context=keyring.note_context(
            team=str(team),
            conversation=str(conversation_id),
            note=str(note_id),
            author=lead.id,
        ),
    )
    plain = {"id": str(note_id), "envelope": note, "text": "Vater in Tegel"}
    assert (await client.post(notes_url, json=plain, headers=headers)).status_code == 422
    bare = {"id": str(note_id), "envelope": note}
    assert (await client.post(notes_url, json=bare, headers=headers)).status_code == 409
    fake = {**bare, "envelope": {**note, "alg": "none"}}
    case = {"epoch": 1, "kid": case_kid, "envelope": wrapped_case_key}
    assert (
        await client.post(notes_url, json={**fake, "case_key": case}, headers=headers)
    ).status_code == 422
    saved = await client.post(notes_url, json={**bare, "case_key": case}, headers=headers)
    assert saved.status_code == 201, saved.text
    second = {"id": str(uuid.uuid4()), "envelope": note, "case_key": case}
    assert (await client.post(notes_url, json=second, headers=headers)).status_code == 409

    listed = (await client.get(notes_url)).json()
    [stored_key] = listed["case_keys"]
    opened_case_key = crypto.decrypt_sym(
        key=made.team_key,
        envelope=stored_key["envelope"],
        context=keyring.case_key_context(team=str(team), conversation=str(conversation_id)),
    )
    [stored] = listed["notes"]
    text = crypto.decrypt_sym(
        key=opened_case_key,
        envelope=stored["envelope"],
        context=keyring.note_context(
            team=str(team),
            conversation=str(conversation_id),
            note=stored["id"],
            author=stored["author_id"],
        ),
    ).decode()
    assert text == "Notiz-Kanarie-0815: Vater in Tegel"
    moved = keyring.note_context(
        team=str(team), conversation=str(uuid.uuid4()), note=stored["id"], author=lead.id
    )
    with pytest.raises(InvalidTag):  # bound to its conversation: moved, it does not open
        crypto.decrypt_sym(key=opened_case_key, envelope=stored["envelope"], context=moved)
    dump = await table_dump(services)
    for form in crypto_forms("Notiz-Kanarie-0815"):
        assert form not in dump
    await add_counsellor(services, login="fremd")  # of the national team
    other, _ = await logged_in(app, "fremd")
    assert (await other.get(notes_url)).status_code == 404
    await client.aclose()
    await other.aclose()


async def test_member_keys_of_the_browser_open_in_python(services):
    """The Python mirror makes what keys.js makes (its PKCS#8 imports as X25519)."""
    made, blob = keyring.make_member_keys(owner="o", role="counsellor", passphrase="p" * 12)
    pkcs8 = crypto.unwrap_member_key(owner="o", kind="x25519", passphrase="p" * 12, stored=blob)
    assert serialization.load_der_private_key(pkcs8, password=None).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == crypto.from_b64url(made.public.x25519)


async def test_a_team_key_the_server_made_itself_is_refused(app, services, team):
    """The server can seal any key to a member's public key. It cannot make that key match
    the transcript key the lead signed, so the member's browser refuses it."""
    _, lead = await member(services, "lea", role="team_lead")
    _, colleague = await member(services, "cem")
    client, headers = await logged_in(app, "lea")
    made = keyring.new_epoch(
        team=str(team), epoch=1, signer=lead, members=roster_members(lead, colleague)
    )
    assert (await start_epoch(client, headers, made.payload)).status_code == 201
    other, _ = await logged_in(app, "cem")
    keys_json = (await other.get("/api/v1/console/team/keys")).json()
    unlock(keys_json, colleague)  # the real one opens

    forged_key = secrets.token_bytes(32)
    forged_transcript, forged_public = crypto.new_x25519()
    epoch = keys_json["epochs"][0]
    epoch["wrap"] = keyring.wrap_team_key(
        team_key=forged_key,
        recipient=colleague.public.x25519,
        team=str(team),
        member=colleague.id,
        kid=epoch["kid"],
        epoch=1,
    )
    pkcs8 = forged_transcript.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    epoch["wrapped_transcript_key"] = crypto.encrypt_sym(
        key=forged_key,
        plaintext=pkcs8,
        kid=epoch["transcript_kid"],
        epoch=1,
        context=keyring.transcript_key_context(team=str(team), epoch=1),
    )
    with pytest.raises(keyring.RosterError):
        unlock(keys_json, colleague)
    epoch["transcript_public"] = crypto.b64url(forged_public)  # and the public key with it
    with pytest.raises(AssertionError, match="signed"):
        unlock(keys_json, colleague)
    await client.aclose()
    await other.aclose()
