// Console client: fetches the queue and the open conversation from the JSON API and keeps them
// live through server-sent events. All text goes in with textContent, never as HTML.
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
  let current = null;

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
    return response.json();
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
      const li = el("li", "queue-item" + (item.crisis ? " crisis" : ""));
      li.dataset.id = item.id;
      const title = el("span", "title", (item.crisis ? app.dataset.crisis + " · " : "") +
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
      (message.sender === "user" ? app.dataset.user : app.dataset.counsellor) + " · " +
      time(message.created_at)));
    li.append(el("p", "body", message.body));
    if (message.sender === "counsellor") {
      const state = el("span", "delivery", app.dataset["delivery" + cap(message.delivery)] || "");
      li.append(state);
    }
    transcript.append(li);
    li.scrollIntoView({ block: "end" });
  }

  function cap(word) { return word.charAt(0).toUpperCase() + word.slice(1); }

  async function openConversation(id, claim) {
    showError(false);
    try {
      if (claim) await api("POST", "/conversations/" + id + "/claim");
      const detail = await api("GET", "/conversations/" + id);
      current = id;
      placeholder.hidden = true;
      section.hidden = false;
      document.getElementById("conversation-title").textContent = describe(detail);
      transcript.replaceChildren();
      detail.messages.forEach(renderMessage);
      replyBox.focus();
      await loadQueue();
    } catch (error) { showError(true); }
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
    source.addEventListener("queue.updated", () => { loadQueue().catch(() => showError(true)); });
    source.addEventListener("message.created", (event) => {
      const message = JSON.parse(event.data).message;
      if (message.conversation_id === current) renderMessage(message);
      else loadQueue().catch(() => showError(true));
    });
    source.addEventListener("message.delivery", (event) => {
      const data = JSON.parse(event.data);
      const node = transcript.querySelector('[data-id="' + data.message_id + '"] .delivery');
      if (node) node.textContent = app.dataset["delivery" + cap(data.delivery)] || "";
    });
  }

  listen();
  loadQueue().catch(() => showError(true));
})();
