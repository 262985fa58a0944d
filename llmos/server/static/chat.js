// The llmos web chat: plain JavaScript, no build step, no dependencies.
//
// Everything the page shows comes as llmos events, one shape whatever the transport:
//   {type: "text_delta", text}            a piece of the answer
//   {type: "final", text}                 the whole answer (its "Sources:" list at the end)
//   {type: "error", message}
//   {type: "mode", mode}                  "manual": a person has taken over; "auto": the assistant answers
//   {type: "plan" | "tool_call" | "tool_result" | ...}   llmos's run events, shown collapsed
// streamAnswer() reads them from the OpenAI-compatible stream; the native sessions API streams them
// as they are, so switching is a new streamAnswer (and Sessions calling /v1/sessions).
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

// One turn through POST /v1/chat/completions (streamed): the whole conversation goes up, events come back.
async function streamAnswer(session, onEvent) {
  const messages = session.messages
    .filter((m) => m.role === "user" || m.role === "assistant")
    .map((m) => ({ role: m.role, content: m.content }));
  const response = await api("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: $("model").value, messages, stream: true }),
  });
  const mode = response.headers.get("X-LLMOS-Session-Mode");
  if (mode) onEvent({ type: "mode", mode });
  let text = "";
  for await (const data of sseData(response)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data);
    if (chunk.error) return onEvent({ type: "error", message: chunk.error.message });
    if (chunk.session_mode) onEvent({ type: "mode", mode: chunk.session_mode });
    for (const event of chunk.llmos_events || []) onEvent(event);
    const choice = (chunk.choices || [])[0];
    if (!choice) continue;
    if (choice.delta && choice.delta.content) {
      text += choice.delta.content;
      onEvent({ type: "text_delta", text: choice.delta.content });
    }
    if (choice.finish_reason) onEvent({ type: "final", text });
  }
}

// Conversations, kept in this browser until the server's session list is used (same async shape).
const Sessions = {
  async list() {
    return JSON.parse(localStorage.getItem("llmos.sessions") || "[]");
  },
  async save(session) {
    const others = (await this.list()).filter((s) => s.id !== session.id);
    localStorage.setItem("llmos.sessions", JSON.stringify([session, ...others].slice(0, 50)));
  },
  async remove(id) {
    localStorage.setItem("llmos.sessions", JSON.stringify((await this.list()).filter((s) => s.id !== id)));
  },
  create() {
    const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    return { id, title: "New conversation", messages: [], mode: "auto" };
  },
};

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
    case "subtask_finished":
      return `${event.subtask} ${event.status}`;
    default:
      return JSON.stringify(event);
  }
}

// --- the page ------------------------------------------------------------------------------

let current = Sessions.create();

function showMode(mode) {
  current.mode = mode;
  $("handoff").hidden = mode !== "manual";
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
  showMessage(session.messages.at(-1));
  const view = new MessageView("assistant");
  view.node.classList.add("streaming");
  const steps = [];
  let answer = null;
  $("send").disabled = true;
  try {
    await streamAnswer(session, (event) => {
      if (event.type === "text_delta") view.append(event.text);
      else if (event.type === "final") answer = event.text;
      else if (event.type === "error") view.fail(event.message);
      else if (event.type === "mode") showMode(event.mode);
      else { steps.push(event); view.step(event); }
    });
  } catch (err) {
    view.fail(err.message);
  } finally {
    $("send").disabled = false;
  }
  if (answer !== null) {
    view.finish(answer);
    session.messages.push({ role: "assistant", content: answer, steps });
  }
  await Sessions.save(session);
  await showSessions();
}

async function open(session) {
  current = session;
  $("messages").replaceChildren();
  showError("");
  showMode(session.mode || "auto");
  session.messages.forEach(showMessage);
  await showSessions();
}

async function showSessions() {
  const items = (await Sessions.list()).map((s) =>
    element("li", { class: s.id === current.id ? "current" : "" },
      element("button", { type: "button", class: "open", title: s.title, onclick: () => open(s) }, s.title),
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
  } catch (err) {
    $("upload-status").textContent = err.message;
  }
}

async function upload(event) {
  event.preventDefault();
  const files = $("upload-files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  $("upload-status").textContent = "Uploading and indexing…";
  try {
    const result = await (await api("/v1/knowledge/documents", { method: "POST", body: form }, "operator")).json();
    const lines = result.documents.map((d) => `Added ${d.name} (${d.chunks} passage${d.chunks === 1 ? "" : "s"})`);
    lines.push(...result.failed.map((f) => `Not added: ${f.reason}`));
    $("upload-status").textContent = lines.join("\n");
    $("upload-files").value = "";
  } catch (err) {
    $("upload-status").textContent = err.message;
  }
  await showDocuments();
}

async function removeDocument(doc) {
  try {
    await api("/v1/knowledge/documents/" + encodeURIComponent(doc.id), { method: "DELETE" }, "operator");
    $("upload-status").textContent = `Deleted ${doc.name}`;
  } catch (err) {
    $("upload-status").textContent = err.message;
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

function start() {
  for (const [id, name] of [["api-key", "apiKey"], ["operator-key", "operatorKey"]]) {
    $(id).value = saved.get(name);
    $(id).addEventListener("change", () => {
      saved.set(name, $(id).value.trim());
      showModels();
      showDocuments();
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
  showSessions();
}

start();
