"""The key protocol of docs/key-protocol.md in a real Chromium (team_keys.js) against its Python
mirror (core/keyring.py): epochs, rosters, transcripts and notes made on either side open on
the other; a roster entry without a lead's signature is refused; a leaver's old key does not
open the next epoch; a newcomer of epoch 2 reads epoch 1 through `previous_key`.

The browser side runs the console's own scripts in a page of the running service, without its
API, so the material is made here and handed over as GET /team/keys would hand it."""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Page

from core import crypto, keyring
from tests.e2e.conftest import RunningService

pytestmark = pytest.mark.e2e
PASSPHRASE = "ein langer Entsperrsatz 2026"
SCRIPTS = ("envelope.js", "keys.js", "team_keys.js")


def load_scripts(page: Page, service: RunningService) -> None:
    page.goto(service.url + "/console/login")
    for name in SCRIPTS:
        page.add_script_tag(url=f"{service.url}/console/static/{name}")


def member(role: str) -> tuple[keyring.MemberSecrets, dict[str, Any]]:
    return keyring.make_member_keys(owner=str(uuid.uuid4()), role=role, passphrase=PASSPHRASE)


def key_member(secrets_: keyring.MemberSecrets, *, wrapped: bool = True) -> dict[str, Any]:
    public = secrets_.public
    return {
        "id": public.id,
        "display_name": public.id[:8],
        "role": public.role,
        "x25519_public": public.x25519,
        "ed25519_public": public.ed25519,
        "wrapped": wrapped,
    }


def epoch_public(epoch: keyring.EpochSecrets, wrap_for: str | None) -> dict[str, Any]:
    """One row of GET /team/keys `epochs`, as the member `wrap_for` receives it."""
    payload = epoch.payload
    return {
        "epoch": epoch.epoch,
        "kid": epoch.kid,
        "transcript_public": payload["transcript_public"],
        "transcript_kid": epoch.transcript_kid,
        "wrapped_transcript_key": payload["wrapped_transcript_key"],
        "previous_key": payload["previous_key"],
        "wrap": payload["wraps"].get(wrap_for) if wrap_for else None,
    }


def team_keys(
    team: str,
    epochs: list[keyring.EpochSecrets],
    chain: list[dict[str, Any]],
    *,
    me: str,
    members: list[dict[str, Any]],
    recovery_public: str | None = None,
) -> dict[str, Any]:
    return {
        "team_id": team,
        "recovery_public": recovery_public,
        "rotation_due": False,
        "epochs": [epoch_public(e, me) for e in epochs],
        "rosters": [
            {"epoch": e["roster"]["epoch"], "version": e["roster"]["version"], **e} for e in chain
        ],
        "members": members,
    }


def first_chain(epoch: keyring.EpochSecrets) -> list[dict[str, Any]]:
    return [{"roster": epoch.payload["roster"], "signature": epoch.payload["signature"]}]


def sealed_message(epoch: keyring.EpochSecrets, team: str, text: str) -> dict[str, Any]:
    conversation, message = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "id": message,
        "conversation_id": conversation,
        "seq": 1,
        "sender": "user",
        "delivery": "sent",
        "created_at": "2026-01-05T10:00:00Z",
        "envelope": keyring.seal_message(
            transcript_public=epoch.payload["transcript_public"],
            kid=epoch.transcript_kid,
            epoch=epoch.epoch,
            team=team,
            conversation=conversation,
            message=message,
            sender="user",
            text=text,
        ),
    }


UNLOCK_AND_READ = """
async ([me, passphrase, blob, teamKeys, messages, notes]) => {
  const memberKeys = await window.LotseKeys.unlock(me, passphrase, blob);
  const T = window.LotseTeamKeys;
  const unlocked = await T.unlockTeam(teamKeys, memberKeys, me);
  const texts = [];
  for (const m of messages) texts.push(await T.openMessage(unlocked, teamKeys.team_id, m));
  const opened = notes ? await T.openNotes(unlocked, teamKeys.team_id, notes.conversation,
    notes.json) : null;
  const extractable = Object.values(unlocked.keys)
    .some((k) => k.team.extractable || k.transcript.extractable);
  return { texts, opened, extractable, epochs: Object.keys(unlocked.keys).map(Number),
    fingerprint: unlocked.signerFingerprint,
    storage: localStorage.length + sessionStorage.length };
}
"""

# Helpers kept on the page between evaluations: unlocked member keys never leave the browser.
SETUP = """
(passphrase) => {
  window.T = {
    async member(me, blob) {
      window.T.keys = window.T.keys || {};
      window.T.keys[me] = await window.LotseKeys.unlock(me, passphrase, blob);
    },
    async refused(promise) {
      try { await promise; return null; } catch (error) { return error.message || error.name; }
    },
  };
}
"""


def test_python_material_opens_in_the_browser(service: RunningService, page: Page) -> None:
    load_scripts(page, service)
    team = str(uuid.uuid4())
    lead, _ = member("team_lead")
    counsellor, blob = member("counsellor")
    epoch = keyring.new_epoch(
        team=team, epoch=1, signer=lead, members=[lead.public, counsellor.public]
    )
    messages = [sealed_message(epoch, team, t) for t in ("Hallo, ich bin Mia 🌱", "<b>x</b>")]
    conversation = str(uuid.uuid4())
    case_key, case_kid, note_id = b"C" * 32, crypto.new_key_id(), str(uuid.uuid4())
    notes = {
        "case_keys": [
            {
                "epoch": 1,
                "kid": case_kid,
                "envelope": crypto.encrypt_sym(
                    key=epoch.team_key,
                    plaintext=case_key,
                    kid=case_kid,
                    epoch=1,
                    context=keyring.case_key_context(team=team, conversation=conversation),
                ),
            }
        ],
        "notes": [
            {
                "id": note_id,
                "author_id": lead.id,
                "epoch": 1,
                "created_at": "2026-01-05T10:05:00Z",
                "envelope": crypto.encrypt_sym(
                    key=case_key,
                    plaintext="Notiz: Vater in der JVA Nürnberg".encode(),
                    kid=case_kid,
                    epoch=1,
                    context=keyring.note_context(
                        team=team, conversation=conversation, note=note_id, author=lead.id
                    ),
                ),
            }
        ],
    }
    keys = team_keys(
        team,
        [epoch],
        first_chain(epoch),
        me=counsellor.id,
        members=[key_member(lead), key_member(counsellor)],
    )
    result = page.evaluate(
        UNLOCK_AND_READ,
        [
            counsellor.id,
            PASSPHRASE,
            blob,
            keys,
            messages,
            {"conversation": conversation, "json": notes},
        ],
    )
    assert result["texts"] == ["Hallo, ich bin Mia 🌱", "<b>x</b>"]
    assert result["opened"][0]["text"] == "Notiz: Vater in der JVA Nürnberg"
    assert result["opened"][0]["author_id"] == lead.id
    assert result["epochs"] == [1]
    assert not result["extractable"], "team and transcript keys are non-extractable"
    assert result["fingerprint"] == keyring.fingerprint(lead.public.ed25519)
    assert result["storage"] == 0, "nothing in localStorage or sessionStorage"

    # A message moved to another conversation, or claimed by another sender, does not open.
    moved = copy.deepcopy(messages[0])
    moved["sender"] = "counsellor"
    refused = page.evaluate(
        """async ([me, passphrase, blob, keys, m]) => {
          const k = await window.LotseKeys.unlock(me, passphrase, blob);
          const u = await window.LotseTeamKeys.unlockTeam(keys, k, me);
          try { await window.LotseTeamKeys.openMessage(u, keys.team_id, m); return false; }
          catch (error) { return true; }
        }""",
        [counsellor.id, PASSPHRASE, blob, keys, moved],
    )
    assert refused


MAKE_EPOCH = """
async ([me, teamKeys, members]) => {
  return await window.LotseTeamKeys.createEpoch({ teamKeys, memberKeys: window.T.keys[me], me,
    teamId: teamKeys.team_id, members });
}
"""

SEAL_NOTE = """
async ([me, teamKeys, conversation, text, notes]) => {
  const T = window.LotseTeamKeys;
  const unlocked = await T.unlockTeam(teamKeys, window.T.keys[me], me);
  return await T.sealNote(unlocked, teamKeys.team_id, conversation, me, text, notes);
}
"""


def browser_epoch_view(team: str, body: dict[str, Any], *, me: str, members: list[Any]) -> Any:
    """GET /team/keys as the server would answer after storing `body` (epoch 1)."""
    return {
        "team_id": team,
        "recovery_public": None,
        "rotation_due": False,
        "epochs": [
            {
                "epoch": body["epoch"],
                "kid": body["kid"],
                "transcript_public": body["transcript_public"],
                "transcript_kid": body["transcript_kid"],
                "wrapped_transcript_key": body["wrapped_transcript_key"],
                "previous_key": body["previous_key"],
                "wrap": body["wraps"].get(me),
            }
        ],
        "rosters": [
            {
                "epoch": body["epoch"],
                "version": 1,
                "roster": body["roster"],
                "signature": body["signature"],
            }
        ],
        "members": members,
    }


def test_browser_epoch_roster_and_note_verify_and_open_in_python(
    service: RunningService, page: Page
) -> None:
    load_scripts(page, service)
    page.evaluate(SETUP, PASSPHRASE)
    team = str(uuid.uuid4())
    lead, lead_blob = member("team_lead")
    counsellor, _ = member("counsellor")
    newcomer, _ = member("counsellor")
    recovery = X25519PrivateKey.generate()
    recovery_public = crypto.b64url(crypto.x25519_public_raw(recovery))
    page.evaluate("([me, blob]) => window.T.member(me, blob)", [lead.id, lead_blob])
    members = [key_member(lead), key_member(counsellor), key_member(newcomer, wrapped=False)]
    empty = {
        "team_id": team,
        "recovery_public": recovery_public,
        "rotation_due": False,
        "epochs": [],
        "rosters": [],
        "members": members,
    }
    body = page.evaluate(MAKE_EPOCH, [lead.id, empty, members[:2]])

    roster = keyring.check_roster_chain(
        [{"roster": body["roster"], "signature": body["signature"]}], team=team, epoch=1
    )
    assert roster == keyring.build_roster(
        team=team,
        epoch=1,
        version=1,
        previous="",
        signer=lead.id,
        members=[lead.public, counsellor.public],
        keys=keyring.epoch_keys(
            kid=body["kid"],
            transcript_kid=body["transcript_kid"],
            transcript_public=body["transcript_public"],
        ),
    )
    assert set(body["wraps"]) == {lead.id, counsellor.id}
    assert body["previous_key"] is None
    team_key = keyring.open_team_key(
        private=counsellor.x25519,
        team=team,
        member=counsellor.id,
        envelope=body["wraps"][counsellor.id],
    )
    assert len(team_key) == 32
    assert team_key == keyring.open_team_key(
        private=recovery, team=team, member="recovery", envelope=body["recovery_wrap"]
    ), "the recovery key opens the same team key"
    assert body["kid"] not in str(crypto.b64url(team_key))
    transcript = keyring.open_transcript_key(
        team_key=team_key, team=team, epoch=1, envelope=body["wrapped_transcript_key"]
    )
    assert crypto.b64url(crypto.x25519_public_raw(transcript)) == body["transcript_public"]
    conversation, message = str(uuid.uuid4()), str(uuid.uuid4())
    sealed = keyring.seal_message(
        transcript_public=body["transcript_public"],
        kid=body["transcript_kid"],
        epoch=1,
        team=team,
        conversation=conversation,
        message=message,
        sender="user",
        text="an den Browser-Schlüssel",
    )
    assert (
        keyring.open_message(
            transcript=transcript,
            team=team,
            conversation=conversation,
            message=message,
            sender="user",
            envelope=sealed,
        )
        == "an den Browser-Schlüssel"
    )

    # A note from the browser: a new case key under the team key, the note under the case key.
    view = browser_epoch_view(team, body, me=lead.id, members=members)
    no_notes = {"case_keys": [], "notes": []}
    note = page.evaluate(
        SEAL_NOTE, [lead.id, view, conversation, "Notiz aus dem Browser 🌱", no_notes]
    )
    assert note["case_key"]["epoch"] == 1 and note["envelope"]["alg"] == crypto.SYM_ALG
    assert "Notiz" not in str(note)
    case_key = crypto.decrypt_sym(
        key=team_key,
        envelope=note["case_key"]["envelope"],
        context=keyring.case_key_context(team=team, conversation=conversation),
    )
    text = crypto.decrypt_sym(
        key=case_key,
        envelope=note["envelope"],
        context=keyring.note_context(
            team=team, conversation=conversation, note=note["id"], author=lead.id
        ),
    )
    assert text.decode() == "Notiz aus dem Browser 🌱"
    assert str(uuid.UUID(note["id"])) == note["id"]
    # A second note reuses the case key the server now holds: no new one is sent.
    stored = {
        "case_keys": [note["case_key"]],
        "notes": [
            {
                "id": note["id"],
                "author_id": lead.id,
                "epoch": 1,
                "created_at": "2026-01-05T10:00:00Z",
                "envelope": note["envelope"],
            }
        ],
    }
    second = page.evaluate(SEAL_NOTE, [lead.id, view, conversation, "zweite", stored])
    assert second["case_key"] is None
    assert second["envelope"]["kid"] == note["case_key"]["kid"]

    # The lead wraps the newcomer into the next roster version; Python checks the chain.
    added = page.evaluate(
        """async ([me, teamKeys, newcomers]) => window.LotseTeamKeys.addMembers(
             { teamKeys, memberKeys: window.T.keys[me], me, newcomers })""",
        [lead.id, view, [members[2]]],
    )
    latest = keyring.check_roster_chain(
        [view["rosters"][0], {"roster": added["roster"], "signature": added["signature"]}],
        team=team,
        epoch=1,
    )
    assert latest["version"] == 2 and latest["previous"] == keyring.roster_digest(body["roster"])
    assert {m["id"] for m in latest["members"]} == {lead.id, counsellor.id, newcomer.id}
    assert set(added["wraps"]) == {newcomer.id}, "wraps only for the newcomers"
    assert (
        keyring.open_team_key(
            private=newcomer.x25519,
            team=team,
            member=newcomer.id,
            envelope=added["wraps"][newcomer.id],
        )
        == team_key
    )

    # Epoch 2 from the browser: the old team key inside the new one.
    view2 = copy.deepcopy(view)
    view2["rosters"].append(
        {"epoch": 1, "version": 2, "roster": added["roster"], "signature": added["signature"]}
    )
    body2 = page.evaluate(MAKE_EPOCH, [lead.id, view2, [members[0], members[2]]])
    assert body2["epoch"] == 2 and set(body2["wraps"]) == {lead.id, newcomer.id}
    team_key2 = keyring.open_team_key(
        private=newcomer.x25519,
        team=team,
        member=newcomer.id,
        envelope=body2["wraps"][newcomer.id],
    )
    assert team_key2 != team_key
    previous = crypto.decrypt_sym(
        key=team_key2,
        envelope=body2["previous_key"],
        context=keyring.previous_key_context(team=team, epoch=1),
    )
    assert previous == team_key
    keyring.check_roster_chain(
        [{"roster": body2["roster"], "signature": body2["signature"]}], team=team, epoch=2
    )
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_an_entry_without_a_lead_signature_is_refused(service: RunningService, page: Page) -> None:
    load_scripts(page, service)
    page.evaluate(SETUP, PASSPHRASE)
    team = str(uuid.uuid4())
    lead, lead_blob = member("team_lead")
    counsellor, counsellor_blob = member("counsellor")
    intruder, _ = member("counsellor")
    newcomer, _ = member("counsellor")
    epoch = keyring.new_epoch(
        team=team, epoch=1, signer=lead, members=[lead.public, counsellor.public]
    )
    chain = first_chain(epoch)
    roster = chain[0]["roster"]
    page.evaluate("([me, blob]) => window.T.member(me, blob)", [lead.id, lead_blob])
    page.evaluate("([me, blob]) => window.T.member(me, blob)", [counsellor.id, counsellor_blob])

    def with_intruder(base: dict[str, Any], role: str = "counsellor") -> dict[str, Any]:
        tampered = copy.deepcopy(base)
        entry = {**intruder.public.as_dict(), "role": role}
        tampered["members"] = sorted([*tampered["members"], entry], key=lambda m: m["id"])
        return tampered

    v2 = with_intruder(roster)
    v2.update(version=2, previous=keyring.roster_digest(roster))
    as_lead = with_intruder(roster, "team_lead")
    as_lead.update(version=2, previous=keyring.roster_digest(roster), signer=intruder.id)
    admin = copy.deepcopy(roster)
    admin["members"][0]["role"] = "admin"
    unsorted = copy.deepcopy(roster)
    unsorted["members"].reverse()
    counsellor_signed = copy.deepcopy(roster)
    counsellor_signed.update(version=2, previous=keyring.roster_digest(roster))
    counsellor_signed["signer"] = counsellor.id
    broken_link = copy.deepcopy(v2)
    broken_link["previous"] = keyring.roster_digest(admin)
    chains = {
        # v1 with an entry added after the lead signed it
        "v1 tampered": [{"roster": with_intruder(roster), "signature": chain[0]["signature"]}],
        # v2 adding a member, carrying v1's signature
        "v2 copied signature": [*chain, {"roster": v2, "signature": chain[0]["signature"]}],
        # v2 signed by the injected member, who calls itself a lead
        "v2 self-signed": [
            *chain,
            {"roster": as_lead, "signature": keyring.sign_roster(intruder.ed25519, as_lead)},
        ],
        # v2 signed by a counsellor of v1, not a lead
        "v2 by a counsellor": [
            *chain,
            {
                "roster": counsellor_signed,
                "signature": keyring.sign_roster(counsellor.ed25519, counsellor_signed),
            },
        ],
        # v2 signed by the real lead but naming the wrong predecessor
        "v2 broken link": [
            *chain,
            {"roster": broken_link, "signature": keyring.sign_roster(lead.ed25519, broken_link)},
        ],
        "admin on the roster": [
            {"roster": admin, "signature": keyring.sign_roster(lead.ed25519, admin)}
        ],
        "unsorted": [
            {"roster": unsorted, "signature": keyring.sign_roster(lead.ed25519, unsorted)}
        ],
    }
    for name, tampered in chains.items():
        with pytest.raises(keyring.RosterError):
            keyring.check_roster_chain(tampered, team=team, epoch=1)
        refused = page.evaluate(
            "([c, team]) => window.T.refused(window.LotseTeamKeys.verifyRosterChain(c, team, 1))",
            [tampered, team],
        )
        assert refused, f"{name}: the browser accepts what Python refuses"
        keys = team_keys(
            team,
            [epoch],
            tampered,
            me=lead.id,
            members=[
                key_member(lead),
                key_member(counsellor),
                key_member(newcomer, wrapped=False),
            ],
        )
        # A lead's browser wraps nobody into a chain that does not verify ...
        added = page.evaluate(
            """([me, teamKeys, newcomers]) => window.T.refused(window.LotseTeamKeys.addMembers(
                 { teamKeys, memberKeys: window.T.keys[me], me, newcomers }))""",
            [lead.id, keys, [key_member(newcomer, wrapped=False)]],
        )
        assert added, f"{name}: addMembers went ahead"
        # ... and a member's browser does not unlock the team from it.
        keys["epochs"] = [epoch_public(epoch, counsellor.id)]
        unlocked = page.evaluate(
            """([me, teamKeys]) => window.T.refused(
                 window.LotseTeamKeys.unlockTeam(teamKeys, window.T.keys[me], me))""",
            [counsellor.id, keys],
        )
        assert unlocked, f"{name}: unlockTeam went ahead"

    # The untampered chain passes both, as a control.
    assert keyring.check_roster_chain(chain, team=team, epoch=1)["version"] == 1
    assert not page.evaluate(
        "([c, team]) => window.T.refused(window.LotseTeamKeys.verifyRosterChain(c, team, 1))",
        [chain, team],
    )
    # The right chain for another team or epoch is refused too.
    assert page.evaluate(
        "([c, team]) => window.T.refused(window.LotseTeamKeys.verifyRosterChain(c, team, 2))",
        [chain, team],
    )


def test_leaver_and_newcomer(service: RunningService, page: Page) -> None:
    """A leaver's epoch-1 keys do not open what is sealed to epoch 2; a newcomer wrapped only
    into epoch 2 reads epoch 1 through `previous_key`."""
    load_scripts(page, service)
    page.evaluate(SETUP, PASSPHRASE)
    team = str(uuid.uuid4())
    lead, _ = member("team_lead")
    leaver, leaver_blob = member("counsellor")
    newcomer, newcomer_blob = member("counsellor")
    e1 = keyring.new_epoch(team=team, epoch=1, signer=lead, members=[lead.public, leaver.public])
    e2 = keyring.new_epoch(
        team=team,
        epoch=2,
        signer=lead,
        members=[lead.public, newcomer.public],
        previous_team_key=e1.team_key,
    )
    old = sealed_message(e1, team, "aus Epoche 1")
    new = sealed_message(e2, team, "aus Epoche 2")
    page.evaluate("([me, blob]) => window.T.member(me, blob)", [leaver.id, leaver_blob])
    page.evaluate("([me, blob]) => window.T.member(me, blob)", [newcomer.id, newcomer_blob])

    # What the leaver's browser held before leaving: epoch 1 only.
    before = team_keys(
        team, [e1], first_chain(e1), me=leaver.id, members=[key_member(lead), key_member(leaver)]
    )
    leaver_result = page.evaluate(
        """async ([me, teamKeys, old, moved, fresh]) => {
          const T = window.LotseTeamKeys;
          const unlocked = await T.unlockTeam(teamKeys, window.T.keys[me], me);
          return {
            old: await T.openMessage(unlocked, teamKeys.team_id, old),
            fresh: await window.T.refused(T.openMessage(unlocked, teamKeys.team_id, fresh)),
            // the epoch-2 envelope relabelled as epoch 1, to try the old transcript key on it
            moved: await window.T.refused(T.openMessage(unlocked, teamKeys.team_id, moved)),
          };
        }""",
        [leaver.id, before, old, relabelled(new, epoch=1), new],
    )
    assert leaver_result["old"] == "aus Epoche 1", "what the leaver read before stays read"
    assert leaver_result["fresh"] and leaver_result["moved"]
    with pytest.raises(InvalidTag):
        keyring.open_message(
            transcript=e1.transcript,
            team=team,
            conversation=new["conversation_id"],
            message=new["id"],
            sender="user",
            envelope=relabelled(new, epoch=1)["envelope"],
        )
    # After the rotation the leaver is on no roster and has no wrap: nothing unlocks.
    after = team_keys(
        team,
        [e1, e2],
        first_chain(e2),
        me=leaver.id,
        members=[key_member(lead), key_member(newcomer)],
    )
    after["epochs"][0]["wrap"] = e1.payload["wraps"][leaver.id]  # even with the old wrap kept
    assert page.evaluate(
        """([me, teamKeys]) => window.T.refused(
             window.LotseTeamKeys.unlockTeam(teamKeys, window.T.keys[me], me))""",
        [leaver.id, after],
    )

    # The newcomer, wrapped into epoch 2 only, reads both epochs.
    view = team_keys(
        team,
        [e1, e2],
        first_chain(e2),
        me=newcomer.id,
        members=[key_member(lead), key_member(newcomer)],
    )
    assert view["epochs"][0]["wrap"] is None
    newcomer_result = page.evaluate(
        """async ([me, teamKeys, messages]) => {
          const T = window.LotseTeamKeys;
          const unlocked = await T.unlockTeam(teamKeys, window.T.keys[me], me);
          const texts = [];
          for (const m of messages) texts.push(await T.openMessage(unlocked, teamKeys.team_id, m));
          return { texts, current: unlocked.current,
            epochs: Object.keys(unlocked.keys).map(Number) };
        }""",
        [newcomer.id, view, [old, new]],
    )
    assert newcomer_result == {
        "texts": ["aus Epoche 1", "aus Epoche 2"],
        "epochs": [1, 2],
        "current": 2,
    }

    # A newcomer the lead has not wrapped yet waits, with a reason the console can show.
    waiting = team_keys(
        team,
        [e1, e2],
        first_chain(e2),
        me=leaver.id,
        members=[key_member(lead), key_member(newcomer), key_member(leaver, wrapped=False)],
    )
    code = page.evaluate(
        """async ([me, teamKeys]) => {
          try { await window.LotseTeamKeys.unlockTeam(teamKeys, window.T.keys[me], me); }
          catch (error) { return error.code; }
        }""",
        [leaver.id, waiting],
    )
    assert code == "awaiting"


def relabelled(message: dict[str, Any], *, epoch: int) -> dict[str, Any]:
    moved = copy.deepcopy(message)
    moved["envelope"]["epoch"] = epoch
    return moved


def test_fingerprint_matches_python(service: RunningService, page: Page) -> None:
    load_scripts(page, service)
    lead, _ = member("team_lead")
    shown = page.evaluate("(key) => window.LotseTeamKeys.fingerprint(key)", lead.public.ed25519)
    assert shown == keyring.fingerprint(lead.public.ed25519)
    assert len(shown.split(" ")) == 8


def database_dump(service: RunningService) -> str:
    """Every row of every table of the service's database, as text: what a dump would show."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import inspect, text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = service.env.get("DATABASE_URL") or (
        f"sqlite+aiosqlite:///{service.env['LOTSE_DATA_DIR']}/lotse.db"
    )

    async def dump() -> str:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
                rows = []
                for name in names:
                    result = await connection.execute(text(f'SELECT * FROM "{name}"'))
                    rows.extend(f"{name}: {tuple(row)!r}" for row in result)
                return "\n".join(rows)
        finally:
            await engine.dispose()

    # Playwright's sync API owns this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, dump()).result()


def test_lead_reads_the_sealed_message_and_keeps_an_encrypted_note(
    service: RunningService, e2e_emulator: Any, page: Page
) -> None:
    import base64

    from playwright.sync_api import expect

    from tests.e2e.conftest import BOT_TOKEN, SCREENSHOTS, console_login, open_conversation_with

    if not service.lead_login or service.lead_login not in service.passphrases:
        pytest.skip("the development bootstrap made no team lead with keys")
    canary = f"Kanarienvogel-{uuid.uuid4().hex[:10]}"
    note_canary = f"Notizvogel-{uuid.uuid4().hex[:10]}"
    console_login(page, service, service.lead_login, service.lead_password)
    expect(page.locator("#team-state-text")).to_contain_text("Epoche 1")

    teen = e2e_emulator.user(BOT_TOKEN)
    teen.send_command("/start")
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    teen.send_text("90402")
    teen.click("Besuche und Kontakt")
    teen.wait_for_message("Wie möchtest du weitermachen?")
    teen.click("Mit jemandem schreiben")
    teen.wait_for_message("Vor dir warten gerade")
    teen.send_text(f"{canary} ich weiß nicht weiter")

    open_conversation_with(page, service, teen, canary)
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text(f"{canary} ich weiß nicht weiter")

    panel = page.locator("#notes-panel")
    panel.locator("summary").click()
    expect(panel).to_contain_text("Noch keine Notizen.")
    page.get_by_label("Neue Notiz").fill(f"{note_canary}: Vater in Haft, Besuch klären")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/notes")
    ) as saved:
        page.get_by_role("button", name="Notiz speichern").click()
    assert saved.value.status == 201
    conversation_id = saved.value.url.split("/")[-2]
    expect(page.locator("#notes-list")).to_contain_text(note_canary)
    expect(page.get_by_label("Neue Notiz")).to_have_value("")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-notes.png"))

    # After a reload everything is locked again, until the passphrase.
    page.reload()
    expect(page.locator("#keys-state")).to_have_text("Schlüssel: gesperrt")
    # The same conversation shows a placeholder now, and its text once the keys are unlocked.
    page.locator(f'#queue-list li[data-id="{conversation_id}"] button').click()
    expect(transcript).to_contain_text("Verschlüsselt – entsperre deine Schlüssel")
    expect(transcript).not_to_contain_text(canary)
    from tests.e2e.conftest import unlock_keys

    unlock_keys(page, service.passphrases[service.lead_login])
    expect(transcript).to_contain_text(f"{canary} ich weiß nicht weiter")
    expect(transcript).not_to_contain_text("Verschlüsselt")
    page.locator("#notes-panel summary").click()
    expect(page.locator("#notes-list")).to_contain_text(f"{note_canary}: Vater in Haft")

    dump = database_dump(service)
    assert "case_notes" in dump and "case_keys" in dump
    for secret in (canary, note_canary):
        for form in (secret, base64.b64encode(secret.encode()).decode(), secret.encode().hex()):
            assert form not in dump, f"{secret!r} is in the database"
        assert secret not in service.logs()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_lead_shares_keys_with_a_newcomer_and_rotates_after_they_leave(
    service: RunningService, e2e_emulator: Any, browser: Any, page: Page
) -> None:
    import re

    from playwright.sync_api import expect

    from core.team_keys import member_leaves
    from tests.e2e.conftest import (
        BOT_TOKEN,
        console_login,
        open_conversation_with,
        run_on_service_db,
        unlock_keys,
    )

    if not service.lead_login or service.lead_login not in service.passphrases:
        pytest.skip("the development bootstrap made no team lead with keys")
    login = f"neu-{uuid.uuid4().hex[:6]}"
    printed = service.lotse("account", "create", login, "--display-name", f"Neu {login}")
    password = re.search(r"One-time password: (\S+)", printed).group(1)

    # The newcomer sets up member keys and waits: no wrap yet, so nothing opens.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="de-DE")
    newcomer = context.new_page()
    console_login(newcomer, service, login, password)
    newcomer.locator("#keys-state").click()
    newcomer.get_by_label("Entsperrsatz (mindestens 12 Zeichen)").fill(PASSPHRASE)
    newcomer.get_by_label("Entsperrsatz noch einmal").fill(PASSPHRASE)
    newcomer.get_by_role("button", name="Schlüssel erzeugen").click()
    expect(newcomer.locator("#team-state-text")).to_have_text(
        re.compile("Warte auf Freigabe durch die Teamleitung"), timeout=15_000
    )
    own = newcomer.locator("#my-fingerprint").inner_text().removeprefix("Dein Fingerabdruck: ")
    assert re.fullmatch(r"([0-9a-f]{4} ){7}[0-9a-f]{4}", own)

    # The lead sees them waiting, with the same fingerprint, and shares the keys.
    console_login(page, service, service.lead_login, service.lead_password)
    row = page.locator("#team-awaiting li", has_text=f"Neu {login}")
    expect(row).to_contain_text(own)
    row.get_by_role("button", name=f"Schlüssel freigeben: Neu {login}").click()
    expect(row).to_have_count(0, timeout=15_000)

    # After a reload and the passphrase, the newcomer reads the team's sealed messages.
    canary = f"Neuling-{uuid.uuid4().hex[:8]}"
    teen = e2e_emulator.user(BOT_TOKEN)
    teen.send_command("/start")
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    teen.send_text("10115")
    teen.click("Besuche und Kontakt")
    teen.wait_for_message("Wie möchtest du weitermachen?")
    teen.click("Mit jemandem schreiben")
    teen.wait_for_message("Vor dir warten gerade")  # the lead's console is online
    teen.send_text(canary)
    newcomer.reload()
    unlock_keys(newcomer, PASSPHRASE)
    expect(newcomer.locator("#team-state-text")).to_contain_text("Epoche 1")
    open_conversation_with(newcomer, service, teen, canary)

    # They leave: the lead is told to start a new epoch, and the newcomer is not on it.
    keys = page.evaluate("() => fetch('/api/v1/console/team/keys').then((r) => r.json())")
    leaver = next(m["id"] for m in keys["members"] if m["display_name"] == f"Neu {login}")
    before = {m["id"] for m in keys["rosters"][-1]["roster"]["members"]}
    assert leaver in before
    epoch = keys["epochs"][-1]["epoch"]

    async def leave(sessions: Any) -> Any:
        return await member_leaves(sessions=sessions, counsellor_id=uuid.UUID(leaver))

    run_on_service_db(service, leave)
    page.reload()
    unlock_keys(page, service.passphrases[service.lead_login])
    expect(page.locator("#team-rotate-box")).to_contain_text("Jemand hat das Team verlassen")
    page.get_by_role("button", name="Neue Schlüssel-Epoche").click()
    expect(page.locator("#team-state-text")).to_contain_text(f"Epoche {epoch + 1}")
    expect(page.locator("#team-rotate-box")).to_be_hidden()
    keys = page.evaluate("() => fetch('/api/v1/console/team/keys').then((r) => r.json())")
    roster = keyring.check_roster_chain(
        [{"roster": r["roster"], "signature": r["signature"]} for r in keys["rosters"]],
        team=keys["team_id"],
        epoch=epoch + 1,
    )
    after = {m["id"] for m in roster["members"]}
    assert leaver not in after
    assert after == before - {leaver}, "everyone else on the verified roster stays"
    # What came before is still readable for the lead, through the previous key.
    open_conversation_with(page, service, teen, canary, button="Öffnen")
    context.close()


FORGED_UNLOCK = """
async ([me, passphrase, blob, teamKeys]) => {
  const memberKeys = await window.LotseKeys.unlock(me, passphrase, blob);
  try {
    await window.LotseTeamKeys.unlockTeam(teamKeys, memberKeys, me);
    return null;
  } catch (error) { return error.code || error.message; }
}
"""


def test_a_team_key_the_server_made_itself_is_refused(service: RunningService, page: Page) -> None:
    """The server can seal a key of its own to a member's public key. It cannot make that
    key hold the private half of the transcript key the lead signed: the browser refuses it,
    and it refuses a transcript public key other than the signed one as well."""
    load_scripts(page, service)
    team = str(uuid.uuid4())
    lead, _ = member("team_lead")
    colleague, blob = member("counsellor")
    made = keyring.new_epoch(
        team=team, epoch=1, signer=lead, members=[lead.public, colleague.public]
    )
    keys = team_keys(
        team,
        [made],
        first_chain(made),
        me=colleague.id,
        members=[key_member(lead), key_member(colleague)],
    )
    assert page.evaluate(FORGED_UNLOCK, [colleague.id, PASSPHRASE, blob, keys]) is None

    forged_key = secrets.token_bytes(32)
    forged_transcript, forged_public = crypto.new_x25519()
    pkcs8 = forged_transcript.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    epoch = keys["epochs"][0]
    epoch["wrap"] = keyring.wrap_team_key(
        team_key=forged_key,
        recipient=colleague.public.x25519,
        team=team,
        member=colleague.id,
        kid=made.kid,
        epoch=1,
    )
    epoch["wrapped_transcript_key"] = crypto.encrypt_sym(
        key=forged_key,
        plaintext=pkcs8,
        kid=made.transcript_kid,
        epoch=1,
        context=keyring.transcript_key_context(team=team, epoch=1),
    )
    assert page.evaluate(FORGED_UNLOCK, [colleague.id, PASSPHRASE, blob, keys]) == "refused"
    epoch["transcript_public"] = crypto.b64url(forged_public)
    assert page.evaluate(FORGED_UNLOCK, [colleague.id, PASSPHRASE, blob, keys]) == "refused"


RESEAL = """
async ([me, passphrase, blob, teamKeys, target, messages]) => {
  const memberKeys = await window.LotseKeys.unlock(me, passphrase, blob);
  const T = window.LotseTeamKeys;
  const unlocked = await T.unlockTeam(teamKeys, memberKeys, me);
  try {
    return await T.resealFor(unlocked, teamKeys.team_id, target, messages);
  } catch (error) { return error.message || error.name; }
}
"""


def test_a_transfer_reseals_every_message_for_the_other_teams_signed_key(
    service: RunningService, page: Page
) -> None:
    """What the console does before it hands a conversation to another team: it opens each
    message and seals it again to the key that team's lead signed; a forged roster of the
    other team stops it before anything is sealed."""
    load_scripts(page, service)
    team_a, team_b = str(uuid.uuid4()), str(uuid.uuid4())
    lead, _ = member("team_lead")
    counsellor, blob = member("counsellor")
    other_lead, _ = member("team_lead")
    mine = keyring.new_epoch(
        team=team_a, epoch=1, signer=lead, members=[lead.public, counsellor.public]
    )
    theirs = keyring.new_epoch(
        team=team_b, epoch=1, signer=other_lead, members=[other_lead.public]
    )
    keys = team_keys(
        team_a,
        [mine],
        first_chain(mine),
        me=counsellor.id,
        members=[key_member(lead), key_member(counsellor)],
    )
    messages = [sealed_message(mine, team_a, text) for text in ("eins", "zwei")]
    target = {
        "team_id": team_b,
        "epoch": 1,
        "rosters": [{"epoch": 1, "version": 1, **first_chain(theirs)[0]}],
    }
    resealed = page.evaluate(RESEAL, [counsellor.id, PASSPHRASE, blob, keys, target, messages])
    assert [r["message_id"] for r in resealed] == [m["id"] for m in messages]
    opened = [
        keyring.open_message(
            transcript=theirs.transcript,
            team=team_b,
            conversation=m["conversation_id"],
            message=m["id"],
            sender=m["sender"],
            envelope=r["envelope"],
        )
        for m, r in zip(messages, resealed, strict=True)
    ]
    assert opened == ["eins", "zwei"]

    forged = copy.deepcopy(target)
    _, server_key = crypto.new_x25519()
    forged["rosters"][0]["roster"]["keys"]["transcript_public"] = crypto.b64url(server_key)
    refused = page.evaluate(RESEAL, [counsellor.id, PASSPHRASE, blob, keys, forged, messages])
    assert refused == "the roster signature does not verify"
