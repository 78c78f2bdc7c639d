// The try-out web chat. Text is always inserted with textContent: user and directory text can
// never become markup.
"use strict";

(function () {
  const root = document.querySelector(".chat");
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const startButton = document.getElementById("start");

  function addEntry(who, text, cls) {
    const item = document.createElement("li");
    item.className = "entry " + cls;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    const body = document.createElement("p");
    body.textContent = text;
    item.append(label, body);
    log.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function showReplies(replies) {
    for (const reply of replies) {
      const item = addEntry("Lotse", reply.text, "bot");
      if (reply.buttons.length) {
        const group = document.createElement("div");
        group.className = "buttons";
        for (const row of reply.buttons) {
          for (const button of row) {
            const b = document.createElement("button");
            b.type = "button";
            b.textContent = button.label;
            b.addEventListener("click", () => send("action", button.action, button.label));
            group.append(b);
          }
        }
        item.append(group);
      }
    }
  }

  async function send(kind, value, shown) {
    status.textContent = "";
    if (shown) addEntry(root.dataset.you, shown, "user");
    try {
      const response = await fetch("/chat/api/messages", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ kind: kind, value: value }),
      });
      if (!response.ok) throw new Error(String(response.status));
      showReplies((await response.json()).replies);
    } catch (error) {
      status.textContent = root.dataset.error;
      if (kind === "text") input.value = value;  // give the text back: nothing is lost
    }
  }

  function listen() {
    const source = new EventSource("/chat/api/events");
    source.addEventListener("reply", (event) => {
      addEntry(root.dataset.counsellor, JSON.parse(event.data).text, "counsellor");
    });
  }

  startButton.addEventListener("click", () => {
    startButton.hidden = true;
    send("command", "start", null);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text.startsWith("/") ? "command" : "text",
         text.startsWith("/") ? text.slice(1).split(/\s+/)[0].toLowerCase() : text, text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  listen();
})();
