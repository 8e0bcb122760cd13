// Small DOM helpers of the console's pages: elements built from tags, attributes and
// children, form fields, tables and facts, badges, and numbers, times and prices as shown.
import {pageSignal} from "./navigation.js";

export function h(tag, attrs, ...children) {
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

export function field(id, label, control, hint) {
  control.id = id;
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", {class: "field"}, h("label", {for: id, text: label}), control,
    hint ? h("span", {class: "hint", id: `${id}-hint`, text: hint}) : null);
}

export function select(name, options, chosen) {
  return h("select", {name}, options.map(([value, text]) =>
    h("option", {value, selected: value === chosen, text})));
}

export function facts(pairs) {
  return h("dl", {class: "facts"}, pairs.filter(([, v]) => v !== undefined).flatMap(([term, value, testid]) =>
    [h("dt", {text: term}), h("dd", {"data-testid": testid}, value === null ? "—" : String(value))]));
}

export function table(headers, rows, caption, wide = false) {
  return h("div", {class: "table-wrap"}, h("table", {class: wide ? "wide" : null},
    caption ? h("caption", {class: "visually-hidden", text: caption}) : null,
    h("thead", {}, h("tr", {}, headers.map(([text, cls]) => h("th", {scope: "col", class: cls, text})))),
    h("tbody", {}, rows)));
}

export const TONES = {succeeded: "ok", partially_succeeded: "warn", failed: "bad", rejected: "bad", canceled: "warn",
  not_judged: "",
  expired: "warn", accepted: "ok", refused: "bad", ready: "ok", trained: "ok", training: "warn", verified: "ok", closed: "ok", open: "bad", half_open: "warn", selected: "ok", enabled: "ok", disabled: "bad"};

export function badge(state) {
  return h("span", {class: `badge ${TONES[state] || ""}`, text: state.replace("_", " ")});
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function usd(micro) {
  return `$${(micro / 1e6).toFixed(4)}`;
}

export function announce(text) {
  document.getElementById("announcer").textContent = text;
}

export function show(...nodes) {
  document.getElementById("main").replaceChildren(...nodes);
}

export function fillWith(parent, ...nodes) {
  parent.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
}

export function errorBox(error) {
  return h("p", {class: "error", role: "alert", text: error.message});
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function format(value) {
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 10 ? 1 : 3);
}

export async function fill(section, draw) {
  try {
    section.append(...[await draw()].flat());
  } catch (error) {
    if (pageSignal().aborted) return;
    section.append(error.status === 403 ? h("p", {class: "notice", text: `Not shown: ${error.message}.`}) : errorBox(error));
  }
}
