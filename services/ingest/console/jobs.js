// The jobs pages: your jobs, filtered and followed live (with the progress of those that
// generate and score), and a new job (images, or clips from a video template) with its quote.
import {FINAL, STATES, TEMPLATES, TIERS, api, events, templates} from "./api.js";
import {ASPECT_RATIOS, RESOLUTIONS} from "./clips.js";
import {h, field, select, table, badge, when, announce, show, errorBox, debounce} from "./dom.js";
import {pageSignal, navigate} from "./navigation.js";
import {can} from "./session.js";

export function jobsPage() {
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
  show(h("div", {class: "actions"}, h("h1", {text: "Jobs"}),
    can("jobs:write") ? h("a", {class: "button", href: "/console/new", text: "New job"}) : null),
    filters, live, body);
  const progress = new Map(); // job id → its latest progress entry's payload, kept across reloads
  const load = async () => {
    try {
      body.replaceChildren(jobsTable(await api(`/v1/jobs?${jobsQuery(query)}`), query, progress));
    } catch (error) {
      if (!pageSignal().aborted) body.replaceChildren(errorBox(error));
    }
  };
  load();
  const reload = debounce(load, 300);
  followTenant((entry) => {
    if (entry.type !== "progress") return reload();
    progress.set(entry.job_id, entry.payload); // drawn in its row at once: no reload per batch
    const cell = body.querySelector(`tr[data-job="${CSS.escape(entry.job_id)}"] td[data-testid="job-progress"]`);
    if (cell) cell.replaceChildren(progressCell(entry.payload));
  }, live, pageSignal());
}

function progressCell(payload) {
  if (!payload) return "—";
  return h("span", {}, h("progress", {max: Math.max(payload.images, 1), value: Math.min(payload.passing, payload.images),
    "aria-label": `${payload.passing} of ${payload.images} passing`}),
  ` ${payload.passing}/${payload.images} passing, ${payload.generated}/${payload.candidates} generated`);
}

function jobsQuery(query) {
  const params = new URLSearchParams({limit: "20"});
  for (const name of ["state", "template", "cursor"]) if (query.get(name)) params.set(name, query.get(name));
  for (const name of ["created_after", "created_before"]) {
    if (query.get(name)) params.set(name, new Date(`${query.get(name)}T00:00:00Z`).toISOString());
  }
  return params;
}

function jobsTable(jobs, query, progress) {
  if (!jobs.data.length) return h("p", {class: "panel", text: "No jobs here yet."});
  const rows = jobs.data.map((job) => h("tr", {"data-job": job.id},
    h("td", {}, h("a", {href: `/console/jobs/${job.id}`, class: "mono", text: job.id.slice(0, 8), "aria-label": `Job ${job.id}`})),
    h("td", {"data-testid": "job-state"}, badge(job.state)),
    h("td", {text: job.template}),
    h("td", {class: "num", text: `${job.delivered} / ${job.images}`}),
    h("td", {"data-testid": "job-progress"}, FINAL.has(job.state) ? "—" : progressCell(progress.get(job.id))),
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
  return h("div", {}, table([["Job"], ["State"], ["Template"], ["Delivered", "num"], ["Progress"], ["Credits", "num"], ["Created"]],
    rows, "Your jobs, newest first"), pager);
}

async function followTenant(changed, live, signal) {
  live.textContent = "Following your jobs live.";
  for await (const message of events("/v1/events/stream", signal)) {
    changed(JSON.parse(message.data));
  }
}

export function newJobPage() {
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
    clipFields(),
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
  // A template that makes clips asks how long and what shape (`video` in the job); one that
  // may (optional) makes images unless a length is given.
  const clips = template.video || "never";
  form.querySelector("#clip-fields").hidden = clips === "never";
  form.elements.duration.required = clips === "required";
}

// The `video` object of a job for clips: each clip's length, shape, resolution and rate.
function clipFields() {
  const number = (name, attrs) => h("input", {type: "number", name, inputmode: "decimal", ...attrs});
  return h("fieldset", {id: "clip-fields", hidden: true},
    h("legend", {text: "Clips (MP4), priced by the delivered second"}),
    h("div", {class: "row"},
      field("job-duration", "Seconds per clip", number("duration", {min: "0.5", max: "60", step: "0.5"})),
      field("job-aspect", "Aspect ratio", select("aspect_ratio", ASPECT_RATIOS.map((a) => [a, a]), "16:9")),
      field("job-resolution", "Resolution", select("resolution", RESOLUTIONS.map((r) => [r, r]), "720p")),
      field("job-fps", "Frames per second", number("fps", {min: "1", max: "60", step: "1"}),
        "Empty: the model's own.")),
    h("p", {class: "hint", text: "The input photo, if you give one, is the clip's first frame."}));
}

// The job's `video` object, when the form asks for clips; undefined otherwise.
function clipRequest(form) {
  const values = form.elements;
  if (form.querySelector("#clip-fields").hidden || !values.duration.value) return undefined;
  const video = {duration_s: Number(values.duration.value), aspect_ratio: values.aspect_ratio.value,
    resolution: values.resolution.value};
  if (values.fps.value) video.fps = Number(values.fps.value);
  return video;
}

async function showQuote(form, output) {
  const images = Number(form.elements.images.value);
  if (!(images >= 1 && images <= 16)) { output.textContent = "choose 1 to 16 images"; return; }
  try {
    const video = clipRequest(form);
    const quote = await api("/v1/quotes", {method: "POST",
      body: {template: form.elements.template.value, tier: form.elements.tier.value, images, video}});
    const unit = video && quote.second_price ? `${quote.second_price} per delivered second`
      : `${quote.unit_price} per delivered image`;
    output.textContent = `${quote.credits} credits (${unit}); `
      + `${quote.available} available${quote.affordable ? "" : " — not enough"}. Charged only for what is delivered.`;
  } catch (error) {
    if (!pageSignal().aborted) output.textContent = `no quote: ${error.message}`;
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
  const video = clipRequest(form);
  if (video) body.video = video;
  if (values.quality.value.trim()) {
    try { body.quality = JSON.parse(values.quality.value); } catch {
      throw new Error("Quality rules must be JSON, e.g. {\"thresholds\": {\"sharpness\": {\"min\": 80}}}");
    }
  }
  return body;
}
