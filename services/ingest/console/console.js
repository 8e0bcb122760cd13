// The Genline console: one page that draws itself from the path (/console/jobs,
// /console/jobs/{id}, /console/new, /console/account, /console/operator) with data from the
// public /v1 API (and /admin/v1 on the operator view). The API key lives in this tab's
// sessionStorage only. Live updates read the SSE streams with fetch, since EventSource
// cannot send the Authorization header; a dropped stream resumes with Last-Event-ID.
"use strict";

const KEY = "genline.apiKey";
const ADMIN_TOKEN = "genline.adminToken";
const FINAL = new Set(["rejected", "succeeded", "partially_succeeded", "failed", "canceled", "expired"]);
const STATES = ["submitted", "admitted", "rejected", "generating", "scoring", "delivering",
  "succeeded", "partially_succeeded", "failed", "canceled", "expired"];
const TEMPLATES = ["generic", "headshot", "product"]; // when the catalogue cannot be read
let catalogue = null; // GET /v1/templates, read once a sign-in
const TIERS = ["stable", "fast", "low-cost"];
const main = document.getElementById("main");
let page = new AbortController(); // aborted when the person leaves the page: its streams stop

// ---- small DOM helpers ----------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

function field(id, label, control, hint) {
  control.id = id;
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", {class: "field"}, h("label", {for: id, text: label}), control,
    hint ? h("span", {class: "hint", id: `${id}-hint`, text: hint}) : null);
}

function select(name, options, chosen) {
  return h("select", {name}, options.map(([value, text]) =>
    h("option", {value, selected: value === chosen, text})));
}

function facts(pairs) {
  return h("dl", {class: "facts"}, pairs.filter(([, v]) => v !== undefined).flatMap(([term, value, testid]) =>
    [h("dt", {text: term}), h("dd", {"data-testid": testid}, value === null ? "—" : String(value))]));
}

function table(headers, rows, caption, wide = false) {
  return h("div", {class: "table-wrap"}, h("table", {class: wide ? "wide" : null},
    caption ? h("caption", {class: "visually-hidden", text: caption}) : null,
    h("thead", {}, h("tr", {}, headers.map(([text, cls]) => h("th", {scope: "col", class: cls, text})))),
    h("tbody", {}, rows)));
}

const TONES = {succeeded: "ok", partially_succeeded: "warn", failed: "bad", rejected: "bad", canceled: "warn",
  not_judged: "",
  expired: "warn", closed: "ok", open: "bad", half_open: "warn", selected: "ok", enabled: "ok", disabled: "bad"};

function badge(state) {
  return h("span", {class: `badge ${TONES[state] || ""}`, text: state.replace("_", " ")});
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function usd(micro) {
  return `$${(micro / 1e6).toFixed(4)}`;
}

function announce(text) {
  document.getElementById("announcer").textContent = text;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function fillWith(parent, ...nodes) {
  parent.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
}

function errorBox(error) {
  return h("p", {class: "error", role: "alert", text: error.message});
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---- the API --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function authorization(admin) {
  const token = sessionStorage.getItem(admin ? ADMIN_TOKEN : KEY);
  return token ? {Authorization: `Bearer ${token}`} : {};
}

async function api(path, {method = "GET", body, admin = false, raw = false, signal} = {}) {
  const headers = authorization(admin);
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  } else if (body instanceof Blob) {
    headers["Content-Type"] = body.type || "application/octet-stream";
  }
  const response = await fetch(path, {method, headers, body, signal: signal || page.signal});
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch { /* not JSON: the status says it */ }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Server-Sent Events over fetch: yields {id, event, data} and, when the connection drops
// or the server closes it before `finished()` says the stream is complete (a job's ends
// after its final state; the tenant's never does), reconnects with Last-Event-ID after the
// last id seen.
async function* events(path, signal, finished = () => false) {
  let lastId = null;
  let failures = 0;
  while (!signal.aborted) {
    let response;
    try {
      const headers = authorization(false);
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      response = await fetch(path, {headers, signal, cache: "no-store"});
      if (!response.ok) {
        if (response.status < 500) return; // not found, not allowed: retrying will not help
        throw new Error(`stream answered ${response.status}`);
      }
      failures = 0;
      for await (const message of messages(response.body, signal)) {
        if (message.id !== undefined) lastId = message.id;
        if (message.data !== undefined) yield message;
      }
      if (finished()) return;
      throw new Error("the stream closed early");
    } catch (error) {
      if (signal.aborted) return;
      failures += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** failures, 10000)));
    }
  }
}

async function* messages(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), {once: true});
  let buffer = "";
  let message = {};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (message.data !== undefined || message.id !== undefined) yield message;
        message = {};
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") message.data = message.data === undefined ? text : `${message.data}\n${text}`;
      else if (name === "id") message.id = text;
      else if (name === "event") message.event = text;
    }
  }
}

// The template catalogue (stages, input, prices), or the base templates for a key that may
// not read it.
function templates() {
  if (!catalogue) {
    catalogue = api("/v1/templates", {signal: new AbortController().signal}).then((answer) => answer.templates)
      .catch(() => TEMPLATES.map((name) => ({name, description: "", stages: [], input: {required: false}, prices: {}})));
  }
  return catalogue;
}

// ---- navigation -----------------------------------------------------------------------

function navigate(url) {
  history.pushState(null, "", url);
  route();
  main.focus();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
      || link.target || link.hasAttribute("download") || link.origin !== location.origin
      || !link.pathname.startsWith("/console")) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", route);

function route() {
  page.abort();
  page = new AbortController();
  const path = location.pathname.replace(/\/+$/, "");
  for (const link of document.querySelectorAll(".top nav a")) {
    const current = path === link.pathname || (link.pathname === "/console/jobs" && path.startsWith("/console/jobs/"));
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const signOut = document.getElementById("sign-out");
  signOut.hidden = !sessionStorage.getItem(KEY) && !sessionStorage.getItem(ADMIN_TOKEN);
  if (path === "/console/operator") return operatorPage();
  if (!sessionStorage.getItem(KEY)) return signInPage();
  const job = path.match(/^\/console\/jobs\/([^/]+)$/);
  if (job) return jobPage(decodeURIComponent(job[1]));
  if (path === "/console/new") return newJobPage();
  if (path === "/console/account") return accountPage();
  return jobsPage();
}

document.getElementById("sign-out").addEventListener("click", () => {
  catalogue = null;
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ADMIN_TOKEN);
  announce("Signed out");
  navigate("/console/jobs");
});

// ---- sign in --------------------------------------------------------------------------

function signInPage() {
  document.title = "Sign in · Genline";
  const input = h("input", {type: "password", name: "api-key", autocomplete: "off", required: true, spellcheck: "false"});
  const problem = h("div");
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api("/v1/jobs?limit=1");
      announce("Signed in");
      route();
    } catch (error) {
      sessionStorage.removeItem(KEY);
      problem.replaceChildren(errorBox(error));
      input.focus();
    }
  }},
  field("api-key", "API key", input, "Kept in this browser tab only, and sent only to this server."),
  h("button", {type: "submit", text: "Sign in"}), problem);
  show(h("h1", {text: "Sign in"}), h("section", {}, form));
  input.focus();
}

// ---- jobs -----------------------------------------------------------------------------

function jobsPage() {
  document.title = "Jobs · Genline";
  const query = new URLSearchParams(location.search);
  const filters = h("form", {class: "filters panel", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) if (value) chosen.set(name, value);
    navigate(`/console/jobs${chosen.size ? `?${chosen}` : ""}`);
  }},
  field("filter-state", "State", select("state", [["", "any"], ...STATES.map((s) => [s, s.replace("_", " ")])], query.get("state") || "")),
  field("filter-template", "Template", select("template", [["", "any"], ...TEMPLATES.map((t) => [t, t])], query.get("template") || "")),
  field("filter-after", "Created after", h("input", {type: "date", name: "created_after", value: query.get("created_after") || ""})),
  field("filter-before", "Created before", h("input", {type: "date", name: "created_before", value: query.get("created_before") || ""})),
  h("button", {type: "submit", text: "Filter"}));
  templates().then((known) => {
    const chosen = filters.elements.template.value;
    filters.elements.template.replaceChildren(...[["", "any"], ...known.map((t) => [t.name, t.name])].map(([value, text]) =>
      h("option", {value, selected: value === chosen, text})));
  });
  const body = h("div");
  const live = h("p", {class: "muted", "aria-live": "polite"});
  show(h("div", {class: "actions"}, h("h1", {text: "Jobs"}), h("a", {class: "button", href: "/console/new", text: "New job"})),
    filters, live, body);
  const load = async () => {
    try {
      body.replaceChildren(jobsTable(await api(`/v1/jobs?${jobsQuery(query)}`), query));
    } catch (error) {
      if (!page.signal.aborted) body.replaceChildren(errorBox(error));
    }
  };
  load();
  followTenant(debounce(load, 300), live, page.signal);
}

function jobsQuery(query) {
  const params = new URLSearchParams({limit: "20"});
  for (const name of ["state", "template", "cursor"]) if (query.get(name)) params.set(name, query.get(name));
  for (const name of ["created_after", "created_before"]) {
    if (query.get(name)) params.set(name, new Date(`${query.get(name)}T00:00:00Z`).toISOString());
  }
  return params;
}

function jobsTable(jobs, query) {
  if (!jobs.data.length) return h("p", {class: "panel", text: "No jobs here yet."});
  const rows = jobs.data.map((job) => h("tr", {"data-job": job.id},
    h("td", {}, h("a", {href: `/console/jobs/${job.id}`, class: "mono", text: job.id.slice(0, 8), "aria-label": `Job ${job.id}`})),
    h("td", {"data-testid": "job-state"}, badge(job.state)),
    h("td", {text: job.template}),
    h("td", {class: "num", text: `${job.delivered} / ${job.images}`}),
    h("td", {class: "num", text: job.billing.charged ?? job.billing.reserved ?? "—"}),
    h("td", {text: when(job.created_at)})));
  const pager = h("nav", {class: "pager", "aria-label": "Pages"});
  if (query.get("cursor")) pager.append(h("button", {type: "button", class: "secondary", text: "Newest", onclick: () => {
    query.delete("cursor");
    navigate(`/console/jobs${query.size ? `?${query}` : ""}`);
  }}));
  if (jobs.next) pager.append(h("button", {type: "button", class: "secondary", text: "Older", onclick: () => {
    query.set("cursor", jobs.next);
    navigate(`/console/jobs?${query}`);
  }}));
  return h("div", {}, table([["Job"], ["State"], ["Template"], ["Delivered", "num"], ["Credits", "num"], ["Created"]],
    rows, "Your jobs, newest first"), pager);
}

async function followTenant(changed, live, signal) {
  live.textContent = "Following your jobs live.";
  for await (const message of events("/v1/events/stream", signal)) {
    changed(JSON.parse(message.data));
  }
}

// ---- submit a job ---------------------------------------------------------------------

function newJobPage() {
  document.title = "New job · Genline";
  const quote = h("output", {id: "quote", "aria-live": "polite", for: "job-template job-tier job-images"});
  const problem = h("div");
  const number = (name, attrs) => h("input", {type: "number", name, inputmode: "numeric", ...attrs});
  const form = h("form", {id: "job-form", class: "panel", onsubmit: (event) => submitJob(event, form, problem)},
    h("div", {class: "row"},
      field("job-template", "Template", select("template", TEMPLATES.map((t) => [t, t]), "generic")),
      field("job-tier", "Tier", select("tier", TIERS.map((t) => [t, t]), "stable"))),
    field("job-prompt", "Prompt", h("textarea", {name: "prompt", required: true, maxlength: "2000"})),
    h("div", {class: "row"},
      field("job-images", "Images to deliver (K)", number("images", {min: "1", max: "16", value: "1", required: true})),
      field("job-candidates", "Candidates (N)", number("candidates", {min: "1", max: "64"}), "Empty: the platform decides."),
      field("job-seed", "Seed", number("seed", {min: "0"}), "Optional, for repeatable images.")),
    field("job-quality", "Quality rules (JSON)", h("textarea", {name: "quality", spellcheck: "false",
      placeholder: '{"thresholds": {"sharpness": {"min": 80}}}'}), "Optional: thresholds on top of the template's profile."),
    field("job-photo", "Input photo", h("input", {type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp"}),
      "Optional (a headshot needs one): JPEG, PNG or WebP."),
    h("p", {}, h("strong", {text: "Quote: "}), quote),
    h("button", {type: "submit", text: "Submit job"}), problem);
  const about = h("p", {class: "hint", id: "job-template-about", "aria-live": "polite"});
  form.elements.template.setAttribute("aria-describedby", "job-template-about");
  form.elements.template.closest(".field").append(about);
  show(h("h1", {text: "New job"}), form);
  templates().then((known) => {
    form.elements.template.replaceChildren(...known.map((t) => h("option", {value: t.name, text: t.name,
      selected: t.name === "generic"})));
    const describe = () => describeTemplate(known.find((t) => t.name === form.elements.template.value), form, about);
    form.elements.template.addEventListener("change", describe);
    describe();
  });
  const requote = debounce(() => showQuote(form, quote), 250);
  form.addEventListener("change", requote);
  form.elements.images.addEventListener("input", requote);
  requote();
}

function describeTemplate(template, form, about) {
  if (!template) return;
  const stages = template.stages.map((stage) => stage.capability).join(" → ");
  about.textContent = [template.description, stages && `Stages: ${stages}.`,
    template.input.required ? "Needs an input photo." : ""].filter(Boolean).join(" ");
  form.elements.photo.required = template.input.required;
}

async function showQuote(form, output) {
  const images = Number(form.elements.images.value);
  if (!(images >= 1 && images <= 16)) { output.textContent = "choose 1 to 16 images"; return; }
  try {
    const quote = await api("/v1/quotes", {method: "POST",
      body: {template: form.elements.template.value, tier: form.elements.tier.value, images}});
    output.textContent = `${quote.credits} credits (${quote.unit_price} per delivered image); `
      + `${quote.available} available${quote.affordable ? "" : " — not enough"}. Charged only for what is delivered.`;
  } catch (error) {
    if (!page.signal.aborted) output.textContent = `no quote: ${error.message}`;
  }
}

async function submitJob(event, form, problem) {
  event.preventDefault();
  problem.replaceChildren();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = jobBody(form);
    const photo = form.elements.photo.files[0];
    if (photo) body.input_upload = (await api("/v1/uploads", {method: "POST", body: photo})).id;
    const accepted = await api("/v1/jobs", {method: "POST", body});
    announce("Job submitted");
    navigate(`/console/jobs/${accepted.id}`);
  } catch (error) {
    problem.replaceChildren(errorBox(error));
    button.disabled = false;
  }
}

function jobBody(form) {
  const values = form.elements;
  const body = {prompt: values.prompt.value, template: values.template.value, tier: values.tier.value,
    images: Number(values.images.value)};
  if (values.candidates.value) body.candidates = Number(values.candidates.value);
  if (values.seed.value) body.seed = Number(values.seed.value);
  if (values.quality.value.trim()) {
    try { body.quality = JSON.parse(values.quality.value); } catch {
      throw new Error("Quality rules must be JSON, e.g. {\"thresholds\": {\"sharpness\": {\"min\": 80}}}");
    }
  }
  return body;
}

// ---- a job ----------------------------------------------------------------------------

function jobPage(jobId) {
  document.title = "Job · Genline";
  const state = {job: null, sort: "score-desc", images: new Map(), shownScores: ""};
  const parts = {
    head: h("div"), summary: h("section", {"aria-labelledby": "summary-title"}),
    costs: h("section", {"aria-labelledby": "costs-title"}),
    timeline: h("ol", {class: "timeline", "aria-live": "polite", "aria-label": "Events"}),
    candidates: h("div"), outputs: h("div"),
  };
  show(parts.head, h("div", {class: "grid-2"}, parts.summary, parts.costs),
    h("section", {"aria-labelledby": "timeline-title"}, h("h2", {id: "timeline-title", text: "Timeline"}), parts.timeline),
    h("section", {"aria-labelledby": "candidates-title"}, h("h2", {id: "candidates-title", text: "Candidates"}), parts.candidates),
    h("section", {"aria-labelledby": "outputs-title"}, h("h2", {id: "outputs-title", text: "Delivered images"}), parts.outputs));
  const refresh = async () => {
    try {
      state.job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      drawJob(state, parts);
    } catch (error) {
      if (page.signal.aborted) return;
      if (error.status === 404 || error.status === 410) return show(jobMissing(jobId, error));
      parts.head.replaceChildren(errorBox(error));
    }
  };
  refresh().then(() => { if (state.job) followJob(jobId, parts.timeline, debounce(refresh, 200)); });
  page.signal.addEventListener("abort", () => state.images.forEach((url) => URL.revokeObjectURL(url)));
}

function jobMissing(jobId, error) {
  document.title = "Job not found · Genline";
  const erased = error.status === 410;
  return h("section", {}, h("h1", {text: erased ? "Job erased" : "Job not found"}),
    h("p", {text: erased ? `Job ${jobId} and its images were deleted at your request.`
      : `There is no job ${jobId} in your account.`}),
    h("a", {href: "/console/jobs", text: "Back to your jobs"}));
}

async function followJob(jobId, timeline, changed) {
  let final = false;
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/stream`;
  for await (const message of events(path, page.signal, () => final)) {
    const entry = JSON.parse(message.data);
    if (entry.type === "state") final = FINAL.has(entry.payload.state);
    timeline.append(h("li", {"data-type": entry.type},
      h("time", {datetime: entry.time, text: new Date(entry.time).toLocaleTimeString()}),
      h("span", {}, h("strong", {text: entry.type}), ` ${describeEntry(entry)}`)));
    timeline.scrollTop = timeline.scrollHeight;
    changed();
  }
  changed(); // the stream ended with the job's final state: draw it complete
}

function describeEntry(entry) {
  const p = entry.payload;
  switch (entry.type) {
    case "state": return `→ ${p.state}${p.reason ? ` (${p.reason})` : ""}`;
    case "billing.reserved": return `${p.credits} credits held`;
    case "billing.settled": return `${p.charged} charged, ${p.released} released`;
    case "attempt.started": return `attempt ${p.attempt}: ${p.images_needed} image(s) needed`;
    case "attempt.generated": return `attempt ${p.attempt}: ${p.candidates} candidates, ${usd(p.cost_micro_usd)}`;
    case "attempt.scored": return `attempt ${p.attempt}: ${p.passed} of ${p.scored} passed`
      + (p.not_judged && p.not_judged.length ? `, ${p.not_judged.length} not judged (enough passed)` : "");
    case "delivery.published": return `${p.images} of ${p.requested} image(s) delivered`;
    default: return Object.entries(p).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }
}

function drawJob(state, parts) {
  const job = state.job;
  document.title = `Job ${job.id.slice(0, 8)} · ${job.state} · Genline`;
  parts.head.replaceChildren(h("div", {class: "actions"},
    h("h1", {}, `Job `, h("span", {class: "mono", text: job.id})),
    h("span", {id: "job-state", "data-state": job.state, role: "status"}, badge(job.state)),
    FINAL.has(job.state) ? null : job.cancel_requested_at ? h("span", {class: "muted", text: "Cancel requested"})
      : h("button", {type: "button", class: "danger", text: "Cancel job",
        onclick: (event) => cancelJob(event.target, state, parts)})));
  parts.summary.replaceChildren(h("h2", {id: "summary-title", text: "Summary"}), facts([
    ["Template", job.template], ["Prompt", job.prompt], ["Images asked", job.images, "total-images"],
    ["Candidates generated", job.scores.length, "total-candidates"],
    ["Passed", job.scores.filter((s) => s.passed).length, "total-passed"],
    ["Rejected", job.scores.filter(rejected).length, "total-rejected"],
    ["Not judged", job.scores.filter(notJudged).length || undefined, "total-not-judged"],
    ["Selected", job.selected.length, "total-selected"], ["Delivered", job.outputs.length, "total-delivered"],
    ["Attempts", job.attempts], ["Created", when(job.created_at)], ["Updated", when(job.updated_at)],
    ["Failure", job.failure ? `${job.failure.code} at ${job.failure.stage}: ${job.failure.reason}` : undefined],
  ]));
  fillWith(parts.costs, h("h2", {id: "costs-title", text: "Credits and cost"}), costFacts(job), stageCosts(job));
  const shown = `${job.scores.length}:${job.selected.join(",")}:${state.sort}`;
  if (shown !== state.shownScores) {
    state.shownScores = shown;
    parts.candidates.replaceChildren(candidateGallery(state, parts));
  }
  parts.outputs.replaceChildren(outputList(job));
}

function costFacts(job) {
  const b = job.billing;
  const byProvider = {};
  for (const score of job.scores) byProvider[score.provider || "?"] = (byProvider[score.provider || "?"] || 0) + 1;
  return facts([
    ["Billing", b.state, "billing-state"], ["Reserved", b.reserved, "billing-reserved"],
    ["Charged", b.charged, "billing-charged"], ["Released", b.released, "billing-released"],
    ["Retry tokens used", b.retry_tokens_used], ["Price book", b.price_book_version],
    ["Provider cost", usd(job.provider_cost_micro_usd || 0), "provider-cost"],
    ["Candidates by provider", Object.entries(byProvider).map(([p, n]) => `${p}: ${n}`).join(", ") || null],
  ]);
}

// Cost by stage and provider, per attempt, when the job's view has them (every attempt
// records its stages); nothing for a view without.
function stageCosts(job) {
  const stages = job.stages;
  if (!Array.isArray(stages) || !stages.length) return null;
  return h("div", {}, h("h3", {text: "By stage and provider"}), table(
    [["Attempt", "num"], ["Stage"], ["Provider"], ["Calls", "num"], ["Expected", "num"], ["Cost", "num"], ["Time", "num"]],
    stages.map((s) => h("tr", {"data-stage": s.stage},
      h("td", {class: "num", text: s.attempt}), h("td", {text: s.stage}), h("td", {text: s.provider}),
      h("td", {class: "num", text: s.calls}), h("td", {class: "num", text: usd(s.expected_cost_micro_usd || 0)}),
      h("td", {class: "num", text: usd(s.cost_micro_usd || 0)}),
      h("td", {class: "num", text: `${((s.latency_ms || 0) / 1000).toFixed(1)} s`}))), "Cost by stage"));
}

async function cancelJob(button, state, parts) {
  button.disabled = true;
  try {
    state.job = await api(`/v1/jobs/${state.job.id}/cancel`, {method: "POST"});
    announce("Cancel requested");
    drawJob(state, parts);
  } catch (error) {
    button.disabled = false;
    parts.head.append(errorBox(error));
  }
}

// A candidate without a verdict: the scorer stopped measuring once the job had enough
// better ones. It neither passed nor was rejected.
function notJudged(score) {
  return score.judged === false;
}

function rejected(score) {
  return !score.passed && !notJudged(score);
}

function sortedScores(scores, sort) {
  const copy = [...scores];
  if (sort === "score-desc") copy.sort((a, b) => b.score - a.score);
  if (sort === "score-asc") copy.sort((a, b) => a.score - b.score);
  if (sort === "index") copy.sort((a, b) => a.index - b.index);
  return copy;
}

function candidateGallery(state, parts) {
  const job = state.job;
  if (!job.scores.length) return h("p", {class: "muted", text: "No candidate has been scored yet."});
  const sorter = select("sort", [["score-desc", "score, best first"], ["score-asc", "score, worst first"],
    ["index", "candidate number"]], state.sort);
  sorter.addEventListener("change", () => { state.sort = sorter.value; drawJob(state, parts); });
  const passed = job.scores.filter((s) => s.passed).length;
  const unjudged = job.scores.filter(notJudged).length;
  return h("div", {},
    h("div", {class: "actions"}, field("candidate-sort", "Sort by", sorter),
      h("p", {class: "muted", text: `${job.scores.length} candidates: ${passed} passed, `
        + `${job.scores.filter(rejected).length} rejected, ${unjudged ? `${unjudged} not judged, ` : ""}`
        + `${job.selected.length} selected.`})),
    h("ul", {class: "gallery"}, sortedScores(job.scores, state.sort).map((score) => candidateCard(state, score))));
}

function candidateCard(state, score) {
  const job = state.job;
  const selected = job.selected.includes(score.index);
  const verdict = selected ? "selected" : score.passed ? "passed" : notJudged(score) ? "not_judged" : "rejected";
  const img = h("img", {alt: `Candidate ${score.index} (${verdict})`, width: "256", height: "256"});
  loadCandidate(state, score.index, img);
  const failing = score.failed.length ? h("ul", {class: "failing", "aria-label": "Failed dimensions"},
    score.failed.map((name) => {
      const d = score.dimensions[name] || {};
      return h("li", {"data-dimension": name}, h("strong", {text: name}),
        `: ${d.value === null || d.value === undefined ? "not measured" : format(d.value)} against ${format(d.threshold)}`
        + (d.reason ? ` (${d.reason})` : ""));
    })) : null;
  const unmeasured = score.not_measured || [];
  const skipped = unmeasured.length ? h("p", {class: "muted not-measured", "data-dimensions": unmeasured.join(" ")},
    h("strong", {text: "Not measured"}), `: ${unmeasured.join(", ")} (${whyUnmeasured(score, unmeasured[0])})`) : null;
  const rows = Object.entries(score.dimensions).map(([name, d]) => h("tr", {},
    h("th", {scope: "row", text: name}), h("td", {class: "num", text: d.value === null ? "—" : format(d.value)}),
    h("td", {class: "num", text: format(d.threshold)}),
    h("td", {text: d.passed ? "pass" : unmeasured.includes(name) ? "not measured" : "fail"})));
  return h("li", {class: `candidate ${verdict}`, "data-index": score.index, "data-verdict": verdict},
    img,
    h("h3", {}, `#${score.index}`, badge(verdict),
      h("span", {class: "muted", text: `score ${format(score.score)}`})),
    h("p", {class: "muted", text: `attempt ${score.attempt} · ${score.provider || "unknown provider"}`}),
    failing,
    skipped,
    h("details", {}, h("summary", {text: "All dimensions"}),
      table([["Dimension"], ["Value", "num"], ["Threshold", "num"], ["Verdict"]], rows, `Scores of candidate ${score.index}`)));
}

// What the reason of an unmeasured dimension says after "nsfw unmeasured: ".
function whyUnmeasured(score, name) {
  const reason = (score.dimensions[name] || {}).reason || "";
  return reason.slice(reason.indexOf(": ") + 2);
}

async function loadCandidate(state, index, img) {
  if (!state.images.has(index)) {
    try {
      const response = await api(`/v1/jobs/${state.job.id}/candidates/${index}/image`, {raw: true});
      state.images.set(index, URL.createObjectURL(await response.blob()));
    } catch (error) {
      if (!page.signal.aborted) img.alt = `Candidate ${index}: ${error.message}`;
      return;
    }
  }
  img.src = state.images.get(index);
}

function format(value) {
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 10 ? 1 : 3);
}

function outputList(job) {
  if (!job.outputs.length) return h("p", {class: "muted", text: "Nothing delivered yet."});
  const reported = new Map(job.reports.map((r) => [r.n, r]));
  return h("ul", {class: "outputs"}, job.outputs.map((output) => h("li", {class: "panel"},
    h("img", {src: output.url, alt: `Delivered image ${output.n}`}),
    h("p", {}, h("a", {href: output.url, download: `${job.id}-${output.n}`, text: `Download image ${output.n}`}),
      h("span", {class: "muted", text: ` (${Math.round(output.size_bytes / 1024)} KB, link valid until ${when(output.expires_at)})`})),
    reported.has(output.n) ? h("p", {text: `Reported: ${reported.get(output.n).outcome}`}) : reportForm(job, output.n))));
}

function reportForm(job, n) {
  const input = h("input", {type: "text", name: "reason", required: true, maxlength: "1000"});
  const result = h("p", {role: "status"});
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api(`/v1/jobs/${job.id}/outputs/${n}/report`, {method: "POST", body: {reason: input.value}});
      result.textContent = "Reported; the outcome shows here once the ledger has decided.";
      form.querySelector("button").disabled = true;
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  }}, field(`report-${n}`, `What is wrong with image ${n}?`, input),
  h("button", {type: "submit", class: "secondary", text: "Report image"}), result);
  return form;
}

// ---- account --------------------------------------------------------------------------

async function accountPage() {
  document.title = "Account · Genline";
  const balance = h("section", {}, h("h2", {text: "Balance"}));
  const usage = h("section", {}, h("h2", {text: "Plan and usage"}));
  const holds = h("section", {}, h("h2", {text: "Holds"}));
  const keys = h("section", {}, h("h2", {text: "API keys"}));
  const hooks = h("section", {}, h("h2", {text: "Webhook endpoints"}));
  show(h("h1", {text: "Account"}), balance, usage, holds, keys, hooks);
  await Promise.all([
    fill(balance, async () => drawBalance(await api("/v1/account"))),
    fill(usage, async () => drawUsage(await api("/v1/usage"))),
    fill(holds, async () => drawHolds((await api("/v1/jobs?limit=100")).data)),
    fill(keys, async () => drawKeys((await api("/v1/api-keys")).data)),
    fill(hooks, async () => drawEndpoints((await api("/v1/webhook-endpoints")).data)),
  ]);
}

async function fill(section, draw) {
  try {
    section.append(...[await draw()].flat());
  } catch (error) {
    if (page.signal.aborted) return;
    section.append(error.status === 403 ? h("p", {class: "notice", text: `Not shown: ${error.message}.`}) : errorBox(error));
  }
}

function drawBalance(account) {
  return [facts([
    ["Available", account.available, "account-available"], ["Posted", account.posted],
    ["Held for jobs in progress", account.pending], ["Retry tokens", account.retry_tokens],
    ["A reported image earns", account.report_policy || "the platform's default"],
  ]), h("h3", {text: "Grants"}), account.grants.length
    ? table([["Source"], ["Amount", "num"], ["Remaining", "num"], ["Expires"]], account.grants.map((g) => h("tr", {},
      h("td", {text: g.source}), h("td", {class: "num", text: g.amount}), h("td", {class: "num", text: g.remaining}),
      h("td", {text: g.expires_at ? when(g.expires_at) : "never"}))), "Grants, earliest expiring first")
    : h("p", {class: "muted", text: "No grants."})];
}

const LIMIT_NAMES = {requests_burst: "Requests at once (burst)", concurrent_jobs: "Jobs in progress",
  images_per_day: "Images today (UTC)"};

// GET /v1/usage: a bar per limit of the plan, filled to what the limit counts now.
function drawUsage(usage) {
  const plan = usage.plan;
  return [facts([
    ["Plan", plan.name, "usage-plan"], ["Request rate", `${plan.requests_per_s} a second, bursts of ${plan.burst}`],
    ["Requests today", usage.requests_today, "usage-requests-today"],
    ["Credits held", usage.credits_held ?? "the ledger does not answer"],
    ["Daily counters reset", when(usage.resets_at)],
  ]), h("ul", {class: "limits"}, usage.limits.map(limitBar))];
}

function limitBar(limit) {
  const label = LIMIT_NAMES[limit.name] || limit.name;
  const id = `limit-${limit.name}`;
  if (limit.limit === null) {
    return h("li", {"data-testid": `usage-${limit.name}`, "data-used": limit.used},
      h("span", {class: "limit-name", text: label}), h("span", {class: "muted", text: `${limit.used}, no limit on your plan`}));
  }
  const full = limit.used >= limit.limit;
  return h("li", {"data-testid": `usage-${limit.name}`, "data-used": limit.used, "data-limit": limit.limit},
    h("label", {for: id, class: "limit-name", text: label}),
    h("meter", {id, min: "0", max: String(limit.limit), value: String(limit.used), low: String(limit.limit * 0.8),
      high: String(limit.limit * 0.95), optimum: "0"}),
    h("span", {class: full ? "limit-count full" : "limit-count", text: `${limit.used} of ${limit.limit}`}));
}

// Credits held: the reservations of your newest jobs that are still running.
function drawHolds(jobs) {
  const held = jobs.filter((job) => !FINAL.has(job.state) && job.billing.state === "reserved");
  if (!held.length) return h("p", {class: "muted", text: "No credits are held: none of your newest jobs is running."});
  return table([["Job"], ["State"], ["Held", "num"]], held.map((job) => h("tr", {},
    h("td", {}, h("a", {href: `/console/jobs/${job.id}`, class: "mono", text: job.id.slice(0, 8), "aria-label": `Job ${job.id}`})),
    h("td", {}, badge(job.state)), h("td", {class: "num", text: job.billing.reserved}))), "Credits held by running jobs");
}

function drawKeys(keys) {
  return table([["Name"], ["Prefix"], ["Scopes"], ["Created"], ["Last used"], ["Expires"]], keys.map((k) => h("tr", {},
    h("td", {text: k.name}), h("td", {class: "mono", text: `${k.prefix}…`}), h("td", {text: k.scopes.join(", ")}),
    h("td", {text: when(k.created_at)}), h("td", {text: when(k.last_used_at)}),
    h("td", {text: k.expires_at ? when(k.expires_at) : "—"}))), "API keys");
}

async function drawEndpoints(endpoints) {
  if (!endpoints.length) return h("p", {class: "muted", text: "No webhook endpoints."});
  const blocks = await Promise.all(endpoints.map(async (endpoint) => {
    const attempts = (await api(`/v1/webhook-endpoints/${endpoint.id}/attempts`)).data.slice(0, 5);
    return h("div", {class: "panel"}, h("h3", {class: "mono", text: endpoint.url}),
      h("p", {}, endpoint.enabled ? badge("enabled") : badge("disabled"), ` ${endpoint.event_types.join(", ")}`),
      attempts.length ? table([["When"], ["Event"], ["Answer", "num"], ["State"]], attempts.map((a) => h("tr", {},
        h("td", {text: when(a.attempted_at)}), h("td", {text: a.event_type}),
        h("td", {class: "num", text: a.status_code ?? "none"}), h("td", {text: a.message_state}))), "Recent attempts")
        : h("p", {class: "muted", text: "No attempts yet."}));
  }));
  return blocks;
}

// ---- operator view --------------------------------------------------------------------

function operatorPage() {
  document.title = "Operator · Genline";
  if (!sessionStorage.getItem(ADMIN_TOKEN)) return operatorSignIn();
  const providers = h("section", {}, h("h2", {text: "Providers"}));
  const dead = h("section", {}, h("h2", {text: "Dead-lettered messages"}));
  const margins = h("section", {}, h("h2", {text: "Margin per template (last 30 days)"}));
  const calibration = h("section", {}, h("h2", {text: "Calibration"}), calibrationForm());
  show(h("div", {class: "actions"}, h("h1", {text: "Operator view"}),
    h("button", {type: "button", class: "secondary", text: "Forget operator token", onclick: () => {
      sessionStorage.removeItem(ADMIN_TOKEN);
      route();
    }})), providers, dead, margins, calibration);
  fill(providers, async () => drawProviders((await api("/admin/v1/providers", {admin: true})).providers));
  fill(dead, async () => drawDeadLetters(await api("/admin/v1/dead-letters", {admin: true})));
  fill(margins, async () => drawMargins((await api("/admin/v1/margins", {admin: true})).templates));
}

function operatorSignIn() {
  const input = h("input", {type: "password", name: "admin-token", autocomplete: "off", required: true});
  const problem = h("div");
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(ADMIN_TOKEN, input.value.trim());
    try {
      await api("/admin/v1/providers", {admin: true});
      route();
    } catch (error) {
      sessionStorage.removeItem(ADMIN_TOKEN);
      const hint = error.status === 404 ? " Open the console on ingest's admin port (GENLINE_ADMIN_PORT)." : "";
      problem.replaceChildren(errorBox(new Error(error.message + hint)));
    }
  }}, field("admin-token", "Operator token", input, "An operator token (GENLINE_ADMIN_TOKENS) with platform:read; billing:read shows margins, calibration:read calibration."),
  h("button", {type: "submit", text: "Open operator view"}), problem);
  show(h("h1", {text: "Operator view"}), h("section", {}, form));
  input.focus();
}

function drawProviders(providers) {
  return table([["Provider"], ["Breaker"], ["Price / image", "num"], ["Pass rate by template"], ["In flight", "num"],
    ["Latency", "num"], ["Calls / failures", "num"], ["Quality breakers"]], providers.map((p) => h("tr", {"data-provider": p.name},
    h("th", {scope: "row"}, p.name, h("div", {class: "muted", text: p.adapter})),
    h("td", {}, badge(p.state)),
    h("td", {class: "num", text: usd(p.price_micro_usd)}),
    h("td", {}, h("ul", {class: "compact"}, Object.entries(p.pass_rates).map(([t, r]) =>
      h("li", {text: `${t} ${(r * 100).toFixed(0)}%`})))),
    h("td", {class: "num", text: `${p.in_flight} / ${p.concurrency_limit}`}),
    h("td", {class: "num", text: `${p.latency_estimate_s.toFixed(2)} s`}),
    h("td", {class: "num", text: `${p.calls} / ${p.failures}`}),
    h("td", {text: Object.entries(p.quality).filter(([, q]) => q.state !== "closed")
      .map(([t, q]) => `${t}: ${q.state} (${q.reason})`).join("; ") || "all closed"}))), "Providers", true);
}

function drawDeadLetters(dead) {
  return [h("p", {}, "Messages a service gave up on after its retries: ", h("strong", {"data-testid": "dead-total", text: dead.total})),
    table([["Topic"], ["Messages", "num"]], Object.entries(dead.topics).map(([topic, count]) => h("tr", {},
      h("td", {class: "mono", text: topic}), h("td", {class: "num", text: count}))), "Dead-letter topics")];
}

function drawMargins(rows) {
  if (!rows.length) return h("p", {class: "muted", text: "No job was settled in the last 30 days."});
  return table([["Template"], ["Jobs", "num"], ["Credits charged", "num"], ["Revenue", "num"], ["Provider cost", "num"],
    ["Margin", "num"], ["Cost by stage"]], rows.map((row) => h("tr", {"data-template": row.template},
    h("th", {scope: "row", text: row.template}), h("td", {class: "num", text: row.jobs}),
    h("td", {class: "num", text: row.charged_credits}), h("td", {class: "num", text: usd(row.revenue_micro_usd)}),
    h("td", {class: "num", text: usd(row.provider_cost_micro_usd)}),
    h("td", {class: "num", "data-testid": `margin-${row.template}`, text: usd(row.margin_micro_usd)}),
    h("td", {text: Object.entries(row.stage_cost_micro_usd || {}).map(([stage, cost]) => `${stage} ${usd(cost)}`).join(", ") || "—"}))),
  "Margin per template", true);
}

function calibrationForm() {
  const tenant = h("input", {type: "text", name: "tenant_id", required: true, maxlength: "63"});
  const result = h("div");
  const form = h("form", {class: "filters", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const report = await api(`/admin/v1/calibration?tenant_id=${encodeURIComponent(tenant.value)}`, {admin: true});
      result.replaceChildren(drawCalibration(report));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  }}, field("calibration-tenant", "Tenant", tenant), h("button", {type: "submit", text: "Show calibration"}));
  return h("div", {}, form, result);
}

function drawCalibration(report) {
  if (!report.dimensions.length) return h("p", {class: "muted", text: `No delivered images of ${report.tenant_id} in the last 30 days.`});
  return h("div", {}, h("p", {text: `${report.images} delivered images, ${report.reported_bad} reported bad.`}),
    table([["Profile"], ["Dimension"], ["Images", "num"], ["Bad", "num"], ["Pass rate", "num"], ["Bad passed", "num"],
      ["Threshold", "num"], ["Suggested", "num"]], report.dimensions.map((d) => h("tr", {},
      h("td", {text: d.profile}), h("td", {text: d.dimension}), h("td", {class: "num", text: d.images}),
      h("td", {class: "num", text: d.bad}), h("td", {class: "num", text: `${(d.pass_rate * 100).toFixed(0)}%`}),
      h("td", {class: "num", text: d.bad_passed}), h("td", {class: "num", text: format(d.threshold)}),
      h("td", {class: "num", text: d.suggested_threshold === null ? "—" : format(d.suggested_threshold)}))), "Calibration by dimension", true));
}

route();
