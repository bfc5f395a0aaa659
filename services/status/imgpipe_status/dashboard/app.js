// imgpipe dashboard: upload, recent requests, and a live page per request.
// Everything users wrote (product names, URLs, reasons) is shown with textContent, never
// parsed as HTML. When the services require an API key, the page asks for it once and keeps
// it in this tab's sessionStorage; it travels only in the Authorization header, never in a URL.
"use strict";

const view = document.getElementById("view");
const KEY = "imgpipe.api_key";
let config = { ingest_url: "", auth_required: false };
let stop = () => {};

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// fetch with the key; a 401 means the key is missing, wrong or revoked: ask for one.
async function api(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401 && config.auth_required) {
    sessionStorage.removeItem(KEY);
    showLogin("The API key was refused (unknown or revoked). Enter a valid one.");
    throw new Error("unauthorized");
  }
  return response;
}

function showLogin(problem = "") {
  stop();
  stop = () => {};
  const key = el("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "imgpipe_…" });
  const form = el("form", { id: "login-form" },
    el("label", { for: "api-key", text: "API key" }), key,
    el("button", { id: "login-button", type: "submit", text: "Sign in" }),
    problem ? el("p", { class: "error", id: "login-error", text: problem }) : "");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!key.value.trim()) return;
    sessionStorage.setItem(KEY, key.value.trim());
    route();
  });
  view.replaceChildren(el("section", {}, el("h2", { text: "Sign in" }),
    el("p", { text: "These services need an API key (ask your operator: imgpipe keys create)." }), form));
}

// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
async function followEvents(url, onStatus, signal) {
  while (!signal.aborted) {
    try {
      const response = await api(url, { headers: { Accept: "text/event-stream" }, signal });
      if (!response.ok) return `HTTP ${response.status}`;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = block.split("\n");
          const type = (fields.find((l) => l.startsWith("event:")) || "").slice(6).trim();
          const data = fields.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (type === "status" && onStatus(JSON.parse(data))) return null;
        }
      }
    } catch (error) {
      if (signal.aborted || error.message === "unauthorized") return null;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000)); // cut off: reconnect, fresh snapshot
  }
  return null;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function kb(bytes) {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.round(bytes / 1e3)} kB`;
}

function progressBar(p) {
  const pct = (n) => (p.total ? (100 * n) / p.total : 0);
  return el("div", {
      class: "bar", id: "progress-bar", role: "progressbar", "aria-valuemin": "0",
      "aria-valuemax": String(p.total), "aria-valuenow": String(p.processed + p.failed),
    },
    el("div", { class: "done", style: `width:${pct(p.processed)}%` }),
    el("div", { class: "failed", style: `width:${pct(p.failed)}%` }));
}

function showHome() {
  const file = el("input", { type: "file", id: "file-input", accept: ".csv,text/csv" });
  const chosen = el("p", { text: "Drop a CSV here, or choose one." });
  const drop = el("div", { class: "drop", id: "drop-zone" }, chosen, file);
  const webhook = el("input", { type: "url", id: "webhook-url", placeholder: "https://… (optional)" });
  const message = el("div", { id: "upload-message" });
  const button = el("button", { id: "upload-button", type: "submit", text: "Upload" });
  let picked = null;
  const pick = (f) => { picked = f; chosen.textContent = f ? f.name : "Drop a CSV here, or choose one."; };
  file.addEventListener("change", () => pick(file.files[0] || null));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files[0] || null);
  });
  const form = el("form", { id: "upload-form" }, drop,
    el("label", { for: "webhook-url", text: "Webhook URL" }), webhook, button, message);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    message.replaceChildren();
    if (!picked) { message.append(el("p", { class: "error", text: "Choose a CSV file first." })); return; }
    const body = new FormData();
    body.append("file", picked);
    if (webhook.value.trim()) body.append("webhook_url", webhook.value.trim());
    button.disabled = true;
    try {
      const response = await api(`${config.ingest_url}/upload/`, { method: "POST", body });
      const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
      if (response.status === 202) { location.hash = `#/requests/${data.request_id}`; return; }
      const box = el("div", { class: "error", id: "upload-error" }, el("p", { text: String(data.detail) }));
      const problems = (data.problems || []).map((p) =>
        el("li", { text: (p.line ? `line ${p.line}: ` : "") + p.message }));
      if (problems.length) box.append(el("ul", {}, ...problems));
      message.append(box);
    } catch (error) {
      if (error.message !== "unauthorized") message.append(el("p", { class: "error", text: `Upload failed: ${error}` }));
    } finally {
      button.disabled = false;
    }
  });
  const recent = el("tbody", { id: "recent" });
  const signOut = el("button", { id: "sign-out", type: "button", text: "Sign out" });
  signOut.addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
  view.replaceChildren(
    el("section", {}, el("h2", { text: "Upload a CSV" }), form,
      config.auth_required ? signOut : ""),
    el("section", {}, el("h2", { text: "Recent requests" }),
      el("table", {}, el("thead", {}, el("tr", {}, ...["Request", "Status", "Progress", "Created"]
        .map((h) => el("th", { text: h })))), recent)));
  const refresh = async () => {
    const response = await api("/requests?limit=20").catch(() => null);
    if (!response || !response.ok) return;
    const rows = (await response.json()).map((r) => el("tr", {},
      el("td", {}, el("a", { href: `#/requests/${r.request_id}`, text: r.request_id })),
      el("td", {}, el("span", { class: `badge ${r.status}`, text: r.status })),
      el("td", {}, progressBar(r.progress), el("small", {
        text: `${r.progress.processed + r.progress.failed} / ${r.progress.total}` })),
      el("td", { text: new Date(r.created_at).toLocaleString() })));
    recent.replaceChildren(...rows);
  };
  refresh();
  const timer = setInterval(refresh, 2000);
  stop = () => clearInterval(timer);
}

// Images made from earlier work: not_modified (a 304), same_bytes, fresh (no request at all).
function reusedCount(reused) {
  return Object.values(reused || {}).reduce((a, b) => a + b, 0);
}

function reusedTitle(reused) {
  return Object.entries(reused || {}).map(([how, n]) => `${how.replace("_", " ")}: ${n}`).join(", ");
}

function showRequest(id) {
  const summary = el("section", { id: "request" }, el("p", { text: "Loading…" }));
  const failures = el("section", { id: "failures", hidden: "" });
  const samples = el("section", { id: "samples", hidden: "" });
  view.replaceChildren(summary, failures, samples);
  const live = new AbortController();
  const onStatus = (s) => {
    const p = s.progress;
    const done = p.processed + p.failed;
    const saved = s.bytes_in ? ` (${Math.round(100 * (1 - s.bytes_out / s.bytes_in))}% saved)` : "";
    summary.replaceChildren(
      el("h2", { text: `Request ${s.request_id}` }),
      el("span", { class: `badge ${s.status}`, id: "status", text: s.status }),
      el("div", { class: "facts" },
        el("div", {}, el("b", { id: "progress-text", text: `${done} / ${p.total}` }), "images done"),
        el("div", {}, el("b", { text: String(p.processed) }), "processed"),
        el("div", {}, el("b", { id: "failed-count", text: String(p.failed) }), "failed"),
        el("div", {}, el("b", { text: `${kb(s.bytes_in)} → ${kb(s.bytes_out)}` }), `size${saved}`),
        el("div", { title: reusedTitle(s.reused) },
          el("b", { id: "reused-count", text: String(reusedCount(s.reused)) }),
          `reused, ${kb(s.bytes_not_downloaded || 0)} not downloaded`)),
      progressBar(p));
    if (s.trace_id) {
      summary.append(el("p", {}, "Trace ", el("code", { id: "trace-id", text: s.trace_id }),
        " (paste it into your tracing UI)"));
    }
    if (s.output_csv_url) {
      summary.append(el("p", {}, el("a", { id: "output-csv", href: s.output_csv_url, text: "Download the output CSV" })));
    }
    if (s.failures.length) {
      failures.hidden = false;
      failures.replaceChildren(el("h2", { text: "Failed images" }), el("table", {},
        el("thead", {}, el("tr", {}, ...["Row", "URL", "Reason", "Detail"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...s.failures.map((f) => el("tr", {},
          el("td", { text: `${f.row}.${f.position}` }), el("td", { text: f.url }),
          el("td", { class: "failure-reason", text: f.reason }), el("td", { text: f.detail }))))));
    }
    if (s.status === "Completed" || s.status === "Failed") {
      showSamples(id, samples);
      return true;
    }
    return false;
  };
  followEvents(`/status/${encodeURIComponent(id)}/events`, onStatus, live.signal).then((problem) => {
    if (problem) summary.replaceChildren(el("p", { class: "error", id: "request-error",
      text: problem === "HTTP 404" ? "No request with this id (or it is not yours)." : `Cannot follow it: ${problem}` }));
  });
  stop = () => live.abort();
}

async function showSamples(id, box) {
  const response = await api(`/status/${encodeURIComponent(id)}/images?limit=4`).catch(() => null);
  if (!response || !response.ok) return;
  const images = await response.json();
  if (!images.length) return;
  box.hidden = false;
  box.replaceChildren(el("h2", { text: "Before and after" }), el("div", { class: "samples" },
    ...images.flatMap((i) => [
      el("figure", {}, el("img", { src: i.input_url, alt: "original", loading: "lazy" }),
        el("figcaption", { text: `before: ${kb(i.bytes_in)}, ${i.width}×${i.height}` })),
      el("figure", {}, el("img", { src: i.output_url, alt: "optimised", loading: "lazy" }),
        el("figcaption", { text: `after: ${kb(i.bytes_out)}, JPEG q50` })),
    ])));
}

function route() {
  stop();
  if (config.auth_required && !sessionStorage.getItem(KEY)) { showLogin(); return; }
  const match = location.hash.match(/^#\/requests\/([0-9a-f]{32})$/);
  if (match) showRequest(match[1]); else showHome();
}

(async () => {
  config = await (await fetch("config.json")).json();
  window.addEventListener("hashchange", route);
  route();
})();
