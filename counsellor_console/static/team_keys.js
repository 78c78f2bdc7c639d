// The team's keys in the browser (docs/key-protocol.md, mirrored in core/keyring.py): signed
// roster chains, team key epochs, sealed transcripts and case notes. The server stores what
// this code makes and cannot open any of it, so nothing here trusts the server: a roster is
// used only when its signatures verify, every envelope is bound to its context, and any
// failure throws so that a caller sends nothing. Keys stay in memory as non-extractable
// CryptoKeys; raw key bytes exist only for the moment they are wrapped or imported, then they
// are zeroed. Nothing goes to localStorage or sessionStorage. Needs envelope.js.
"use strict";

(function (global) {
  const E = global.LotseEnvelope;
  const subtle = global.crypto.subtle;
  const ROSTER_VERSION = 1;
  const LEAD = "team_lead";
  const ROLES = ["counsellor", LEAD];
  const EPOCH_KEY_FIELDS = ["kid", "transcript_kid", "transcript_public"];
  const RECOVERY = "recovery";
  const utf8 = new TextEncoder();
  const B64URL = /^[A-Za-z0-9_-]*$/;

  // --- contexts: the same as core/keyring.py, one function per purpose -------------------
  const ctx = {
    teamKey: (team, member) => ({ purpose: "team-key", team: team, member: member }),
    transcriptKey: (team, epoch) => ({ purpose: "transcript-key", team: team, epoch: epoch }),
    // `epoch` is that of the key inside, one below the envelope's own.
    previousKey: (team, epoch) => ({ purpose: "previous-team-key", team: team, epoch: epoch }),
    message: (team, conversation, message, sender) => ({
      purpose: "message", team: team, conversation: conversation, message: message,
      sender: sender }),
    caseKey: (team, conversation) => ({ purpose: "case-key", team: team, conversation: conversation }),
    note: (team, conversation, note, author) => ({
      purpose: "note", team: team, conversation: conversation, note: note, author: author }),
  };

  function fail(message, code) {
    const error = new Error(message);
    error.code = code || "refused";
    return error;
  }

  function bytes32(text) {
    if (typeof text !== "string" || !B64URL.test(text)) throw fail("not base64url");
    const raw = E.fromB64url(text);
    if (raw.length !== 32) throw fail("a key is 32 bytes");
    return raw;
  }

  function newKeyId() {  // random, never derived from key material (crypto.new_key_id)
    return E.b64url(global.crypto.getRandomValues(new Uint8Array(16)));
  }

  function aesKey(raw) {
    return subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  }

  // Team keys are opened as raw bytes only to import or re-wrap them at once; `use` gets the
  // bytes and they are zeroed whatever happens.
  async function withRaw(rawPromise, use) {
    const raw = await rawPromise;
    try { return await use(raw); } finally { raw.fill(0); }
  }

  async function digest(roster) {
    return E.b64url(await subtle.digest("SHA-256", utf8.encode(E.canonical(roster))));
  }

  // What a team compares out of band (core/keyring.fingerprint): 16 bytes of SHA-256 of the
  // Ed25519 public key, hex in groups of four.
  async function fingerprint(ed25519Public) {
    const raw = typeof ed25519Public === "string" ? bytes32(ed25519Public) : ed25519Public;
    const hash = new Uint8Array(await subtle.digest("SHA-256", raw)).slice(0, 16);
    const hex = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
    return hex.match(/.{4}/g).join(" ");
  }

  // --- rosters -----------------------------------------------------------------------------

  function checkShape(roster) {
    if (roster === null || typeof roster !== "object") throw fail("malformed roster");
    if (roster.v !== ROSTER_VERSION) throw fail("unknown roster version");
    // The lead signs the epoch's keys with the roster: a team key the server made itself
    // cannot be paired with it (see unlockTeam).
    const keys = roster.keys;
    if (keys === null || typeof keys !== "object" ||
        Object.keys(keys).sort().join() !== EPOCH_KEY_FIELDS.slice().sort().join() ||
        !EPOCH_KEY_FIELDS.every((f) => typeof keys[f] === "string" && keys[f])) {
      throw fail("the roster names the epoch's keys");
    }
    const members = roster.members;
    if (!Array.isArray(members)) throw fail("malformed roster");
    for (const m of members) {
      if (m === null || typeof m !== "object" || typeof m.id !== "string" ||
          typeof m.role !== "string") throw fail("malformed roster");
      bytes32(m.x25519);
      bytes32(m.ed25519);
      // Admins manage accounts but never read: they are never on a roster.
      if (!ROLES.includes(m.role)) throw fail("only counsellors and team leads can be on a roster");
    }
    const ids = members.map((m) => m.id);
    for (let i = 1; i < ids.length; i++) {
      if (!(ids[i - 1] < ids[i])) throw fail("members must be sorted by id and unique");
    }
  }

  function leads(roster) {
    const found = new Map();
    for (const m of roster.members) if (m.role === LEAD) found.set(m.id, m.ed25519);
    return found;
  }

  async function verifySignature(publicText, signature, roster) {
    if (typeof signature !== "string" || !B64URL.test(signature)) throw fail("bad signature");
    const key = await subtle.importKey("raw", bytes32(publicText), { name: "Ed25519" }, false,
      ["verify"]);
    const ok = await subtle.verify({ name: "Ed25519" }, key, E.fromB64url(signature),
      utf8.encode(E.canonical(roster)));
    if (!ok) throw fail("the roster signature does not verify");
  }

  // chain: [{roster, signature}] from version 1 on. Returns the latest roster when every rule
  // of core/keyring.check_roster_chain holds, else throws.
  async function verifyRosterChain(chain, teamId, epoch) {
    if (!Array.isArray(chain) || !chain.length) throw fail("no roster");
    let previous = null;
    for (let index = 0; index < chain.length; index++) {
      const roster = chain[index].roster;
      checkShape(roster);
      if (roster.team !== teamId || roster.epoch !== epoch) {
        throw fail("the roster is for another team or epoch");
      }
      if (roster.version !== index + 1) throw fail("roster versions must count up from 1");
      let signers;
      if (previous === null) {
        if (roster.previous !== "") throw fail("version 1 names no previous version");
        signers = leads(roster);
      } else {
        if (roster.previous !== await digest(previous)) {
          throw fail("the roster does not follow the version before it");
        }
        if (E.canonical(roster.keys) !== E.canonical(previous.keys)) {
          throw fail("an epoch's keys never change between roster versions");
        }
        signers = leads(previous);
      }
      const key = signers.get(roster.signer);
      if (key === undefined) throw fail("the roster is not signed by a team lead");
      await verifySignature(key, chain[index].signature, roster);
      previous = roster;
    }
    return previous;
  }

  function chainOf(teamKeys, epoch) {
    return teamKeys.rosters.filter((entry) => entry.epoch === epoch)
      .sort((a, b) => a.version - b.version)
      .map((entry) => ({ roster: entry.roster, signature: entry.signature }));
  }

  function latestEpoch(teamKeys) {
    return teamKeys.epochs.length ? teamKeys.epochs[teamKeys.epochs.length - 1] : null;
  }

  function myEntry(roster, me, memberKeys) {
    const entry = roster.members.find((m) => m.id === me);
    return entry && entry.x25519 === E.b64url(memberKeys.x25519_public_raw) &&
      entry.ed25519 === E.b64url(memberKeys.ed25519_public_raw) ? entry : null;
  }

  function rosterMember(m) {  // a roster entry from a `members` row of GET /team/keys
    return { id: String(m.id), role: m.role, x25519: m.x25519_public || m.x25519,
      ed25519: m.ed25519_public || m.ed25519 };
  }

  function openWrap(epoch, memberKeys, teamId, me) {
    if (!epoch.wrap || epoch.wrap.kid !== epoch.kid || epoch.wrap.epoch !== epoch.epoch) {
      throw fail("no wrap of this epoch's team key", "awaiting");
    }
    return E.openSealed(memberKeys.x25519, memberKeys.x25519_public_raw, epoch.wrap,
      ctx.teamKey(teamId, me));
  }

  async function transcriptKey(teamKey, teamId, epoch) {
    const pkcs8 = await E.decryptSym(teamKey, epoch.wrapped_transcript_key,
      ctx.transcriptKey(teamId, epoch.epoch));
    try {
      return await subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
    } finally { pkcs8.fill(0); }
  }

  function epochKeys(epoch) {
    return { kid: epoch.kid, transcript_kid: epoch.transcript_kid,
      transcript_public: epoch.transcript_public };
  }

  // Private keys here are not extractable, so "do they belong together" is a round trip.
  async function requirePair(key) {
    const probe = global.crypto.getRandomValues(new Uint8Array(16));
    const context = { purpose: "pair-check" };
    const sealed = await E.sealTo(key.transcriptPublic, probe, { kid: key.transcriptKid,
      epoch: 0 }, context);
    let opened;
    try {
      opened = await E.openSealed(key.transcript, key.transcriptPublic, sealed, context);
    } catch (error) {
      throw fail("the team key is not the one the lead signed", "refused");
    }
    if (E.b64url(opened) !== E.b64url(probe)) {
      throw fail("the team key is not the one the lead signed", "refused");
    }
  }

  // From GET /team/keys: verify the current epoch's roster, check that I am on it with my own
  // keys, open my newest wrap and walk back through `previous_key` to every older team key.
  // Throws with code "no-epoch", "awaiting" (not on the roster or no wrap yet) or "refused".
  async function unlockTeam(teamKeys, memberKeys, me) {
    const teamId = String(teamKeys.team_id);
    const current = latestEpoch(teamKeys);
    if (!current) throw fail("the team has no keys yet", "no-epoch");
    const roster = await verifyRosterChain(chainOf(teamKeys, current.epoch), teamId, current.epoch);
    if (!myEntry(roster, me, memberKeys)) throw fail("not on the team's roster", "awaiting");
    if (E.canonical(roster.keys) !== E.canonical(epochKeys(current))) {
      throw fail("the epoch's keys are not the ones the lead signed", "refused");
    }
    const byNumber = new Map(teamKeys.epochs.map((e) => [e.epoch, e]));
    const newest = [...teamKeys.epochs].reverse().find((e) => e.wrap);
    if (!newest || newest.epoch !== current.epoch) {
      throw fail("no wrap of the current team key yet", "awaiting");
    }
    const keys = {};
    let teamKey = await withRaw(openWrap(newest, memberKeys, teamId, me), aesKey);
    for (let n = newest.epoch; ; n--) {
      const epoch = byNumber.get(n);
      if (!epoch) throw fail("an epoch is missing");
      keys[n] = Object.freeze({
        team: teamKey, kid: epoch.kid, transcriptKid: epoch.transcript_kid,
        transcript: await transcriptKey(teamKey, teamId, epoch),
        transcriptPublic: bytes32(epoch.transcript_public),
      });
      // Only the lead could have put the private half of the signed transcript key under
      // this team key: if they belong together, the wrap I opened is the lead's, not one the
      // server made (the older keys hang off this one through previous_key).
      if (n === current.epoch) await requirePair(keys[n]);
      if (n === 1 || !epoch.previous_key) break;
      teamKey = await withRaw(
        E.decryptSym(teamKey, epoch.previous_key, ctx.previousKey(teamId, n - 1)), aesKey);
    }
    const first = chainOf(teamKeys, current.epoch)[0].roster;
    const signer = first.members.find((m) => m.id === first.signer);
    return Object.freeze({
      // `current` is the team's newest epoch; `keys` may lack it when my wrap of it is missing.
      teamId: teamId, current: current.epoch, roster: roster, keys: Object.freeze(keys),
      signerFingerprint: await fingerprint(signer.ed25519),
    });
  }

  // --- transcripts ---------------------------------------------------------------------------

  // The text of a sealed message; throws when it cannot be opened (another team's key, a
  // missing epoch, tampering). The caller handles `envelope: null` (no longer stored).
  async function openMessage(unlocked, teamId, message) {
    const envelope = message.envelope;
    const key = unlocked.keys[envelope.epoch];
    if (!key) throw fail("no key for that epoch");
    const plain = await E.openSealed(key.transcript, key.transcriptPublic, envelope,
      ctx.message(String(teamId), String(message.conversation_id), String(message.id),
        message.sender));
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  }

  // --- lead operations: bodies for POST /team/epochs and POST /team/epochs/{n}/members ------

  async function sign(memberKeys, roster) {
    return E.b64url(await subtle.sign({ name: "Ed25519" }, memberKeys.ed25519,
      utf8.encode(E.canonical(roster))));
  }

  function sortMembers(members) {
    return members.map(rosterMember).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async function wrapsFor(members, rawTeamKey, teamId, kid, epoch) {
    const wraps = {};
    for (const m of members) {
      wraps[m.id] = await E.sealTo(bytes32(m.x25519), rawTeamKey, { kid: kid, epoch: epoch },
        ctx.teamKey(teamId, m.id));
    }
    return wraps;
  }

  function requireLead(members, me, memberKeys) {
    const entry = myEntry({ members: members }, me, memberKeys);
    if (!entry || entry.role !== LEAD) throw fail("only a team lead on the roster signs it");
  }

  // A new epoch: new team key, new transcript pair, roster version 1 of `members` signed by me.
  // `members`: rows of teamKeys.members (or roster entries) the lead has confirmed; must
  // include me as a team lead.
  async function createEpoch(options) {
    const teamKeys = options.teamKeys;
    const memberKeys = options.memberKeys;
    const me = String(options.me);
    const teamId = String(options.teamId || teamKeys.team_id);
    const members = sortMembers(options.members);
    requireLead(members, me, memberKeys);
    const before = latestEpoch(teamKeys);
    const epoch = before ? before.epoch + 1 : 1;
    const kid = newKeyId();
    const transcriptKid = newKeyId();
    const header = { kid: kid, epoch: epoch };
    const pair = await subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    const transcriptPublic = E.b64url(await subtle.exportKey("raw", pair.publicKey));
    const roster = {
      v: ROSTER_VERSION, team: teamId, epoch: epoch, version: 1, previous: "", signer: me,
      keys: { kid: kid, transcript_kid: transcriptKid, transcript_public: transcriptPublic },
      members: members,
    };
    const signature = await sign(memberKeys, roster);
    // Our own output obeys the rules a reader applies (sorted, unique, roles, signature).
    await verifyRosterChain([{ roster: roster, signature: signature }], teamId, epoch);
    const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
    const raw = global.crypto.getRandomValues(new Uint8Array(32));
    try {
      const teamKey = await subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"]);
      const body = {
        epoch: epoch, kid: kid,
        transcript_public: transcriptPublic,
        transcript_kid: transcriptKid,
        wrapped_transcript_key: await E.encryptSym(teamKey, pkcs8,
          { kid: transcriptKid, epoch: epoch }, ctx.transcriptKey(teamId, epoch)),
        previous_key: null,
        recovery_wrap: null,
        roster: roster,
        signature: signature,
        wraps: await wrapsFor(members, raw, teamId, kid, epoch),
      };
      if (before) {
        // The old team key inside the new one, so members of this epoch read what came
        // before; re-opened from my own wrap, held only for this moment.
        body.previous_key = await withRaw(openWrap(before, memberKeys, teamId, me),
          (previous) => E.encryptSym(teamKey, previous, header,
            ctx.previousKey(teamId, epoch - 1)));
      }
      if (teamKeys.recovery_public) {
        body.recovery_wrap = await E.sealTo(bytes32(teamKeys.recovery_public), raw, header,
          ctx.teamKey(teamId, RECOVERY));
      }
      return body;
    } finally {
      raw.fill(0);
      pkcs8.fill(0);
    }
  }

  // The next roster version of the current epoch with `newcomers` (rows of teamKeys.members the
  // lead has confirmed by fingerprint) and wraps for them only. The existing chain is verified
  // first: nobody is wrapped into a roster the server may have forged.
  async function addMembers(options) {
    const teamKeys = options.teamKeys;
    const memberKeys = options.memberKeys;
    const me = String(options.me);
    const teamId = String(teamKeys.team_id);
    const current = latestEpoch(teamKeys);
    if (!current) throw fail("the team has no keys yet", "no-epoch");
    const latest = await verifyRosterChain(chainOf(teamKeys, current.epoch), teamId,
      current.epoch);
    requireLead(latest.members, me, memberKeys);
    const newcomers = sortMembers(options.newcomers);
    if (!newcomers.length) throw fail("nobody to add");
    for (const m of newcomers) {
      if (latest.members.some((old) => old.id === m.id)) throw fail("already on the roster");
    }
    const roster = {
      v: ROSTER_VERSION, team: teamId, epoch: current.epoch, version: latest.version + 1,
      previous: await digest(latest), signer: me, keys: latest.keys,
      members: sortMembers(latest.members.concat(newcomers)),
    };
    const signature = await sign(memberKeys, roster);
    await verifyRosterChain(chainOf(teamKeys, current.epoch)
      .concat([{ roster: roster, signature: signature }]), teamId, current.epoch);
    const wraps = await withRaw(openWrap(current, memberKeys, teamId, me),
      (raw) => wrapsFor(newcomers, raw, teamId, current.kid, current.epoch));
    return { roster: roster, signature: signature, wraps: wraps };
  }

  // --- transfers -----------------------------------------------------------------------------

  // Handing a conversation to another team: every stored message is opened here and sealed
  // again to that team's transcript key, taken from its roster chain after verifying it (the
  // server cannot do this: it reads nothing). `target`: GET /teams/{id}/transcript-key.
  // Throws when any message does not open: nothing is sent then.
  async function resealFor(unlocked, teamId, target, messages) {
    const targetTeam = String(target.team_id);
    const chain = target.rosters.map((r) => ({ roster: r.roster, signature: r.signature }));
    const roster = await verifyRosterChain(chain, targetTeam, target.epoch);
    const recipient = bytes32(roster.keys.transcript_public);
    const header = { kid: roster.keys.transcript_kid, epoch: target.epoch };
    const resealed = [];
    for (const message of messages) {
      if (!message.envelope) continue;  // not kept since migration 0006: nothing to move
      const text = await openMessage(unlocked, teamId, message);
      resealed.push({ message_id: message.id, envelope: await E.sealTo(recipient,
        utf8.encode(text), header, ctx.message(targetTeam, String(message.conversation_id),
          String(message.id), message.sender)) });
    }
    return resealed;
  }

  // --- case notes ----------------------------------------------------------------------------

  async function openCaseKey(unlocked, teamId, conversationId, entry) {
    const key = unlocked.keys[entry.epoch];
    if (!key || entry.envelope.epoch !== entry.epoch || entry.envelope.kid !== entry.kid) {
      throw fail("no team key for that case key");
    }
    return withRaw(E.decryptSym(key.team, entry.envelope, ctx.caseKey(teamId, conversationId)),
      aesKey);
  }

  // GET /conversations/{id}/notes → [{id, author_id, created_at, text}]; `text` is null for a
  // note that does not open (its epoch's key is missing or it was tampered with).
  async function openNotes(unlocked, teamId, conversationId, notesJson) {
    teamId = String(teamId);
    conversationId = String(conversationId);
    const caseKeys = new Map();
    for (const entry of notesJson.case_keys) {
      try {
        caseKeys.set(entry.epoch + ":" + entry.kid,
          await openCaseKey(unlocked, teamId, conversationId, entry));
      } catch (error) { /* its notes show as unreadable */ }
    }
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const notes = [];
    for (const note of notesJson.notes) {
      let text = null;
      const key = caseKeys.get(note.envelope.epoch + ":" + note.envelope.kid);
      try {
        if (key && note.author_id) {
          text = decoder.decode(await E.decryptSym(key, note.envelope,
            ctx.note(teamId, conversationId, String(note.id), String(note.author_id))));
        }
      } catch (error) { text = null; }
      notes.push({ id: note.id, author_id: note.author_id, created_at: note.created_at,
        text: text });
    }
    return notes;
  }

  // The POST /conversations/{id}/notes body: the note under the case key of the current
  // epoch, and that case key (new, wrapped under the team key) when there is none yet.
  async function sealNote(unlocked, teamId, conversationId, authorId, text, notesJson) {
    teamId = String(teamId);
    conversationId = String(conversationId);
    if (typeof text !== "string" || !text) throw fail("empty note");
    const epoch = unlocked.current;
    const teamKey = unlocked.keys[epoch];
    if (!teamKey) throw fail("no team key of the current epoch");
    let entry = notesJson.case_keys.find((c) => c.epoch === epoch);
    let caseKey;
    let made = null;
    if (entry) {
      caseKey = await openCaseKey(unlocked, teamId, conversationId, entry);
    } else {
      const kid = newKeyId();
      const raw = global.crypto.getRandomValues(new Uint8Array(32));
      try {
        made = { epoch: epoch, kid: kid, envelope: await E.encryptSym(teamKey.team, raw,
          { kid: kid, epoch: epoch }, ctx.caseKey(teamId, conversationId)) };
        caseKey = await aesKey(raw);
      } finally { raw.fill(0); }
      entry = made;
    }
    const id = global.crypto.randomUUID();
    const envelope = await E.encryptSym(caseKey, utf8.encode(text),
      { kid: entry.kid, epoch: epoch }, ctx.note(teamId, conversationId, id, String(authorId)));
    return { id: id, envelope: envelope, case_key: made };
  }

  global.LotseTeamKeys = Object.freeze({
    verifyRosterChain, unlockTeam, openMessage, createEpoch, addMembers, openNotes, sealNote,
    resealFor,
    fingerprint, rosterDigest: digest,
  });
})(window);
