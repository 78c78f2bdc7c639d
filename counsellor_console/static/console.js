// Console client: fetches the queue and the open conversation from the JSON API and keeps them
// live through server-sent events. All text goes in with textContent, never as HTML.
// Transcripts and notes arrive sealed; they are opened here with the team's keys
// (team_keys.js) once the member keys are unlocked, and never leave the page in plain.
"use strict";

(function () {
  const app = document.getElementById("app");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const queueList = document.getElementById("queue-list");
  const transcript = document.getElementById("transcript");
  const section = document.getElementById("conversation");
  const placeholder = document.getElementById("placeholder");
  const errorBox = document.getElementById("error");
  const replyForm = document.getElementById("reply-form");
  const replyBox = document.getElementById("reply");
  const live = document.getElementById("live");
  const labels = JSON.parse(document.getElementById("labels").textContent);
  const crisisAlert = document.getElementById("crisis-alert");
  // Level and kind of a crisis, as the catalogue words them ("Akute Gefahr · Suizidgedanken").
  const crisisLabels = Object.fromEntries([...document.querySelectorAll("#crisis-labels li")]
    .map((li) => [li.dataset.key, li.textContent]));
  function crisisLabel(item) {
    if (!item.crisis) return "";
    const parts = [crisisLabels["level." + item.crisis_level] || app.dataset.crisis];
    if (item.crisis_category) parts.push(crisisLabels["category." + item.crisis_category]);
    return parts.filter(Boolean).join(" · ");
  }
  const claimButton = document.getElementById("claim-button");
  const releaseButton = document.getElementById("release-button");
  const crisisButton = document.getElementById("crisis-button");
  const isLead = ["team_lead", "admin"].includes(app.dataset.role);
  const workloadList = document.getElementById("workload-list");

  async function loadWorkload() {
    if (!workloadList) return;
    const rows = await api("GET", "/team/workload");
    workloadList.replaceChildren(...rows.map((row) => el("li", "workload-row " + row.availability,
      row.display_name + " · " + (labels.availability[row.availability] || row.availability) +
      " · " + workloadList.dataset.of.replace("{active}", row.active)
        .replace("{capacity}", row.capacity) + (row.crises ? " · " + app.dataset.crisis : ""))));
  }
  let current = null;
  const shown = new Map();  // id → message of the open conversation, to re-open after unlock
  // The team's keys: `team` is unlocked (in memory only), `teamKeys` the public material of
  // GET /team/keys, `teamProblem` why messages cannot be read while `team` is null.
  let team = null;
  let teamKeys = null;
  let teamProblem = "locked";

  function describe(item) {
    return [labels.roles[item.role] || item.role, labels.states[item.federal_state],
      item.topics.map((t) => labels.needs[t] || t).join(", ")].filter(Boolean).join(" · ");
  }

  async function api(method, path, body) {
    const options = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch("/api/v1/console" + path, options);
    if (response.status === 401) { window.location.assign("/console/login"); throw new Error("401"); }
    if (!response.ok) throw new Error(String(response.status));
    return response.status === 204 ? null : response.json();
  }

  function showError(on) {
    errorBox.hidden = !on;
    errorBox.textContent = on ? app.dataset.error : "";
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function time(iso) {
    return new Date(iso).toLocaleTimeString("de-DE", { hour: "2-digit", minute: "2-digit" });
  }

  async function loadQueue() {
    const items = await api("GET", "/queue");
    queueList.replaceChildren();
    if (!items.length) queueList.append(el("li", "muted", app.dataset.empty));
    for (const item of items) {
      const li = el("li", "queue-item" + (item.crisis ? " crisis" : "") +
        (item.crisis_level === "imminent" ? " imminent" : ""));
      li.dataset.id = item.id;
      if (item.crisis_level) li.dataset.level = item.crisis_level;
      const title = el("span", "title", (item.crisis ? crisisLabel(item) + " · " : "") +
        (item.status === "waiting" ? app.dataset.waiting : app.dataset.active) + " · " +
        time(item.waiting_since || item.created_at));
      const meta = el("span", "meta", describe(item));
      const button = el("button", "claim",
        item.status === "waiting" ? app.dataset.claim : app.dataset.open);
      button.type = "button";
      button.addEventListener("click", () => openConversation(item.id, item.status === "waiting"));
      li.append(title, meta, button);
      queueList.append(li);
    }
  }

  function renderMessage(message) {
    if (transcript.querySelector('[data-id="' + message.id + '"]')) return;
    const li = el("li", "msg " + message.sender);
    li.dataset.id = message.id;
    li.append(el("span", "who",
      (app.dataset[message.sender] || app.dataset.counsellor) + " · " + time(message.created_at)));
    const body = el("p", "body");
    li.append(body);
    shown.set(message.id, message);
    showText(body, message);
    if (message.sender === "counsellor") {
      const state = el("span", "delivery", app.dataset["delivery" + cap(message.delivery)] || "");
      li.append(state);
    }
    transcript.append(li);
    li.scrollIntoView({ block: "end" });
  }

  function cap(word) { return word.charAt(0).toUpperCase() + word.slice(1); }

  // A placeholder first; the text once opened. A message that does not open stays a
  // placeholder: there is no plain copy to fall back on.
  async function showText(node, message) {
    node.classList.add("sealed");
    if (!message.envelope) { node.textContent = app.dataset.sealedGone; return; }
    if (!team) {
      node.textContent = teamProblem === "locked" ? app.dataset.sealedLocked
        : teamProblem === "awaiting" ? app.dataset.sealedAwaiting : app.dataset.sealedUnreadable;
      return;
    }
    const keys = team;
    try {
      // Messages moved here from another team were sealed with its id; the message does not
      // say which, so those show as unreadable for now.
      const text = await window.LotseTeamKeys.openMessage(keys, keys.teamId, message);
      if (team !== keys) return;  // the keys changed meanwhile: a newer call fills it
      node.textContent = text;
      node.classList.remove("sealed");
    } catch (error) { node.textContent = app.dataset.sealedUnreadable; }
  }

  function refreshTranscript() {
    for (const li of transcript.querySelectorAll(".msg")) {
      const message = shown.get(li.dataset.id);
      if (message) showText(li.querySelector(".body"), message);
    }
  }

  // What may be done with the open conversation follows its state: claim a waiting one, release
  // one's own, flag or unflag a crisis, transfer or close anything still open.
  function showActions(detail) {
    const mine = detail.status === "active" && detail.counsellor_id === app.dataset.me;
    // A team lead may join a colleague's conversation and write in it (supervision).
    const joins = detail.status === "active" && isLead;
    claimButton.hidden = mine;
    releaseButton.hidden = !mine;
    crisisButton.setAttribute("aria-pressed", String(detail.crisis));
    replyForm.hidden = !(mine || joins);
  }

  async function loadTargets() {
    const [colleagues, teams] = await Promise.all([api("GET", "/colleagues"), api("GET", "/teams")]);
    const option = (value, text) => { const o = el("option", "", text); o.value = value; return o; };
    document.getElementById("transfer-colleagues").replaceChildren(
      ...colleagues.map((c) => option("counsellor:" + c.id, c.display_name)));
    document.getElementById("transfer-teams").replaceChildren(
      ...teams.filter((t) => t.id !== app.dataset.team).map((t) => option("team:" + t.id, t.name)));
  }

  // `leave`: after a transfer the conversation is someone else's, so the view closes.
  async function act(method, path, body, leave) {
    showError(false);
    try {
      const result = await api(method, "/conversations/" + current + path, body);
      if (leave || result.status === "closed" || result.team_id !== app.dataset.team) closeView();
      else await openConversation(current, false);
      await loadQueue();
    } catch (error) { showError(true); }
  }

  function closeView() {
    current = null;
    section.hidden = true;
    transcript.replaceChildren();
    shown.clear();
    notesList.replaceChildren();
    placeholder.hidden = false;
  }

  claimButton.addEventListener("click", () => act("POST", "/claim"));
  releaseButton.addEventListener("click", () => act("POST", "/release"));
  // Erasing is final: the browser's own confirmation dialog, then everything of this user goes.
  const eraseButton = document.getElementById("erase-button");
  eraseButton.addEventListener("click", () => {
    if (!window.confirm(eraseButton.dataset.confirm)) return;
    act("POST", "/erase", undefined, true);
  });
  crisisButton.addEventListener("click", () => act("PUT", "/crisis",
    { crisis: crisisButton.getAttribute("aria-pressed") !== "true" }));
  document.getElementById("transfer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const [kind, id] = document.getElementById("transfer-target").value.split(":");
    const body = { note: document.getElementById("transfer-note").value };
    body[kind === "team" ? "to_team_id" : "to_counsellor_id"] = id;
    if (kind === "team") {
      // The other team can read the transcript only if it is sealed again to its key, and
      // only this browser can do that. Without unlocked keys nothing is sent.
      try {
        if (!team) throw new Error("keys locked");
        const [target, detail] = await Promise.all([
          api("GET", "/teams/" + encodeURIComponent(id) + "/transcript-key"),
          api("GET", "/conversations/" + current)]);
        body.resealed = await window.LotseTeamKeys.resealFor(team, team.teamId, target,
          detail.messages);
      } catch (error) { showError(true); return; }
    }
    act("POST", "/transfer", body, true).then(() => {
      document.getElementById("transfer-note").value = "";
      document.getElementById("transfer-panel").open = false;
    });
  });
  document.getElementById("close-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const outcomes = [...event.target.querySelectorAll("input[name=outcome]:checked")]
      .map((input) => input.value);
    act("POST", "/close", { outcomes: outcomes }).then(() => {
      event.target.reset();
      document.getElementById("close-panel").open = false;
    });
  });

  // Canned responses in the user's language go into the reply box, to be edited before sending.
  const canned = document.getElementById("canned");
  async function loadCanned(language) {
    const items = await api("GET", "/canned?language=" + encodeURIComponent(language));
    canned.replaceChildren(canned.options[0]);
    for (const item of items) {
      const option = el("option", "", item.title);
      option.value = item.body;
      canned.append(option);
    }
    canned.hidden = canned.labels[0].hidden = !items.length;
  }
  canned.addEventListener("change", () => {
    if (!canned.value) return;
    replyBox.value = replyBox.value ? replyBox.value + "\n" + canned.value : canned.value;
    canned.value = "";
    replyBox.focus();
  });

  // Referral cards: search like the public API, tick offers, send them as cards.
  const results = document.getElementById("referral-results");
  let lastSearch = null;
  document.getElementById("referral-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(false);
    const search = {
      postcode: document.getElementById("referral-postcode").value.trim() || null,
      needs: [document.getElementById("referral-need").value].filter(Boolean),
      q: document.getElementById("referral-q").value.trim() || null,
    };
    const query = new URLSearchParams({ limit: "10" });
    if (search.postcode) query.set("postcode", search.postcode);
    if (search.needs.length) query.set("needs", search.needs.join(","));
    if (search.q) query.set("q", search.q);
    const response = await fetch("/api/v1/referrals?" + query, { credentials: "same-origin" });
    results.replaceChildren();
    if (!response.ok) { showError(true); return; }
    lastSearch = search;
    const found = (await response.json()).matches;
    if (!found.length) results.append(el("li", "muted", app.dataset.noResults));
    for (const match of found) {
      const label = el("label", "check");
      const box = el("input");
      box.type = "checkbox";
      box.value = match.service_id;
      label.append(box, el("span", "", match.name + " · " + match.organisation +
        (match.reason.distance_km != null ? " · " + Math.round(match.reason.distance_km) + " km" : "")));
      const li = el("li");
      li.append(label);
      results.append(li);
    }
  });
  document.getElementById("referral-send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = [...results.querySelectorAll("input:checked")].map((box) => box.value);
    if (!ids.length || !lastSearch) return;
    showError(false);
    try {
      const sent = await api("POST", "/conversations/" + current + "/referrals",
        Object.assign({ service_ids: ids }, lastSearch));
      sent.forEach(renderMessage);
      results.replaceChildren();
      document.getElementById("referral-panel").open = false;
    } catch (error) { showError(true); }
  });

  let opening = 0;  // the latest click wins: a slower answer for an earlier one is dropped
  // Messages that arrive live while a conversation is being opened: the transcript read may
  // have been made before they were stored, so they are kept and shown once it is there.
  let openingId = null;
  const early = [];

  async function openConversation(id, claim) {
    showError(false);
    const mine = ++opening;
    openingId = id;
    early.length = 0;
    try {
      if (claim) await api("POST", "/conversations/" + id + "/claim");
      const detail = await api("GET", "/conversations/" + id);
      if (mine !== opening) return;
      if (current !== id) noteBox.value = "";  // a note belongs to the case it was begun in
      current = id;
      showActions(detail);
      loadCanned(detail.language).catch(() => showError(true));
      if (crisisAlert.dataset.id === id) crisisAlert.textContent = "";
      placeholder.hidden = true;
      section.hidden = false;
      document.getElementById("conversation-title").textContent =
        describe(detail) || app.dataset.untitled;
      const level = document.getElementById("conversation-crisis");
      level.textContent = crisisLabel(detail);
      level.hidden = !detail.crisis;
      transcript.replaceChildren();
      shown.clear();
      detail.messages.forEach(renderMessage);
      early.splice(0).forEach(renderMessage);  // shown once: renderMessage skips known ids
      openingId = null;
      loadNotes().catch(() => showNotesState("unavailable"));
      (replyForm.hidden ? claimButton : replyBox).focus();
      await loadQueue();
    } catch (error) {
      if (mine === opening) openingId = null;
      showError(true);
    }
  }

  replyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = replyBox.value.trim();
    if (!text || !current) return;
    showError(false);
    try {
      renderMessage(await api("POST", "/conversations/" + current + "/messages", { text: text }));
      replyBox.value = "";
    } catch (error) { showError(true); }  // the text stays in the box: nothing is lost
  });

  function listen() {
    const source = new EventSource("/api/v1/console/events");
    source.onopen = () => {
      live.textContent = live.dataset.label;
      live.classList.add("on");
      loadQueue().catch(() => showError(true));  // catch up on what happened while offline
    };
    source.onerror = () => { live.classList.remove("on"); };
    source.addEventListener("queue.updated", () => {
      loadQueue().catch(() => showError(true));
      loadWorkload().catch(() => showError(true));
    });
    // A crisis: a banner that screen readers announce (role="alert"), and the queue re-sorted
    // (the API puts crises on top). Opening that conversation clears the banner.
    source.addEventListener("conversation.crisis", (event) => {
      const conversation = JSON.parse(event.data).conversation;
      crisisAlert.dataset.id = conversation.id;
      // Imminent danger says so in the banner itself: every console of the team shows it.
      crisisAlert.textContent = (conversation.crisis_level === "imminent"
        ? crisisAlert.dataset.imminent : crisisAlert.dataset.text) +
        " (" + crisisLabel(conversation) + ")";
      crisisAlert.classList.toggle("imminent", conversation.crisis_level === "imminent");
      loadQueue().catch(() => showError(true));
    });
    source.addEventListener("message.created", (event) => {
      const message = JSON.parse(event.data).message;
      if (message.conversation_id === openingId) early.push(message);
      else if (message.conversation_id === current) renderMessage(message);
      else loadQueue().catch(() => showError(true));
    });
    source.addEventListener("conversation.transferred", (event) => {
      if (JSON.parse(event.data).conversation_id === current) closeView();
      loadQueue().catch(() => showError(true));
    });
    // The user erased their data (/loeschen): an open view of it must not linger.
    source.addEventListener("conversation.erased", (event) => {
      if (JSON.parse(event.data).conversation_id === current) closeView();
      loadQueue().catch(() => showError(true));
    });
    source.addEventListener("message.delivery", (event) => {
      const data = JSON.parse(event.data);
      const node = transcript.querySelector('[data-id="' + data.message_id + '"] .delivery');
      if (node) node.textContent = app.dataset["delivery" + cap(data.delivery)] || "";
    });
  }

  // What the bot tells users depends on who is here: say it when it changes, and beat every
  // minute while this page is open (a closed laptop stops beating and counts as away).
  const availability = document.getElementById("availability");
  availability.addEventListener("change", () => {
    api("PUT", "/me/availability", { availability: availability.value })
      .then(() => showError(false), () => showError(true));
  });
  setInterval(() => { api("POST", "/me/heartbeat").catch(() => showError(true)); }, 60000);

  // Member keys for the encrypted notes: made here under a passphrase that never leaves the
  // browser, unlocked into memory only (keys.js). Reloading the page locks them again.
  const keysState = document.getElementById("keys-state");
  const keysSetup = document.getElementById("keys-setup");
  const keysUnlock = document.getElementById("keys-unlock");
  const keysError = document.getElementById("keys-error");
  let memberKeys = null;  // unlocked, non-extractable CryptoKeys; never stored anywhere
  let storedKeys = null;

  function keysView(state) {
    keysState.textContent = keysState.dataset[state];
    keysSetup.hidden = state !== "missing";
    keysUnlock.hidden = state !== "locked";
    keysError.hidden = true;
  }

  async function loadKeys() {
    const response = await fetch("/api/v1/console/me/keys", { credentials: "same-origin" });
    if (response.status === 404) { keysView("missing"); return; }
    if (!response.ok) throw new Error(String(response.status));
    storedKeys = await response.json();
    keysView(memberKeys ? "unlocked" : "locked");
  }

  function keysFailed(message) {
    keysError.textContent = message;
    keysError.hidden = false;
  }

  keysSetup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const passphrase = document.getElementById("keys-new").value;
    if (passphrase !== document.getElementById("keys-again").value) {
      keysFailed(keysError.dataset.mismatch);
      return;
    }
    try {
      const made = await window.LotseKeys.createMemberKeys(app.dataset.me, passphrase);
      await api("PUT", "/me/keys", {
        x25519_public: made.x25519.public_raw, ed25519_public: made.ed25519.public_raw,
        wrapped: made,
      });
      memberKeys = await window.LotseKeys.unlock(app.dataset.me, passphrase, made);
      keysSetup.reset();
      await loadKeys();
      await loadTeam();
    } catch (error) { keysFailed(app.dataset.error); }
  });

  keysUnlock.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("keys-passphrase");
    try {
      memberKeys = await window.LotseKeys.unlock(app.dataset.me, field.value, storedKeys.wrapped);
      field.value = "";
      keysView("unlocked");
    } catch (error) { keysFailed(keysError.dataset.wrong); return; }
    await loadTeam();
  });

  // --- the team's keys ----------------------------------------------------------------------
  const teamState = document.getElementById("team-state");
  const leadBox = document.getElementById("team-keys");  // only on a team lead's page

  async function loadTeam() {
    if (!memberKeys) return;
    team = null;
    try {
      teamKeys = await api("GET", "/team/keys");
      if (String(teamKeys.team_id) !== app.dataset.team) throw new Error("another team");
    } catch (error) {
      teamKeys = null;
      teamProblem = "failed";
      await showTeam();
      return;
    }
    try {
      team = await window.LotseTeamKeys.unlockTeam(teamKeys, memberKeys, app.dataset.me);
      teamProblem = null;
    } catch (error) {
      // A roster that does not verify unlocks nothing: the server cannot add a reader.
      teamProblem = { "no-epoch": "none", awaiting: "awaiting" }[error.code] || "refused";
    }
    await showTeam();
    refreshTranscript();
    loadNotes().catch(() => showNotesState("unavailable"));
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? values[key] : all));
  }

  async function showTeam() {
    teamState.hidden = !memberKeys;
    const text = document.getElementById("team-state-text");
    text.textContent = team
      ? fill(teamState.dataset.ready, { epoch: team.current, fingerprint: team.signerFingerprint })
      : teamState.dataset[teamProblem] || teamState.dataset.failed;
    // Each member can read out their own fingerprint for the lead to compare.
    document.getElementById("my-fingerprint").textContent = memberKeys ? fill(teamState.dataset.mine,
      { fingerprint: await window.LotseTeamKeys.fingerprint(memberKeys.ed25519_public_raw) }) : "";
    if (leadBox) await showLeadTasks();
  }

  // What only a lead's browser can do: make the first epoch, start the next one after someone
  // left, and wrap the current team key for newcomers it has checked by fingerprint.
  async function showLeadTasks() {
    const hint = document.getElementById("team-keys-hint");
    const createBox = document.getElementById("team-create-box");
    const rotateBox = document.getElementById("team-rotate-box");
    const awaitingBox = document.getElementById("team-awaiting-box");
    const list = document.getElementById("team-awaiting");
    const ready = Boolean(memberKeys && teamKeys);
    hint.hidden = ready;
    createBox.hidden = !(ready && teamKeys.epochs.length === 0);
    rotateBox.hidden = !(ready && team && teamKeys.rotation_due);
    const waiting = ready && team ? teamKeys.members.filter((m) => !m.wrapped) : [];
    awaitingBox.hidden = !waiting.length;
    document.getElementById("team-keys-done").hidden =
      !(ready && team && !waiting.length && !teamKeys.rotation_due);
    const rows = [];
    for (const m of waiting) {
      const role = m.role === "team_lead" ? leadBox.dataset.roleLead : leadBox.dataset.roleCounsellor;
      const li = el("li", "awaiting");
      li.append(el("span", "who", m.display_name + " · " + role),
        el("code", "fingerprint", fill(leadBox.dataset.fingerprint,
          { fingerprint: await window.LotseTeamKeys.fingerprint(m.ed25519_public) })));
      const button = el("button", "", leadBox.dataset.grant);
      button.type = "button";
      button.setAttribute("aria-label", leadBox.dataset.grant + ": " + m.display_name);
      button.addEventListener("click", () => leadAction(async () => {
        const body = await window.LotseTeamKeys.addMembers(
          { teamKeys: teamKeys, memberKeys: memberKeys, me: app.dataset.me, newcomers: [m] });
        await api("POST", "/team/epochs/" + teamKeys.epochs[teamKeys.epochs.length - 1].epoch +
          "/members", body);
      }));
      li.append(button);
      rows.push(li);
    }
    list.replaceChildren(...rows);
  }

  // Any failure (a roster that does not verify, a refused request) sends nothing more and
  // says so; the team's keys are then reloaded either way.
  async function leadAction(work) {
    const error = document.getElementById("team-keys-error");
    error.hidden = true;
    for (const button of leadBox.querySelectorAll("button")) button.disabled = true;
    try { await work(); } catch (failure) {
      error.textContent = error.dataset.text;
      error.hidden = false;
    } finally {
      for (const button of leadBox.querySelectorAll("button")) button.disabled = false;
    }
    await loadTeam();
  }

  // The members of a new epoch: for the first one only the lead; for the next, whoever is on
  // the current verified roster and still an active member with the same keys. Anybody else
  // waits to be checked by fingerprint and added one by one.
  async function epochMembers() {
    const mine = window.LotseEnvelope.b64url(memberKeys.x25519_public_raw);
    const me = teamKeys.members.find((m) => String(m.id) === app.dataset.me);
    if (!me || me.x25519_public !== mine) throw new Error("my member keys are not the server's");
    if (!team) return [me];
    const keep = team.roster.members;
    return teamKeys.members.filter((m) => String(m.id) === app.dataset.me || keep.some((k) =>
      k.id === String(m.id) && k.role === m.role && k.x25519 === m.x25519_public &&
      k.ed25519 === m.ed25519_public));
  }

  async function startEpoch() {
    const body = await window.LotseTeamKeys.createEpoch({
      teamKeys: teamKeys, memberKeys: memberKeys, me: app.dataset.me,
      teamId: app.dataset.team, members: await epochMembers(),
    });
    await api("POST", "/team/epochs", body);
  }

  if (leadBox) {
    document.getElementById("team-create").addEventListener("click", () => leadAction(startEpoch));
    document.getElementById("team-rotate").addEventListener("click", () => leadAction(startEpoch));
  }

  // --- case notes ---------------------------------------------------------------------------
  const notesPanel = document.getElementById("notes-panel");
  const notesList = document.getElementById("notes-list");
  const notesState = document.getElementById("notes-state");
  const notesError = document.getElementById("notes-error");
  const noteBox = document.getElementById("note-text");

  // Opening the panel reads the notes afresh: a colleague may have written one meanwhile.
  notesPanel.addEventListener("toggle", () => {
    if (notesPanel.open) loadNotes().catch(() => showNotesState("unavailable"));
  });

  function showNotesState(key) {
    notesState.textContent = key ? notesPanel.dataset[key] : "";
  }

  async function loadNotes() {
    const id = current;
    if (!id) return;
    if (!team) { notesList.replaceChildren(); showNotesState("locked"); return; }
    const json = await api("GET", "/conversations/" + id + "/notes");
    const notes = await window.LotseTeamKeys.openNotes(team, team.teamId, id, json);
    if (id !== current) return;
    const names = new Map((teamKeys ? teamKeys.members : []).map((m) => [String(m.id), m.display_name]));
    notesList.replaceChildren(...notes.map((note) => {
      const li = el("li", "note");
      li.append(el("span", "who", (names.get(String(note.author_id)) || app.dataset.counsellor) +
        " · " + new Date(note.created_at).toLocaleString("de-DE",
        { dateStyle: "short", timeStyle: "short" })));
      li.append(el("p", "body" + (note.text === null ? " sealed" : ""),
        note.text === null ? notesPanel.dataset.unreadable : note.text));
      return li;
    }));
    showNotesState(notes.length ? null : "empty");
  }

  // Fails closed: the note is sealed before anything is sent; if any step throws, nothing
  // goes out and the text stays in the box.
  document.getElementById("notes-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = noteBox.value.trim();
    const id = current;
    if (!text || !id) return;
    notesError.hidden = true;
    try {
      if (!team) throw new Error("locked");
      const path = "/conversations/" + id + "/notes";
      const body = await window.LotseTeamKeys.sealNote(team, team.teamId, id, app.dataset.me, text,
        await api("GET", path));
      await api("POST", path, body);
      noteBox.value = "";
      await loadNotes();
    } catch (error) {
      notesError.textContent = team ? notesPanel.dataset.failed : notesPanel.dataset.locked;
      notesError.hidden = false;
    }
  });

  listen();
  loadKeys().catch(() => showError(true));
  loadQueue().catch(() => showError(true));
  loadTargets().catch(() => showError(true));
  loadWorkload().catch(() => showError(true));
})();
