// The envelope format of core/crypto.py, in the browser with WebCrypto: one format on both
// sides, checked against shared test vectors in both directions (tests/vectors/envelope_v1.json).
//
// {v, alg, kid, epoch, nonce, ct} (+ epk when sealed to a public key); binary fields are
// unpadded base64url. The associated data is the canonical JSON of the header fields and the
// context (sorted keys, no spaces). Any failure throws: there is no plaintext fallback.
"use strict";

(function (global) {
  const VERSION = 1;
  const SEAL_ALG = "X25519-HKDF-SHA256-A256GCM";
  const SYM_ALG = "A256GCM";
  const SEAL_INFO = new TextEncoder().encode("lotse/v1/seal");
  const subtle = global.crypto.subtle;

  function b64url(bytes) {
    let text = "";
    for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value !== null && typeof value === "object") {
      return "{" + Object.keys(value).sort()
        .map((key) => JSON.stringify(key) + ":" + canonical(value[key])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  function aad(header, context) {
    for (const [key, value] of Object.entries(context)) {
      if (typeof value !== "string" && !Number.isInteger(value)) {
        throw new TypeError("context value for " + key + " must be a string or an integer");
      }
    }
    const bound = { v: header.v, alg: header.alg, kid: header.kid, epoch: header.epoch };
    if (header.epk !== undefined) bound.epk = header.epk;
    bound.ctx = context;
    return new TextEncoder().encode(canonical(bound));
  }

  function check(envelope, alg) {
    if (envelope.v !== VERSION) throw new Error("unknown envelope version");
    if (envelope.alg !== alg) throw new Error("expected " + alg + ", got " + envelope.alg);
    for (const field of ["kid", "epoch", "nonce", "ct"]) {
      if (!(field in envelope)) throw new Error("envelope lacks " + field);
    }
  }

  function concat(a, b) {
    const out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  async function sealKey(privateKey, peerRaw, epk, recipientRaw, usage) {
    const peer = await subtle.importKey("raw", peerRaw, { name: "X25519" }, false, []);
    const shared = await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256);
    const base = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
    return subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: concat(epk, recipientRaw), info: SEAL_INFO },
      base, { name: "AES-GCM", length: 256 }, false, [usage]);
  }

  // Encrypt to a raw X25519 public key (Uint8Array of 32 bytes).
  async function sealTo(recipientRaw, plaintext, header, context) {
    const ephemeral = await subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    const epk = new Uint8Array(await subtle.exportKey("raw", ephemeral.publicKey));
    const key = await sealKey(ephemeral.privateKey, recipientRaw, epk, recipientRaw, "encrypt");
    const nonce = global.crypto.getRandomValues(new Uint8Array(12));
    const head = { v: VERSION, alg: SEAL_ALG, kid: header.kid, epoch: header.epoch, epk: b64url(epk) };
    const ct = await subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad(head, context) }, key, plaintext);
    return Object.assign(head, { nonce: b64url(nonce), ct: b64url(ct) });
  }

  // Open with the recipient's private CryptoKey and its raw public key.
  async function openSealed(privateKey, publicRaw, envelope, context) {
    check(envelope, SEAL_ALG);
    const epk = fromB64url(envelope.epk);
    const key = await sealKey(privateKey, epk, epk, publicRaw, "decrypt");
    return new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv: fromB64url(envelope.nonce), additionalData: aad(envelope, context) },
      key, fromB64url(envelope.ct)));
  }

  // AES-256-GCM under a symmetric CryptoKey (a case key, a team key).
  async function encryptSym(key, plaintext, header, context) {
    const nonce = global.crypto.getRandomValues(new Uint8Array(12));
    const head = { v: VERSION, alg: SYM_ALG, kid: header.kid, epoch: header.epoch };
    const ct = await subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad(head, context) }, key, plaintext);
    return Object.assign(head, { nonce: b64url(nonce), ct: b64url(ct) });
  }

  async function decryptSym(key, envelope, context) {
    check(envelope, SYM_ALG);
    return new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv: fromB64url(envelope.nonce), additionalData: aad(envelope, context) },
      key, fromB64url(envelope.ct)));
  }

  global.LotseEnvelope = Object.freeze({
    VERSION, SEAL_ALG, SYM_ALG, b64url, fromB64url, canonical, aad,
    sealTo, openSealed, encryptSym, decryptSym,
  });
})(window);
