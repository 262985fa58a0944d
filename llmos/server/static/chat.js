// The llmos web chat: plain JavaScript, no build step, no dependencies.
//
// Everything the page shows of a turn comes as llmos events (the sessions API's SSE data):
//   {type: "text_delta", text}            a piece of the answer
//   {type: "final", text}                 the whole answer (its "Sources:" list at the end)
//   {type: "error", message} / {type: "cancelled"}
//   {type: "handoff" | "queued", mode: "human", message}   a person has taken over: the banner shows
//   {type: "plan" | "tool_call" | "tool_result" | "subtask_started" | ...}   shown collapsed under the answer
"use strict";

const $ = (id) => document.getElementById(id);
const saved = {
  get: (name) => localStorage.getItem("llmos." + name) || "",
  set: (name, value) => localStorage.setItem("llmos." + name, value),
};

// --- talking to the server -----------------------------------------------------------------

function authHeaders(kind) {
  const key = kind === "operator" ? saved.get("operatorKey") || saved.get("apiKey") : saved.get("apiKey");
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(path, options = {}, kind = "customer") {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(kind), ...(options.headers || {}) } });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// The data lines of a server-sent event stream, as they arrive.
async function* sseData(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield data;
    }
  }
}

// Conversations are the server's sessions (/v1/sessions): a turn sends only the new message and
// reads llmos's events as they come.
const Sessions = {
  async list() {
    const { data } = await (await api("/v1/sessions")).json();
    return data.map((s) => ({ id: s.id, title: s.title || "Conversation", mode: s.mode }));
  },
  async get(id) {
    const found = await (await api("/v1/sessions/" + encodeURIComponent(id))).json();
    return { id, title: found.title || "Conversation", mode: found.mode, messages: fromServer(found.messages) };
  },
  async remove(id) {
    await api("/v1/sessions/" + encodeURIComponent(id), { method: "DELETE" });
  },
  create() {
    return { id: null, title: "New conversation", messages: [], mode: "assistant" }; // made on its first message
  },
  async stream(session, text, onEvent) {
    const json = { "Content-Type": "application/json" };
    if (!session.id) {
      const body = JSON.stringify({ title: session.title, model: $("model").value });
      session.id = (await (await api("/v1/sessions", { method: "POST", headers: json, body })).json()).id;
    }
    const url = `/v1/sessions/${encodeURIComponent(session.id)}/messages`;
    const response = await api(url, { method: "POST", headers: json, body: JSON.stringify({ content: text }) });
    for await (const data of sseData(response)) onEvent(JSON.parse(data));
  },
};

// Stored messages as the page shows them: tool calls and results fold into the answer that follows.
function fromServer(messages) {
  const shown = [];
  let steps = [];
  for (const m of messages) {
    if (m.role === "tool") steps.push({ type: "tool_result", name: m.name, content: m.content || "" });
    else if (m.role === "assistant" && m.tool_calls && m.tool_calls.length) {
      for (const call of m.tool_calls) steps.push({ type: "tool_call", agent: "assistant", call });
    } else if (m.role === "assistant") {
      shown.push({ role: m.author ? "operator" : "assistant", content: m.content || "", steps });
      steps = [];
    } else if (m.role === "user") shown.push({ role: "user", content: m.content || "" });
  }
  return shown;
}

// --- showing an answer ---------------------------------------------------------------------

// "body\n\nSources:\n[1] a.md, Intro" -> {body, sources: [{number, citation}]}
function splitSources(text) {
  const match = text.match(/\n*Sources:\n((?:\[\d+\] [^\n]+\n?)+)\s*$/);
  if (!match) return { body: text, sources: [] };
  const sources = [...match[1].matchAll(/^\[(\d+)\] (.+)$/gm)].map((m) => ({ number: +m[1], citation: m[2].trim() }));
  return { body: text.slice(0, match.index), sources };
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

let views = 0;

class MessageView {
  constructor(role) {
    this.id = "m" + ++views;
    this.text = element("div", { class: "text" });
    this.node = element("li", { class: role }, element("div", { class: "role" }, role === "user" ? "You" : role === "operator" ? "Support team" : "Assistant"), this.text);
    $("messages").append(this.node);
    this.steps = null;
  }

  append(piece) {
    this.text.append(piece);
    this.scroll();
  }

  // The final answer: markers [n] link to the sources listed under it; each source opens its passage.
  finish(answer) {
    this.node.classList.remove("streaming");
    const { body, sources } = splitSources(answer);
    const known = new Set(sources.map((s) => s.number));
    this.text.replaceChildren(...body.split(/(\[\d+\])/).map((part) => {
      const n = part.match(/^\[(\d+)\]$/);
      if (!n || !known.has(+n[1])) return part;
      return element("a", { class: "marker", href: `#${this.id}-src-${n[1]}`, onclick: () => this.openSource(+n[1]) }, part);
    }));
    if (sources.length) {
      const list = element("ol", { class: "sources", "aria-label": "Sources" });
      for (const source of sources) {
        const link = element("a", { href: "#", class: "source", onclick: (e) => { e.preventDefault(); this.openSource(source.number); } },
          `[${source.number}] ${source.citation}`);
        list.append(element("li", { id: `${this.id}-src-${source.number}`, "data-citation": source.citation }, link));
      }
      this.node.append(element("div", { class: "role" }, "Sources"), list);
    }
    this.scroll();
  }

  async openSource(number) {
    const item = document.getElementById(`${this.id}-src-${number}`);
    if (!item || item.querySelector("blockquote")) return;
    const quote = element("blockquote", { class: "passage" }, "…");
    item.append(quote);
    try {
      const response = await api("/v1/knowledge/passages?citation=" + encodeURIComponent(item.dataset.citation));
      const found = await response.json();
      quote.textContent = found.passages.map((p) => p.text).join("\n…\n");
    } catch (err) {
      quote.textContent = err.message;
    }
  }

  // Plan and tool calls, collapsed under the answer.
  step(event) {
    if (!this.steps) {
      this.stepList = element("div");
      this.steps = element("details", { class: "steps" }, element("summary", {}, "Plan and tools"), this.stepList);
      this.node.append(this.steps);
    }
    this.stepList.append(element("pre", {}, describe(event)));
  }

  // A tool call that waits for the customer's yes or no (sessions API: POST .../approvals/{id}).
  ask(event, session) {
    const answer = async (approve) => {
      for (const button of box.querySelectorAll("button")) button.disabled = true;
      try {
        const url = `/v1/sessions/${encodeURIComponent(session.id)}/approvals/${encodeURIComponent(event.approval_id)}`;
        const body = JSON.stringify({ approve });
        const done = await (await api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body })).json();
        status.textContent = done.status;
      } catch (err) {
        status.textContent = err.message;
      }
    };
    const status = element("span", { class: "status" });
    const box = element("div", { class: "approval" },
      element("div", {}, `${event.description || "The assistant asks to run"}: ${event.call.name}(${event.call.arguments})`),
      element("button", { type: "button", onclick: () => answer(true) }, "Allow"), " ",
      element("button", { type: "button", onclick: () => answer(false) }, "Deny"), " ", status);
    this.node.append(box);
    this.scroll();
  }

  fail(message) {
    this.node.classList.remove("streaming");
    this.append(element("div", { class: "banner error" }, message));
  }

  scroll() {
    $("messages").scrollTop = $("messages").scrollHeight;
  }
}

function describe(event) {
  switch (event.type) {
    case "plan":
      return "Plan: " + event.plan.subtasks.map((s) => `${s.id} ${s.specialist}: ${s.instruction}`).join("\n      ");
    case "tool_call":
      return `${event.agent} → ${event.call.name}(${event.call.arguments})`;
    case "tool_result":
      return `${event.name}${event.is_error ? " failed" : ""}: ${event.content.slice(0, 400)}`;
    case "subtask_started":
      return `${event.subtask} started (${event.agent})`;
    case "approval":
      return `${event.call.name}(${event.call.arguments}): ${event.status}${event.reason ? " (" + event.reason + ")" : ""}`;
    case "subtask_finished":
      return `${event.subtask} ${event.status}`;
    default:
      return JSON.stringify(event);
  }
}

// --- the page ------------------------------------------------------------------------------

let current = Sessions.create();

// "human": a person answers this conversation; "assistant": the assistant does.
function showMode(mode) {
  current.mode = mode;
  $("handoff").hidden = mode !== "human";
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function showMessage(message) {
  const view = new MessageView(message.role);
  if (message.role === "assistant") {
    for (const event of message.steps || []) view.step(event);
    view.finish(message.content);
  } else {
    view.append(message.content);
  }
}

async function send(text) {
  const session = current;
  session.messages.push({ role: "user", content: text });
  if (session.messages.length === 1) session.title = text.slice(0, 60);
  let quiet = false; // the message was queued for a person: no answer comes now
  showMessage(session.messages.at(-1));
  const view = new MessageView("assistant");
  view.node.classList.add("streaming");
  const steps = [];
  let answer = null;
  $("send").disabled = true;
  try {
    await Sessions.stream(session, text, (event) => {
      if (event.mode) showMode(event.mode);
      if (event.type === "text_delta") view.append(event.text);
      else if (event.type === "final") answer = event.text;
      else if (event.type === "error") view.fail(event.message);
      else if (event.type === "cancelled") view.fail("The answer was cancelled.");
      else if (event.type === "queued") quiet = true;
      else if (event.type === "approval" && event.status === "requested") view.ask(event, session);
      else if (event.type !== "turn" && event.type !== "handoff") {
        steps.push(event);
        view.step(event);
      }
    });
  } catch (err) {
    view.fail(err.message);
  } finally {
    $("send").disabled = false;
  }
  if (answer !== null) {
    view.finish(answer);
    session.messages.push({ role: "assistant", content: answer, steps });
  } else if (quiet) {
    view.node.remove();
  }
  await showSessions();
}

async function open(session) {
  current = session;
  $("messages").replaceChildren();
  showError("");
  showMode(session.mode);
  session.messages.forEach(showMessage);
  await showSessions();
}

async function showSessions() {
  let listed = [];
  try {
    listed = await Sessions.list();
  } catch (err) {
    showError(err.message);
  }
  const items = listed.map((s) =>
    element("li", { class: s.id === current.id ? "current" : "" },
      element("button", { type: "button", class: "open", title: s.title, onclick: async () => open(await Sessions.get(s.id)) }, s.title),
      element("button", { type: "button", "aria-label": "Delete " + s.title, onclick: async () => {
        await Sessions.remove(s.id);
        if (s.id === current.id) await open(Sessions.create());
        else await showSessions();
      } }, "×")));
  $("sessions").replaceChildren(...items);
}

async function showDocuments() {
  try {
    const { data } = await (await api("/v1/knowledge/documents")).json();
    $("documents").replaceChildren(...data.map((doc) =>
      element("li", { "data-id": doc.id },
        element("span", {}, doc.name, " ", element("span", { class: "state" }, doc.state === "indexed" ? `${doc.chunks} passage${doc.chunks === 1 ? "" : "s"}` : doc.state)),
        element("button", { type: "button", "aria-label": "Delete " + doc.name, onclick: () => removeDocument(doc) }, "×"))));
    if ($("upload-status").dataset.listing) showUploadStatus(""); // the listing works again: its error is gone
  } catch (err) {
    showUploadStatus(err.message, true);
  }
}

function showUploadStatus(text, listing = false) {
  $("upload-status").textContent = text;
  if (listing) $("upload-status").dataset.listing = "1";
  else delete $("upload-status").dataset.listing;
}

async function upload(event) {
  event.preventDefault();
  const files = $("upload-files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  showUploadStatus("Uploading and indexing…");
  try {
    const result = await (await api("/v1/knowledge/documents", { method: "POST", body: form }, "operator")).json();
    const lines = result.documents.map((d) => `Added ${d.name} (${d.chunks} passage${d.chunks === 1 ? "" : "s"})`);
    lines.push(...result.failed.map((f) => `Not added: ${f.reason}`));
    showUploadStatus(lines.join("\n"));
    $("upload-files").value = "";
  } catch (err) {
    showUploadStatus(err.message);
  }
  await showDocuments();
}

async function removeDocument(doc) {
  try {
    await api("/v1/knowledge/documents/" + encodeURIComponent(doc.id), { method: "DELETE" }, "operator");
    showUploadStatus(`Deleted ${doc.name}`);
  } catch (err) {
    showUploadStatus(err.message);
  }
  await showDocuments();
}

async function showModels() {
  try {
    const { data } = await (await api("/v1/models")).json();
    $("model").replaceChildren(...data.map((m) => element("option", { value: m.id }, m.id)));
    showError("");
  } catch (err) {
    showError(err.message);
    $("settings").open = true;
  }
}

// While a person answers, their replies arrive in the stored session: look for them now and then.
const FOLLOW_MS = 4000;
async function followPerson() {
  if (!current.id || current.mode !== "human" || $("send").disabled) return;
  try {
    const fresh = await Sessions.get(current.id);
    if (fresh.messages.length !== current.messages.length || fresh.mode !== current.mode) await open(fresh);
  } catch {
    // the next look will tell; an error banner for a background check would only distract
  }
}

function start() {
  for (const [id, name] of [["api-key", "apiKey"], ["operator-key", "operatorKey"]]) {
    $(id).value = saved.get(name);
    $(id).addEventListener("change", () => {
      saved.set(name, $(id).value.trim());
      showModels();
      showDocuments();
      showSessions();
    });
  }
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || $("send").disabled) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("new-session").addEventListener("click", () => open(Sessions.create()));
  $("upload").addEventListener("submit", upload);
  showModels();
  showDocuments();
  setInterval(followPerson, FOLLOW_MS);
  showSessions();
}

start();
