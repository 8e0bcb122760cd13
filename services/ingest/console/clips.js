// Clips (MP4) on the console's pages: a <video> player with its poster, and a candidate's
// per-dimension verdicts over a timeline of its sampled frames.
//
// The marks on the timeline come from what the scores say about time, and nothing else: a
// dimension that lists samples (`frames`, `samples` or `timeline`: objects with `t_ms`, or
// `t_s`, and a `value` and `passed`, or [t_ms, value] pairs), or spans (`spans`: objects with
// `start_ms` and `end_ms`, where black or frozen frames lie), or one instant (its own `t_ms`:
// where a defect was found) gets a row of marks, spans and instants in the dimension's
// verdict. A failed dimension that names no time gets a bar over the whole clip; a passed one
// that names none is only in the candidate's table. Above the rows, the clip's own frames,
// sampled evenly. Clicking a frame or a mark seeks the player there.
import {h, format} from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 100; // the timeline's width in its own units (a percentage of the clip); it scales to the card
const ROW = 18; // names are HTML beside the drawing, so they stay readable when it shrinks
const SAMPLE_LISTS = ["frames", "samples", "timeline"];
// What a job may ask of a clip, as the API takes it.
export const ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4"];
export const RESOLUTIONS = ["480p", "720p", "1080p"];

export function isClip(mediaType) {
  return typeof mediaType === "string" && mediaType.startsWith("video/");
}

// A player that fetches only the clip's header until played (preload metadata), shows the
// poster until then, and plays inline on phones rather than going full screen.
// A clip already in memory (a candidate, read with the key) may preload it all, which shows
// its first frame rather than a black box.
export function clipPlayer({src, poster, label, testid, preload = "metadata"}) {
  const video = h("video", {controls: true, playsinline: true, preload, poster: poster || null,
    "aria-label": label, "data-testid": testid, width: "320", height: "180"});
  if (src) video.src = src;
  video.append(h("a", {href: src || "#", text: `Download ${label}`})); // for a browser without <video>
  return video;
}

// The length of a clip in seconds, as a person reads it.
export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// Every mark a dimension's score places in time: {t, end?, value?, passed?}, times in ms.
export function marksOf(score) {
  const marks = [];
  for (const key of SAMPLE_LISTS) {
    if (Array.isArray(score[key])) marks.push(...score[key].map(markOf).filter(Boolean));
  }
  // A span or an instant is where the dimension found what it judged: it carries its verdict.
  const judged = (mark) => ({...mark, passed: mark.passed ?? score.passed});
  if (Array.isArray(score.spans)) marks.push(...score.spans.map(markOf).filter(Boolean).map(judged));
  const single = markOf(score);
  if (!marks.length && single) marks.push(judged(single));
  return marks;
}

function markOf(entry) {
  if (Array.isArray(entry) && typeof entry[0] === "number") return {t: entry[0], value: entry[1]};
  if (!entry || typeof entry !== "object") return null;
  const t = firstNumber(entry.t_ms, entry.time_ms, entry.start_ms, msOf(entry.t_s), msOf(entry.time_s));
  if (t === undefined) return null;
  const end = firstNumber(entry.end_ms, msOf(entry.end_s));
  return {t, end, value: typeof entry.value === "number" ? entry.value : undefined,
    passed: typeof entry.passed === "boolean" ? entry.passed : undefined};
}

function firstNumber(...values) {
  return values.find((v) => typeof v === "number" && Number.isFinite(v));
}

function msOf(value) {
  return typeof value === "number" ? value * 1000 : undefined;
}

// The timeline of one candidate's clip: a strip of frames sampled evenly over it (drawn by
// the browser from the clip itself), and under it a row per dimension whose score names
// times, and per dimension that failed the clip (`failed`) naming none: a bar over the whole
// clip, what it judged being the clip as a whole. `player` is the clip's <video>, which frames and marks seek;
// `durationMs` the clip's length where known (else the player's, once read, else the last mark).
export function clipTimeline(score, player, durationMs) {
  const failed = new Set(score.failed || []);
  const rows = Object.entries(score.dimensions || {}).map(([name, d]) => [name, d, marksOf(d)])
    .filter(([name, , marks]) => marks.length || failed.has(name));
  const figure = h("figure", {class: "clip-timeline", "data-testid": `timeline-${score.index}`});
  const strip = h("div", {class: "filmstrip", role: "list", "aria-label": "Frames sampled over the clip"});
  const draw = () => {
    const known = durationMs || (Number.isFinite(player.duration) ? player.duration * 1000 : 0);
    const span = Math.max(known, ...rows.flatMap(([, , marks]) => marks.map((m) => m.end ?? m.t)), 1);
    figure.replaceChildren(h("figcaption", {text: `Verdicts over time (${seconds(span)})`}),
      h("div", {class: "timeline-rows"}, h("div", {class: "timeline-row frames"},
        h("span", {class: "timeline-name", text: "frames"}), strip),
      rows.map(([name, d, marks]) => timelineRow(name, d, marks.length ? marks
        : [{t: 0, end: span, passed: false, whole: true}], span, player))));
  };
  draw();
  player.addEventListener("loadedmetadata", draw, {once: true});
  player.addEventListener("loadeddata", () => drawFrames(strip, player), {once: true});
  return figure;
}

const SAMPLED_FRAMES = 8;

// The frames of the strip, read from a second, hidden player of the same clip, so the one
// on the page is not moved: each seeked to in turn and drawn on a small canvas.
async function drawFrames(strip, player) {
  const reader = h("video", {preload: "auto", muted: true});
  reader.muted = true;
  reader.src = player.currentSrc || player.src;
  try {
    await once(reader, "loadeddata");
    for (let i = 0; i < SAMPLED_FRAMES; i++) {
      const at = (reader.duration * (i + 0.5)) / SAMPLED_FRAMES;
      reader.currentTime = at;
      await once(reader, "seeked");
      const canvas = h("canvas", {width: "64", height: "36", role: "listitem", "data-t-ms": Math.round(at * 1000),
        title: `the frame at ${seconds(at * 1000)}`, onclick: () => { player.currentTime = at; }});
      canvas.getContext("2d").drawImage(reader, 0, 0, 64, 36);
      strip.append(canvas);
    }
  } catch {
    strip.append(h("span", {class: "muted", text: "frames not shown"}));
  } finally {
    reader.removeAttribute("src");
    reader.load(); // lets the browser drop the second copy
  }
}

function once(target, event) {
  return new Promise((resolve, reject) => {
    target.addEventListener(event, resolve, {once: true});
    target.addEventListener("error", () => reject(target.error), {once: true});
  });
}

function timelineRow(name, dimension, marks, span, player) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${ROW}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${name}: ${marks.length} mark(s) over ${seconds(span)}`);
  svg.append(shape("rect", {x: 0, y: ROW / 2 - 0.5, width: WIDTH, height: 1, class: "axis"}));
  for (const mark of marks) {
    const x = (mark.t / span) * WIDTH;
    const width = mark.end !== undefined ? Math.max(((mark.end - mark.t) / span) * WIDTH, 2) : 3;
    const verdict = mark.passed === undefined ? "neutral" : mark.passed ? "pass" : "fail";
    const rect = shape("rect", {x: Math.min(x, WIDTH - width), y: 2, width, height: ROW - 4, rx: 2,
      class: `mark ${verdict}${mark.whole ? " whole" : ""}`, "data-t-ms": Math.round(mark.t)});
    const title = document.createElementNS(SVG, "title");
    title.textContent = mark.whole ? `${name}: failed, judged over the whole clip` : `${name} at ${seconds(mark.t)}`
      + (mark.end !== undefined ? ` to ${seconds(mark.end)}` : "")
      + (mark.value !== undefined ? `: ${format(mark.value)}` : "") + (verdict === "neutral" ? "" : ` (${verdict})`);
    rect.append(title);
    if (player) rect.addEventListener("click", () => { player.currentTime = mark.t / 1000; });
    svg.append(rect);
  }
  const verdict = dimension.passed ? "pass" : "fail";
  return h("div", {class: "timeline-row", "data-dimension": name, "data-verdict": verdict},
    h("span", {class: `timeline-name ${verdict}`, text: name}), svg);
}

function shape(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  return el;
}

// What a delivered clip is, in a line: length, codec, rate, size and frames.
export function clipFacts(output) {
  const parts = [seconds(output.duration_ms || 0), output.codec || "unknown codec"];
  if (output.fps) parts.push(`${format(output.fps)} fps`);
  if (output.width && output.height) parts.push(`${output.width}×${output.height}`);
  if (output.frames) parts.push(`${output.frames} frames`);
  return parts.join(" · ");
}
