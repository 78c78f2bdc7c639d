// A counsellor's own key pairs, made and unlocked in the browser (docs/security.md):
// X25519 to receive wrapped team keys, Ed25519 to sign the roster as a team lead. The private
// halves leave the browser only wrapped under a key derived from a personal unlock passphrase
// (PBKDF2-HMAC-SHA-256, 600,000 iterations, random salt) that is never sent anywhere. Unlocked
// keys are non-extractable CryptoKeys held in memory; nothing goes to localStorage or
// sessionStorage. Needs envelope.js.
"use strict";

(function (global) {
  const E = global.LotseEnvelope;
  const subtle = global.crypto.subtle;
  const KDF = "PBKDF2-SHA256";
  const ITERATIONS = 600000;
  const KINDS = { x25519: { name: "X25519" }, ed25519: { name: "Ed25519" } };

  async function passphraseKey(passphrase, salt, iterations) {
    const base = await subtle.importKey(
      "raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveKey"]);
    return subtle.deriveKey(
      { name: "PBKDF2", hash: "SHA-256", salt: salt, iterations: iterations },
      base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  }

  function context(owner, kind) {
    return { owner: owner, kind: kind, purpose: "member-key" };
  }

  // Both pairs, wrapped for the server to keep: {x25519: {...}, ed25519: {...}}, each with the
  // public key (raw, base64url) and the wrapped private key.
  async function createMemberKeys(owner, passphrase) {
    if (!passphrase || passphrase.length < 12) throw new Error("passphrase too short");
    const salt = global.crypto.getRandomValues(new Uint8Array(16));
    const wrapKey = await passphraseKey(passphrase, salt, ITERATIONS);
    const result = { kdf: KDF, iterations: ITERATIONS, salt: E.b64url(salt) };
    for (const [kind, algorithm] of Object.entries(KINDS)) {
      const usages = kind === "x25519" ? ["deriveBits"] : ["sign", "verify"];
      // Extractable only for this moment, to be wrapped; the unlocked key never is.
      const pair = await subtle.generateKey(algorithm, true, usages);
      const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
      const publicRaw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
      result[kind] = {
        public_raw: E.b64url(publicRaw),
        wrapped: await E.encryptSym(wrapKey, pkcs8, { kid: owner + ":" + kind, epoch: 0 },
          context(owner, kind)),
      };
      pkcs8.fill(0);
    }
    return result;
  }

  // The private keys as non-extractable CryptoKeys; a wrong passphrase throws OperationError.
  async function unlock(owner, passphrase, stored) {
    if (stored.kdf !== KDF || stored.iterations < ITERATIONS) throw new Error("weak key wrapping");
    const wrapKey = await passphraseKey(passphrase, E.fromB64url(stored.salt), stored.iterations);
    const keys = {};
    for (const [kind, algorithm] of Object.entries(KINDS)) {
      const pkcs8 = await E.decryptSym(wrapKey, stored[kind].wrapped, context(owner, kind));
      const usages = kind === "x25519" ? ["deriveBits"] : ["sign"];
      keys[kind] = await subtle.importKey("pkcs8", pkcs8, algorithm, false, usages);
      keys[kind + "_public_raw"] = E.fromB64url(stored[kind].public_raw);
      pkcs8.fill(0);
    }
    return keys;
  }

  global.LotseKeys = Object.freeze({ KDF, ITERATIONS, createMemberKeys, unlock });
})(window);
