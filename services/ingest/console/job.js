// A job's page: its summary, its progress while it generates and scores (counts, a bar, the
// ETA and the candidates passing as they pass), credits and costs, timeline (followed
// live), candidates with their verdicts, delivered images, each of which may be reported,
// and once the job is final its signed receipt, verified in the browser. A video job's
// candidates and deliveries are clips: each in a player, a candidate's verdicts also over
// the timeline of its sampled frames.
import {FINAL, api, events} from "./api.js";
import {clipFacts, clipPlayer, clipTimeline, isClip, seconds} from "./clips.js";
import {h, field, select, facts, table, badge, when, usd, announce, show, fillWith, errorBox, debounce, format} from "./dom.js";
import {pageSignal} from "./navigation.js";
import {receiptSection} from "./receipts.js";

export function jobPage(jobId) {
  document.title = "Job · Genline";
  const state = {job: null, sort: "score-desc", images: new Map(), shownScores: "", previews: new Set()};
  const parts = {
    head: h("div"), progress: h("div"), summary: h("section", {"aria-labelledby": "summary-title"}),
    costs: h("section", {"aria-labelledby": "costs-title"}),
    timeline: h("ol", {class: "timeline", "aria-live": "polite", "aria-label": "Events"}),
    candidates: h("div"), outputs: h("div"), receipt: h("div"),
    outputsTitle: h("h2", {id: "outputs-title", text: "Delivered images"}),
  };
  show(parts.head, parts.progress, h("div", {class: "grid-2"}, parts.summary, parts.costs),
    h("section", {"aria-labelledby": "timeline-title"}, h("h2", {id: "timeline-title", text: "Timeline"}), parts.timeline),
    h("section", {"aria-labelledby": "candidates-title"}, h("h2", {id: "candidates-title", text: "Candidates"}), parts.candidates),
    h("section", {"aria-labelledby": "outputs-title"}, parts.outputsTitle, parts.outputs),
    parts.receipt);
  const refresh = async () => {
    try {
      state.job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      drawJob(state, parts);
    } catch (error) {
      if (pageSignal().aborted) return;
      if (error.status === 404 || error.status === 410) return show(jobMissing(jobId, error));
      parts.head.replaceChildren(errorBox(error));
    }
  };
  const progressed = (entry) => drawProgress(state, parts.progress, entry);
  refresh().then(() => { if (state.job) followJob(jobId, parts.timeline, debounce(refresh, 200), progressed); });
  pageSignal().addEventListener("abort", () => state.images.forEach((url) => URL.revokeObjectURL(url)));
}

function jobMissing(jobId, error) {
  document.title = "Job not found · Genline";
  const erased = error.status === 410;
  return h("section", {}, h("h1", {text: erased ? "Job erased" : "Job not found"}),
    h("p", {text: erased ? `Job ${jobId} and its images were deleted at your request.`
      : `There is no job ${jobId} in your account.`}),
    h("a", {href: "/console/jobs", text: "Back to your jobs"}));
}

async function followJob(jobId, timeline, changed, progressed) {
  let final = false;
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/stream`;
  for await (const message of events(path, pageSignal(), () => final)) {
    const entry = JSON.parse(message.data);
    if (entry.type === "state") final = FINAL.has(entry.payload.state);
    if (entry.type === "progress") progressed(entry);
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
    case "progress": return `${progressCounts(p)}, ${eta(p.eta_s)}`;
    default: return Object.entries(p).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }
}

// A progress entry drawn: the counts, a bar of passing candidates against the images asked
// for, the ETA, and a thumbnail of each candidate that passed, fetched with the tab's key.
// A job may finish without any (a small one, in one step): then the section stays empty.
function drawProgress(state, section, entry) {
  const p = entry.payload;
  if (!section.firstChild) {
    section.replaceChildren(h("section", {id: "progress", "aria-labelledby": "progress-title"},
      h("h2", {id: "progress-title", text: "Progress"}),
      h("progress", {id: "progress-bar", "aria-labelledby": "progress-title"}),
      h("p", {id: "progress-counts", role: "status", "aria-live": "polite"}),
      h("div", {id: "progress-facts"}),
      h("ul", {class: "previews", "aria-label": "Candidates that passed"})));
  }
  const bar = section.querySelector("#progress-bar");
  bar.max = Math.max(p.images, 1);
  bar.value = Math.min(p.passing, p.images);
  bar.dataset.seq = entry.seq;
  section.querySelector("#progress-counts").textContent = `${p.passing} of ${p.images} images passing, `
    + `${p.needed} still needed; ${eta(p.eta_s)}`;
  section.querySelector("#progress-facts").replaceChildren(facts([
    ["Candidates planned", p.candidates, "progress-candidates"], ["Generated", p.generated, "progress-generated"],
    ["Scored", p.scored, "progress-scored"], ["Passing", p.passing, "progress-passing"],
    ["Still needed", p.needed, "progress-needed"], ["ETA", eta(p.eta_s), "progress-eta"],
    ["As of", new Date(entry.time).toLocaleTimeString()],
  ]));
  const previews = section.querySelector("ul.previews");
  for (const preview of p.previews || []) {
    if (state.previews.has(preview.index)) continue;
    state.previews.add(preview.index);
    const img = h("img", {alt: `Candidate ${preview.index}, passed`, width: "96", height: "96"});
    previews.append(h("li", {class: "preview", "data-index": preview.index}, img, h("span", {text: `#${preview.index}`})));
    loadPreview(state, preview, img);
  }
}

function progressCounts(p) {
  return `${p.generated} of ${p.candidates} generated, ${p.scored} scored, ${p.passing} of ${p.images} passing, `
    + `${p.needed} needed`;
}

function eta(seconds) {
  if (seconds === null || seconds === undefined) return "ETA unknown";
  const whole = Math.round(seconds);
  return whole >= 60 ? `about ${Math.floor(whole / 60)} min ${whole % 60} s left` : `about ${whole} s left`;
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
  const clips = isVideoJob(job);
  parts.outputsTitle.textContent = clips ? "Delivered clips" : "Delivered images";
  parts.summary.replaceChildren(h("h2", {id: "summary-title", text: "Summary"}), facts([
    ["Template", job.template], ["Prompt", job.prompt], [clips ? "Clips asked" : "Images asked", job.images, "total-images"],
    ["Subject", job.subject ? subjectFact(job.subject) : undefined, "job-subject"],
    ["Styles", job.styles ? job.styles.join(", ") : undefined, "job-styles"],
    ["Each clip", job.video ? clipAsked(job.video) : undefined, "clip-asked"],
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
  if (FINAL.has(job.state) && !state.receiptShown) { // issued with the job's final state, once
    state.receiptShown = true;
    parts.receipt.replaceChildren(receiptSection(job.id));
  }
}

// The subject and how its identity was carried (never its photos).
function subjectFact(subject) {
  const use = subject.identity;
  const how = use ? (use.mode === "lora" ? `trained by ${use.provider} (${use.model})` : `by reference (${use.model})`)
    : `identity ${subject.identity_asked}`;
  return `${subject.name} (${subject.kind}), ${how}${subject.training ? `, training ${subject.training}` : ""}`;
}

// A job for clips: it asked for them, or what it made or delivered is video.
function isVideoJob(job) {
  return Boolean(job.video) || job.scores.some((s) => isClip(s.media_type)) || job.outputs.some((o) => isClip(o.media_type));
}

function clipAsked(video) {
  return [seconds((video.duration_s || 0) * 1000), video.aspect_ratio, video.resolution,
    video.fps ? `${video.fps} fps` : null].filter(Boolean).join(" · ");
}

function costFacts(job) {
  const b = job.billing;
  const byProvider = {};
  for (const score of job.scores) byProvider[score.provider || "?"] = (byProvider[score.provider || "?"] || 0) + 1;
  return facts([
    ["Billing", b.state, "billing-state"], ["Reserved", b.reserved, "billing-reserved"],
    ["Charged", b.charged, "billing-charged"], ["Released", b.released, "billing-released"],
    ["Training line", b.training ? `${b.training.state}: held ${b.training.reserved}, charged ${b.training.charged ?? 0}`
      : undefined, "billing-training"],
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
  const clip = isClip(score.media_type);
  const img = clip ? clipPlayer({label: `Candidate ${score.index} (${verdict})`, testid: `candidate-clip-${score.index}`,
    preload: "auto"})
    : h("img", {alt: `Candidate ${score.index} (${verdict})`, width: "256", height: "256"});
  loadCandidate(state, score.index, img, undefined, clip ? score.media_type : undefined);
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
    clip ? clipTimeline(score, img, score.duration_ms) : null,
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

// A passing candidate's preview: the link its progress entry names, relative to the API,
// read with the tab's key like the gallery's (and kept for the gallery).
function loadPreview(state, preview, img) {
  return loadCandidate(state, preview.index, img, preview.url);
}

// A clip's bytes are typed as what its score says they are, whatever the answer's header
// says, so that the player reads them as video.
async function loadCandidate(state, index, img, url = `/v1/jobs/${state.job.id}/candidates/${index}/image`, type) {
  if (!state.images.has(index)) {
    try {
      const response = await api(url, {raw: true});
      const blob = await response.blob();
      state.images.set(index, URL.createObjectURL(type ? new Blob([blob], {type}) : blob));
    } catch (error) {
      if (!pageSignal().aborted) img.alt = `Candidate ${index}: ${error.message}`;
      return;
    }
  }
  img.src = state.images.get(index);
}


// What a delivered image carries: its signed Content Credentials and its watermark's id, as
// its receipt records them; /console/verify checks any copy of it.
function provenance(output) {
  if (!output.manifest_label) return null;
  return h("p", {class: "muted", "data-testid": `provenance-${output.n}`},
    `Content Credentials ${output.manifest_label}; watermark ${output.watermark_id || "none"}. `,
    h("a", {href: "/console/verify", text: "Verify a copy"}));
}

// A job across styles shows its delivered images grouped by style: output n is the nth
// candidate selected, which was made in its style.
function outputList(job) {
  if (!job.outputs.length) return h("p", {class: "muted", text: "Nothing delivered yet."});
  if (!job.styles) return outputItems(job, job.outputs);
  const styleOf = new Map(job.scores.map((s) => [s.index, s.style]));
  const groups = new Map(job.styles.map((name) => [name, []]));
  for (const output of job.outputs) {
    const style = styleOf.get(job.selected[output.n - 1]) || "other";
    if (!groups.has(style)) groups.set(style, []);
    groups.get(style).push(output);
  }
  return h("div", {}, [...groups].filter(([, outputs]) => outputs.length).map(([style, outputs]) =>
    h("div", {class: "style-group", "data-style": style}, h("h3", {text: `${style} (${outputs.length})`}),
      outputItems(job, outputs))));
}

function outputItems(job, outputs) {
  const reported = new Map(job.reports.map((r) => [r.n, r]));
  return h("ul", {class: "outputs"}, outputs.map((output) => {
    const noun = isClip(output.media_type) ? "clip" : "image";
    return h("li", {class: `panel ${noun}`, "data-n": output.n},
      noun === "clip" ? clipPlayer({src: output.url, poster: output.thumbnail_url, label: `Delivered clip ${output.n}`,
        testid: `clip-${output.n}`}) : h("img", {src: output.url, alt: `Delivered image ${output.n}`}),
      noun === "clip" ? h("p", {class: "muted", "data-testid": `clip-facts-${output.n}`, text: clipFacts(output)}) : null,
      h("p", {}, h("a", {href: output.url, download: `${job.id}-${output.n}`, text: `Download ${noun} ${output.n}`}),
        h("span", {class: "muted", text: ` (${Math.round(output.size_bytes / 1024)} KB, link valid until ${when(output.expires_at)})`})),
      provenance(output),
      reported.has(output.n) ? h("p", {text: `Reported: ${reported.get(output.n).outcome}`}) : reportForm(job, output.n, noun));
  }));
}

function reportForm(job, n, noun = "image") {
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
  }}, field(`report-${n}`, `What is wrong with ${noun} ${n}?`, input),
  h("button", {type: "submit", class: "secondary", text: `Report ${noun}`}), result);
  return form;
}
